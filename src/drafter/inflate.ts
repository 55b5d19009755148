// Inflates a drafter to a larger hidden size along with its model (issue 6, stories260K-xl): the recurrent matrices
// are zero-padded, and an input projection selects the real dims of [h, s], so the MLP keeps its small width and
// drafting stays cheap (as in Apple's 7B setup, where exit_dim ≠ 2H).

import { drafterTensorShapes, type DrafterConfig } from './config.js';
import type { DrafterWeights } from './checkpoint.js';

export function inflateDrafter(source: DrafterWeights, hiddenSize: number): DrafterWeights {
  const small = source.config;
  const H = hiddenSize;
  const h = small.hiddenSize;
  if (H < h) throw new RangeError(`inflateDrafter: hidden size ${H} is smaller than the drafter's ${h}`);
  const config: DrafterConfig = { ...small, hiddenSize: H };
  const shapes = drafterTensorShapes(config);
  const tensors = new Map<string, Float32Array>();
  const get = (name: string): Float32Array => {
    const data = source.tensors.get(name);
    if (!data) throw new RangeError(`inflateDrafter: tensor "${name}" missing`);
    return data;
  };
  const sizeOf = (name: string): number => shapes.get(name)!.reduce((a, b) => a * b, 1);
  // Column c of the small [h, s] input maps to column c (context) or H + (c − h) (state) of the large one.
  const column = (c: number): number => (c < h ? c : H + (c - h));
  const E = small.exitDim;
  const projection = new Float32Array(sizeOf('input_proj.weight'));
  const bias = new Float32Array(E);
  if (E === 2 * h) {
    for (let r = 0; r < E; r++) projection[r * 2 * H + column(r)] = 1;
  } else {
    const weight = get('input_proj.weight');
    for (let r = 0; r < E; r++) {
      for (let c = 0; c < 2 * h; c++) projection[r * 2 * H + column(c)] = weight[r * 2 * h + c];
    }
    bias.set(get('input_proj.bias'));
  }
  tensors.set('input_proj.weight', projection);
  tensors.set('input_proj.bias', bias);
  if (small.rnn) {
    for (const name of ['rnn_w.weight', 'rnn_u.weight']) {
      const big = new Float32Array(H * H);
      const weight = get(name);
      for (let r = 0; r < h; r++) big.set(weight.subarray(r * h, (r + 1) * h), r * H);
      tensors.set(name, big);
    }
    const rnnBias = new Float32Array(H);
    rnnBias.set(get('rnn_u.bias'));
    tensors.set('rnn_u.bias', rnnBias);
  }
  for (const name of shapes.keys()) {
    if (!tensors.has(name)) tensors.set(name, get(name));
  }
  return { config, tensors, extraConfig: { ...source.extraConfig } };
}
