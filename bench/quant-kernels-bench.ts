// Quantized matmul throughput (`npm run bench:quant`): matmulQ8_0 / matmulQ4_0 GFLOP/s for several batch sizes and GB/s
// of weight blocks streamed, at 1 and 2 threads, next to the f32 matmul on the same shapes. Weights rotate through
// enough copies to leave the caches, as a forward pass over a real model does; thread counts alternate round by round
// so that noise from other processes lands on both alike; the table shows medians.
// --simd plain,relaxed measures both kernel builds in the same run (interleaved like the thread counts) and adds the
// same-run ratio plain ms / relaxed ms per thread count ('relaxed' here forces the relaxed int8 dot product in Q8_0,
// which the engine's default takes only where it times faster: src/kernels/q8-dot.ts; the header says which it
// takes on this machine); --hot keeps one copy of the weights (cache-resident: the
// compute-bound case, where the int8 dot product matters most).
// Run: node dist/bench/quant-kernels-bench.js [--quick] [--rows 1,4,16] [--types q8_0] [--simd plain,relaxed] [--hot]
import { availableParallelism, cpus } from 'node:os';
import { parseArgs } from 'node:util';
import { createKernels, type Kernels, type Ptr, type SimdBuild } from '../src/kernels/index.js';
import { fillWeights, weightBytes, type WeightType } from './weights.js';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, rows: { type: 'string' },
  types: { type: 'string', default: 'f32,q8_0,q4_0' }, simd: { type: 'string', default: 'auto' },
  hot: { type: 'boolean', default: false } } });
const quick = values.quick ?? false;
const ROWS = values.rows !== undefined ? values.rows.split(',').map(Number) : [1, 4, 8, 16, 32];
const TYPES = values.types.split(',') as Array<'f32' | 'q8_0' | 'q4_0'>;
const BUILDS = values.simd.split(',') as Array<SimdBuild | 'auto'>;
const SHAPES: ReadonlyArray<readonly [number, number]> = [[768, 2048], [2048, 768], [768, 32000]];
const COLD_BYTES = values.hot === true ? 0 : 192 * 1024 * 1024;
const ROUNDS = quick ? 3 : 7;
const ROUND_MS = quick ? 30 : 80;

function median(v: readonly number[]): number {
  const sorted = [...v].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

function measure(sets: readonly Kernels[], call: (k: Kernels, s: number, index: number) => void): number[][] {
  const samples = sets.map((): number[] => []);
  const counters = sets.map(() => 0);
  sets.forEach((k, s) => {
    for (let i = 0; i < 3; i++) call(k, s, counters[s]++);
  });
  for (let round = 0; round < ROUNDS; round++) {
    sets.forEach((k, s) => {
      const start = performance.now();
      do {
        const t0 = performance.now();
        call(k, s, counters[s]++);
        samples[s].push(performance.now() - t0);
      } while (performance.now() - start < ROUND_MS);
    });
  }
  return samples;
}

function bench(sets: readonly Kernels[], type: WeightType, inDim: number, outDim: number): void {
  const wBytes = weightBytes(type, inDim, outDim);
  const copies = Math.max(1, Math.ceil(COLD_BYTES / wBytes));
  const maxRows = Math.max(...ROWS);
  const buffers = sets.map((k) => {
    const weights = Array.from({ length: copies }, (_, c) => {
      const p = k.heap.alloc(wBytes);
      fillWeights(k, type, p, inDim, outDim, c + 1);
      return p;
    });
    const x = k.heap.alloc(maxRows * inDim * 4);
    fillWeights(k, 'f32', x, inDim, maxRows, 99);
    return { weights, x, out: k.heap.alloc(maxRows * outDim * 4) };
  });
  for (const rows of ROWS) {
    const samples = measure(sets, (k, s, i) => {
      const b = buffers[s];
      const w = b.weights[i % copies];
      if (type === 'f32') k.matmul(b.out, b.x, w, rows, inDim, outDim);
      else if (type === 'q8_0') k.matmulQ8_0(b.out, b.x, w, rows, inDim, outDim);
      else k.matmulQ4_0(b.out, b.x, w, rows, inDim, outDim);
    });
    const medians = samples.map(median);
    const cells = medians.map((ms) =>
      `${ms.toFixed(3).padStart(8)} ${((2 * rows * inDim * outDim) / (ms * 1e6)).toFixed(1).padStart(6)} ` +
        `${(wBytes / (ms * 1e6)).toFixed(1).padStart(6)}`);
    // plain / relaxed per thread count, where both builds ran (sets are ordered build-major, see below).
    const ratios = ratioPairs.map(([plain, relaxed]) => (medians[plain] / medians[relaxed]).toFixed(2).padStart(6));
    console.log(`${type.padEnd(5)} ${`${inDim}x${outDim}`.padEnd(10)} ${String(rows).padStart(4)}  ${cells.join('  |')}` +
      (ratios.length > 0 ? `  |${ratios.join(' ')}` : ''));
  }
  sets.forEach((k, s) => {
    for (const p of [...buffers[s].weights, buffers[s].x, buffers[s].out]) k.heap.free(p);
  });
}

const threadCounts = availableParallelism() >= 2 ? [1, 2] : [1];
const sets: Kernels[] = [];
for (const simd of BUILDS) {
  for (const threads of threadCounts) {
    sets.push(await createKernels({ threads, simd, ...(simd === 'relaxed' ? { q8Dot: 'int8' as const } : {}) }));
  }
}
const labels = sets.map((k) => `${k.simd} ${k.threads}t`);
const plainAt = BUILDS.indexOf('plain');
const relaxedAt = BUILDS.indexOf('relaxed');
const ratioPairs: Array<readonly [number, number]> = plainAt < 0 || relaxedAt < 0 ? [] :
  threadCounts.map((_, t) => [plainAt * threadCounts.length + t, relaxedAt * threadCounts.length + t] as const);
const defaults = await createKernels();
console.log(`machine: ${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical CPUs, Node ${process.version}; ` +
  `default kernels here: ${defaults.simd}, Q8_0 with the ${defaults.q8Dot} dot product`);
await defaults.close();
console.log(`matmul, weights read ${COLD_BYTES > 0 ? 'cold' : 'hot (one copy)'}: median ms/call, GFLOP/s, weight GB/s ` +
  `for ${labels.join(' | ')}${ratioPairs.length > 0 ? `; then plain/relaxed time at ${threadCounts.join(', ')} thread(s)` : ''}`);
console.log(`type  shape      rows  ${labels.map(() => '      ms GFLOP/s  GB/s').join('  |')}`);
for (const [inDim, outDim] of SHAPES) for (const type of TYPES) bench(sets, type, inDim, outDim);
await Promise.all(sets.map((k) => k.close()));
