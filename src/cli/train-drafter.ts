// `redrafter train-drafter`: distil (or read) data, train a ReDrafter drafter for a model, export it in Apple's
// format, with checkpoints, --resume and evaluation by real ReDrafter decoding on held-out prompts.

import { readFileSync } from 'node:fs';
import { InvalidArgumentError, type Command } from 'commander';
import { addModelOptions, openModel, type ModelFlags } from './model-options.js';
import { decimal, integer } from './options.js';
import { trainDrafter, formatSeconds } from '../train/trainer.js';
import { DEFAULT_RECIPE } from '../train/recipe.js';
import { HELDOUT_PROMPTS, TRAINING_PROMPTS } from '../train/story-prompts.js';

interface TrainFlags extends ModelFlags {
  out: string;
  steps: number;
  batch: number;
  lr: number;
  predict: number;
  exitDim?: number;
  layers: number;
  rnn: boolean;
  weightDecay: number;
  warmup: number;
  softWeight: number;
  stepDecay: number;
  outputTemperature: number;
  data: string;
  samples: number;
  temperature: number;
  greedyFraction: number;
  leadIn: number;
  sequenceTokens: number;
  prompts?: string;
  evalPrompts?: string;
  seed: number;
  resume: boolean;
  evalEvery: number;
  checkpointEvery: number;
  evalBeams: number;
  evalBeamLength: number;
  evalTokens: number;
  evalSamples: number;
  evalCount?: number;
}

function readPrompts(file: string): string[] {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (error) {
    throw new Error(`prompts ${file}: ${(error as Error).message}`);
  }
  const prompts = text.split('\n').map((line) => line.trim()).filter((line) => line.length > 0);
  if (prompts.length === 0) throw new Error(`prompts ${file}: no prompt (one per line expected)`);
  return prompts;
}

function dataSource(value: string): string {
  if (value.trim() === '') throw new InvalidArgumentError('expected "distill" or a text file path');
  return value;
}

export function registerTrainDrafter(program: Command): void {
  const r = DEFAULT_RECIPE;
  const command = program.command('train-drafter')
    .description('train a ReDrafter drafter for a model (defaults: the recipe of the shipped stories260K drafter)');
  addModelOptions(command)
    .requiredOption('-o, --out <dir>', 'output folder: the drafter (Apple format) and train/ (data, checkpoint, log)')
    .option('--steps <n>', 'optimizer updates', integer(1), r.steps)
    .option('--batch <n>', 'context positions per update', integer(1, 1 << 16), r.batch)
    .option('--lr <x>', 'peak learning rate (AdamW)', decimal(0, 10), r.lr)
    .option('--predict <T>', 'future tokens each position is trained to predict', integer(1, 32), r.predict)
    .option('--exit-dim <E>', `drafter MLP width (input projection when ≠ 2 × hidden size) (default ${r.exitDim})`,
      integer(1))
    .option('--layers <R>', 'residual blocks', integer(0, 64), r.layers)
    .option('--no-rnn', 'running sum of embeddings instead of the recurrent state')
    .option('--weight-decay <x>', 'AdamW decoupled weight decay (weights, not biases)', decimal(0, 10), r.weightDecay)
    .option('--warmup <ratio>', 'linear warmup as a fraction of the updates, then cosine decay', decimal(0, 1),
      r.warmupRatio)
    .option('--soft-weight <w>', 'weight of the LLM\'s distribution in each target (0 = sampled token only)',
      decimal(0, 1), r.softWeight)
    .option('--step-decay <x>', 'loss weight of step i ∝ x^(i−1) (1: equal weights, as Apple\'s recipe)',
      decimal(0, 1), r.stepDecay)
    .option('--output-temperature <τ>', 'divide the exported drafter\'s logits by τ (< 1 sharpens: deeper beams)',
      decimal(0.01, 100), r.outputTemperature)
    .option('--data <source>', '"distill" (sample from the model) or a text file to tokenize', dataSource, 'distill')
    .option('--samples <n>', 'distillation: sequences sampled from the model', integer(1), r.samples)
    .option('--temperature <t>', 'distillation: sampling temperature', decimal(0, 100), r.temperature)
    .option('--greedy-fraction <f>', 'distillation: fraction of sequences that turn greedy after a sampled lead-in',
      decimal(0, 1), r.greedyFraction)
    .option('--lead-in <n>', 'distillation: longest sampled lead-in of a greedy sequence', integer(0), r.leadIn)
    .option('--sequence-tokens <n>', 'distillation: most generated tokens per sequence', integer(1), r.maxTokens)
    .option('--prompts <file>', 'distillation prompts, one per line (default: built-in story openings)')
    .option('--eval-prompts <file>', 'held-out evaluation prompts, one per line (default: built-in held-out openings)')
    .option('--eval-count <n>', 'use only the first n evaluation prompts', integer(0))
    .option('-s, --seed <s>', 'seed of initialisation, data and batches', integer(0, 0xffffffff), r.seed)
    .option('--resume', 'continue the checkpoint in --out (its recipe and dataset are kept)', false)
    .option('--eval-every <n>', 'updates between ReDrafter evaluations (0: only at the end)', integer(0), r.evalEvery)
    .option('--checkpoint-every <n>', 'updates between checkpoints', integer(1), r.checkpointEvery)
    .option('--eval-beams <W>', 'evaluation beam width', integer(1, 64), r.evalBeams)
    .option('--eval-beam-length <L>', 'evaluation beam length (counting the LLM\'s own token)', integer(2, 16),
      r.evalBeamLength)
    .option('--eval-tokens <n>', 'most tokens generated per evaluation prompt', integer(1), r.evalTokens)
    .option('--eval-samples <n>', 'sampled texts per evaluation prompt at temperature 1', integer(1), r.evalSamples)
    .action(async (flags: TrainFlags) => {
      const loaded = await openModel(flags);
      try {
        const exitDim = flags.exitDim ?? r.exitDim;
        const prompts = flags.prompts ? readPrompts(flags.prompts) : [...TRAINING_PROMPTS];
        let evalPrompts = flags.evalPrompts ? readPrompts(flags.evalPrompts) : [...HELDOUT_PROMPTS];
        if (flags.evalCount !== undefined) evalPrompts = evalPrompts.slice(0, flags.evalCount);
        const result = await trainDrafter(loaded, {
          out: flags.out,
          recipe: {
            steps: flags.steps, batch: flags.batch, lr: flags.lr, predict: flags.predict, exitDim, layers: flags.layers,
            rnn: flags.rnn, weightDecay: flags.weightDecay, warmupRatio: flags.warmup, clip: r.clip, seed: flags.seed,
            softWeight: flags.softWeight, stepDecay: flags.stepDecay,
            outputTemperature: flags.outputTemperature,
          },
          data: flags.data === 'distill'
            ? { kind: 'distill', prompts, samples: flags.samples, temperature: flags.temperature,
              greedyFraction: flags.greedyFraction, leadIn: flags.leadIn, maxTokens: flags.sequenceTokens,
              seed: flags.seed }
            : { kind: 'text', file: flags.data },
          resume: flags.resume,
          checkpointEvery: flags.checkpointEvery,
          evaluation: { prompts: evalPrompts, beams: flags.evalBeams, beamLength: flags.evalBeamLength,
            maxTokens: flags.evalTokens, samplesPerPrompt: flags.evalSamples, every: flags.evalEvery },
          stream: process.stderr,
        });
        const accuracy = result.finalAccuracy.map((a) => `${Math.round(a * 100)}%`).join('/');
        process.stdout.write(`wrote ${flags.out}: ${result.steps} updates in ${formatSeconds(result.trainSeconds)} ` +
          `(+ ${formatSeconds(result.dataSeconds)} data), final loss ${result.finalLoss.toFixed(3)}, top-1 ${accuracy}` +
          (result.evaluation ? `, ${result.evaluation.greedy.tokensPerStep.toFixed(2)} tokens/step greedy, ` +
            `${result.evaluation.sampled.tokensPerStep.toFixed(2)} at temperature 1` : '') + '\n');
      } finally {
        await loaded.close();
      }
    });
}
