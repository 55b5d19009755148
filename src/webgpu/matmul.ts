// WGSL matrix products out[t][o] = (out[t][o] +) (bias[o] +) Σ_i x[t][i]·w[o][i], with w [outDim, inDim] held on the
// GPU in its checkpoint encoding: f32, f16 (unpack2x16float, so no shader-f16), bf16 (the high half of an f32),
// or GGML Q8_0 / Q4_0 blocks as the file stores them (34 / 18 bytes, read as u32 words at any byte offset).
//
// Numerics. x stays f32 in every encoding: a quantized output is Σ_b d_b · (Σ_j q_bj·x_bj) over its 32-blocks, i.e.
// the f32 product with the dequantized weights d·q, summed blockwise. The WebAssembly kernels instead quantize x to
// int8 per block (as llama.cpp does); that costs them a few percent of the logit range, which this path does not
// pay, so it agrees with the WebAssembly model run with `weights: 'f32'` (the same dequantized matrices) to rounding.
//
// Batch invariance (architecture.md, invariant 1). A workgroup computes workgroup/lanes output columns (KernelShape),
// `lanes` threads each; lane l sums the weight steps l, l+lanes, … of its column in order (a step is 4 weights, or a
// 32-block), then one thread adds the lane sums in lane order. Rows go through in passes of 4, always 4 rows computed with the
// same instructions (rows past the end repeat the last row and are not written), each row in its own accumulator. So
// an output's sum depends only on inDim and the encoding: never on the number of rows, the row's place, or other rows.

/** How a matrix is held on the GPU. */
export type GpuMatrixEncoding = 'f32' | 'f16' | 'bf16' | 'q8_0' | 'q4_0';

/**
 * Threads per workgroup of every kernel, and lanes per output column of the matmul (a power of two dividing the
 * workgroup). GPUs get 64 and 32. CPU drivers (SwiftShader) pay per thread of a workgroup and per barrier far more
 * than per workgroup, so they get 16 and 4. Either shape is batch-invariant on its own: the summation order depends
 * on the shape, which is fixed for a model's lifetime, never on the batch.
 */
export interface KernelShape {
  readonly workgroup: number;
  readonly lanes: number;
}
export const GPU_KERNEL_SHAPE: KernelShape = { workgroup: 64, lanes: 32 };
export const CPU_KERNEL_SHAPE: KernelShape = { workgroup: 16, lanes: 4 };

/** Output columns a matmul workgroup computes. */
export function matmulColumns(shape: KernelShape): number {
  return shape.workgroup / shape.lanes;
}

/** Uniform layout shared by every matmul (u32 words; see MatmulParams in the WGSL). */
export const MATMUL_PARAM_WORDS = { rows: 0, inDim: 1, outDim: 2, xOffset: 3, outOffset: 4, flags: 5, groupsX: 6 } as const;
/** flags: add the bias / add into the existing output (residual connections). */
export const MATMUL_BIAS = 1;
export const MATMUL_ACCUMULATE = 2;

/** Bytes per weight row of `inDim` inputs in an encoding (unpadded). */
export function matrixRowBytes(encoding: GpuMatrixEncoding, inDim: number): number {
  switch (encoding) {
    case 'f32': return inDim * 4;
    case 'f16': case 'bf16': return inDim * 2;
    case 'q8_0': return (inDim / 32) * 34;
    case 'q4_0': return (inDim / 32) * 18;
  }
}

/**
 * Whether the 4-wide form applies: float rows of a multiple of 4 inputs (8- or 16-byte loads). Other float shapes
 * use the scalar form (one input per step); quantized rows must be whole 32-blocks.
 */
export function matmulVectorized(encoding: GpuMatrixEncoding, inDim: number): boolean {
  return encoding === 'q8_0' || encoding === 'q4_0' || inDim % 4 === 0;
}

/**
 * WGSL computing step k of weight row o against 4 rows of x (one result per row, each from the weights loaded once),
 * and the step count, per encoding.
 */
function weightAccess(encoding: GpuMatrixEncoding, vectorized: boolean): { binding: string; steps: string; body: string } {
  const bf16pair = (w: string): string => `vec2<f32>(bitcast<f32>(${w} << 16u), bitcast<f32>(${w} & 0xffff0000u))`;
  const dots = (weights: string, x: string): string =>
    `vec4<f32>(${[0, 1, 2, 3].map((j) => `dot(${weights}, ${x}(r[${j}], k))`).join(', ')})`;
  const products = (weight: string): string =>
    `vec4<f32>(${[0, 1, 2, 3].map((j) => `${weight} * xs(r[${j}], k)`).join(', ')})`;
  switch (encoding) {
    case 'f32':
      return vectorized
        ? { binding: 'array<vec4<f32>>', steps: 'p.inDim / 4u',
          body: `fn step(o: u32, k: u32, r: vec4<u32>) -> vec4<f32> {
  let v = w[o * (p.inDim / 4u) + k];
  return ${dots('v', 'xv')};
}` }
        : { binding: 'array<f32>', steps: 'p.inDim',
          body: `fn step(o: u32, k: u32, r: vec4<u32>) -> vec4<f32> {
  let v = w[o * p.inDim + k];
  return ${products('v')};
}` };
    case 'f16':
    case 'bf16': {
      const pair = (word: string): string => (encoding === 'f16' ? `unpack2x16float(${word})` : bf16pair(word));
      return vectorized
        ? { binding: 'array<vec2<u32>>', steps: 'p.inDim / 4u',
          body: `fn step(o: u32, k: u32, r: vec4<u32>) -> vec4<f32> {
  let words = w[o * (p.inDim / 4u) + k];
  let v = vec4<f32>(${pair('words.x')}, ${pair('words.y')});
  return ${dots('v', 'xv')};
}` }
        : { binding: 'array<u32>', steps: 'p.inDim',
          body: `fn step(o: u32, k: u32, r: vec4<u32>) -> vec4<f32> {
  let e = o * p.inDim + k;
  let pair = ${pair('w[e >> 1u]')};
  let v = select(pair.x, pair.y, (e & 1u) == 1u);
  return ${products('v')};
}` };
    }
    case 'q8_0':
    case 'q4_0': {
      const blockBytes = encoding === 'q8_0' ? 34 : 18;
      const xAt = (offset: string): string =>
        `vec4<f32>(${[0, 1, 2, 3].map((j) => `dot(v, xv(r[${j}], ${offset}))`).join(', ')})`;
      const quants = encoding === 'q8_0'
        ? `for (var j = 0u; j < 8u; j++) {
    let q = quantWord(start, j);
    let v = vec4<f32>(f32(i32(q << 24u) >> 24u), f32(i32(q << 16u) >> 24u), f32(i32(q << 8u) >> 24u), f32(i32(q) >> 24u));
    s += ${xAt('first + j')};
  }`
        : `for (var j = 0u; j < 4u; j++) {
    let q = quantWord(start, j);
    {
      let v = vec4<f32>(f32(q & 15u), f32((q >> 8u) & 15u), f32((q >> 16u) & 15u), f32((q >> 24u) & 15u)) - 8.0;
      s += ${xAt('first + j')};
    }
    {
      let v = vec4<f32>(f32((q >> 4u) & 15u), f32((q >> 12u) & 15u), f32((q >> 20u) & 15u), f32(q >> 28u)) - 8.0;
      s += ${xAt('first + 4u + j')};
    }
  }`;
      return {
        binding: 'array<u32>', steps: 'p.inDim / 32u',
        body: `// Word j of the quants of the block at byte \`start\` (they follow its 2-byte f16 scale). Blocks start at even
// bytes, so the quants start at byte 2 or 0 of a word; a shift by 32 would be taken mod 32, hence the select.
fn quantWord(start: u32, j: u32) -> u32 {
  let at = start + 2u + 4u * j;
  let word = at >> 2u;
  let shift = (at & 3u) * 8u;
  return select((w[word] >> shift) | (w[word + 1u] << (32u - shift)), w[word], shift == 0u);
}
// Block k of row o: d · Σ_j q_j·x_j per row, the 32 products in 8 dots of 4, in order.
fn step(o: u32, k: u32, r: vec4<u32>) -> vec4<f32> {
  let start = (o * (p.inDim / 32u) + k) * ${blockBytes}u;
  let scaleWord = w[start >> 2u];
  let d = unpack2x16float(select(scaleWord, scaleWord >> 16u, (start & 3u) != 0u)).x;
  let first = k * 8u;
  var s = vec4<f32>(0.0);
  ${quants}
  return d * s;
}`,
      };
    }
  }
}

/** The WGSL of the matmul for one encoding. Bindings: params, x, w, bias, out. */
export function matmulShader(encoding: GpuMatrixEncoding, vectorized: boolean, shape: KernelShape): string {
  const access = weightAccess(encoding, vectorized);
  const xBinding = vectorized ? 'array<vec4<f32>>' : 'array<f32>';
  return `
struct MatmulParams { rows: u32, inDim: u32, outDim: u32, xOffset: u32, outOffset: u32, flags: u32, groupsX: u32 }
@group(0) @binding(0) var<uniform> p: MatmulParams;
@group(0) @binding(1) var<storage, read> x: ${xBinding};
@group(0) @binding(2) var<storage, read> w: ${access.binding};
@group(0) @binding(3) var<storage, read> bias: array<f32>;
@group(0) @binding(4) var<storage, read_write> out: array<f32>;

// Input step k of row r (xOffset counts floats; rows of a vectorized call are whole vec4s).
fn xv(r: u32, k: u32) -> vec4<f32> { ${vectorized ? 'return x[(p.xOffset + r * p.inDim) / 4u + k];' : 'return vec4<f32>(0.0);'} }
fn xs(r: u32, k: u32) -> f32 { ${vectorized ? 'return 0.0;' : 'return x[p.xOffset + r * p.inDim + k];'} }

${access.body}

const LANES = ${shape.lanes}u;
const COLUMNS = ${matmulColumns(shape)}u;
var<workgroup> partial: array<vec4<f32>, ${shape.workgroup}>;

@compute @workgroup_size(${shape.workgroup})
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) thread: u32) {
  let firstColumn = (group.x + group.y * p.groupsX) * COLUMNS;
  if (firstColumn >= p.outDim) { return; }
  let lane = thread % LANES;
  let column = firstColumn + thread / LANES;
  let o = min(column, p.outDim - 1u);
  let steps = ${access.steps};
  let last = p.rows - 1u;
  for (var r0 = 0u; r0 < p.rows; r0 += 4u) {
    let r1 = min(r0 + 1u, last);
    let r2 = min(r0 + 2u, last);
    let r3 = min(r0 + 3u, last);
    var acc = vec4<f32>(0.0);
    for (var k = lane; k < steps; k += LANES) {
      acc += step(o, k, vec4<u32>(r0, r1, r2, r3));
    }
    partial[thread] = acc;
    workgroupBarrier();
    if (lane == 0u && column < p.outDim) {
      // The lane sums in lane order, by one thread: a single barrier (CPU drivers such as SwiftShader pay for every
      // barrier with a switch of each thread's context).
      var sums = partial[thread];
      for (var l = 1u; l < LANES; l++) { sums += partial[thread + l]; }
      for (var j = 0u; j < 4u && r0 + j < p.rows; j++) {
        let at = p.outOffset + (r0 + j) * p.outDim + column;
        var value = sums[j];
        if ((p.flags & ${MATMUL_BIAS}u) != 0u) { value += bias[column]; }
        if ((p.flags & ${MATMUL_ACCUMULATE}u) != 0u) { value = out[at] + value; }
        out[at] = value;
      }
    }
    workgroupBarrier();
  }
}
`;
}
