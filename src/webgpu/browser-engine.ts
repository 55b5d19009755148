// loadModel({ backend: 'webgpu' }) in a browser (or a Web Worker): navigator.gpu's device, the checkpoint's weights on
// it, behind the engine's Model interface (engine-model.ts). The Node counterpart is node-engine.ts.

import type { Kernels } from '../kernels/types.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { openBrowserWebGpuDevice } from './device.js';
import { openEngineModelOnDevice, type OpenedWebGpuModel } from './engine-model.js';

export async function openBrowserWebGpuEngineModel(checkpoint: Checkpoint, kernels: Kernels,
  options: { contextLength?: number; weights?: 'native' | 'f32' }): Promise<OpenedWebGpuModel> {
  return openEngineModelOnDevice(await openBrowserWebGpuDevice(), checkpoint, kernels, options);
}
