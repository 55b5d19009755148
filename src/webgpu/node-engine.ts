// loadModel({ backend: 'webgpu' }) in Node: a dawn.node device, the checkpoint's weights on it, behind the engine's
// Model interface (engine-model.ts). Kept apart from engine/load.ts, which imports it only when asked for WebGPU,
// so that the WebAssembly path (and the browser bundle) never loads dawn.node.

import type { Kernels } from '../kernels/types.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { engineModelOfWebGpu, type EngineWebGpuModel } from './engine-model.js';
import { createWebGpuModel } from './model.js';
import { openNodeWebGpuDevice } from './node-device.js';

export interface OpenedWebGpuModel {
  model: EngineWebGpuModel;
  /** "vendor architecture device", e.g. "nvidia … (NVIDIA H200)" or "google swiftshader". */
  adapterName: string;
  close(): void;
}

export async function openWebGpuEngineModel(checkpoint: Checkpoint, kernels: Kernels,
  options: { contextLength?: number; weights?: 'native' | 'f32' }): Promise<OpenedWebGpuModel> {
  const device = await openNodeWebGpuDevice();
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
