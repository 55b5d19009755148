// llama.cpp as a reference, through the dev dependency node-llama-cpp (pinned 3.21.1): CPU only, one thread (two
// collapse on the 2-core machines we run on), F32 KV cache so that F32 models compare tightly. Raw logits are not
// exposed by its API; `controlledEvaluate` with `probabilities` returns the full softmax of the raw logits under the
// greedy sampler, from which log-probabilities (logits up to a constant) are recovered.

import type { ControlledEvaluateInputItem, Llama, LlamaContext, LlamaModel, Token } from 'node-llama-cpp';

let instance: Promise<Llama | string> | undefined;

/** The llama.cpp binding, or a skip message when it cannot load on this machine. */
export function loadLlamaCpp(): Promise<Llama | string> {
  instance ??= (async () => {
    try {
      const { getLlama, LlamaLogLevel } = await import('node-llama-cpp');
      return await getLlama({
        gpu: false, build: 'never', logLevel: LlamaLogLevel.error, maxThreads: 1,
        // Loading a vocabulary-only file makes llama.cpp log a missing-tensor error it then ignores; keep the rest.
        logger: (level, message) => {
          if (!/missing tensor|failed to load model/.test(message)) process.stderr.write(`[llama.cpp ${level}] ${message}\n`);
        },
      });
    } catch (err) {
      return `node-llama-cpp could not load (${err instanceof Error ? err.message.split('\n')[0] : String(err)})`;
    }
  })();
  return instance;
}

export interface LlamaCppSession {
  readonly model: LlamaModel;
  /** Greedy continuation of `prompt` (ids fed as they are): the ids and, per generated id, the log-probabilities of all tokens. */
  greedy(prompt: readonly number[], count: number): Promise<{ ids: number[]; logProbs: Map<number, number>[] }>;
  dispose(): Promise<void>;
}

export async function openLlamaCpp(llama: Llama, path: string, contextSize = 256): Promise<LlamaCppSession> {
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, useMmap: false });
  const context: LlamaContext = await model.createContext({
    contextSize, threads: 1, batchSize: contextSize, sequences: 1, flashAttention: false,
    experimentalKvCacheKeyType: 'F32', experimentalKvCacheValueType: 'F32',
  });
  return {
    model,
    async greedy(prompt, count) {
      const sequence = context.getSequence();
      try {
        const ids: number[] = [];
        const logProbs: Map<number, number>[] = [];
        const withNext = (token: number): ControlledEvaluateInputItem =>
          [token as Token, { generateNext: { token: true, probabilities: true, options: { temperature: 0 } } }];
        let input: ControlledEvaluateInputItem[] = prompt.map((t, i) => (i === prompt.length - 1 ? withNext(t) : t as Token));
        for (let k = 0; k < count; k++) {
          const results = await sequence.controlledEvaluate(input);
          const result = results[input.length - 1]?.next;
          if (result?.token === undefined || result.token === null || result.probabilities === undefined) {
            throw new Error(`llama.cpp returned no token at step ${k}`);
          }
          ids.push(result.token);
          logProbs.push(new Map([...result.probabilities].map(([id, p]) => [id, Math.log(p)])));
          input = [withNext(result.token)];
        }
        return { ids, logProbs };
      } finally {
        sequence.dispose();
      }
    },
    async dispose() {
      await context.dispose();
      await model.dispose();
    },
  };
}
