// What the calling thread and the workers share: the wasm exports' signatures, the memory map, the control block
// layout and the one function that runs a thread's share of a kernel from the arguments in the control block.

/** The AssemblyScript module's exports (src/kernels/assembly/index.ts). Pointers are byte offsets (u32). */
export interface KernelExports {
  staticEnd(): number;
  matmul(out: number, x: number, w: number, rows: number, inDim: number, outDim: number, tid: number, nt: number): void;
  matmulBias(out: number, x: number, w: number, bias: number, rows: number, inDim: number, outDim: number,
    tid: number, nt: number): void;
  rmsnorm(out: number, x: number, weight: number, rows: number, dim: number, eps: number, tid: number, nt: number): void;
  rope(x: number, rows: number, nHeads: number, headDim: number, positions: number, table: number, layout: number,
    tid: number, nt: number): void;
  softmax(x: number, rows: number, n: number, tid: number, nt: number): void;
  siluMul(out: number, gate: number, up: number, n: number, tid: number, nt: number): void;
  silu(out: number, x: number, n: number, tid: number, nt: number): void;
  add(out: number, a: number, b: number, n: number, tid: number, nt: number): void;
  attention(out: number, q: number, queries: number, rows: number, nHeads: number, nKvHeads: number, headDim: number,
    scale: number, scratch: number, scratchStride: number, tid: number, nt: number): void;
  /** Fills the f16 → f32 table of the quantized kernels (HALF_TABLE_OFFSET, shared by every instance), once. */
  initHalfTable(): void;
  /** The table's address compiled into the module (must equal HALF_TABLE_OFFSET). */
  halfTable(): number;
  /**
   * kind: 0 = for a Q8_0 matrix (matmulQ8_0), 1 = Q4_0, 2 = Q8_0 in the int16 form (matmulQ8_0Wide); the relaxed
   * build lays the values out per kind, the plain one writes int16 for all (quant.ts).
   */
  quantizeActivations(x: number, xq: number, xd: number, rows: number, inDim: number, kind: number): void;
  matmulQ8_0(out: number, xq: number, xd: number, w: number, bias: number, rows: number, inDim: number, outDim: number,
    tid: number, nt: number): void;
  /** Q8_0 with the int16 dot product in either build: the same bits as matmulQ8_0. */
  matmulQ8_0Wide(out: number, xq: number, xd: number, w: number, bias: number, rows: number, inDim: number,
    outDim: number, tid: number, nt: number): void;
  matmulQ4_0(out: number, xq: number, xd: number, w: number, bias: number, rows: number, inDim: number, outDim: number,
    tid: number, nt: number): void;
  gradWeight(out: number, dY: number, x: number, rows: number, inDim: number, outDim: number, tid: number, nt: number): void;
  gradInput(out: number, dY: number, w: number, add: number, rows: number, inDim: number, outDim: number, first: number,
    count: number, scratch: number, tid: number, nt: number): void;
  gradInputScratchBytes(): number;
  siluGrad(out: number, dOut: number, x: number, n: number, tid: number, nt: number): void;
  columnSums(out: number, x: number, rows: number, cols: number, tid: number, nt: number): void;
  crossEntropyGrad(out: number, logits: number, teacher: number, targets: number, params: number, results: number,
    rows: number, n: number, tid: number, nt: number): void;
  adamW(data: number, grad: number, m: number, v: number, n: number, params: number, tid: number, nt: number): void;
  streamRead(out: number, p: number, n: number, tid: number, nt: number): void;
  simdPeak(out: number, seed: number, iterations: number, tid: number, nt: number): void;
  /** Single-threaded (a reduction whose order must not depend on the thread count). */
  sumOfSquares(x: number, n: number): number;
  scale(x: number, n: number, factor: number): void;
}

/** Kernel ids written to the control block. */
export const KERNEL = {
  matmul: 1,
  matmulBias: 2,
  rmsnorm: 3,
  rope: 4,
  softmax: 5,
  siluMul: 6,
  silu: 7,
  add: 8,
  attention: 9,
  matmulQ8_0: 10,
  matmulQ4_0: 11,
  gradWeight: 12,
  gradInput: 13,
  siluGrad: 14,
  columnSums: 15,
  crossEntropyGrad: 16,
  adamW: 17,
  streamRead: 18,
  simdPeak: 19,
  matmulQ8_0Wide: 20,
} as const;

export const KERNEL_NAMES: readonly string[] = ['none', 'matmul', 'matmulBias', 'rmsnorm', 'rope', 'softmax', 'siluMul',
  'silu', 'add', 'attention', 'matmulQ8_0', 'matmulQ4_0', 'gradWeight', 'gradInput', 'siluGrad', 'columnSums',
  'crossEntropyGrad', 'adamW', 'streamRead', 'simdPeak', 'matmulQ8_0Wide'];

// Memory map: [0, 512 KiB) AssemblyScript static data (checked against staticEnd() at start-up), the control
// block at 512 KiB (1 KiB), the workers' error texts from 516 KiB (maxThreads × 256 bytes), the f16 → f32 table of the quantized kernels at 576 KiB (256 KiB, quant.ts), the heap from
// 1 MiB. The low region never moves when the memory grows, so Int32Array views of the control block made once stay
// valid.
export const CONTROL_OFFSET = 512 * 1024;
/**
 * Worker error texts, one slot per thread from 4 KiB above the control block: int32 generation of the failed call,
 * int32 byte length, then the UTF-8 text. A worker writes its slot before it counts the share done, so the caller
 * reads the text of this very call synchronously (a postMessage would arrive after the throw, and attach to a later
 * failure).
 */
export const ERROR_SLOTS_OFFSET = CONTROL_OFFSET + 4096;
export const ERROR_SLOT_BYTES = 256;
export const HALF_TABLE_OFFSET = 576 * 1024;
export const HEAP_BASE = 1024 * 1024;

/**
 * Control block, in int32 indexes from CONTROL_OFFSET, grouped by 64-byte line so that a call moves as few lines
 * between cores as possible: the signal line (workers spin on it), the call line (written by the caller before the
 * signal, read by workers after it), the completion line (claims and counters). Counters only grow, so nothing is
 * reset between calls; comparisons use wrapping differences.
 */
export const CONTROL = {
  ints: 256,
  // Signal line.
  /** Bumped by the caller to publish a call; workers spin / wait on it. */
  generation: 0,
  /** Workers inside Atomics.wait (or about to be): the caller notifies only when this is non-zero. */
  sleeping: 1,
  // Call line.
  kernel: 16,
  shutdown: 17,
  /** Kernel arguments (up to 14): i32 values, f32 values as bit patterns (read through a Float32Array view). */
  args: 18,
  // Completion line.
  /** Shares finished by anyone, since start-up: a call adds threads - 1. */
  done: 32,
  /** Shares that threw on a worker, since start-up. */
  failed: 33,
  /** Shares computed by workers since start-up (the rest were taken over by the caller); for tests and reports. */
  workerShares: 34,
  /**
   * Per share (index claims + threadIndex), the last generation whose share was claimed. Whoever moves it forward to
   * the current generation computes that share: the caller takes over the shares of workers that have not started
   * yet (descheduled, or still waking up), so it never waits for a thread that is not running. Shares are fixed by
   * thread index, so who computes one never changes a result.
   */
  claims: 35,
  /** Upper bound on threads, from the room left for claims. */
  maxThreads: 128,
} as const;

/**
 * Claims share `t` of generation `generation` for the calling thread: true if the claim moved forward from an older
 * generation. A worker that read the generation and was then descheduled finds a newer claim and does nothing.
 */
export function claimShare(ctrl: Int32Array, t: number, generation: number): boolean {
  const index = CONTROL.claims + t;
  const claimed = Atomics.load(ctrl, index);
  return ((generation - claimed) | 0) > 0 && Atomics.compareExchange(ctrl, index, claimed, generation) === claimed;
}

const textEncoder = new TextEncoder();
const textDecoder = new TextDecoder();

/** Writes thread t's error text for `generation` into its slot (cut to fit). */
export function writeShareError(memory: WebAssembly.Memory, t: number, generation: number, message: string): void {
  const base = ERROR_SLOTS_OFFSET + t * ERROR_SLOT_BYTES;
  const header = new Int32Array(memory.buffer, base, 2);
  const text = new Uint8Array(memory.buffer, base + 8, ERROR_SLOT_BYTES - 8);
  const { written } = textEncoder.encodeInto(message, text);
  header[1] = written;
  Atomics.store(header, 0, generation);
}

/** Thread t's error text if it failed in `generation`, else undefined. */
export function readShareError(memory: WebAssembly.Memory, t: number, generation: number): string | undefined {
  const base = ERROR_SLOTS_OFFSET + t * ERROR_SLOT_BYTES;
  const header = new Int32Array(memory.buffer, base, 2);
  if (Atomics.load(header, 0) !== generation) return undefined;
  // Copied out: TextDecoder refuses views of a shared buffer.
  return textDecoder.decode(new Uint8Array(memory.buffer, base + 8, header[1]).slice());
}

export function wasmImports(memory: WebAssembly.Memory): WebAssembly.Imports {
  return {
    env: {
      memory,
      abort(): never {
        throw new Error('kernels.wasm aborted');
      },
    },
  };
}

/** Runs thread `tid`'s share of the kernel whose arguments are in the control block (ints `i`, floats `f`). */
export function runShare(ex: KernelExports, kernel: number, i: Int32Array, f: Float32Array, tid: number, nt: number): void {
  const a = CONTROL.args;
  switch (kernel) {
    case KERNEL.matmul:
      ex.matmul(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], tid, nt);
      return;
    case KERNEL.matmulBias:
      ex.matmulBias(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], tid, nt);
      return;
    case KERNEL.rmsnorm:
      ex.rmsnorm(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], f[a + 5], tid, nt);
      return;
    case KERNEL.rope:
      ex.rope(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], tid, nt);
      return;
    case KERNEL.softmax:
      ex.softmax(i[a], i[a + 1], i[a + 2], tid, nt);
      return;
    case KERNEL.siluMul:
      ex.siluMul(i[a], i[a + 1], i[a + 2], i[a + 3], tid, nt);
      return;
    case KERNEL.silu:
      ex.silu(i[a], i[a + 1], i[a + 2], tid, nt);
      return;
    case KERNEL.add:
      ex.add(i[a], i[a + 1], i[a + 2], i[a + 3], tid, nt);
      return;
    case KERNEL.attention:
      ex.attention(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], f[a + 7], i[a + 8], i[a + 9], tid, nt);
      return;
    case KERNEL.matmulQ8_0:
      ex.matmulQ8_0(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], tid, nt);
      return;
    case KERNEL.matmulQ8_0Wide:
      ex.matmulQ8_0Wide(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], tid, nt);
      return;
    case KERNEL.matmulQ4_0:
      ex.matmulQ4_0(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], tid, nt);
      return;
    case KERNEL.gradWeight:
      ex.gradWeight(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], tid, nt);
      return;
    case KERNEL.gradInput:
      ex.gradInput(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], i[a + 8], i[a + 9], tid, nt);
      return;
    case KERNEL.siluGrad:
      ex.siluGrad(i[a], i[a + 1], i[a + 2], i[a + 3], tid, nt);
      return;
    case KERNEL.columnSums:
      ex.columnSums(i[a], i[a + 1], i[a + 2], i[a + 3], tid, nt);
      return;
    case KERNEL.crossEntropyGrad:
      ex.crossEntropyGrad(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], i[a + 6], i[a + 7], tid, nt);
      return;
    case KERNEL.adamW:
      ex.adamW(i[a], i[a + 1], i[a + 2], i[a + 3], i[a + 4], i[a + 5], tid, nt);
      return;
    case KERNEL.streamRead:
      ex.streamRead(i[a], i[a + 1], i[a + 2], tid, nt);
      return;
    case KERNEL.simdPeak:
      ex.simdPeak(i[a], i[a + 1], i[a + 2], tid, nt);
      return;
    default:
      throw new Error(`runShare: unknown kernel id ${kernel}`);
  }
}
