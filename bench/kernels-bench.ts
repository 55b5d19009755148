// Kernel throughput against this machine's ceilings: first the ceilings themselves (memory streamed per second by
// the matmuls' access pattern, and the f32 multiply-adds per second of SIMD128 on registers, both on 1 and 2 threads
// running at once), then the f32, Q8_0 and Q4_0 matmuls for the verification batch sizes (1–16 rows, and 32) and
// tree attention, each with its roofline max(bytes ÷ bandwidth, flops ÷ peak) and the fraction of it reached; then
// the other kernels at the shapes of a 110M Llama. Weights rotate through enough copies to leave the caches, as a
// forward pass over a real model does. The thread counts are measured in alternation, round after round, so that
// noise from other processes lands on both alike; the tables show medians.
// Run: node dist/bench/kernels-bench.js [--quick]
import { availableParallelism, cpus } from 'node:os';
import { createKernels, QUERY_RECORD_INTS, ropeTable, type Kernels, type Ptr, type QuantType } from '../src/kernels/index.js';
import { fillWeights, weightBytes } from './weights.js';

const quick = process.argv.includes('--quick');
const typesArg = process.argv.indexOf('--types');
const TYPES = (typesArg > 0 ? process.argv[typesArg + 1] : 'f32,q8_0,q4_0').split(',') as Array<'f32' | QuantType>;
const only = process.argv.includes('--matmul-only');
const ROWS = [1, 2, 4, 8, 16, 32];
const SHAPES: ReadonlyArray<readonly [number, number]> = [[768, 2048], [2048, 768]];
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

/** A kernel set's ceilings: bytes per ms streamed, and f32 flops per ms on registers (all its threads at once). */
interface Ceilings {
  bytesPerMs: number;
  flopsPerMs: number;
}

function measureCeilings(sets: readonly Kernels[]): Ceilings[] {
  const floats = COLD_BYTES / 4;
  const chunk = 16 * 1024 * 1024; // floats per call: 64 MiB, far beyond the caches, cycling through COLD_BYTES
  const buffers = sets.map((k) => {
    const data = k.heap.alloc(COLD_BYTES);
    // Written once, so that every page is backed by its own memory (untouched pages all read the one zero page).
    k.heap.f32(data, floats).fill(1);
    const seed = k.heap.alloc(96);
    k.heap.f32(seed, 24).set(Array.from({ length: 24 }, (_, i) => 1 + i * 1e-7));
    return { data, seed, out: k.heap.alloc(64 * 4) };
  });
  const stream = measure(sets, (k, i) => {
    const b = buffers[sets.indexOf(k)];
    k.streamRead(b.out, b.data + (i % (floats / chunk)) * chunk * 4, chunk);
  });
  const ITERATIONS = 1 << 18;
  const peak = measure(sets, (k) => {
    const b = buffers[sets.indexOf(k)];
    k.simdPeak(b.out, b.seed, ITERATIONS);
  });
  const ceilings = sets.map((k, s) => ({ bytesPerMs: (chunk * 4) / median(stream[s]),
    flopsPerMs: (64 * ITERATIONS * k.threads) / median(peak[s]) }));
  sets.forEach((k, s) => {
    const b = buffers[s];
    for (const p of [b.data, b.seed, b.out]) k.heap.free(p);
  });
  return ceilings;
}

/** "ms GFLOP/s GB/s roofline-ms fraction" of one measured case. */
function cell(ms: number, bytes: number, flops: number, ceiling: Ceilings): string {
  const roofline = Math.max(bytes / ceiling.bytesPerMs, flops / ceiling.flopsPerMs);
  return `${ms.toFixed(3).padStart(8)} ${(flops / (ms * 1e6)).toFixed(1).padStart(6)} ${(bytes / (ms * 1e6)).toFixed(1).padStart(6)} ` +
    `${roofline.toFixed(3).padStart(8)} ${(roofline / ms * 100).toFixed(0).padStart(4)}%`;
}

function benchMatmul(sets: readonly Kernels[], ceilings: readonly Ceilings[], type: 'f32' | QuantType, inDim: number,
  outDim: number): void {
  const wBytes = weightBytes(type, inDim, outDim);
  const copies = Math.max(1, Math.ceil(COLD_BYTES / wBytes));
  const maxRows = ROWS[ROWS.length - 1];
  const buffers = sets.map((k) => ({
    weights: Array.from({ length: copies }, (_, c) => {
      const p = k.heap.alloc(wBytes);
      fillWeights(k, type, p, inDim, outDim, c + 1);
      return p;
    }),
    x: randomBlock(k, maxRows * inDim, 99),
    out: k.heap.alloc(maxRows * outDim * 4),
  }));
  for (const rows of ROWS) {
    const samples = measure(sets, (k, i) => {
      const b = buffers[sets.indexOf(k)];
      const w = b.weights[i % copies];
      if (type === 'f32') k.matmul(b.out, b.x, w, rows, inDim, outDim);
      else if (type === 'q8_0') k.matmulQ8_0(b.out, b.x, w, rows, inDim, outDim);
      else k.matmulQ4_0(b.out, b.x, w, rows, inDim, outDim);
    });
    const bytes = wBytes + rows * (inDim + outDim) * 4;
    const flops = 2 * rows * inDim * outDim;
    const cells = samples.map((sample, s) => cell(median(sample), bytes, flops, ceilings[s]));
    console.log(`${type.padEnd(5)} ${`${inDim}x${outDim}`.padEnd(10)} ${String(rows).padStart(4)}  ${cells.join('  |')}`);
  }
  sets.forEach((k, s) => {
    const b = buffers[s];
    for (const p of [...b.weights, b.x, b.out]) k.heap.free(p);
  });
}

/**
 * Tree attention: `rows` queries (a verification tree's nodes) over a cache of `keys` positions plus their ancestors,
 * GQA 12 heads / 4 KV heads of 64 (K and V read once per KV head group: bytes; 4 flops per query, head, key, lane).
 */
function benchAttention(sets: readonly Kernels[], ceilings: readonly Ceilings[]): void {
  const [nHeads, nKvHeads, headDim] = [12, 4, 64];
  const kvDim = nKvHeads * headDim;
  for (const keys of [256, 1024]) {
    for (const rows of [1, 4, 8, 16]) {
      const buffers = sets.map((k) => {
        const kCache = randomBlock(k, (keys + rows) * kvDim, 5);
        const vCache = randomBlock(k, (keys + rows) * kvDim, 6);
        const extras = k.heap.alloc(rows * rows * 4);
        const records = k.heap.alloc(rows * QUERY_RECORD_INTS * 4);
        // A chain: node r's ancestors are nodes 0..r (the deepest tree of `rows` nodes), after the cache.
        const extraSlots = k.heap.i32(extras, rows * rows);
        const record = k.heap.i32(records, rows * QUERY_RECORD_INTS);
        for (let r = 0; r < rows; r++) {
          for (let j = 0; j <= r; j++) extraSlots[r * rows + j] = keys + j;
          record.set([kCache, vCache, keys, extras + r * rows * 4, r + 1], r * QUERY_RECORD_INTS);
        }
        return { q: randomBlock(k, rows * nHeads * headDim, 7), records, out: k.heap.alloc(rows * nHeads * headDim * 4),
          free: [kCache, vCache, extras] };
      });
      const samples = measure(sets, (k) => {
        const b = buffers[sets.indexOf(k)];
        k.attention(b.out, b.q, b.records, rows, nHeads, nKvHeads, headDim, 0.125, keys + rows);
      });
      const bytes = 2 * (keys + rows) * kvDim * 4;
      const flops = 4 * rows * nHeads * (keys + rows) * headDim;
      const cells = samples.map((sample, s) => cell(median(sample), bytes, flops, ceilings[s]));
      console.log(`attn  ${`${keys} keys`.padEnd(10)} ${String(rows).padStart(4)}  ${cells.join('  |')}`);
      sets.forEach((k, s) => {
        const b = buffers[s];
        for (const p of [b.q, b.records, b.out, ...b.free]) k.heap.free(p);
      });
    }
  }
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
    k.heap.i32(b.records, 32 * QUERY_RECORD_INTS).set(Array.from({ length: 32 }, () => [kv, kv, keys, 0, 0, 0]).flat());
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
  // --baseline FILE: another kernels build measured in the same rounds, one column set per build and thread count.
  const baselineArg = process.argv.indexOf('--baseline');
  const baseline = baselineArg > 0 ? process.argv[baselineArg + 1] : undefined;
  const counts = availableParallelism() >= 2 ? [1, 2] : [1];
  const threadCounts = baseline ? [...counts, ...counts] : counts;
  const sets = await Promise.all(threadCounts.map((threads, i) =>
    createKernels({ threads, ...(baseline && i >= counts.length ? { wasmFile: baseline } : {}) })));
  if (baseline) console.log(`columns: this build at ${counts.join(' | ')} thread(s), then ${baseline} at the same`);
  console.log(`machine: ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}, ${sets[0].simd} kernels`);
  const ceilings = measureCeilings(sets);
  console.log(`ceilings, ${threadCounts.join(' | ')} thread(s): streaming ` +
    `${ceilings.map((c) => `${(c.bytesPerMs / 1e6).toFixed(1)} GB/s`).join(' | ')}; f32 SIMD128 multiply-adds on registers ` +
    `${ceilings.map((c) => `${(c.flopsPerMs / 1e6).toFixed(1)} GFLOP/s`).join(' | ')}`);
  console.log(`\nmatmuls, weights read cold, and tree attention: median ms/call, GFLOP/s, GB/s, roofline ms, ` +
    `fraction of the roofline reached, for ${threadCounts.join(' | ')} thread(s)`);
  console.log(`type  shape      rows  ${threadCounts.map(() => '      ms GFLOP/s  GB/s roofline  got').join('  |')}`);
  for (const type of TYPES) {
    for (const [inDim, outDim] of SHAPES) benchMatmul(sets, ceilings, type, inDim, outDim);
  }
  if (only) {
    await Promise.all(sets.map((k) => k.close()));
    return;
  }
  benchAttention(sets, ceilings);
  console.log(`\nother kernels, inputs hot: median us/call for ${threadCounts.join(' | ')} thread(s)`);
  benchOthers(sets);
  await Promise.all(sets.map((k) => k.close()));
}

await main();
