// Test drafters: a bigram drafter that proposes the most common successor of each token seen in some sequences, so
// that tree steps accept deep paths (random drafters almost never do).

import type { LoadedDrafter, LoadedModel } from '../src/engine/load.js';
import type { Drafter } from '../src/drafter/drafter.js';
import { DEFAULT_TOP_K, LOG_0 } from '../src/drafter/config.js';

export function bigramDrafter(loaded: LoadedModel, sequences: readonly (readonly number[])[], maxRows = 64):
  LoadedDrafter {
  const vocab = loaded.model.config.vocabSize;
  const next = new Map<number, Map<number, number>>();
  for (const ids of sequences) {
    for (let i = 0; i + 1 < ids.length; i++) {
      const counts = next.get(ids[i]) ?? new Map<number, number>();
      counts.set(ids[i + 1], (counts.get(ids[i + 1]) ?? 0) + 1);
      next.set(ids[i], counts);
    }
  }
  const logits = new Float32Array(maxRows * vocab);
  const drafter: Drafter = {
    config: { vocabSize: vocab, hiddenSize: loaded.model.config.dim, exitDim: 1, numDraftLayers: 0, rnn: false,
      numLookbackTokens: -1, embNorm: false, rmsNormEps: 1e-5, topK: DEFAULT_TOP_K, log0: LOG_0 },
    maxRows,
    setContext() {},
    resetState() {},
    step(tokens, rows) {
      for (let r = 0; r < rows; r++) {
        for (let v = 0; v < vocab; v++) logits[r * vocab + v] = ((v * 2654435761) % 1000) / 1000;
        for (const [id, count] of next.get(tokens[r]) ?? []) logits[r * vocab + id] += 2 + count;
      }
      return logits;
    },
    reorderState() {},
    dispose() {},
  };
  return { path: '(bigram)', weights: { config: drafter.config, tensors: new Map(), extraConfig: {} }, drafter,
    drafterOn: 'host', dispose() {} };
}
