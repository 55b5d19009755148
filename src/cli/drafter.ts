// `redrafter drafter init`: a randomly initialised drafter for a model (tests, and the trainer's starting point).

import type { Command } from 'commander';
import { readCheckpoint } from '../model/checkpoint.js';
import { randomDrafter, writeDrafter } from '../drafter/checkpoint.js';
import { resolveDefaultModel } from '../engine/default-model.js';
import { integer } from './options.js';

interface InitFlags {
  model?: string;
  out: string;
  exitDim?: number;
  layers: number;
  seed: number;
  rnn: boolean;
}

export function registerDrafter(program: Command): void {
  const drafter = program.command('drafter').description('drafter checkpoints (Apple\'s format)');
  drafter.command('init')
    .description('write a randomly initialised drafter for a model')
    .option('-m, --model <path>', 'the base model (default: stories260K)')
    .requiredOption('-o, --out <dir>', 'folder to write config.json and model.safetensors into')
    .option('--exit-dim <E>', 'drafter MLP width (default 2 × hidden size: no input projection)', integer(1))
    .option('--layers <R>', 'residual blocks', integer(0, 64), 2)
    .option('--seed <s>', 'initialisation seed', integer(0, 0xffffffff), 0)
    .option('--no-rnn', 'running sum of embeddings instead of the recurrent state')
    .action(async (flags: InitFlags) => {
      const modelPath = flags.model ?? (await resolveDefaultModel((m) => process.stderr.write(`${m}\n`))).model;
      const { config } = readCheckpoint(modelPath);
      const weights = randomDrafter(config, { exitDim: flags.exitDim, numDraftLayers: flags.layers, rnn: flags.rnn,
        seed: flags.seed });
      writeDrafter(flags.out, weights);
      const parameters = [...weights.tensors.values()].reduce((sum, t) => sum + t.length, 0);
      process.stdout.write(`wrote ${flags.out}: hidden ${config.dim}, vocab ${config.vocabSize}, exit_dim ` +
        `${weights.config.exitDim}, ${weights.config.numDraftLayers} layers, rnn ${weights.config.rnn}, ` +
        `${parameters} parameters\n`);
    });
}
