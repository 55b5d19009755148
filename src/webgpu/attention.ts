// WGSL attention over per-query key sets, the semantics of model.ts's ForwardBatch: query r attends cache slots
// 0 .. prefix[r]−1, then the slots extraSlots[extraStart[r] .. extraStart[r] + extraCount[r]) in that order (its tree
// ancestors by depth, then itself). One workgroup (KernelShape.workgroup threads) per (query,
// head):
//   1. scores: thread t takes keys t, t+workgroup, … (each a dot product over the head dims in order), kept in `scores`;
//   2. the maximum and Σ e^(s − max) over the keys: per-thread in key order, then a fixed tree over the threads;
//   3. output dim d: Σ_j e_j · v_j[d] over the keys in order, divided by the sum.
// Every step depends only on the query's own key list, so a tree node computes the bits its autoregressive step
// computes (architecture.md, invariant 1).

import type { KernelShape } from './matmul.js';

/**
 * Batch layout shared with the model (u32 words, `stride` = the row capacity): tokens [0, stride), positions,
 * prefix lengths, extra starts and extra counts in the next four strides, then the extra slots.
 */
export const BATCH_FIELDS = { tokens: 0, positions: 1, prefix: 2, extraStart: 3, extraCount: 4, extraSlots: 5 } as const;

/**
 * A dispatch covers rows rowStart .. rowStart + rows − 1 of the batch (a forward over several sequences runs one per
 * sequence, each with its own cache). Bindings: params, q [rows, heads·headDim], cache (this layer: K at 0, V at valuesOffset, [capacity, kvDim] each),
 * batch (BATCH_FIELDS), scores (scratch, [rows·heads, scoreStride]), out [rows, heads·headDim].
 */
export function attentionShader(shape: KernelShape): string {
  const size = shape.workgroup;
  return `
struct Params { rows: u32, heads: u32, kvHeads: u32, headDim: u32, scale: f32, valuesOffset: u32, stride: u32,
  scoreStride: u32, groupsX: u32, rowStart: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> q: array<f32>;
@group(0) @binding(2) var<storage, read> cache: array<f32>;
@group(0) @binding(3) var<storage, read> batch: array<u32>;
@group(0) @binding(4) var<storage, read_write> scores: array<f32>;
@group(0) @binding(5) var<storage, read_write> out: array<f32>;
var<workgroup> partial: array<f32, ${size}>;

fn slotOf(r: u32, prefix: u32, j: u32) -> u32 {
  if (j < prefix) { return j; }
  return batch[${BATCH_FIELDS.extraSlots}u * p.stride + batch[${BATCH_FIELDS.extraStart}u * p.stride + r] + j - prefix];
}

@compute @workgroup_size(${size})
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let local = group.x + group.y * p.groupsX;
  if (local >= p.rows * p.heads) { return; }
  // This dispatch's rows are rowStart .. rowStart + rows − 1 of the batch (one sequence's, attending its cache).
  let r = p.rowStart + local / p.heads;
  let h = local % p.heads;
  let task = r * p.heads + h;
  let kvDim = p.kvHeads * p.headDim;
  let kvOffset = (h / (p.heads / p.kvHeads)) * p.headDim;
  let qBase = task * p.headDim;
  let prefix = batch[${BATCH_FIELDS.prefix}u * p.stride + r];
  let keys = prefix + batch[${BATCH_FIELDS.extraCount}u * p.stride + r];
  let scoreBase = task * p.scoreStride;

  var localMax = bitcast<f32>(0xff7fffffu);
  for (var j = t; j < keys; j += ${size}u) {
    let k = slotOf(r, prefix, j) * kvDim + kvOffset;
    var s = 0.0;
    for (var d = 0u; d < p.headDim; d++) { s += q[qBase + d] * cache[k + d]; }
    s *= p.scale;
    scores[scoreBase + j] = s;
    localMax = max(localMax, s);
  }
  partial[t] = localMax;
  workgroupBarrier();
  for (var half = ${size / 2}u; half > 0u; half >>= 1u) {
    if (t < half) { partial[t] = max(partial[t], partial[t + half]); }
    workgroupBarrier();
  }
  let highest = partial[0];
  workgroupBarrier();

  var localSum = 0.0;
  for (var j = t; j < keys; j += ${size}u) {
    let e = exp(scores[scoreBase + j] - highest);
    scores[scoreBase + j] = e;
    localSum += e;
  }
  partial[t] = localSum;
  workgroupBarrier();
  for (var half = ${size / 2}u; half > 0u; half >>= 1u) {
    if (t < half) { partial[t] += partial[t + half]; }
    workgroupBarrier();
  }
  let total = partial[0];
  // The weights were written by other threads of this workgroup.
  storageBarrier();

  for (var d = t; d < p.headDim; d += ${size}u) {
    var acc = 0.0;
    for (var j = 0u; j < keys; j++) {
      acc += scores[scoreBase + j] * cache[p.valuesOffset + slotOf(r, prefix, j) * kvDim + kvOffset + d];
    }
    out[qBase + d] = acc / total;
  }
}
`;
}
