// loadModel({ backend: 'webgpu' }) in Node: a dawn.node device, the checkpoint's weights on it, behind the engine's
// Model interface (engine-model.ts). Kept apart from engine/load.ts, which imports it only when asked for WebGPU,
// so that the WebAssembly path (and the browser bundle) never loads dawn.node.

import type { Kernels } from '../kernels/types.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { openEngineModelOnDevice, type OpenedWebGpuModel } from './engine-model.js';
import { openNodeWebGpuDevice } from './node-device.js';

export type { OpenedWebGpuModel } from './engine-model.js';

export async function openWebGpuEngineModel(checkpoint: Checkpoint, kernels: Kernels,
  options: { contextLength?: number; weights?: 'native' | 'f32' }): Promise<OpenedWebGpuModel> {
  return openEngineModelOnDevice(await openNodeWebGpuDevice(), checkpoint, kernels, options);
}
