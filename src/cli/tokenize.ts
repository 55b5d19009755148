// `redrafter tokenize`: token ids of a text.

import type { Command } from 'commander';
import { readCheckpoint } from '../model/checkpoint.js';
import { resolveDefaultModel } from '../engine/default-model.js';
import { openTokenizer, readTokenizerFile } from '../engine/load.js';
import type { Tokenizer } from '../tokenizer/types.js';
import { format } from './options.js';

interface TokenizeFlags {
  model?: string;
  tokenizer?: string;
  bos?: boolean;
  format: 'text' | 'json';
}

export function registerTokenize(program: Command): void {
  program.command('tokenize')
    .description('print the token ids of a text')
    .argument('<text>', 'text to encode')
    .option('--tokenizer <path>', 'llama2.c tokenizer.bin, tokenizer.json or GGUF file')
    .option('-m, --model <path>', 'take the tokenizer found beside this model')
    .option('--bos', 'prepend BOS')
    .option('--format <format>', 'text (ids and pieces) or json', format, 'text')
    .action(async (text: string, flags: TokenizeFlags) => {
      let tokenizer: Tokenizer | null;
      if (flags.model) {
        tokenizer = openTokenizer(readCheckpoint(flags.model), flags.tokenizer);
        if (!tokenizer) throw new Error(`no tokenizer found for ${flags.model}; pass --tokenizer PATH`);
      } else {
        const path = flags.tokenizer ?? (await resolveDefaultModel((m) => process.stderr.write(`${m}\n`))).tokenizer;
        tokenizer = readTokenizerFile(path);
      }
      const ids = tokenizer.encode(text, { bos: flags.bos ?? false });
      if (flags.format === 'json') {
        process.stdout.write(JSON.stringify({ ids }) + '\n');
      } else {
        for (const id of ids) process.stdout.write(`${id}\t${JSON.stringify(tokenizer.tokenPiece(id))}\n`);
      }
    });
}
