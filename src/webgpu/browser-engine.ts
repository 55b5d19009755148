// loadModel({ backend: 'webgpu' }) in a browser (or a Web Worker): navigator.gpu's device, the checkpoint's weights on
// it, behind the engine's Model interface (engine-model.ts). The Node counterpart is node-engine.ts.

import type { Kernels } from '../kernels/types.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { openBrowserWebGpuDevice } from './device.js';
import { engineModelOfWebGpu } from './engine-model.js';
import { createWebGpuModel } from './model.js';
import type { OpenedWebGpuModel } from './node-engine.js';

export async function openBrowserWebGpuEngineModel(checkpoint: Checkpoint, kernels: Kernels,
  options: { contextLength?: number; weights?: 'native' | 'f32' }): Promise<OpenedWebGpuModel> {
  const device = await openBrowserWebGpuDevice();
  try {
    const gpu = createWebGpuModel(device.device, checkpoint, { contextLength: options.contextLength,
      weights: options.weights === 'f32' ? 'f32' : 'native' });
    const model = engineModelOfWebGpu(gpu, kernels);
    return {
      model,
      adapterName: device.adapterName,
      close() {
        model.dispose();
        device.destroy();
      },
    };
  } catch (error) {
    device.destroy();
    throw error;
  }
}
