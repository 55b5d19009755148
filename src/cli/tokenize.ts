// `redrafter tokenize`: token ids of a text.

import type { Command } from 'commander';
import { readCheckpoint } from '../model/checkpoint.js';
import { readTokenizerBin } from '../formats/tokenizer-bin.js';
import { createSentencePieceTokenizer } from '../tokenizer/index.js';
import { resolveDefaultModel } from '../engine/default-model.js';
import { findTokenizer } from '../engine/load.js';
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
    .option('--tokenizer <path>', 'llama2.c tokenizer.bin')
    .option('-m, --model <path>', 'take the tokenizer found beside this model')
    .option('--bos', 'prepend BOS')
    .option('--format <format>', 'text (ids and pieces) or json', format, 'text')
    .action(async (text: string, flags: TokenizeFlags) => {
      let path = flags.tokenizer;
      let vocabSize: number | undefined;
      if (!path && flags.model) {
        vocabSize = readCheckpoint(flags.model).config.vocabSize;
        path = findTokenizer(flags.model, vocabSize);
        if (!path) throw new Error(`no tokenizer found beside ${flags.model}; pass --tokenizer PATH`);
      }
      if (!path) path = (await resolveDefaultModel((m) => process.stderr.write(`${m}\n`))).tokenizer;
      const tokenizer = createSentencePieceTokenizer(readTokenizerBin(path, vocabSize));
      const ids = tokenizer.encode(text, { bos: flags.bos ?? false });
      if (flags.format === 'json') {
        process.stdout.write(JSON.stringify({ ids }) + '\n');
      } else {
        for (const id of ids) process.stdout.write(`${id}\t${JSON.stringify(tokenizer.tokenPiece(id))}\n`);
      }
    });
}
