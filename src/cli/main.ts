#!/usr/bin/env node
// The `redrafter` command line.

import { Command } from 'commander';
import { registerGenerate } from './generate.js';
import { registerTokenize } from './tokenize.js';
import { registerDrafter } from './drafter.js';
import { registerDraft } from './draft.js';
import { registerBench } from './bench.js';
import { registerTrainDrafter } from './train-drafter.js';
import { registerConvert } from './convert.js';
import { registerServe } from './serve.js';
import { registerDemo } from './demo.js';

const program = new Command();
program
  .name('redrafter')
  .description('ReDrafter speculative decoding for Llama-family models, in TypeScript and WebAssembly')
  .showHelpAfterError()
  .configureOutput({ writeErr: (text) => process.stderr.write(text) });

registerGenerate(program);
registerTokenize(program);
registerDrafter(program);
registerDraft(program);
registerBench(program);
registerTrainDrafter(program);
registerConvert(program);
registerServe(program);
registerDemo(program);

try {
  await program.parseAsync(process.argv);
} catch (error) {
  process.stderr.write(`redrafter: ${(error as Error).message}\n`);
  process.exitCode = 1;
}
