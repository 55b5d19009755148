// The WebGPU backend's surface. Browser-safe: device.ts reads navigator.gpu; Node's dawn.node is in node-device.ts,
// imported separately (redrafter's Node entry points import it; a browser bundle never does).
export { openWebGpuDevice, openBrowserWebGpuDevice, describeAdapter, WebGpuUnavailableError, type WebGpuDevice,
  type OpenDeviceOptions } from './device.js';
export { createWebGpuModel, type WebGpuModel, type WebGpuModelOptions } from './model.js';
export { createGpuKvCache, type GpuKvCache } from './kv-cache.js';
export { asyncModelFromWasm, argmaxRow, type AsyncModel, type AsyncForwardOutput, type ForwardStats, type ReadbackRequest,
  type SequenceCache } from './async-model.js';
export type { GpuMatrixEncoding } from './matmul.js';
export type { WeightEncodingChoice } from './weights.js';
