// `redrafter generate`: text or JSON output of one generation.

import type { Command } from 'commander';
import { generate } from '../engine/generate.js';
import { addModelOptions, openModel, type ModelFlags } from './model-options.js';
import { collect, decimal, format, idList, integer } from './options.js';

interface GenerateFlags extends ModelFlags {
  promptIds?: number[];
  maxTokens?: number;
  temperature: number;
  topP: number;
  topK: number;
  minP: number;
  repetitionPenalty: number;
  seed: number;
  stop: string[];
  format: 'text' | 'json';
}

export function registerGenerate(program: Command): void {
  const command = program.command('generate')
    .description('generate text from a prompt')
    .argument('[prompt]', 'text prompt (encoded with BOS)');
  addModelOptions(command)
    .option('--prompt-ids <ids>', 'comma-separated prompt token ids, fed as they are (for models without tokenizer)',
      idList)
    .option('-n, --max-tokens <n>', 'most tokens to generate (default: until EOS or the context is full)', integer(0))
    .option('-t, --temperature <t>', 'sampling temperature; 0 = greedy', decimal(0, 100), 0)
    .option('--top-p <p>', 'nucleus sampling threshold', decimal(0, 1), 1)
    .option('--top-k <k>', 'keep the k most likely tokens; 0 = off', integer(0), 0)
    .option('--min-p <p>', 'drop tokens below p times the top probability', decimal(0, 1), 0)
    .option('--repetition-penalty <r>', 'penalty for tokens in the last 64', decimal(0.01, 100), 1)
    .option('-s, --seed <s>', 'seed of the sampling random stream', integer(0, 0xffffffff), 0)
    .option('--stop <text>', 'stop before this string (repeatable)', collect, [])
    .option('--format <format>', 'text (streamed) or json (one object)', format, 'text')
    .action(async (prompt: string | undefined, flags: GenerateFlags) => {
      if (prompt === undefined && !flags.promptIds) prompt = 'Once upon a time';
      const loaded = await openModel(flags);
      try {
        const generation = generate(loaded, {
          prompt, promptIds: flags.promptIds, maxTokens: flags.maxTokens, temperature: flags.temperature,
          topP: flags.topP, topK: flags.topK, minP: flags.minP, repetitionPenalty: flags.repetitionPenalty,
          seed: flags.seed, stop: flags.stop,
        });
        const ids: number[] = [];
        let text = '';
        if (flags.format === 'text' && prompt !== undefined && !flags.promptIds) process.stdout.write(prompt);
        for await (const chunk of generation) {
          ids.push(...chunk.ids);
          text += chunk.text;
          if (flags.format === 'text') process.stdout.write(chunk.text);
        }
        const { stats } = generation;
        if (flags.format === 'json') {
          process.stdout.write(JSON.stringify({
            promptIds: generation.promptIds, ids, text, finishReason: generation.finishReason,
            stats: {
              tokens: stats.tokens, steps: stats.steps, tokensPerSecond: round(stats.tokensPerSecond),
              tokensPerStep: stats.steps > 0 ? round((stats.tokens - 1) / stats.steps) : 0,
              committedPerStep: stats.committedPerStep, promptTokens: stats.promptTokens,
              prefillSeconds: round(stats.prefillSeconds), decodeSeconds: round(stats.decodeSeconds),
              threads: loaded.kernels.threads,
            },
          }) + '\n');
        } else {
          process.stdout.write('\n');
          process.stderr.write(`[${stats.tokens} tokens, ${stats.tokensPerSecond.toFixed(1)} tokens/s, ` +
            `${generation.finishReason}]\n`);
        }
      } finally {
        await loaded.close();
      }
    });
}

function round(value: number): number {
  return Math.round(value * 1000) / 1000;
}
