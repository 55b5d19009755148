// Compiles the AssemblyScript kernels (src/kernels/assembly) to dist/src/kernels/kernels.wasm.
// One build serves 1 and N threads: the module imports a shared memory created by the host.
import { mkdirSync } from 'node:fs';
import asc from 'assemblyscript/asc';

const outDir = 'dist/src/kernels';
mkdirSync(outDir, { recursive: true });
const { error, stderr } = await asc.main([
  'src/kernels/assembly/index.ts',
  '--outFile', `${outDir}/kernels.wasm`,
  '--textFile', `${outDir}/kernels.wat`,
  '-O3', '--noAssert',
  '--runtime', 'stub',
  '--enable', 'simd',
  '--enable', 'threads',
  '--importMemory', '--sharedMemory',
  '--initialMemory', '17', '--maximumMemory', '65536',
]);
if (error) {
  console.error(stderr.toString());
  process.exit(1);
}
