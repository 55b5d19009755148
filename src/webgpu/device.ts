/// <reference types="@webgpu/types" />
// Opening a WebGPU device from any GPU object: `navigator.gpu` in browsers, dawn.node's `create()` in Node
// (node-device.ts, kept apart so that this module imports nothing Node-specific). The device asks for the adapter's
// own maxima of the few limits a model needs (large storage bindings for weight matrices, enough storage buffers per
// stage), since the defaults (128 MiB bindings, 8 buffers) are too small for 1B-class models.

/** An open device and what the adapter said about itself (for benchmark reports and error messages). */
export interface WebGpuDevice {
  /**
   * The GPU object the adapter came from. Held for the device's lifetime: dawn.node frees its instance when this
   * object is garbage-collected, and a device whose instance is gone crashes the process on its next event.
   */
  readonly gpu: GPU;
  readonly device: GPUDevice;
  /** "vendor architecture device (description)" with empty parts left out, e.g. "google swiftshader". */
  readonly adapterName: string;
  readonly adapterFeatures: readonly string[];
  /** Releases the device; the model and caches made on it are unusable afterwards. */
  destroy(): void;
}

export interface OpenDeviceOptions {
  powerPreference?: GPUPowerPreference;
  /** Appended to the error when no adapter is found: what the platform lacks and how to get it. */
  missingAdapterHint?: string;
}

/** Limits requested at the adapter's maximum. */
const RAISED_LIMITS = ['maxStorageBufferBindingSize', 'maxBufferSize', 'maxStorageBuffersPerShaderStage',
  'maxComputeWorkgroupStorageSize', 'maxComputeWorkgroupsPerDimension'] as const;

export class WebGpuUnavailableError extends Error {
  override readonly name = 'WebGpuUnavailableError';
}

export function describeAdapter(info: GPUAdapterInfo): string {
  const parts = [info.vendor, info.architecture, info.device].filter((part) => part !== undefined && part !== '');
  const description = info.description !== undefined && info.description !== '' ? ` (${info.description})` : '';
  return (parts.join(' ') || 'unnamed adapter') + description;
}

export async function openWebGpuDevice(gpu: GPU, options: OpenDeviceOptions = {}): Promise<WebGpuDevice> {
  const adapter = await gpu.requestAdapter({ powerPreference: options.powerPreference ?? 'high-performance' });
  if (adapter === null) {
    throw new WebGpuUnavailableError(`WebGPU: no adapter found${options.missingAdapterHint ? `: ${options.missingAdapterHint}` : ''}`);
  }
  const requiredLimits: Record<string, number> = {};
  for (const name of RAISED_LIMITS) requiredLimits[name] = adapter.limits[name];
  const device = await adapter.requestDevice({ requiredLimits });
  // Validation errors and device loss would otherwise only show as wrong numbers; report them where they happen.
  device.addEventListener('uncapturederror', (event) => {
    console.error(`WebGPU error: ${(event as GPUUncapturedErrorEvent).error.message}`);
  });
  return {
    gpu,
    device,
    adapterName: describeAdapter(adapter.info),
    adapterFeatures: [...adapter.features].sort(),
    destroy: () => device.destroy(),
  };
}

/** The browser's WebGPU (`navigator.gpu`), or a WebGpuUnavailableError saying it is absent. */
export async function openBrowserWebGpuDevice(options: OpenDeviceOptions = {}): Promise<WebGpuDevice> {
  const gpu = (globalThis as { navigator?: { gpu?: GPU } }).navigator?.gpu;
  if (gpu === undefined) {
    throw new WebGpuUnavailableError('WebGPU: navigator.gpu is undefined (this browser or context has no WebGPU; ' +
      'it needs a secure context, https or localhost)');
  }
  return openWebGpuDevice(gpu, options);
}
