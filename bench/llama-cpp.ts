// llama.cpp measurements for the benchmarks, through node-llama-cpp 3.21.1 (dev dependency; CPU, 1 thread — at 2 threads
// it spawns threads per call and collapses on this machine) and, when available, llama.cpp's own `llama-bench`.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { Token } from 'node-llama-cpp';

export interface LlamaCppSpeed {
  tokensPerSecond: number;
  /** Seconds of one forward over k tokens after `context` tokens, per k. */
  verifyCost: { tokens: number; seconds: number; relative: number }[];
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Greedy decoding speed and verify-cost curve of a GGUF file in llama.cpp, or a reason it could not run. */
export async function measureLlamaCpp(path: string, prompts: readonly (readonly number[])[], tokens: number,
  verifySizes: readonly number[]): Promise<LlamaCppSpeed | string> {
  let module: typeof import('node-llama-cpp');
  try {
    module = await import('node-llama-cpp');
  } catch (error) {
    return `node-llama-cpp not installed (${(error as Error).message.split('\n')[0]})`;
  }
  const llama = await module.getLlama({ gpu: false, build: 'never', logLevel: module.LlamaLogLevel.error, maxThreads: 1 });
  const model = await llama.loadModel({ modelPath: path, gpuLayers: 0, useMmap: false });
  const context = await model.createContext({ contextSize: 512, threads: 1, batchSize: 512, sequences: 1,
    flashAttention: false });
  try {
    const sequence = context.getSequence();
    let generated = 0;
    let seconds = 0;
    for (const round of [0, 1]) {
      for (const prompt of prompts) {
        await sequence.clearHistory();
        const iterator = sequence.evaluate(prompt as Token[], { temperature: 0 });
        await iterator.next(); // the prompt forward and the first token are not decoding speed
        const started = performance.now();
        let count = 1;
        for await (const token of iterator) {
          void token;
          if (++count >= tokens) break;
        }
        if (round === 1) {
          seconds += (performance.now() - started) / 1000;
          generated += count - 1;
        }
      }
    }
    // Verify cost: k tokens after a 64-token context, erased after each measurement.
    const contextTokens = Array.from({ length: 64 }, (_, i) => ((i * 7 + 3) % 500) as Token);
    await sequence.clearHistory();
    await sequence.evaluateWithoutGeneratingNewTokens(contextTokens);
    const costs = [];
    for (const k of verifySizes) {
      const batch = Array.from({ length: k }, (_, i) => ((i * 11 + 5) % 500) as Token);
      const times: number[] = [];
      for (let r = 0; r < 6; r++) {
        const started = performance.now();
        await sequence.evaluateWithoutGeneratingNewTokens(batch);
        if (r > 0) times.push((performance.now() - started) / 1000);
        await sequence.eraseContextTokenRanges([{ start: 64, end: 64 + k }]);
      }
      costs.push({ tokens: k, seconds: median(times) });
    }
    const one = costs.find((c) => c.tokens === 1)?.seconds ?? costs[0].seconds;
    return { tokensPerSecond: generated / seconds, verifyCost: costs.map((c) => ({ ...c, relative: c.seconds / one })) };
  } finally {
    await context.dispose();
    await model.dispose();
  }
}

/**
 * Builds llama.cpp's `llama-bench` from the source node-llama-cpp bundles, in a scratch folder outside the repository
 * (about 6 minutes on 2 cores). Returns the binary's path.
 */
export function buildLlamaBench(scratch: string, log: (message: string) => void): string {
  const binary = join(scratch, 'build', 'bin', 'llama-bench');
  if (existsSync(binary)) return binary;
  const bundle = join(process.cwd(), 'node_modules', 'node-llama-cpp', 'llama', 'gitRelease.bundle');
  if (!existsSync(bundle)) throw new Error(`no llama.cpp source bundle at ${bundle}`);
  mkdirSync(scratch, { recursive: true });
  log(`building llama-bench in ${scratch} (about 6 minutes) …`);
  if (!existsSync(join(scratch, 'src'))) execFileSync('git', ['clone', '--quiet', bundle, join(scratch, 'src')]);
  execFileSync('cmake', ['-S', join(scratch, 'src'), '-B', join(scratch, 'build'), '-DCMAKE_BUILD_TYPE=Release',
    '-DGGML_NATIVE=ON', '-DLLAMA_CURL=OFF', '-DGGML_OPENMP=ON'], { stdio: 'ignore' });
  execFileSync('cmake', ['--build', join(scratch, 'build'), '--target', 'llama-bench', '-j', '2'], { stdio: 'ignore' });
  return binary;
}

export interface LlamaBenchRow {
  threads: number;
  /** Prompt tokens (0 for generation rows). */
  promptTokens: number;
  generatedTokens: number;
  tokensPerSecond: number;
}

/** Runs llama-bench (generation of 64 tokens, 1 and 2 threads). */
export function runLlamaBench(binary: string, model: string): LlamaBenchRow[] | string {
  const result = spawnSync(binary, ['-m', model, '-t', '1,2', '-p', '0', '-n', '64', '-r', '3', '-o', 'json'],
    { encoding: 'utf8', timeout: 600_000 });
  if (result.status !== 0) return `llama-bench failed: ${result.stderr.split('\n').slice(-3).join(' ')}`;
  const rows = JSON.parse(result.stdout) as { n_threads: number; n_prompt: number; n_gen: number; avg_ts: number }[];
  return rows.map((r) => ({ threads: r.n_threads, promptTokens: r.n_prompt, generatedTokens: r.n_gen,
    tokensPerSecond: r.avg_ts }));
}
