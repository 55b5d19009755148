// `redrafter bench` (autoregressive vs ReDrafter, alternating rounds in one process) and `redrafter tune` (a short
// W × L sweep whose best setting becomes the default of generate).

import type { Command } from 'commander';
import { compareSpeed, describeMachine, type SpeedComparison } from '../engine/benchmark.js';
import { loadDrafter, type LoadedModel } from '../engine/load.js';
import { decodingMode, writeTuning } from '../engine/tuning.js';
import { controllerState, speculationController } from '../engine/speculation.js';
import { calibrateCosts, CONTROLLER_MAX_LENGTH, CONTROLLER_WIDTHS } from '../engine/speculation-costs.js';
import { createBeamSearch } from '../drafter/beam-search.js';
import { addModelOptions, drafterOptions, openModel, resolveDrafterPath, type ModelFlags } from './model-options.js';
import { decimal, format, integer } from './options.js';

/** Story openings not used for training the default drafter (its training prompts come from src/train). */
export const BENCH_PROMPTS = [
  'The old man walked to the river', 'Mia found a shiny key under her bed', 'The little robot wanted a friend',
  'It was raining and Max was bored', 'A big bear lived in a cave', 'The princess had a tiny dragon',
];

interface BenchFlags extends ModelFlags {
  drafter?: string;
  beams?: number;
  beamLength?: number;
  tokens: number;
  temperature: number;
  rounds: number;
  seed: number;
  format: 'text' | 'json';
}

function prompts(loaded: LoadedModel): (string | number[])[] {
  return loaded.tokenizer ? BENCH_PROMPTS : BENCH_PROMPTS.map((_, i) => [1, ...[3, 7, 11, 13].map((t) => (t * (i + 1)) %
    loaded.model.config.vocabSize)]);
}

function addBenchOptions(command: Command): Command {
  return addModelOptions(command)
    .option('--drafter <path>', 'drafter folder (Apple format; default: the shipped stories260K drafter)')
    .option('-n, --tokens <n>', 'tokens generated per prompt', integer(1), 128)
    .option('-t, --temperature <t>', 'sampling temperature; 0 = greedy', decimal(0, 100), 0)
    .option('--rounds <n>', 'measured rounds after one warm-up', integer(1, 100), 3)
    .option('-s, --seed <s>', 'sampling seed', integer(0, 0xffffffff), 0)
    .option('--format <format>', 'text or json', format, 'text');
}

export function registerBench(program: Command): void {
  const bench = program.command('bench')
    .description('measure autoregressive vs ReDrafter decoding speed, alternating in one process');
  addBenchOptions(bench)
    .option('-W, --beams <n>', 'beam width W of a fixed tree (default: the speculation controller\'s choice per step)',
      integer(1, 64))
    .option('-L, --beam-length <n>', 'beam length L of a fixed tree, counting g0', integer(2, 16))
    .action(async (flags: BenchFlags) => {
      const loaded = await openModel(flags);
      const drafter = loadDrafter(loaded, resolveDrafterPath(flags.drafter), drafterOptions(flags));
      const fixed = flags.beams !== undefined || flags.beamLength !== undefined;
      const shape = fixed ? { beams: flags.beams ?? 4, beamLength: flags.beamLength ?? 5 } : {};
      try {
        const result = await compareSpeed(loaded, drafter, { prompts: prompts(loaded), tokens: flags.tokens,
          ...shape, temperature: flags.temperature, seed: flags.seed, rounds: flags.rounds });
        const speculation = fixed ? 'fixed' : 'auto';
        if (flags.format === 'json') {
          process.stdout.write(JSON.stringify({ ...result, speculation, ...shape,
            threads: loaded.kernels.threads, simd: loaded.kernels.simd, q8Dot: loaded.kernels.q8Dot, machine: describeMachine() }) + '\n');
        } else {
          process.stdout.write(describe(result, fixed ? `W=${shape.beams} L=${shape.beamLength}` : 'auto') +
            `machine: ${describeMachine()}, ${loaded.kernels.simd} kernels (Q8_0: ${loaded.kernels.q8Dot} dot)\n`);
        }
      } finally {
        drafter.dispose();
        await loaded.close();
      }
    });

  const tune = program.command('tune')
    .description('measure what ReDrafter steps cost here and how often the drafter is right, as the speculation ' +
      'controller\'s starting point for generate; also sweep fixed trees and report the best');
  addBenchOptions(tune)
    .option('--widths <list>', 'beam widths of the fixed-tree sweep ("none": no sweep)', '1,2,4,8')
    .option('--lengths <list>', 'beam lengths of the fixed-tree sweep', '2,3,4,5,6,7,8')
    .action(async (flags: BenchFlags & { widths: string; lengths: string; model?: string }) => {
      const list = (value: string, name: string, min: number, max: number): number[] => value.split(',').map((v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name}: expected integers in ${min}..${max}, got "${v}"`);
        return n;
      });
      const widths = flags.widths === 'none' ? [] : list(flags.widths, 'widths', 1, 64);
      const lengths = list(flags.lengths, 'lengths', 2, 16);
      const loaded = await openModel(flags);
      const drafter = loadDrafter(loaded, resolveDrafterPath(flags.drafter), drafterOptions(flags));
      const mode = decodingMode(flags.temperature);
      const log = (line: string): void => {
        if (flags.format === 'text') process.stderr.write(line + '\n');
      };
      try {
        // 1. Costs, measured more carefully than generate's first-use calibration.
        const search = createBeamSearch(drafter.drafter, { maxWidth: CONTROLLER_WIDTHS[CONTROLLER_WIDTHS.length - 1],
          maxLength: CONTROLLER_MAX_LENGTH });
        const costs = calibrateCosts(loaded.model, search, { repeats: 7 }).toJSON();
        const { controller } = speculationController(loaded, drafter, mode, { costs, updatedAt: '', machine: '' });
        log(`verify cost by nodes (relative to one token): ${[2, 4, 8, 16].map((n) =>
          `${n}: ${(costs.verify[n] / costs.verify[1]).toFixed(2)}`).join(', ')}`);
        // 2. The controller decodes the prompts, learning acceptance by depth (and refining the costs).
        const auto = await compareSpeed(loaded, drafter, { prompts: prompts(loaded), tokens: flags.tokens,
          temperature: flags.temperature, seed: flags.seed, rounds: flags.rounds });
        log(`auto: ${auto.redrafter.tokensPerSecond.toFixed(1)} tokens/s, ${auto.redrafter.tokensPerStep.toFixed(2)} ` +
          `tokens/step, speedup ${auto.speedup.toFixed(2)}x, steps ${shapesText(auto.redrafter.shapes)}`);
        // 3. Fixed trees, for comparison.
        let best: { beams: number; beamLength: number; result: SpeedComparison } | undefined;
        for (const beams of widths) {
          for (const beamLength of lengths) {
            const result = await compareSpeed(loaded, drafter, { prompts: prompts(loaded).slice(0, 3),
              tokens: Math.min(flags.tokens, 64), beams, beamLength, temperature: flags.temperature, seed: flags.seed,
              rounds: 1 });
            log(`W=${beams} L=${beamLength}: ${result.redrafter.tokensPerSecond.toFixed(1)} tokens/s, ` +
              `${result.redrafter.tokensPerStep.toFixed(2)} tokens/step, speedup ${result.speedup.toFixed(2)}x`);
            // Ranked by speed-up (alternating rounds), which machine-speed drift between shapes does not bias.
            if (!best || result.speedup > best.result.speedup) best = { beams, beamLength, result };
          }
        }
        const modelPath = flags.model ?? loaded.path;
        const bestSetting = best && { beams: best.beams, beamLength: best.beamLength,
          tokensPerSecond: best.result.redrafter.tokensPerSecond, speedup: best.result.speedup,
          measuredAt: new Date().toISOString(), machine: describeMachine() };
        writeTuning(modelPath, drafter.path, loaded.kernels.threads, mode,
          { controller: controllerState(controller), ...(bestSetting ? { best: bestSetting } : {}) });
        const summary = { auto: { tokensPerSecond: auto.redrafter.tokensPerSecond, speedup: auto.speedup,
          tokensPerStep: auto.redrafter.tokensPerStep, shapes: auto.redrafter.shapes }, best: bestSetting ?? null };
        process.stdout.write(flags.format === 'json' ? JSON.stringify(summary) + '\n'
          : `controller: ${auto.speedup.toFixed(2)}x autoregressive decoding (${shapesText(auto.redrafter.shapes)}); ` +
            `generate starts from what it measured here with this model, drafter, thread count and ${mode} decoding\n` +
            (bestSetting ? `best fixed tree: W=${bestSetting.beams} L=${bestSetting.beamLength} ` +
              `(${bestSetting.speedup.toFixed(2)}x; force it with -W ${bestSetting.beams} -L ${bestSetting.beamLength})\n` : ''));
      } finally {
        drafter.dispose();
        await loaded.close();
      }
    });
}

/** "1x4 ×30, plain ×5": the steps of each shape, most used first. */
export function shapesText(shapes: Record<string, number>): string {
  return Object.entries(shapes).sort((a, b) => b[1] - a[1]).map(([shape, n]) => `${shape} ×${n}`).join(', ') || 'none';
}

function describe(result: SpeedComparison, shape: string): string {
  const { autoregressive: ar, redrafter: rd } = result;
  return [
    `autoregressive: ${ar.tokensPerSecond.toFixed(1)} tokens/s`,
    `redrafter ${shape}: ${rd.tokensPerSecond.toFixed(1)} tokens/s, ` +
      `${rd.tokensPerStep.toFixed(2)} tokens/step`,
    `steps: ${shapesText(rd.shapes)}`,
    `speedup: ${result.speedup.toFixed(2)}x (median of per-round ratios)` +
      (result.identical ? '' : '  WARNING: outputs differed'),
    `accepted at depth 1..${rd.acceptanceByDepth.length}: ${rd.acceptanceByDepth.map((a) => a.toFixed(2)).join(' ')}`,
    `time: draft ${(rd.timeSplit.draft * 100).toFixed(0)}%, verify ${(rd.timeSplit.verify * 100).toFixed(0)}%, ` +
      `bookkeeping ${(rd.timeSplit.bookkeeping * 100).toFixed(0)}%, plain steps ${(rd.timeSplit.plain * 100).toFixed(0)}%`,
  ].join('\n') + '\n';
}
