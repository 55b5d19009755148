// Compiles the AssemblyScript kernels (src/kernels/assembly) twice, from the same source, into dist/src/kernels:
//   kernels.wasm          SIMD128
//   kernels-relaxed.wasm  SIMD128 + relaxed SIMD: quant.ts takes its int8 dot products from
//                         i32x4.relaxed_dot_i8x16_i7x16_add_s where ASC_FEATURE_RELAXED_SIMD is true
// src/kernels/index.ts picks one at load (feature probe, runtime, KernelOptions.simd / REDRAFTER_SIMD).
// Each build serves 1 and N threads: the module imports a shared memory created by the host.
import { mkdirSync } from 'node:fs';
import asc from 'assemblyscript/asc';

const outDir = 'dist/src/kernels';
mkdirSync(outDir, { recursive: true });
const BUILDS = [
  { name: 'kernels', features: ['simd', 'threads'] },
  { name: 'kernels-relaxed', features: ['simd', 'relaxed-simd', 'threads'] },
];
for (const { name, features } of BUILDS) {
  const { error, stderr } = await asc.main([
    'src/kernels/assembly/index.ts',
    '--outFile', `${outDir}/${name}.wasm`,
    '--textFile', `${outDir}/${name}.wat`,
    '-O3', '--noAssert',
    '--runtime', 'stub',
    ...features.flatMap((feature) => ['--enable', feature]),
    '--importMemory', '--sharedMemory',
    '--initialMemory', '17', '--maximumMemory', '65536',
  ]);
  if (error) {
    console.error(`${name}.wasm:\n${stderr.toString()}`);
    process.exit(1);
  }
}
