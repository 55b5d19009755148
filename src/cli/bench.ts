// `redrafter bench` (autoregressive vs ReDrafter, alternating rounds in one process) and `redrafter tune` (a short
// W × L sweep whose best setting becomes the default of generate).

import type { Command } from 'commander';
import { compareSpeed, describeMachine, type SpeedComparison } from '../engine/benchmark.js';
import { loadDrafter, type LoadedModel } from '../engine/load.js';
import { decodingMode, writeTuning } from '../engine/tuning.js';
import { addModelOptions, openModel, resolveDrafterPath, type ModelFlags } from './model-options.js';
import { decimal, format, integer } from './options.js';

/** Story openings not used for training the default drafter (its training prompts come from src/train). */
export const BENCH_PROMPTS = [
  'The old man walked to the river', 'Mia found a shiny key under her bed', 'The little robot wanted a friend',
  'It was raining and Max was bored', 'A big bear lived in a cave', 'The princess had a tiny dragon',
];

interface BenchFlags extends ModelFlags {
  drafter?: string;
  beams: number;
  beamLength: number;
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
    .option('-W, --beams <n>', 'beam width W', integer(1, 64), 4)
    .option('-L, --beam-length <n>', 'beam length L, counting g0', integer(2, 16), 5)
    .action(async (flags: BenchFlags) => {
      const loaded = await openModel(flags);
      const drafter = loadDrafter(loaded, resolveDrafterPath(flags.drafter));
      try {
        const result = await compareSpeed(loaded, drafter, { prompts: prompts(loaded), tokens: flags.tokens,
          beams: flags.beams, beamLength: flags.beamLength, temperature: flags.temperature, seed: flags.seed,
          rounds: flags.rounds });
        if (flags.format === 'json') {
          process.stdout.write(JSON.stringify({ ...result, beams: flags.beams, beamLength: flags.beamLength,
            threads: loaded.kernels.threads, simd: loaded.kernels.simd, machine: describeMachine() }) + '\n');
        } else {
          process.stdout.write(describe(result, flags.beams, flags.beamLength) +
            `machine: ${describeMachine()}, ${loaded.kernels.simd} kernels\n`);
        }
      } finally {
        drafter.dispose();
        await loaded.close();
      }
    });

  const tune = program.command('tune')
    .description('sweep beam width and length on this machine and keep the one with the best speed-up as the ' +
      'default of generate');
  addBenchOptions(tune)
    .option('--widths <list>', 'beam widths to try', '1,2,4,8')
    .option('--lengths <list>', 'beam lengths to try', '2,3,4,5,6,7,8')
    .action(async (flags: BenchFlags & { widths: string; lengths: string; model?: string }) => {
      const list = (value: string, name: string, min: number, max: number): number[] => value.split(',').map((v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < min || n > max) throw new Error(`--${name}: expected integers in ${min}..${max}, got "${v}"`);
        return n;
      });
      const widths = list(flags.widths, 'widths', 1, 64);
      const lengths = list(flags.lengths, 'lengths', 2, 16);
      const loaded = await openModel(flags);
      const drafter = loadDrafter(loaded, resolveDrafterPath(flags.drafter));
      try {
        let best: { beams: number; beamLength: number; result: SpeedComparison } | undefined;
        const rows: string[] = [];
        for (const beams of widths) {
          for (const beamLength of lengths) {
            const result = await compareSpeed(loaded, drafter, { prompts: prompts(loaded).slice(0, 3),
              tokens: Math.min(flags.tokens, 64), beams, beamLength, temperature: flags.temperature, seed: flags.seed,
              rounds: 1 });
            rows.push(`W=${beams} L=${beamLength}: ${result.redrafter.tokensPerSecond.toFixed(1)} tokens/s, ` +
              `${result.redrafter.tokensPerStep.toFixed(2)} tokens/step, speedup ${result.speedup.toFixed(2)}x`);
            if (flags.format === 'text') process.stderr.write(rows[rows.length - 1] + '\n');
            // Ranked by speed-up (alternating rounds), which machine-speed drift between shapes does not bias.
            if (!best || result.speedup > best.result.speedup) {
              best = { beams, beamLength, result };
            }
          }
        }
        const chosen = best!;
        const modelPath = flags.model ?? loaded.path;
        writeTuning(modelPath, drafter.path, loaded.kernels.threads, decodingMode(flags.temperature), {
          beams: chosen.beams, beamLength: chosen.beamLength, tokensPerSecond: chosen.result.redrafter.tokensPerSecond,
          speedup: chosen.result.speedup, measuredAt: new Date().toISOString(), machine: describeMachine(),
        });
        const summary = { beams: chosen.beams, beamLength: chosen.beamLength,
          tokensPerSecond: chosen.result.redrafter.tokensPerSecond, speedup: chosen.result.speedup };
        process.stdout.write(flags.format === 'json' ? JSON.stringify(summary) + '\n'
          : `best: W=${chosen.beams} L=${chosen.beamLength} (${summary.tokensPerSecond.toFixed(1)} tokens/s, ` +
            `${summary.speedup.toFixed(2)}x); generate will use it by default with this model, drafter, thread count ` +
            `and ${decodingMode(flags.temperature)} decoding\n` +
            (summary.speedup < 1 ? 'no beam shape beat autoregressive decoding here: on this machine and model, ' +
              'generate is faster with --drafter none\n' : ''));
      } finally {
        drafter.dispose();
        await loaded.close();
      }
    });
}

function describe(result: SpeedComparison, beams: number, beamLength: number): string {
  const { autoregressive: ar, redrafter: rd } = result;
  return [
    `autoregressive: ${ar.tokensPerSecond.toFixed(1)} tokens/s`,
    `redrafter W=${beams} L=${beamLength}: ${rd.tokensPerSecond.toFixed(1)} tokens/s, ` +
      `${rd.tokensPerStep.toFixed(2)} tokens/step`,
    `speedup: ${result.speedup.toFixed(2)}x (median of per-round ratios)` +
      (result.identical ? '' : '  WARNING: outputs differed'),
    `accepted at depth 1..${beamLength - 1}: ${rd.acceptanceByDepth.map((a) => a.toFixed(2)).join(' ')}`,
    `time: draft ${(rd.timeSplit.draft * 100).toFixed(0)}%, verify ${(rd.timeSplit.verify * 100).toFixed(0)}%, ` +
      `bookkeeping ${(rd.timeSplit.bookkeeping * 100).toFixed(0)}%`,
  ].join('\n') + '\n';
}
