// Kernel throughput: matmul GFLOP/s for several batch sizes and GB/s of weights streamed for one row, at 1 and 2
// threads, then the other kernels at the shapes of a 110M Llama. Weights rotate through enough copies to leave the
// caches, as a forward pass over a real model does. The thread counts are measured in alternation, round after
// round, so that noise from other processes lands on both alike; the table shows medians.
// Run: node dist/bench/kernels-bench.js [--quick]
import { availableParallelism } from 'node:os';
import { createKernels, QUERY_RECORD_INTS, ropeTable, type Kernels, type Ptr } from '../src/kernels/index.js';

const quick = process.argv.includes('--quick');
const ROWS = [1, 4, 8, 16, 32];
const SHAPES: ReadonlyArray<readonly [number, number]> = [[768, 2048], [768, 32000]];
/** Bytes of weights cycled through per shape and kernel set: more than the 300 MiB L3 of the dev machine. */
const COLD_BYTES = 640 * 1024 * 1024;
const ROUNDS = quick ? 3 : 9;
const ROUND_MS = quick ? 30 : 80;

function fillRandom(a: Float32Array, seed: number): void {
  let s = seed >>> 0;
  for (let i = 0; i < a.length; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    a[i] = s / 2 ** 32 - 0.5;
  }
}

function randomBlock(k: Kernels, n: number, seed: number): Ptr {
  const p = k.heap.alloc(n * 4);
  fillRandom(k.heap.f32(p, n), seed);
  return p;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Runs each case of each kernel set for ROUND_MS per round, alternating sets; returns ms per call samples. */
function measure(sets: readonly Kernels[], call: (k: Kernels, index: number) => void): number[][] {
  const samples = sets.map((): number[] => []);
  const counters = sets.map(() => 0);
  sets.forEach((k, s) => {
    for (let i = 0; i < 3; i++) call(k, counters[s]++);
  });
  for (let round = 0; round < ROUNDS; round++) {
    sets.forEach((k, s) => {
      const start = performance.now();
      do {
        const t0 = performance.now();
        call(k, counters[s]++);
        samples[s].push(performance.now() - t0);
      } while (performance.now() - start < ROUND_MS);
    });
  }
  return samples;
}

function benchMatmul(sets: readonly Kernels[], inDim: number, outDim: number): void {
  const wBytes = inDim * outDim * 4;
  const copies = Math.max(1, Math.ceil(COLD_BYTES / wBytes));
  const maxRows = ROWS[ROWS.length - 1];
  const buffers = sets.map((k) => ({
    weights: Array.from({ length: copies }, (_, c) => randomBlock(k, inDim * outDim, c + 1)),
    x: randomBlock(k, maxRows * inDim, 99),
    out: k.heap.alloc(maxRows * outDim * 4),
  }));
  for (const rows of ROWS) {
    const samples = measure(sets, (k, i) => {
      const b = buffers[sets.indexOf(k)];
      k.matmul(b.out, b.x, b.weights[i % copies], rows, inDim, outDim);
    });
    const cells = samples.map((s) => {
      const ms = median(s);
      return `${ms.toFixed(3).padStart(8)} ${((2 * rows * inDim * outDim) / (ms * 1e6)).toFixed(1).padStart(6)} ` +
        `${(wBytes / (ms * 1e6)).toFixed(1).padStart(6)}`;
    });
    console.log(`${`${inDim}x${outDim}`.padEnd(10)} ${String(rows).padStart(4)}  ${cells.join('  |')}`);
  }
  sets.forEach((k, s) => {
    const b = buffers[s];
    for (const p of [...b.weights, b.x, b.out]) k.heap.free(p);
  });
}

/** The other kernels at the shapes of a 110M Llama (dim 768, hidden 2048, 12 heads of 64, vocab 32000). */
function benchOthers(sets: readonly Kernels[]): void {
  const [dim, hidden, nHeads, headDim, vocab, keys] = [768, 2048, 12, 64, 32000, 1024];
  const buffers = sets.map((k) => {
    const kv = randomBlock(k, keys * dim, 5);
    const b = {
      x: randomBlock(k, 32 * hidden, 1),
      y: randomBlock(k, 32 * hidden, 2),
      weight: randomBlock(k, dim, 3),
      logits: randomBlock(k, vocab, 4),
      kv,
      table: k.heap.alloc(keys * headDim * 4),
      positions: k.heap.alloc(32 * 4),
      records: k.heap.alloc(32 * QUERY_RECORD_INTS * 4),
      out: k.heap.alloc(32 * hidden * 4),
    };
    k.heap.f32(b.table, keys * headDim).set(ropeTable(keys, headDim));
    k.heap.i32(b.positions, 32).set(Array.from({ length: 32 }, (_, i) => 500 + i));
    k.heap.i32(b.records, 32 * QUERY_RECORD_INTS).set(Array.from({ length: 32 }, () => [kv, kv, keys, 0, 0]).flat());
    return b;
  });
  const cases: Array<[string, (k: Kernels, b: (typeof buffers)[number]) => void]> = [];
  for (const rows of [1, 32]) {
    cases.push(
      [`rmsnorm ${rows}x${dim}`, (k, b) => k.rmsnorm(b.out, b.x, b.weight, rows, dim, 1e-5)],
      [`rope ${rows}x${nHeads}x${headDim}`, (k, b) => k.rope(b.y, rows, nHeads, headDim, b.positions, b.table, 'pairs')],
      [`siluMul ${rows}x${hidden}`, (k, b) => k.siluMul(b.out, b.x, b.y, rows * hidden)],
      [`add ${rows}x${dim}`, (k, b) => k.add(b.out, b.x, b.y, rows * dim)],
      [`attention ${rows}q x ${keys} keys`, (k, b) => k.attention(b.out, b.x, b.records, rows, nHeads, nHeads, headDim, 0.125, keys)],
    );
  }
  cases.push([`softmax 1x${vocab}`, (k, b) => {
    k.heap.f32(b.out, vocab).set(k.heap.f32(b.logits, vocab));
    k.softmax(b.out, 1, vocab);
  }]);
  for (const [name, run] of cases) {
    const samples = measure(sets, (k) => run(k, buffers[sets.indexOf(k)]));
    console.log(`${name.padEnd(28)} ${samples.map((s) => (median(s) * 1000).toFixed(1).padStart(9)).join(' ')}`);
  }
}

async function main(): Promise<void> {
  const threadCounts = availableParallelism() >= 2 ? [1, 2] : [1];
  const sets = await Promise.all(threadCounts.map((threads) => createKernels({ threads })));
  console.log(`matmul, f32 weights read cold: median ms/call, GFLOP/s, weights GB/s for ${threadCounts.join(' | ')} thread(s)`);
  console.log(`shape      rows  ${threadCounts.map(() => '      ms GFLOP/s  GB/s').join('  |')}`);
  for (const [inDim, outDim] of SHAPES) benchMatmul(sets, inDim, outDim);
  console.log(`\nother kernels, inputs hot: median us/call for ${threadCounts.join(' | ')} thread(s)`);
  benchOthers(sets);
  await Promise.all(sets.map((k) => k.close()));
}

await main();
