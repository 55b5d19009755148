// Log-probabilities of emitted tokens, as OpenAI's `logprobs` / `top_logprobs` report them: the model's own
// distribution, log-softmax of the raw logits (before temperature, penalties or truncation, as vLLM reports by
// default), so a token's figure is the same whatever the request's sampling settings. Computed in float64 over the
// logits in index order; ReDrafter's verification logits are bit-identical to plain decoding's (invariant 1), so the
// figures are too.

export interface TokenLogprob {
  token: number;
  logprob: number;
}

export interface EmittedLogprob extends TokenLogprob {
  /** The `top` most likely tokens, most likely first (ties: lower id first). */
  top: TokenLogprob[];
}

export function tokenLogprobs(logits: Float32Array, token: number, top: number): EmittedLogprob {
  const n = logits.length;
  if (!(token >= 0 && token < n)) throw new RangeError(`logprobs: token ${token} outside the vocabulary 0..${n - 1}`);
  let max = -Infinity;
  for (let i = 0; i < n; i++) if (logits[i] > max) max = logits[i];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += Math.exp(logits[i] - max);
  const logNormalizer = max + Math.log(sum);
  const best: TokenLogprob[] = [];
  if (top > 0) {
    // A small sorted list: top is at most 20.
    for (let i = 0; i < n; i++) {
      const value = logits[i];
      if (best.length === top && value <= best[top - 1].logprob) continue;
      let at = best.length;
      while (at > 0 && best[at - 1].logprob < value) at--;
      best.splice(at, 0, { token: i, logprob: value });
      if (best.length > top) best.pop();
    }
    for (const entry of best) entry.logprob -= logNormalizer;
  }
  return { token, logprob: logits[token] - logNormalizer, top: best };
}
