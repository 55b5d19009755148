// Same-process speed comparisons (brief, non-negotiable 2): autoregressive and ReDrafter decoding run alternately,
// round after round, on the same prompts, so that machine noise hits both; ratios come from the same rounds.

import { cpus, totalmem } from 'node:os';
import { generateText, type GenerateOptions } from './generate.js';
import { CONTROLLER_MAX_LENGTH, forwardSeconds } from './speculation-costs.js';
import type { LoadedDrafter, LoadedModel } from './load.js';

export interface SpeedOptions {
  /** Prompts (text, or token ids for models without tokenizer). */
  prompts: readonly (string | readonly number[])[];
  /** Tokens generated per prompt. */
  tokens: number;
  /** A fixed tree; omit both for the speculation controller's choice per step. */
  beams?: number;
  beamLength?: number;
  temperature?: number;
  seed?: number;
  /** Measured rounds (after one warm-up round). */
  rounds?: number;
}

export interface StrategySpeed {
  /** Median over rounds of generated tokens per second of decoding (prompt forward excluded). */
  tokensPerSecond: number;
  /** tokens/s of every round. */
  rounds: number[];
}

export interface RedrafterSpeed extends StrategySpeed {
  /** Mean tokens committed per decoding step. */
  tokensPerStep: number;
  /** Steps whose accepted path reached draft depth k+1, as a fraction of steps. */
  acceptanceByDepth: number[];
  /** Histogram: committedPerStep value → steps. */
  tokensPerStepHistogram: Record<number, number>;
  /** Share of decoding time in drafting, verification, bookkeeping and plain steps. */
  timeSplit: { draft: number; verify: number; bookkeeping: number; plain: number };
  /** Steps by shape ("WxL", "plain") over the measured rounds. */
  shapes: Record<string, number>;
}

export interface SpeedComparison {
  autoregressive: StrategySpeed;
  redrafter: RedrafterSpeed;
  /** Median over rounds of the per-round ratio redrafter / autoregressive tokens per second. */
  speedup: number;
  /** Whether every ReDrafter run produced exactly the autoregressive ids (it must). */
  identical: boolean;
}

function median(values: readonly number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

export async function compareSpeed(loaded: LoadedModel, drafter: LoadedDrafter, options: SpeedOptions):
  Promise<SpeedComparison> {
  const rounds = options.rounds ?? 3;
  const base = (prompt: string | readonly number[]): GenerateOptions => ({
    ...(typeof prompt === 'string' ? { prompt } : { promptIds: prompt }),
    maxTokens: options.tokens, temperature: options.temperature ?? 0, seed: options.seed ?? 0, stopTokens: [],
  });
  const arRounds: number[] = [];
  const rdRounds: number[] = [];
  const ratios: number[] = [];
  let identical = true;
  let steps = 0;
  let committed = 0;
  const fixed = options.beams !== undefined || options.beamLength !== undefined;
  const shape = fixed ? { beams: options.beams ?? 4, beamLength: options.beamLength ?? 5 } : {};
  const depth = new Array<number>((fixed ? shape.beamLength ?? 5 : CONTROLLER_MAX_LENGTH) - 1).fill(0);
  const histogram: Record<number, number> = {};
  const shapes: Record<string, number> = {};
  const split = { draft: 0, verify: 0, bookkeeping: 0, plain: 0 };

  for (let round = -1; round < rounds; round++) {
    let arTokens = 0;
    let arSeconds = 0;
    let rdTokens = 0;
    let rdSeconds = 0;
    for (const [i, prompt] of options.prompts.entries()) {
      // Alternate which strategy runs first, so neither always gets the warmer caches.
      const order = (round + i) % 2 === 0 ? ['ar', 'rd'] : ['rd', 'ar'];
      let arIds: number[] = [];
      let rdIds: number[] = [];
      for (const which of order) {
        if (which === 'ar') {
          const result = await generateText(loaded, base(prompt));
          arIds = result.ids;
          arTokens += result.stats.tokens - 1;
          arSeconds += result.stats.decodeSeconds;
        } else {
          const result = await generateText(loaded, { ...base(prompt), drafter, ...shape });
          rdIds = result.ids;
          rdTokens += result.stats.tokens - 1;
          rdSeconds += result.stats.decodeSeconds;
          if (round >= 0) {
            steps += result.stats.steps;
            for (const c of result.stats.committedPerStep) {
              committed += c;
              histogram[c] = (histogram[c] ?? 0) + 1;
            }
            const stats = result.stats.redrafter!;
            stats.acceptedAtDepth.forEach((n, k) => (depth[k] += n));
            split.draft += stats.draftSeconds;
            split.verify += stats.verifySeconds;
            split.bookkeeping += stats.bookkeepingSeconds;
            split.plain += stats.plainSeconds;
            for (const [key, n] of Object.entries(stats.shapes)) shapes[key] = (shapes[key] ?? 0) + n;
          }
        }
      }
      if (arIds.length !== rdIds.length || arIds.some((id, k) => id !== rdIds[k])) identical = false;
    }
    if (round < 0) continue; // warm-up
    const ar = arTokens / arSeconds;
    const rd = rdTokens / rdSeconds;
    arRounds.push(ar);
    rdRounds.push(rd);
    ratios.push(rd / ar);
  }
  const splitTotal = split.draft + split.verify + split.bookkeeping + split.plain || 1;
  return {
    autoregressive: { tokensPerSecond: median(arRounds), rounds: arRounds },
    redrafter: {
      tokensPerSecond: median(rdRounds), rounds: rdRounds,
      tokensPerStep: steps ? committed / steps : 0,
      acceptanceByDepth: depth.map((n) => (steps ? n / steps : 0)),
      tokensPerStepHistogram: histogram,
      timeSplit: { draft: split.draft / splitTotal, verify: split.verify / splitTotal,
        bookkeeping: split.bookkeeping / splitTotal, plain: split.plain / splitTotal },
      shapes,
    },
    speedup: median(ratios),
    identical,
  };
}

/** Median seconds of one forward over k tokens after a context of `context` tokens, for each k, and k's cost relative to 1. */
export function verifyCostCurve(loaded: LoadedModel, context: number, sizes: readonly number[], repeats = 5):
  { tokens: number; seconds: number; relative: number }[] {
  const seconds = forwardSeconds(loaded.model, context, sizes, repeats);
  const one = seconds[sizes.indexOf(1)] ?? seconds[0];
  return sizes.map((tokens, i) => ({ tokens, seconds: seconds[i], relative: seconds[i] / one }));
}

/** The machine, for every report. */
export function describeMachine(): string {
  const cpu = cpus();
  return `${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${cpu.length} logical CPUs, ${Math.round(totalmem() / 2 ** 30)} GiB, ` +
    `Node ${process.version}, ${process.platform}/${process.arch}`;
}
