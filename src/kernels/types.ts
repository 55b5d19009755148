// The kernel layer's contract. Every tensor lives in one shared WebAssembly.Memory and is named by a byte offset
// (a "pointer"). f32 tensors are row-major; a pointer to f32 data is 16-byte aligned.
//
// Batch invariance (architecture.md, invariant 1): every kernel computes each output element with the same
// instruction sequence and summation order whatever the number of rows, the row's place in the batch, the other
// rows present, or the number of threads. Tests compare bit patterns.

/** Byte offset into the shared WebAssembly memory. */
export type Ptr = number;

export interface Heap {
  readonly memory: WebAssembly.Memory;
  /** Allocates `bytes` (rounded up to 64) aligned to 64 bytes, zero-filled; grows the memory when needed. */
  alloc(bytes: number): Ptr;
  /** Returns a region to the allocator. */
  free(ptr: Ptr): void;
  /** A fresh Float32Array view of `length` floats at `ptr` (views stay valid after the memory grows). */
  f32(ptr: Ptr, length: number): Float32Array;
  /** A fresh Int32Array view of `length` ints at `ptr`. */
  i32(ptr: Ptr, length: number): Int32Array;
  /** Bytes currently allocated (for reports). */
  readonly allocatedBytes: number;
}

/**
 * The kernel build a Kernels object runs: 'plain' (kernels.wasm, SIMD128) or 'relaxed' (kernels-relaxed.wasm, SIMD128
 * plus relaxed SIMD's int8 dot product in the quantized matmuls). Both give the same bits.
 */
export type SimdBuild = 'plain' | 'relaxed';

/**
 * How the Q8_0 matmul forms its integer block sums: 'int8' (relaxed SIMD's int8 dot product, the relaxed build only)
 * or 'int16' (dot_i16x8_s on int16 activations, every build). Both give the same bits; which is faster depends on the
 * CPU (int8 where V8 lowers the relaxed dot to one AVX-VNNI instruction).
 */
export type Q8Dot = 'int8' | 'int16';

/** Weight encodings of the quantized matmuls: GGML block types. */
export type QuantType = 'q8_0' | 'q4_0';

/** Bytes per block of 32 weights of each quantized type (GGML's block_q8_0 / block_q4_0). */
export const QUANT_BLOCK_BYTES: Readonly<Record<QuantType, number>> = { q8_0: 34, q4_0: 18 };

/** RoPE layout: `pairs` rotates (x[2i], x[2i+1]) (llama2.c, GGUF); `halves` rotates (x[i], x[i+d/2]) (Hugging Face). */
export type RopeLayout = 'pairs' | 'halves';

/**
 * Describes, for each query row of an attention call, where its keys and values are and which slots it attends, in
 * order: first slots 0 .. prefixLength-1 of its cache, then `extraCount` slots listed at `extraSlots` (i32).
 * One record per query, 6 int32 each, in this order:
 *   [kPtr, vPtr, prefixLength, extraSlotsPtr, extraCount, prefixTablePtr]
 * kPtr / vPtr point at slot 0 of this layer's K / V block: [slots, nKvHeads * headDim] f32. prefixTablePtr 0 means
 * prefix key j is slot j; otherwise it points at prefixLength i32 slot numbers (a paged cache's slot table) and prefix
 * key j is slot table[j]. Extra slots are always slot numbers of the block.
 */
export const QUERY_RECORD_INTS = 6;

export interface Kernels {
  readonly heap: Heap;
  /** Threads that compute (the calling thread included). */
  readonly threads: number;
  /** The kernel build loaded (KernelOptions.simd). */
  readonly simd: SimdBuild;
  /** The Q8_0 matmul's dot product (KernelOptions.q8Dot): always 'int16' in the plain build. */
  readonly q8Dot: Q8Dot;

  /** out[t][o] = Σ_i x[t][i] · w[o][i] for t < rows, o < outDim. w is [outDim, inDim]. */
  matmul(out: Ptr, x: Ptr, w: Ptr, rows: number, inDim: number, outDim: number): void;
  /** out[t][o] = bias[o] + Σ_i x[t][i] · w[o][i] (the sum is computed exactly as in matmul, then the bias added). */
  matmulBias(out: Ptr, x: Ptr, w: Ptr, bias: Ptr, rows: number, inDim: number, outDim: number): void;
  /**
   * out[t][o] = (bias[o] +) Σ_i x[t][i] · w[o][i] with w [outDim, inDim] in GGML Q8_0 blocks (rows of inDim/32 blocks
   * of 34 bytes: f16 scale, 32 int8), x f32. As llama.cpp does, x is quantized per 32-block to int8 with an f32 scale
   * (d = max|x|/127, q = nearest(x/d)), then each block's integer dot product is scaled by d_w·d_x and added in block
   * order. inDim must be a multiple of 32; bias 0 (the default) means none. Batch-invariant like matmul.
   */
  matmulQ8_0(out: Ptr, x: Ptr, w: Ptr, rows: number, inDim: number, outDim: number, bias?: Ptr): void;
  /** matmulQ8_0 for GGML Q4_0 blocks (18 bytes: f16 scale, 16 bytes of nibbles; value = (q − 8)·d). */
  matmulQ4_0(out: Ptr, x: Ptr, w: Ptr, rows: number, inDim: number, outDim: number, bias?: Ptr): void;
  /** out[t] = x[t] / sqrt(mean(x[t]²) + eps) · weight, for rows of length dim. out may equal x. */
  rmsnorm(out: Ptr, x: Ptr, weight: Ptr, rows: number, dim: number, eps: number): void;
  /**
   * Rotates, in place, each head of each row by its position: x is [rows, nHeads * headDim]; positions is i32 [rows];
   * table is f32 [maxPosition, headDim/2, 2] holding (cos, sin) for (position, frequency index).
   */
  rope(x: Ptr, rows: number, nHeads: number, headDim: number, positions: Ptr, table: Ptr, layout: RopeLayout): void;
  /** In-place softmax over each row of length n. */
  softmax(x: Ptr, rows: number, n: number): void;
  /** out[i] = silu(gate[i]) · up[i] for i < n. out may equal gate. */
  siluMul(out: Ptr, gate: Ptr, up: Ptr, n: number): void;
  /** out[i] = silu(x[i]). out may equal x. */
  silu(out: Ptr, x: Ptr, n: number): void;
  /** out[i] = a[i] + b[i]. out may equal a or b. */
  add(out: Ptr, a: Ptr, b: Ptr, n: number): void;
  /**
   * Attention for `rows` queries. q and out are [rows, nHeads * headDim]; queries is rows × QUERY_RECORD_INTS i32.
   * For each query and head h (kv head h / (nHeads / nKvHeads)): scores over the query's key list in order,
   * scaled by `scale`, softmax, weighted sum of the values in the same order. maxKeys bounds every query's key count.
   */
  attention(out: Ptr, q: Ptr, queries: Ptr, rows: number, nHeads: number, nKvHeads: number, headDim: number,
    scale: number, maxKeys: number): void;

  // Training (src/train/graph.ts, src/train/optim.ts). Every result is computed in an order fixed by its own inputs
  // (the products and column sums: one f32 chain per element over the reduction index in order, acc = 0 then
  // acc += term), so its bits depend neither on the thread count nor on the rest of the batch.

  /**
   * The weight gradient of out = x·wᵀ: out[o][i] = Σ_r dY[r][o] · x[r][i] (r in order) for dY [rows, outDim],
   * x [rows, inDim], out [outDim, inDim]. rows 0 gives zeros.
   */
  gradWeight(out: Ptr, dY: Ptr, x: Ptr, rows: number, inDim: number, outDim: number): void;
  /**
   * The input gradient of out = x·wᵀ: out[r][c] = (add[r][c] +) Σ_o dY[r][o] · w[o][first + c] (o in order) for
   * c < count, dY [rows, outDim], w [outDim, inDim], out and add [rows, count]. Defaults: no add (0), all the columns
   * (first 0, count inDim). add may equal out; out must not overlap dY or w.
   */
  gradInput(out: Ptr, dY: Ptr, w: Ptr, rows: number, inDim: number, outDim: number, add?: Ptr, first?: number,
    count?: number): void;
  /** out[i] = dOut[i] · silu'(x[i]), silu' computed with the exp of `silu`. out may equal dOut or x. */
  siluGrad(out: Ptr, dOut: Ptr, x: Ptr, n: number): void;
  /** out[c] = Σ_r x[r][c] (r in order) for x [rows, cols]: a bias gradient. */
  columnSums(out: Ptr, x: Ptr, rows: number, cols: number): void;
  /**
   * Cross-entropy against soft targets and its gradient with respect to the logits (see src/train/graph.ts). For
   * row r with targets[r] (i32) ≥ 0: out[r] = softmax(logits[r]) and teacher[r] = softmax(teacher[r]) in place, with
   * the bits of `softmax`; then in f64: best = first argmax of the logits, lse = ℓ_best − ln p_best,
   * ce = (1 − soft)(lse − ℓ_target) + Σ_v soft·q_v·(lse − ℓ_v), and out[r][v] = f32((p_v − soft·q_v)·scale_r), minus
   * (1 − soft)·scale_r at the target. A row with a negative target gets a zero gradient (its teacher row is left as
   * it is). params is f64 [1 + rows]: soft, then scale_r; teacher is [rows, n] logits, or 0 for none (soft 0).
   * results is f64 [rows, 2]: (ce, best), (0, −1) for no target. Σ_v is summed in 4 lanes over v < n & ~3 (lane
   * v mod 4), reduced ((0 + 1) + (2 + 3)), then the tail in order. out must not overlap logits or teacher.
   */
  crossEntropyGrad(out: Ptr, logits: Ptr, teacher: Ptr, targets: Ptr, params: Ptr, results: Ptr, rows: number,
    n: number): void;
  /**
   * One AdamW update of n f32 parameters in place, in f64 element by element exactly as this loop (src/train/optim.ts):
   * m ← f32(β1·m + (1−β1)·g), v ← f32(β2·v + (1−β2)·g·g), data ← f32(data·decay − lr·((m / c1) / (√(v / c2) + ε))).
   * params is f64 [9]: β1, 1 − β1, β2, 1 − β2, c1, c2, ε, lr, decay.
   */
  adamW(data: Ptr, grad: Ptr, m: Ptr, v: Ptr, n: number, params: Ptr): void;
  /**
   * Σ x_i² over n f32 in f64, on the calling thread: 4 lanes over i < n & ~3 (lane i mod 4), reduced
   * ((0 + 1) + (2 + 3)), then the tail in order.
   */
  sumOfSquares(x: Ptr, n: number): number;
  /**
   * Machine ceilings, for benchmarks. streamRead reads n floats at p, split over the threads as the matmuls split
   * their weights (each thread's share as 8 runs), and writes one float per thread to out. simdPeak runs `iterations`
   * register-only steps of the f32 matmul's 2×4 block (64 flops) on every thread; seed points at 96 bytes of values.
   */
  streamRead(out: Ptr, p: Ptr, n: number): void;
  simdPeak(out: Ptr, seed: Ptr, iterations: number): void;
  /** x[i] = f32(x[i] · factor), the product in f64 (as a JS loop over a Float32Array computes it). */
  scale(x: Ptr, n: number, factor: number): void;
  /** Stops the worker threads. The kernels are unusable afterwards. */
  close(): Promise<void>;
}

export interface KernelOptions {
  /** Computing threads including the caller (default 1). */
  threads?: number;
  /** Initial memory in bytes (grows on demand). */
  initialBytes?: number;
  /**
   * Estimated work (~ multiply-adds) below which a call runs on the calling thread alone instead of the pool.
   * 0 sends every call to every thread (tests use this to exercise the split on small shapes).
   */
  minParallelWork?: number;
  /** How long an idle worker spins before it sleeps in Atomics.wait, in milliseconds (default 2). */
  spinMs?: number;
  /**
   * The kernel build: 'auto' (default) takes the REDRAFTER_SIMD environment variable (plain | relaxed | auto) if set,
   * else 'relaxed' where the engine validates relaxed SIMD and is not Node < 22 (whose V8 computes the relaxed dot
   * product wrong), else 'plain'. Forcing 'relaxed' where it cannot run throws.
   */
  simd?: SimdBuild | 'auto';
  /**
   * The Q8_0 matmul's dot product in the relaxed build: 'auto' (default) times both once per process on a small
   * cache-resident matrix and keeps the faster; 'int8' / 'int16' force one. The plain build has only 'int16' (asking
   * it for 'int8' throws).
   */
  q8Dot?: Q8Dot | 'auto';
  /**
   * A kernels module file to load instead of the build `simd` names, compiled with the same exports (benchmarks of a
   * kernel change against the previous build, in one process: bench/kernels-bench.ts --baseline).
   */
  wasmFile?: string;
}
