// WGSL of the kernels that work row by row or element by element: token embedding gather, RMSNorm, RoPE, SwiGLU and
// the argmax of logits rows. Each row's reductions (RMSNorm's sum of squares, argmax) run in one workgroup of 256
// threads (KernelShape.workgroup): thread t takes elements t, t+workgroup, … in order, then a fixed tree combines the
// partials, so a row's
// result never depends on the other rows (architecture.md, invariant 1).

import type { KernelShape } from './matmul.js';

export type RowKernelName = 'embed' | 'rmsnorm' | 'rope' | 'swiglu' | 'argmax';


/** x[r] = embedding[tokens[r]] for r < rows. Bindings: params {rows, dim, groupsX}, tokens, table, x. */
const embedSource = (size: number): string => `
struct Params { rows: u32, dim: u32, groupsX: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> tokens: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(${size})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * p.groupsX * ${size}u;
  if (i >= p.rows * p.dim) { return; }
  let r = i / p.dim;
  x[i] = table[tokens[r] * p.dim + i % p.dim];
}
`;

/** out[r] = x[r] / sqrt(mean(x[r]²) + eps) · weight. One workgroup per row. Bindings: params, x, weight, out. */
const rmsnormSource = (size: number): string => `
struct Params { rows: u32, dim: u32, eps: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read> weight: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
var<workgroup> partial: array<f32, ${size}>;
@compute @workgroup_size(${size})
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let base = group.x * p.dim;
  var ss = 0.0;
  for (var i = t; i < p.dim; i += ${size}u) { let v = x[base + i]; ss += v * v; }
  partial[t] = ss;
  workgroupBarrier();
  for (var half = ${size / 2}u; half > 0u; half >>= 1u) {
    if (t < half) { partial[t] += partial[t + half]; }
    workgroupBarrier();
  }
  let scale = 1.0 / sqrt(partial[0] / f32(p.dim) + p.eps);
  for (var i = t; i < p.dim; i += ${size}u) { out[base + i] = x[base + i] * scale * weight[i]; }
}
`;

/**
 * Rotates each head of rows [rows, heads·headDim] starting at float `offset` of x by the row's position, in place.
 * table is [positions, headDim/2, (cos, sin)] (model/rope.ts's values); layout 0 = pairs (x[2i], x[2i+1]),
 * 1 = halves (x[i], x[i + headDim/2]); row r's position is positions[positionsAt + r]. One thread per rotated pair.
 * Bindings: params, positions, table, x.
 */
const ropeSource = (size: number): string => `
struct Params { rows: u32, heads: u32, headDim: u32, ropeLayout: u32, offset: u32, groupsX: u32, positionsAt: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> positions: array<u32>;
@group(0) @binding(2) var<storage, read> table: array<f32>;
@group(0) @binding(3) var<storage, read_write> x: array<f32>;
@compute @workgroup_size(${size})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let half = p.headDim / 2u;
  let pair = id.x + id.y * p.groupsX * ${size}u;
  if (pair >= p.rows * p.heads * half) { return; }
  let i = pair % half;
  let head = pair / half;
  let r = head / p.heads;
  let base = p.offset + head * p.headDim;
  let a = select(base + i, base + 2u * i, p.ropeLayout == 0u);
  let b = select(a + half, a + 1u, p.ropeLayout == 0u);
  let angle = (positions[p.positionsAt + r] * half + i) * 2u;
  let c = table[angle];
  let s = table[angle + 1u];
  let x0 = x[a];
  let x1 = x[b];
  x[a] = x0 * c - x1 * s;
  x[b] = x0 * s + x1 * c;
}
`;

/** gate[i] = silu(gate[i]) · up[i] for i < n (silu(g) = g / (1 + e^−g)). Bindings: params, up, gate. */
const swigluSource = (size: number): string => `
struct Params { n: u32, groupsX: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> up: array<f32>;
@group(0) @binding(2) var<storage, read_write> gate: array<f32>;
@compute @workgroup_size(${size})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * p.groupsX * ${size}u;
  if (i >= p.n) { return; }
  let g = gate[i];
  gate[i] = g / (1.0 + exp(-g)) * up[i];
}
`;

/**
 * ids[r] = the first index of the largest value of logits row r (as the CPU's greedy choice: ties go to the lower
 * id; NaN never wins). One workgroup per row. Bindings: params {rows, n}, logits, ids.
 */
const argmaxSource = (size: number): string => `
struct Params { rows: u32, n: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read_write> ids: array<u32>;
var<workgroup> bestValue: array<f32, ${size}>;
var<workgroup> bestIndex: array<u32, ${size}>;
@compute @workgroup_size(${size})
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let base = group.x * p.n;
  var value = bitcast<f32>(0xff7fffffu);
  var index = 0xffffffffu;
  for (var i = t; i < p.n; i += ${size}u) {
    let v = logits[base + i];
    if (v > value || (index == 0xffffffffu && v == value)) { value = v; index = i; }
  }
  bestValue[t] = value;
  bestIndex[t] = index;
  workgroupBarrier();
  for (var half = ${size / 2}u; half > 0u; half >>= 1u) {
    if (t < half) {
      let v = bestValue[t + half];
      let j = bestIndex[t + half];
      if (j != 0xffffffffu && (bestIndex[t] == 0xffffffffu || v > bestValue[t] || (v == bestValue[t] && j < bestIndex[t]))) {
        bestValue[t] = v;
        bestIndex[t] = j;
      }
    }
    workgroupBarrier();
  }
  if (t == 0u) { ids[group.x] = select(bestIndex[0], 0u, bestIndex[0] == 0xffffffffu); }
}
`;

export function rowKernelShader(name: RowKernelName, shape: KernelShape): string {
  const sources: Record<RowKernelName, (size: number) => string> = { embed: embedSource, rmsnorm: rmsnormSource,
    rope: ropeSource, swiglu: swigluSource, argmax: argmaxSource };
  return sources[name](shape.workgroup);
}
