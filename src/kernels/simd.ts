// Which kernel build to load: kernels.wasm (SIMD128) or kernels-relaxed.wasm (SIMD128 + relaxed SIMD, whose int8 dot
// product the quantized matmuls use; src/kernels/assembly/quant.ts). Both give the same bits; the relaxed one is
// faster where the dot product is one instruction (x64 AVX-VNNI). Nothing here needs Node: a browser takes the same
// path (the process global is only read where it exists).
import type { SimdBuild } from './types.js';

/**
 * A module whose one function is i32x4.relaxed_dot_i8x16_i7x16_add_s of its three v128 parameters: validates only
 * where the engine accepts relaxed SIMD (Node ≥ 22 and Chromium by default; Node 20 behind a flag).
 */
const RELAXED_PROBE = Uint8Array.of(
  0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // \0asm, version 1
  0x01, 0x08, 0x01, 0x60, 0x03, 0x7b, 0x7b, 0x7b, 0x01, 0x7b, // types: (v128, v128, v128) -> v128
  0x03, 0x02, 0x01, 0x00, // functions: one of type 0
  0x0a, 0x0d, 0x01, 0x0b, 0x00, 0x20, 0x00, 0x20, 0x01, 0x20, 0x02, 0xfd, 0x93, 0x02, 0x0b, // local.get 0 1 2, dot, end
);

interface ProcessLike {
  versions?: { node?: string };
  env?: Record<string, string | undefined>;
}

function processGlobal(): ProcessLike | undefined {
  return (globalThis as { process?: ProcessLike }).process;
}

/** Null where the relaxed build may run, else why not (for the error when it is forced). */
export function relaxedUnavailable(): string | null {
  if (!WebAssembly.validate(RELAXED_PROBE)) return 'this WebAssembly engine does not accept relaxed SIMD';
  const node = processGlobal()?.versions?.node;
  // Node 20 (V8 11.3) accepts relaxed SIMD under --experimental-wasm-relaxed-simd, but its baseline compiler
  // (Liftoff) computes relaxed_dot_i8x16_i7x16_add_s doubled: code that has not tiered up gives wrong sums.
  // Node 21 is no better (V8 11.8, still flagged); from 22 on it is on by default and correct.
  if (node !== undefined && Number(node.split('.')[0]) < 22) {
    return `Node ${node}'s V8 computes the relaxed int8 dot product wrong (before tier-up); use Node 22 or later`;
  }
  return null;
}

/**
 * The build for KernelOptions.simd: 'plain' and 'relaxed' as given ('relaxed' throws where it cannot run), 'auto'
 * (the default) the REDRAFTER_SIMD environment variable if set (plain, relaxed or auto), else relaxed where it
 * can run.
 */
export function chooseSimd(requested: SimdBuild | 'auto' = 'auto'): SimdBuild {
  let choice: string = requested;
  let source = `KernelOptions.simd '${requested}'`;
  if (choice === 'auto') {
    const env = processGlobal()?.env?.REDRAFTER_SIMD;
    if (env !== undefined && env !== '') {
      choice = env;
      source = `REDRAFTER_SIMD=${env}`;
    }
  }
  switch (choice) {
    case 'plain':
      return 'plain';
    case 'relaxed': {
      const why = relaxedUnavailable();
      if (why !== null) throw new Error(`createKernels: ${source} asks for the relaxed-SIMD kernels, but ${why}`);
      return 'relaxed';
    }
    case 'auto':
      return relaxedUnavailable() === null ? 'relaxed' : 'plain';
    default:
      throw new Error(`createKernels: ${source}: expected plain, relaxed or auto`);
  }
}
