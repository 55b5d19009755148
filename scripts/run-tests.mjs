// Runs every compiled test file (dist/**/*.test.js) with Node's built-in test runner.
// Node 20's `--test` does not expand globs itself, so the list is built here.
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function collect(dir, out) {
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) collect(path, out);
    else if (name.endsWith('.test.js')) out.push(path);
  }
  return out;
}

const filter = process.argv[2];
const files = collect('dist', []).filter((f) => !filter || f.includes(filter)).sort();
if (files.length === 0) {
  console.error('no test files found under dist/ (did the build run?)');
  process.exit(1);
}
// --no-concurrent-recompilation (passed on to every test process and its worker threads): Node 20 can deadlock when
// a test process's event loop empties while a background TurboFan job waits for a garbage collection only the main
// thread can run, and the main thread waits in NodePlatform::DrainTasks for that job (nodejs/node#54918, fixed
// upstream in 2026). Seen once here: xl.test.js stalled at 0 % CPU with its main thread in DrainTasks (gdb).
// Optimizing on the main thread removes the background job, for a somewhat longer run (67 s against 56 s, one run
// each on this noisy host).
// The timeout turns any other hang into a failure with a message instead of a silent stall until CI's limit.
const TIMEOUT_MS = 30 * 60 * 1000;
// The WebGPU tests (src/webgpu) run on SwiftShader, the CPU Vulkan driver of Debian's chromium package, when it is
// installed and no Vulkan driver was chosen: its loader must be on LD_LIBRARY_PATH when the test process starts (the
// dynamic linker reads it only then), so it is set here for the child (src/webgpu/node-device.ts).
const env = { ...process.env };
const swiftShader = '/usr/lib/chromium/vk_swiftshader_icd.json';
if (existsSync(swiftShader) && env.VK_ICD_FILENAMES === undefined && env.VK_DRIVER_FILES === undefined) {
  env.VK_ICD_FILENAMES = swiftShader;
  env.LD_LIBRARY_PATH = env.LD_LIBRARY_PATH ? `/usr/lib/chromium:${env.LD_LIBRARY_PATH}` : '/usr/lib/chromium';
  env.NODEVICE_SELECT = '1';
}
const result = spawnSync(process.execPath, ['--no-concurrent-recompilation', '--test', '--test-concurrency=1', ...files],
  { stdio: 'inherit', timeout: TIMEOUT_MS, killSignal: 'SIGKILL', env });
if (result.error) {
  console.error(`tests did not finish within ${TIMEOUT_MS / 60000} minutes (${result.error.message}); killed`);
  process.exit(1);
}
process.exit(result.status ?? 1);
