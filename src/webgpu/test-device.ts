// The device the WebGPU tests run on: dawn.node over whatever Vulkan driver the environment selects (the test
// runner points it at SwiftShader when chromium's copy is installed). Where none can be had, the tests are skipped
// with the reason, except in CI (CI=true), where a missing device fails the run: CI installs what these tests need.

import { openNodeWebGpuDevice } from './node-device.js';
import type { WebGpuDevice } from './device.js';

export interface TestDevice {
  /** node:test's `skip` option: the reason there is no device, or false. */
  skip: string | false;
  gpu: WebGpuDevice | undefined;
}

let opened: Promise<TestDevice> | undefined;

export function testDevice(): Promise<TestDevice> {
  opened ??= (async () => {
    try {
      return { skip: false, gpu: await openNodeWebGpuDevice() };
    } catch (error) {
      const reason = error instanceof Error ? error.message : String(error);
      if (process.env['CI']) throw new Error(`CI must run the WebGPU tests, but ${reason}`);
      return { skip: `no WebGPU device: ${reason}`, gpu: undefined };
    }
  })();
  return opened;
}

/** The device of a test that is not skipped. */
export function requireDevice(device: TestDevice): WebGpuDevice {
  if (device.gpu === undefined) throw new Error(device.skip || 'no WebGPU device');
  return device.gpu;
}
