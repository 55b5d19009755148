// Sampling many sequences from the model at once, keeping the final-norm hidden state of every token: the
// distillation data of spec §6.2 in one pass (no second forward to recompute h).
//
// Up to `lanes` sequences decode together: every forward carries the next token of each active lane (or a new lane's
// whole prompt). The forward writes row i to KV slot writeSlot + i, so a lane's keys are scattered over the cache;
// each row attends its own lane's slots in position order through the forward's per-token key lists (invariant 3),
// which the batch-invariant kernels turn into exactly the numbers a lone autoregressive decode would produce. Slots
// are handed out by a bump cursor; a lane that finishes is refilled while the cache has room for a whole new
// sequence, and the cursor restarts once every lane has drained.

import type { LoadedModel } from '../engine/load.js';
import { createRng, type Rng } from '../sampling/random.js';
import { createSampler, type Sampler } from '../sampling/sampler.js';

export interface SampleJob {
  promptIds: readonly number[];
  /** Most generated tokens (the sequence also ends at a stop token or the context's end). */
  maxTokens: number;
  /** Seed of the lane's random stream (one uniform per generated token, as the engine's decoders draw). */
  seed: number;
  /** Sampling temperature of the first `greedyAfter` generated tokens; greedy afterwards. */
  temperature: number;
  greedyAfter: number;
}

export interface SampledSequence {
  /** Prompt then generated tokens (the stop token included). */
  ids: number[];
  promptLength: number;
  /** hidden[t·H ..]: final-norm hidden state at token t; the last token is never fed, its row stays zero. */
  hidden: Float32Array;
}

interface Lane {
  job: number;
  ids: Int32Array;
  length: number;
  promptLength: number;
  /** Tokens fed so far (their KV is in the cache). */
  fed: number;
  slots: Int32Array;
  hidden: Float32Array;
  random: Rng;
  sampler: Sampler;
  /** Rows of the lane's tokens in the current forward. */
  firstRow: number;
  lastRow: number;
}

export function sampleSequences(loaded: LoadedModel, jobs: readonly SampleJob[], lanes: number,
  onSequence: (index: number, sequence: SampledSequence) => void): void {
  const { model } = loaded;
  const { dim: H, vocabSize: V } = model.config;
  const context = model.contextLength;
  const stopTokens = new Set(loaded.format === 'llama2c' ? [...model.config.eosIds, model.config.bosId] : model.config.eosIds);
  const capacity = 2 * lanes * context;
  const cache = model.createCache(capacity);
  const greedy = createSampler({ temperature: 0 }, V);
  const samplers = new Map<number, Sampler>();
  const samplerFor = (temperature: number): Sampler => {
    let sampler = samplers.get(temperature);
    if (!sampler) samplers.set(temperature, sampler = createSampler({ temperature }, V));
    return sampler;
  };

  const active: (Lane | null)[] = new Array<Lane | null>(lanes).fill(null);
  let next = 0;
  // `reserved`: slots promised to running lanes (a whole sequence each); `written`: slots the forwards have filled.
  // A lane writes at most what it reserved, so written ≤ reserved ≤ capacity.
  let reserved = 0;
  let written = 0;
  let tokens = new Int32Array(0);
  let positions = new Int32Array(0);
  let prefixLengths = new Int32Array(0);
  let extraStarts = new Int32Array(0);
  let extraSlots = new Int32Array(1024);

  try {
    for (;;) {
      for (let l = 0; l < lanes && next < jobs.length; l++) {
        if (active[l]) continue;
        const job = jobs[next];
        if (job.promptIds.length === 0 || job.promptIds.length >= context) {
          throw new RangeError(`sample job ${next}: prompt of ${job.promptIds.length} tokens (context ${context})`);
        }
        const need = Math.min(context, job.promptIds.length + job.maxTokens);
        if (reserved + need > capacity) break;
        const ids = new Int32Array(context + 1);
        ids.set(job.promptIds);
        active[l] = {
          job: next, ids, length: job.promptIds.length, promptLength: job.promptIds.length, fed: 0,
          slots: new Int32Array(context), hidden: new Float32Array(context * H), random: createRng(job.seed),
          sampler: samplerFor(job.temperature), firstRow: 0, lastRow: 0,
        };
        reserved += need;
        next++;
      }
      if (active.every((lane) => lane === null)) {
        if (next >= jobs.length) break;
        // Every lane has drained: the whole cache is free again.
        reserved = 0;
        written = 0;
        continue;
      }

      // One forward: each lane's unfed tokens (a new lane's prompt, else its last token), attending its own slots.
      let rows = 0;
      let extras = 0;
      for (const lane of active) {
        if (!lane) continue;
        for (let t = lane.fed; t < lane.length; t++) extras += t + 1;
        rows += lane.length - lane.fed;
      }
      if (rows > tokens.length) {
        tokens = new Int32Array(rows);
        positions = new Int32Array(rows);
        prefixLengths = new Int32Array(rows);
        extraStarts = new Int32Array(rows + 1);
      }
      if (extras > extraSlots.length) extraSlots = new Int32Array(extras * 2);
      let r = 0;
      let e = 0;
      for (const lane of active) {
        if (!lane) continue;
        lane.firstRow = r;
        for (let t = lane.fed; t < lane.length; t++) {
          tokens[r] = lane.ids[t];
          positions[r] = t;
          lane.slots[t] = written + r;
          extraStarts[r] = e;
          for (let k = 0; k <= t; k++) extraSlots[e++] = lane.slots[k];
          r++;
        }
        lane.lastRow = r - 1;
      }
      extraStarts[rows] = e;
      const out = model.forward(cache, { count: rows, tokens, positions, writeSlot: written, prefixLengths,
        extraStarts, extraSlots, logits: 'all' });
      written += rows;

      // Keep the hidden states, then pick each lane's next token from its last row.
      for (let l = 0; l < lanes; l++) {
        const lane = active[l];
        if (!lane) continue;
        lane.hidden.set(out.hidden.subarray(lane.firstRow * H, (lane.lastRow + 1) * H), lane.fed * H);
        lane.fed = lane.length;
        const job = jobs[lane.job];
        const generated = lane.length - lane.promptLength;
        const sampler = generated < job.greedyAfter ? lane.sampler : greedy;
        const token = sampler.pick(model.logitsRow(lane.lastRow), lane.ids, lane.length, lane.random.nextUniform());
        lane.ids[lane.length++] = token;
        if (stopTokens.has(token) || generated + 1 >= job.maxTokens || lane.length >= context) {
          onSequence(lane.job, {
            ids: Array.from(lane.ids.subarray(0, lane.length)), promptLength: lane.promptLength,
            hidden: lane.hidden.slice(0, lane.length * H),
          });
          active[l] = null;
        }
      }
    }
  } finally {
    cache.free();
  }
}
