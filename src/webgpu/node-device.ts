// WebGPU in Node: Dawn's dawn.node from the `webgpu` npm package (an optional dependency, loaded on demand). Dawn
// reaches the GPU through Vulkan on Linux, so a device needs the Vulkan loader (libvulkan.so.1) and a driver (an ICD
// manifest). Without a GPU, Debian's chromium package ships SwiftShader, a Vulkan driver on the CPU, with its own
// loader:
//   VK_ICD_FILENAMES=/usr/lib/chromium/vk_swiftshader_icd.json LD_LIBRARY_PATH=/usr/lib/chromium NODEVICE_SELECT=1
// LD_LIBRARY_PATH is read by the dynamic linker when the process starts, so it cannot be set from here: the test runner
// (scripts/run-tests.mjs) and the GPU benchmark's run script set it for the processes they start. The Vulkan driver
// variables are read when Dawn creates its Vulkan instance, so openNodeWebGpuDevice may still set them.

import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { openWebGpuDevice, WebGpuUnavailableError, type OpenDeviceOptions, type WebGpuDevice } from './device.js';

/** Where Debian's chromium package puts SwiftShader's Vulkan driver and loader. */
export const CHROMIUM_SWIFTSHADER = {
  icd: '/usr/lib/chromium/vk_swiftshader_icd.json',
  libraryDir: '/usr/lib/chromium',
} as const;

/** The environment a process needs to run WebGPU on SwiftShader (for spawning one). */
export function swiftShaderEnvironment(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const libraryPath = base['LD_LIBRARY_PATH'];
  return {
    ...base,
    VK_ICD_FILENAMES: CHROMIUM_SWIFTSHADER.icd,
    LD_LIBRARY_PATH: libraryPath ? `${CHROMIUM_SWIFTSHADER.libraryDir}${delimiter}${libraryPath}` : CHROMIUM_SWIFTSHADER.libraryDir,
    // Mesa's device-select layer, if installed, would otherwise reorder or hide SwiftShader.
    NODEVICE_SELECT: '1',
  };
}

export interface NodeDeviceOptions extends OpenDeviceOptions {
  /**
   * 'system' (default): whatever Vulkan driver the environment selects. 'swiftshader': point the Vulkan loader at
   * chromium's SwiftShader driver (needs a loadable libvulkan.so.1: chromium's, via LD_LIBRARY_PATH, or libvulkan1).
   */
  driver?: 'system' | 'swiftshader';
}

interface DawnModule {
  create(flags: string[]): GPU;
  globals: object;
}

const SYSTEM_LIBRARY_DIRS = ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu',
  '/lib/aarch64-linux-gnu', '/usr/lib64', '/usr/lib', '/lib', '/usr/local/lib'];
const ICD_DIRS = ['/etc/vulkan/icd.d', '/usr/share/vulkan/icd.d', '/usr/local/share/vulkan/icd.d',
  '/usr/local/nvidia/share/vulkan/icd.d'];

/** What the Vulkan setup of this process looks like, in words, for the no-adapter error. */
export function describeVulkanSetup(env: NodeJS.ProcessEnv = process.env): string {
  if (process.platform !== 'linux') return `platform ${process.platform} (Dawn uses Metal / D3D12 there)`;
  const libraryDirs = [...(env['LD_LIBRARY_PATH'] ?? '').split(delimiter).filter((d) => d !== ''), ...SYSTEM_LIBRARY_DIRS];
  const loader = libraryDirs.map((dir) => join(dir, 'libvulkan.so.1')).find((path) => existsSync(path));
  const driverVariable = env['VK_DRIVER_FILES'] !== undefined ? 'VK_DRIVER_FILES'
    : env['VK_ICD_FILENAMES'] !== undefined ? 'VK_ICD_FILENAMES' : undefined;
  const drivers = driverVariable !== undefined
    ? (env[driverVariable] ?? '').split(delimiter).map((file) => `${file}${existsSync(file) ? '' : ' (missing)'}`)
    : ICD_DIRS.filter((dir) => existsSync(dir)).map((dir) => `${dir}/*.json`);
  return [
    loader !== undefined ? `Vulkan loader ${loader}` : 'Vulkan loader libvulkan.so.1 not found on LD_LIBRARY_PATH or in ' +
      'the system library folders (install libvulkan1, or start node with LD_LIBRARY_PATH set to a folder holding it)',
    drivers.length > 0 ? `Vulkan drivers ${driverVariable !== undefined ? `from ${driverVariable}: ` : ''}${drivers.join(', ')}`
      : `no Vulkan driver manifest (none in ${ICD_DIRS.join(', ')}; set VK_DRIVER_FILES to a driver's ICD json, e.g. ` +
        '/usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json)',
    `without a GPU: apt-get install chromium, then run with VK_ICD_FILENAMES=${CHROMIUM_SWIFTSHADER.icd} ` +
      `LD_LIBRARY_PATH=${CHROMIUM_SWIFTSHADER.libraryDir} NODEVICE_SELECT=1`,
  ].join('; ');
}

async function loadDawn(): Promise<DawnModule> {
  try {
    // A variable specifier keeps bundlers for the browser from following it.
    const specifier = 'webgpu';
    return (await import(specifier)) as DawnModule;
  } catch (error) {
    throw new WebGpuUnavailableError('WebGPU in Node needs the optional dependency "webgpu" (dawn.node): ' +
      `npm install webgpu@0.6.2 (${error instanceof Error ? error.message : String(error)})`);
  }
}

/** Opens a device through dawn.node; the error names what is missing when Vulkan offers no adapter. */
export async function openNodeWebGpuDevice(options: NodeDeviceOptions = {}): Promise<WebGpuDevice> {
  if (options.driver === 'swiftshader') {
    if (!existsSync(CHROMIUM_SWIFTSHADER.icd)) {
      throw new WebGpuUnavailableError(`WebGPU: SwiftShader driver ${CHROMIUM_SWIFTSHADER.icd} not found ` +
        '(apt-get install -y --no-install-recommends chromium)');
    }
    process.env['VK_ICD_FILENAMES'] = CHROMIUM_SWIFTSHADER.icd;
    delete process.env['VK_DRIVER_FILES'];
    process.env['NODEVICE_SELECT'] = '1';
  }
  const dawn = await loadDawn();
  // dawn.node's objects (GPUBufferUsage, GPUMapMode, …) are what the WebGPU code reads as globals.
  Object.assign(globalThis, dawn.globals);
  return openWebGpuDevice(dawn.create([]), { ...options,
    missingAdapterHint: options.missingAdapterHint ?? describeVulkanSetup() });
}
