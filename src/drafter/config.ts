// The drafter's configuration (spec §1.4), with the Hugging Face keys it round-trips to.

export interface DrafterConfig {
  /** LLM vocabulary V. */
  vocabSize: number;
  /** LLM hidden size H. */
  hiddenSize: number;
  /** Drafter MLP width E (2H in Apple's recipe; otherwise an input projection [E, 2H] exists). */
  exitDim: number;
  /** Residual blocks R. */
  numDraftLayers: number;
  /** Recurrent state update (true) or running sum of embeddings (false). */
  rnn: boolean;
  /** Present in Apple's config, unused by every code path; preserved on round trip. */
  numLookbackTokens: number;
  /** Declares an unused `emb_norm.weight` (some Apple-internal checkpoints); never applied. */
  embNorm: boolean;
  rmsNormEps: number;
  /** Drafter logits keep their top-k before log-softmax (Apple hard-codes 50). */
  topK: number;
  /** Value given to filtered-out logits (Apple's LOG_0). */
  log0: number;
}

export const DEFAULT_TOP_K = 50;
export const LOG_0 = -50000;

/** Canonical tensor names and shapes (spec §1.5). */
export function drafterTensorShapes(config: DrafterConfig): Map<string, number[]> {
  const { hiddenSize: H, exitDim: E, vocabSize: V, numDraftLayers: R } = config;
  const shapes = new Map<string, number[]>();
  if (E !== 2 * H) {
    shapes.set('input_proj.weight', [E, 2 * H]);
    shapes.set('input_proj.bias', [E]);
  }
  for (let r = 0; r < R; r++) {
    shapes.set(`lm_head.${r}.linear.weight`, [E, E]);
    shapes.set(`lm_head.${r}.linear.bias`, [E]);
  }
  shapes.set(`lm_head.${R}.weight`, [V, E]);
  if (config.rnn) {
    shapes.set('rnn_u.weight', [H, H]);
    shapes.set('rnn_u.bias', [H]);
    shapes.set('rnn_w.weight', [H, H]);
  }
  return shapes;
}

/** The config.json Apple's `Drafter.save_pretrained` writes (spec §1.4), with unknown keys of `extra` preserved. */
export function drafterConfigJson(config: DrafterConfig, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    ...extra,
    architectures: ['Drafter'],
    model_type: 'recurrent_drafting_drafter',
    vocab_size: config.vocabSize,
    hidden_size: config.hiddenSize,
    exit_dim: config.exitDim,
    num_draft_layers: config.numDraftLayers,
    num_lookback_tokens: config.numLookbackTokens,
    rnn: config.rnn,
    emb_norm: config.embNorm,
    rms_norm_eps: config.rmsNormEps,
    torch_dtype: 'float32',
    transformers_version: typeof extra['transformers_version'] === 'string' ? extra['transformers_version'] : '4.38.2',
  };
}
