// WGSL of the kernels that run the ReDrafter head and its beam search on the GPU (drafter.ts in this folder), so that
// a draft is one submission with one small readback (the beams and their scores) instead of one host round trip per
// drafted position, and the context vector never leaves the GPU.
//
// The beam search follows beam-search.ts (spec §2): each row's drafter logits become log q (centre on the max, keep
// the top-k with ties at the threshold, log-softmax; the others get LOG_0), every (beam r, token v) scores
// score_r + log q_r[v] in float32, and the W best are kept, best first, the lowest flat index r·V + v winning ties.
// At step 1 the W − 1 dead copies of beam 0 score from LOG_0. The host computes the softmax's sum in float64, these
// kernels in float32, so a score may differ from the host's in its last bits (the beams only differ where two
// candidates are that close; the verification makes the output exact either way).

import type { KernelShape } from './matmul.js';

export type DraftKernelName = 'draft-elementwise' | 'draft-concat' | 'draft-gather' | 'draft-logprobs' |
  'draft-candidates' | 'draft-select';

/**
 * Modes of draft-elementwise: out = a + b, silu(a + b), a + silu(b), out + silu(b). The last is the residual block in
 * place: WebGPU forbids binding one buffer as both a read-only and a writable input of a dispatch.
 */
export const ELEMENTWISE = { add: 0, siluOfSum: 1, residualSilu: 2, accumulateSilu: 3 } as const;

/** Largest W·L the select kernel holds in workgroup memory (MAX_BEAM_WIDTH × MAX_BEAM_LENGTH). */
export const MAX_BEAM_CELLS = 64 * 16;

/** The llama2.c silu, as the WebAssembly kernels compute it: x · (1 / (1 + e^−x)). */
const SILU = 'fn silu(x: f32) -> f32 { return x * (1.0 / (1.0 + exp(-x))); }';

/** out[i] = a[i] + b[i] | silu(a[i] + b[i]) | a[i] + silu(b[i]) | out[i] + silu(b[i]) for i < n. Bindings: params {n, mode, groupsX}, a, b, out. */
const elementwiseSource = (size: number): string => `
struct Params { n: u32, mode: u32, groupsX: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
${SILU}
@compute @workgroup_size(${size})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * p.groupsX * ${size}u;
  if (i >= p.n) { return; }
  if (p.mode == ${ELEMENTWISE.add}u) {
    out[i] = a[i] + b[i];
  } else if (p.mode == ${ELEMENTWISE.siluOfSum}u) {
    out[i] = silu(a[i] + b[i]);
  } else if (p.mode == ${ELEMENTWISE.residualSilu}u) {
    out[i] = a[i] + silu(b[i]);
  } else {
    out[i] = out[i] + silu(b[i]);
  }
}
`;

/** out[r] = [context, state[r]] (the head input, context first: spec §1.2). Bindings: params {rows, dim, groupsX}, context, state, out. */
const concatSource = (size: number): string => `
struct Params { rows: u32, dim: u32, groupsX: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> context: array<f32>;
@group(0) @binding(2) var<storage, read> state: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${size})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * p.groupsX * ${size}u;
  if (i >= p.rows * 2u * p.dim) { return; }
  let r = i / (2u * p.dim);
  let c = i % (2u * p.dim);
  out[i] = select(state[r * p.dim + c - p.dim], context[c], c < p.dim);
}
`;

/** out[r] = source[parents[r]] for r < rows (beam reordering). Bindings: params {rows, dim, groupsX}, parents, sourceRows, out. */
const gatherSource = (size: number): string => `
struct Params { rows: u32, dim: u32, groupsX: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> parents: array<u32>;
@group(0) @binding(2) var<storage, read> sourceRows: array<f32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${size})
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
  let i = id.x + id.y * p.groupsX * ${size}u;
  if (i >= p.rows * p.dim) { return; }
  out[i] = sourceRows[parents[i / p.dim] * p.dim + i % p.dim];
}
`;

/**
 * Row r of the logits, in place, becomes log q (drafterLogProbs in beam-search.ts): x − max; the top-k threshold is
 * the k-th largest value, found by a radix select over order-preserving keys (4 passes of 8 bits, a 256-bin histogram
 * in workgroup memory); entries below it become LOG_0; then the log of the survivors' Σ e^x is subtracted from every
 * entry. One workgroup per row; thread t keeps to entries t, t + size, … throughout, so a thread only reads back what
 * it wrote. Bindings: params {vocab, topK, log0}, logits.
 */
const logprobsSource = (size: number): string => `
struct Params { vocab: u32, topK: u32, log0: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read_write> logits: array<f32>;
var<workgroup> partial: array<f32, ${size}>;
var<workgroup> histogram: array<atomic<u32>, 256>;
var<workgroup> chosen: vec2<u32>;
// Keys that order as the floats do: positive floats get the sign bit set, negative ones are inverted.
fn keyOf(v: f32) -> u32 {
  let b = bitcast<u32>(v);
  return select(b | 0x80000000u, ~b, (b >> 31u) == 1u);
}
fn valueOf(k: u32) -> f32 {
  return bitcast<f32>(select(~k, k & 0x7fffffffu, (k >> 31u) == 1u));
}
@compute @workgroup_size(${size})
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let base = group.x * p.vocab;
  var m = bitcast<f32>(0xff7fffffu);
  for (var i = t; i < p.vocab; i += ${size}u) { m = max(m, logits[base + i]); }
  partial[t] = m;
  workgroupBarrier();
  for (var half = ${size / 2}u; half > 0u; half >>= 1u) {
    if (t < half) { partial[t] = max(partial[t], partial[t + half]); }
    workgroupBarrier();
  }
  let top = partial[0];
  workgroupBarrier();
  for (var i = t; i < p.vocab; i += ${size}u) { logits[base + i] = logits[base + i] - top; }

  var threshold = bitcast<f32>(0xff7fffffu);
  if (p.topK < p.vocab) {
    var prefix = 0u;
    var mask = 0u;
    var remaining = p.topK;
    for (var digitPass = 0u; digitPass < 4u; digitPass++) {
      let shift = 24u - 8u * digitPass;
      for (var b = t; b < 256u; b += ${size}u) { atomicStore(&histogram[b], 0u); }
      workgroupBarrier();
      for (var i = t; i < p.vocab; i += ${size}u) {
        let k = keyOf(logits[base + i]);
        if ((k & mask) == prefix) { atomicAdd(&histogram[(k >> shift) & 255u], 1u); }
      }
      workgroupBarrier();
      if (t == 0u) {
        // The digit holding the remaining-th largest key, counting from the top.
        var digit = 255u;
        var above = 0u;
        loop {
          let c = atomicLoad(&histogram[digit]);
          if (above + c >= remaining || digit == 0u) { break; }
          above += c;
          digit -= 1u;
        }
        chosen = vec2<u32>(prefix | (digit << shift), remaining - above);
      }
      workgroupBarrier();
      prefix = chosen.x;
      remaining = chosen.y;
      mask |= 255u << shift;
      workgroupBarrier();
    }
    threshold = valueOf(prefix);
  }

  var sum = 0.0;
  for (var i = t; i < p.vocab; i += ${size}u) {
    let v = logits[base + i];
    if (v >= threshold) { sum += exp(v); }
  }
  partial[t] = sum;
  workgroupBarrier();
  for (var half = ${size / 2}u; half > 0u; half >>= 1u) {
    if (t < half) { partial[t] += partial[t + half]; }
    workgroupBarrier();
  }
  let logSum = log(partial[0]);
  for (var i = t; i < p.vocab; i += ${size}u) {
    let v = logits[base + i];
    logits[base + i] = select(p.log0, v, v >= threshold) - logSum;
  }
}
`;

/**
 * The order of candidates (joint score desc, flat index asc) as WGSL: whether (j, i) comes after (pj, pi), and
 * whether (j, i) beats (bj, bi) (an index of NONE is no candidate).
 */
const ORDER = `
const NONE = 0xffffffffu;
fn after(j: f32, i: u32, pj: f32, pi: u32) -> bool { return j < pj || (j == pj && i > pi); }
fn beats(j: f32, i: u32, bj: f32, bi: u32) -> bool {
  return i != NONE && (bi == NONE || j > bj || (j == bj && i < bi));
}`;

/** A workgroup's reduction to its best candidate (every thread reads the winner). */
const reduceBest = (size: number): string => `
  bestJoint[t] = bj;
  bestIndex[t] = bi;
  workgroupBarrier();
  for (var half = ${size / 2}u; half > 0u; half >>= 1u) {
    if (t < half && beats(bestJoint[t + half], bestIndex[t + half], bestJoint[t], bestIndex[t])) {
      bestJoint[t] = bestJoint[t + half];
      bestIndex[t] = bestIndex[t + half];
    }
    workgroupBarrier();
  }
  let winnerJoint = bestJoint[0];
  let winnerIndex = bestIndex[0];
  workgroupBarrier();`;

/**
 * Row r's best `width` candidates (r, v), best first: joint = base_r + log q_r[v] with base_r the beam's score (at
 * step 1: 0 for beam 0, LOG_0 for its dead copies). The global top W is among the rows' top W. One workgroup per
 * row, `width` rounds of "the best after the previous pick". Bindings: params {vocab, width, first, log0}, logits,
 * scores, candidates (pairs of joint bits and flat index, row r's at r·width).
 */
const candidatesSource = (size: number): string => `
struct Params { vocab: u32, width: u32, first: u32, log0: f32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> logits: array<f32>;
@group(0) @binding(2) var<storage, read> scores: array<f32>;
@group(0) @binding(3) var<storage, read_write> candidates: array<vec2<u32>>;
var<workgroup> bestJoint: array<f32, ${size}>;
var<workgroup> bestIndex: array<u32, ${size}>;
${ORDER}
@compute @workgroup_size(${size})
fn main(@builtin(workgroup_id) group: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let r = group.x;
  let base = select(scores[r], select(p.log0, 0.0, r == 0u), p.first == 1u);
  var previousJoint = 0.0;
  var previousIndex = NONE;
  for (var pick = 0u; pick < p.width; pick++) {
    var bj = 0.0;
    var bi = NONE;
    for (var v = t; v < p.vocab; v += ${size}u) {
      let joint = base + logits[r * p.vocab + v];
      let flat = r * p.vocab + v;
      if (pick == 0u || (previousIndex != NONE && after(joint, flat, previousJoint, previousIndex))) {
        if (beats(joint, flat, bj, bi)) { bj = joint; bi = flat; }
      }
    }
${reduceBest(size)}
    if (t == 0u) { candidates[r * p.width + pick] = vec2<u32>(bitcast<u32>(winnerJoint), winnerIndex); }
    previousJoint = winnerJoint;
    previousIndex = winnerIndex;
  }
}
`;

/**
 * The step's W best of the rows' candidates, then the new beams: beam w = its parent's first `position` tokens +
 * the picked token; its score, last token and parent row. One workgroup. Bindings: params {rows, width, length,
 * position, vocab}, candidates, beams ([W, L] u32), scores, lastTokens, parents.
 */
const selectSource = (size: number): string => `
struct Params { rows: u32, width: u32, length: u32, position: u32, vocab: u32 }
@group(0) @binding(0) var<uniform> p: Params;
@group(0) @binding(1) var<storage, read> candidates: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read_write> beams: array<u32>;
@group(0) @binding(3) var<storage, read_write> scores: array<f32>;
@group(0) @binding(4) var<storage, read_write> lastTokens: array<u32>;
@group(0) @binding(5) var<storage, read_write> parents: array<u32>;
var<workgroup> bestJoint: array<f32, ${size}>;
var<workgroup> bestIndex: array<u32, ${size}>;
var<workgroup> oldBeams: array<u32, ${MAX_BEAM_CELLS}>;
var<workgroup> pickedJoint: array<f32, 64>;
var<workgroup> pickedIndex: array<u32, 64>;
${ORDER}
@compute @workgroup_size(${size})
fn main(@builtin(local_invocation_index) t: u32) {
  for (var i = t; i < p.width * p.length; i += ${size}u) { oldBeams[i] = beams[i]; }
  let count = p.rows * p.width;
  var previousJoint = 0.0;
  var previousIndex = NONE;
  for (var pick = 0u; pick < p.width; pick++) {
    var bj = 0.0;
    var bi = NONE;
    for (var c = t; c < count; c += ${size}u) {
      let candidate = candidates[c];
      let joint = bitcast<f32>(candidate.x);
      let flat = candidate.y;
      if (flat != NONE && (pick == 0u || (previousIndex != NONE && after(joint, flat, previousJoint, previousIndex)))) {
        if (beats(joint, flat, bj, bi)) { bj = joint; bi = flat; }
      }
    }
${reduceBest(size)}
    if (t == 0u) {
      pickedJoint[pick] = winnerJoint;
      pickedIndex[pick] = winnerIndex;
    }
    previousJoint = winnerJoint;
    previousIndex = winnerIndex;
  }
  workgroupBarrier();
  for (var w = t; w < p.width; w += ${size}u) {
    let flat = pickedIndex[w];
    let parent = flat / p.vocab;
    let token = flat % p.vocab;
    for (var k = 0u; k < p.position; k++) { beams[w * p.length + k] = oldBeams[parent * p.length + k]; }
    beams[w * p.length + p.position] = token;
    scores[w] = pickedJoint[w];
    lastTokens[w] = token;
    parents[w] = parent;
  }
}
`;

export function draftKernelShader(name: DraftKernelName, shape: KernelShape): string {
  const sources: Record<DraftKernelName, (size: number) => string> = {
    'draft-elementwise': elementwiseSource, 'draft-concat': concatSource, 'draft-gather': gatherSource,
    'draft-logprobs': logprobsSource, 'draft-candidates': candidatesSource, 'draft-select': selectSource,
  };
  return sources[name](shape.workgroup);
}
