// The kernel layer's surface: createKernels() loads the AssemblyScript module on a fresh shared memory, starts the
// worker pool and returns the Kernels of types.ts. Each method either runs on the calling thread alone (small work,
// or threads = 1) or publishes the call to the pool; the split never changes a result's bits (invariant 1).
import { CONTROL, CONTROL_OFFSET, HALF_TABLE_OFFSET, HEAP_BASE, KERNEL, wasmImports, type KernelExports } from './dispatch.js';
import { createHeap } from './heap.js';
import { host } from './host.js';
import { createPool, type Pool } from './pool.js';
import { chooseQ8Dot } from './q8-dot.js';
import { chooseSimd } from './simd.js';
import type { KernelOptions, Kernels, Ptr, RopeLayout, SimdBuild } from './types.js';

export type { Heap, KernelOptions, Kernels, Ptr, Q8Dot, QuantType, RopeLayout, SimdBuild } from './types.js';
export { relaxedUnavailable } from './simd.js';
export { QUANT_BLOCK_BYTES, QUERY_RECORD_INTS } from './types.js';
export { ropeTable } from './rope-table.js';

const PAGE = 65536;
const MAX_PAGES = 65536;
const DEFAULT_INITIAL_BYTES = 16 * 1024 * 1024;
/**
 * Work (in rough units of one matmul multiply-add, ~0.1–0.2 ns) below which a call stays on the calling thread.
 * Publishing a call to hot workers costs ~1 us; measured on 2 threads, calls of ~2 us and more gain from the split.
 */
const DEFAULT_MIN_PARALLEL_WORK = 1 << 14;
const DEFAULT_SPIN_MS = 2;

const WASM_FILES: Readonly<Record<SimdBuild, string>> = { plain: 'kernels.wasm', relaxed: 'kernels-relaxed.wasm' };
const compiled = new Map<string, Promise<WebAssembly.Module>>();

/**
 * Compiles a build once per process; every createKernels() of that build and every one of its workers (which receive
 * the module, pool.ts) shares it.
 */
function compileModule(build: SimdBuild, file?: string): Promise<WebAssembly.Module> {
  const key = file ?? build;
  let module = compiled.get(key);
  if (module === undefined) {
    const url = file !== undefined ? host.resolveModuleFile(file) : new URL(`./${WASM_FILES[build]}`, import.meta.url);
    module = host.readKernelModule(url).then((bytes) => WebAssembly.compile(bytes), (cause: unknown) => {
      compiled.delete(key);
      throw new Error(`createKernels: cannot read ${url.protocol === 'file:' ? url.pathname : url.href} (build it with node scripts/build-kernels.mjs)`, { cause });
    });
    compiled.set(key, module);
  }
  return module;
}

/**
 * Loads the kernels on a fresh shared memory. `threads` computing threads, the caller included (default 1; use
 * os.availableParallelism(): more threads than cores only adds spinning). The returned object is not re-entrant:
 * call it from one thread, one call at a time. Call `close()` to stop the workers (an unclosed pool does not keep
 * the process alive, but its workers spin for `spinMs` after each call).
 */
export async function createKernels(options: KernelOptions = {}): Promise<Kernels> {
  const threads = options.threads ?? 1;
  if (!Number.isInteger(threads) || threads < 1 || threads > CONTROL.maxThreads) {
    throw new RangeError(`createKernels: threads must be an integer in [1, ${CONTROL.maxThreads}], got ${threads}`);
  }
  const initialBytes = Math.max(options.initialBytes ?? DEFAULT_INITIAL_BYTES, HEAP_BASE + PAGE);
  const initialPages = Math.ceil(initialBytes / PAGE);
  if (initialPages > MAX_PAGES) throw new RangeError(`createKernels: initialBytes ${initialBytes} exceeds 4 GiB`);
  const minWork = options.minParallelWork ?? DEFAULT_MIN_PARALLEL_WORK;
  const spinMs = options.spinMs ?? DEFAULT_SPIN_MS;
  const simd = chooseSimd(options.simd);
  const file = options.wasmFile ?? WASM_FILES[simd];

  const memory = new WebAssembly.Memory({ initial: initialPages, maximum: MAX_PAGES, shared: true });
  const module = await compileModule(simd, options.wasmFile);
  const instance = await WebAssembly.instantiate(module, wasmImports(memory));
  const ex = instance.exports as unknown as KernelExports;
  if (ex.staticEnd() > CONTROL_OFFSET) {
    throw new Error(`createKernels: ${file} static data ends at ${ex.staticEnd()}, above the control block at ${CONTROL_OFFSET}`);
  }
  if (ex.halfTable() !== HALF_TABLE_OFFSET) {
    throw new Error(`createKernels: ${file} puts its f16 table at ${ex.halfTable()}, the memory map at ` +
      `${HALF_TABLE_OFFSET}`);
  }
  new Int32Array(memory.buffer, CONTROL_OFFSET, CONTROL.ints).fill(0);
  ex.initHalfTable();
  const heap = createHeap(memory, HEAP_BASE);
  const q8Dot = chooseQ8Dot(options.q8Dot ?? 'auto', simd, options.wasmFile ?? simd, ex, heap);
  // The Q8_0 matmul's kernel and activation layout (quantizeActivations' kind): the int16 form is the plain build's
  // own matmulQ8_0, and the relaxed build's matmulQ8_0Wide.
  const q8Kernel = q8Dot === 'int16' && simd === 'relaxed' ? KERNEL.matmulQ8_0Wide : KERNEL.matmulQ8_0;
  const q8Kind = q8Kernel === KERNEL.matmulQ8_0Wide ? 2 : 0;
  const pool: Pool | null = threads > 1 ? await createPool(module, memory, ex, threads, spinMs) : null;
  const args = pool?.args ?? new Int32Array(0);
  const fargs = pool?.fargs ?? new Float32Array(0);

  // Attention scores: four rows of `scratchKeys` floats per thread (attention.ts blocks four queries), grown when a
  // call needs more keys.
  let scratch = 0;
  let scratchKeys = 0;
  let gradInputScratch = 0;

  // Quantized activations of the quantized matmuls: 64 bytes per block of 32 values (int16, or two int8 layouts in
  // the relaxed build), then f32 scales [rows, inDim/32], then (relaxed Q4_0) i32 block sums [rows, inDim/32]; grown
  // when a call needs more, so steady-state decoding allocates nothing.
  let quantScratch = 0;
  let quantBytes = 0;

  /**
   * The shared part of matmulQ8_0 / matmulQ4_0: quantizes x on this thread (rows·inDim work against
   * rows·inDim·outDim for the product, and every thread needs all of it), then runs the product here or on the pool.
   */
  function quantMatmul(kernel: number, name: string, out: Ptr, x: Ptr, w: Ptr, rows: number, inDim: number,
    outDim: number, bias: Ptr): void {
    if (!(inDim > 0 && inDim % 32 === 0)) {
      throw new RangeError(`${name}: inDim must be a positive multiple of 32, got ${inDim}`);
    }
    const valuesBytes = rows * inDim * 2;
    const needed = valuesBytes + 2 * rows * (inDim / 32) * 4;
    if (needed > quantBytes) {
      if (quantScratch !== 0) heap.free(quantScratch);
      quantBytes = needed;
      quantScratch = heap.alloc(needed);
    }
    const xd = quantScratch + valuesBytes;
    ex.quantizeActivations(x, quantScratch, xd, rows, inDim, kernel === KERNEL.matmulQ4_0 ? 1 : q8Kind);
    const fn = kernel === KERNEL.matmulQ4_0 ? ex.matmulQ4_0 : kernel === KERNEL.matmulQ8_0 ? ex.matmulQ8_0 :
      ex.matmulQ8_0Wide;
    const p = parallel(rows * inDim * outDim);
    if (p === null) return fn(out, quantScratch, xd, w, bias, rows, inDim, outDim, 0, 1);
    args[0] = out; args[1] = quantScratch; args[2] = xd; args[3] = w; args[4] = bias; args[5] = rows; args[6] = inDim;
    args[7] = outDim;
    p.run(kernel);
  }

  /**
   * The pool when the call is worth spreading, else null (run on this thread alone). Row-split kernels pass 0 when
   * there is a single row (or head) to split: the other threads would have nothing to do.
   */
  function parallel(work: number): Pool | null {
    return pool !== null && work > 0 && work >= minWork ? pool : null;
  }

  return {
    heap,
    threads,
    simd,
    q8Dot,

    matmul(out: Ptr, x: Ptr, w: Ptr, rows: number, inDim: number, outDim: number): void {
      const p = parallel(rows * inDim * outDim);
      if (p === null) return ex.matmul(out, x, w, rows, inDim, outDim, 0, 1);
      args[0] = out; args[1] = x; args[2] = w; args[3] = rows; args[4] = inDim; args[5] = outDim;
      p.run(KERNEL.matmul);
    },

    matmulBias(out: Ptr, x: Ptr, w: Ptr, bias: Ptr, rows: number, inDim: number, outDim: number): void {
      const p = parallel(rows * inDim * outDim);
      if (p === null) return ex.matmulBias(out, x, w, bias, rows, inDim, outDim, 0, 1);
      args[0] = out; args[1] = x; args[2] = w; args[3] = bias; args[4] = rows; args[5] = inDim; args[6] = outDim;
      p.run(KERNEL.matmulBias);
    },

    matmulQ8_0(out: Ptr, x: Ptr, w: Ptr, rows: number, inDim: number, outDim: number, bias: Ptr = 0): void {
      quantMatmul(q8Kernel, 'matmulQ8_0', out, x, w, rows, inDim, outDim, bias);
    },

    matmulQ4_0(out: Ptr, x: Ptr, w: Ptr, rows: number, inDim: number, outDim: number, bias: Ptr = 0): void {
      quantMatmul(KERNEL.matmulQ4_0, 'matmulQ4_0', out, x, w, rows, inDim, outDim, bias);
    },

    rmsnorm(out: Ptr, x: Ptr, weight: Ptr, rows: number, dim: number, eps: number): void {
      const p = parallel(rows < 2 ? 0 : rows * dim * 2);
      if (p === null) return ex.rmsnorm(out, x, weight, rows, dim, eps, 0, 1);
      args[0] = out; args[1] = x; args[2] = weight; args[3] = rows; args[4] = dim; fargs[5] = eps;
      p.run(KERNEL.rmsnorm);
    },

    rope(x: Ptr, rows: number, nHeads: number, headDim: number, positions: Ptr, table: Ptr, layout: RopeLayout): void {
      const l = layout === 'pairs' ? 0 : 1;
      const p = parallel(rows * nHeads < 2 ? 0 : rows * nHeads * headDim * 4);
      if (p === null) return ex.rope(x, rows, nHeads, headDim, positions, table, l, 0, 1);
      args[0] = x; args[1] = rows; args[2] = nHeads; args[3] = headDim; args[4] = positions; args[5] = table; args[6] = l;
      p.run(KERNEL.rope);
    },

    softmax(x: Ptr, rows: number, n: number): void {
      const p = parallel(rows < 2 ? 0 : rows * n * 8);
      if (p === null) return ex.softmax(x, rows, n, 0, 1);
      args[0] = x; args[1] = rows; args[2] = n;
      p.run(KERNEL.softmax);
    },

    siluMul(out: Ptr, gate: Ptr, up: Ptr, n: number): void {
      const p = parallel(n * 8);
      if (p === null) return ex.siluMul(out, gate, up, n, 0, 1);
      args[0] = out; args[1] = gate; args[2] = up; args[3] = n;
      p.run(KERNEL.siluMul);
    },

    silu(out: Ptr, x: Ptr, n: number): void {
      const p = parallel(n * 8);
      if (p === null) return ex.silu(out, x, n, 0, 1);
      args[0] = out; args[1] = x; args[2] = n;
      p.run(KERNEL.silu);
    },

    add(out: Ptr, a: Ptr, b: Ptr, n: number): void {
      const p = parallel(n * 2);
      if (p === null) return ex.add(out, a, b, n, 0, 1);
      args[0] = out; args[1] = a; args[2] = b; args[3] = n;
      p.run(KERNEL.add);
    },

    attention(out: Ptr, q: Ptr, queries: Ptr, rows: number, nHeads: number, nKvHeads: number, headDim: number,
      scale: number, maxKeys: number): void {
      if (nKvHeads <= 0 || nHeads % nKvHeads !== 0) {
        throw new RangeError(`attention: nHeads ${nHeads} is not a multiple of nKvHeads ${nKvHeads}`);
      }
      if (maxKeys > scratchKeys) {
        if (scratch !== 0) heap.free(scratch);
        scratchKeys = Math.ceil(maxKeys / 16) * 16;
        scratch = heap.alloc(threads * 4 * scratchKeys * 4);
      }
      const p = parallel(rows * nHeads < 2 ? 0 : rows * nHeads * maxKeys * headDim * 2);
      if (p === null) return ex.attention(out, q, queries, rows, nHeads, nKvHeads, headDim, scale, scratch, scratchKeys, 0, 1);
      args[0] = out; args[1] = q; args[2] = queries; args[3] = rows; args[4] = nHeads; args[5] = nKvHeads;
      args[6] = headDim; fargs[7] = scale; args[8] = scratch; args[9] = scratchKeys;
      p.run(KERNEL.attention);
    },

    gradWeight(out: Ptr, dY: Ptr, x: Ptr, rows: number, inDim: number, outDim: number): void {
      const p = parallel(outDim < 8 ? 0 : rows * inDim * outDim);
      if (p === null) return ex.gradWeight(out, dY, x, rows, inDim, outDim, 0, 1);
      args[0] = out; args[1] = dY; args[2] = x; args[3] = rows; args[4] = inDim; args[5] = outDim;
      p.run(KERNEL.gradWeight);
    },

    gradInput(out: Ptr, dY: Ptr, w: Ptr, rows: number, inDim: number, outDim: number, add: Ptr = 0, first = 0,
      count = inDim - first): void {
      if (!(first >= 0 && count >= 0 && first + count <= inDim)) {
        throw new RangeError(`gradInput: columns ${first}..${first + count} outside 0..${inDim}`);
      }
      // Per-thread scratch for packed strips, allocated on the first call (training only).
      if (gradInputScratch === 0) gradInputScratch = heap.alloc(threads * ex.gradInputScratchBytes());
      const p = parallel(rows < 4 ? 0 : rows * count * outDim);
      if (p === null) return ex.gradInput(out, dY, w, add, rows, inDim, outDim, first, count, gradInputScratch, 0, 1);
      args[0] = out; args[1] = dY; args[2] = w; args[3] = add; args[4] = rows; args[5] = inDim; args[6] = outDim;
      args[7] = first; args[8] = count; args[9] = gradInputScratch;
      p.run(KERNEL.gradInput);
    },

    siluGrad(out: Ptr, dOut: Ptr, x: Ptr, n: number): void {
      const p = parallel(n * 8);
      if (p === null) return ex.siluGrad(out, dOut, x, n, 0, 1);
      args[0] = out; args[1] = dOut; args[2] = x; args[3] = n;
      p.run(KERNEL.siluGrad);
    },

    columnSums(out: Ptr, x: Ptr, rows: number, cols: number): void {
      const p = parallel(cols < 32 ? 0 : rows * cols);
      if (p === null) return ex.columnSums(out, x, rows, cols, 0, 1);
      args[0] = out; args[1] = x; args[2] = rows; args[3] = cols;
      p.run(KERNEL.columnSums);
    },

    crossEntropyGrad(out: Ptr, logits: Ptr, teacher: Ptr, targets: Ptr, params: Ptr, results: Ptr, rows: number,
      n: number): void {
      const p = parallel(rows < 2 ? 0 : rows * n * 16);
      if (p === null) return ex.crossEntropyGrad(out, logits, teacher, targets, params, results, rows, n, 0, 1);
      args[0] = out; args[1] = logits; args[2] = teacher; args[3] = targets; args[4] = params; args[5] = results;
      args[6] = rows; args[7] = n;
      p.run(KERNEL.crossEntropyGrad);
    },

    adamW(data: Ptr, grad: Ptr, m: Ptr, v: Ptr, n: number, params: Ptr): void {
      const p = parallel(n * 16);
      if (p === null) return ex.adamW(data, grad, m, v, n, params, 0, 1);
      args[0] = data; args[1] = grad; args[2] = m; args[3] = v; args[4] = n; args[5] = params;
      p.run(KERNEL.adamW);
    },

    streamRead(out: Ptr, p: Ptr, n: number): void {
      if (pool === null) return ex.streamRead(out, p, n, 0, 1);
      args[0] = out; args[1] = p; args[2] = n;
      pool.run(KERNEL.streamRead);
    },

    simdPeak(out: Ptr, seed: Ptr, iterations: number): void {
      if (pool === null) return ex.simdPeak(out, seed, iterations, 0, 1);
      args[0] = out; args[1] = seed; args[2] = iterations;
      pool.run(KERNEL.simdPeak);
    },

    sumOfSquares(x: Ptr, n: number): number {
      return ex.sumOfSquares(x, n);
    },

    scale(x: Ptr, n: number, factor: number): void {
      ex.scale(x, n, factor);
    },

    async close(): Promise<void> {
      if (pool !== null) await pool.close();
    },
  };
}
