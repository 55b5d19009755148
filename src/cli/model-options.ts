// --model / --tokenizer / --chat-template / --threads / --context / --backend / --drafter-on handling shared by the commands.

import { readFileSync } from 'node:fs';
import { Option, type Command } from 'commander';
import { loadModel, type DrafterOn, type LoadDrafterOptions, type LoadedModel } from '../engine/load.js';
import { defaultDrafterPath, resolveDefaultModel } from '../engine/default-model.js';
import { integer } from './options.js';

export interface ModelFlags {
  model?: string;
  tokenizer?: string;
  chatTemplate?: string;
  threads?: number | 'auto';
  context?: number;
  backend?: 'wasm' | 'webgpu';
  drafterOn?: DrafterOn;
}

export function addModelOptions(command: Command): Command {
  return command
    .option('-m, --model <path>', 'llama2.c checkpoint, GGUF file or Hugging Face folder (default: stories260K)')
    .option('--tokenizer <path>', 'tokenizer.bin, tokenizer.json or GGUF (default: embedded or found beside the model)')
    .option('--chat-template <file>', 'a Jinja chat template to use instead of the tokenizer\'s (default: its own)')
    .option('--threads <n>', 'computing threads, or "auto": every core for models big enough to gain from them, ' +
      'else 1', threadCount, 'auto')
    .option('--context <n>', 'context length (default: the model\'s, at most 4096)', integer(1))
    .addOption(new Option('--backend <name>', 'where the forward runs: wasm, or webgpu (dawn.node)')
      .choices(['wasm', 'webgpu']).default('wasm'))
    .addOption(new Option('--drafter-on <where>', 'with --backend webgpu, where the drafter drafts: auto (a draft timed on ' +
      'each side on first use, the faster kept), device (the GPU) or host (the WebAssembly kernels)')
      .choices(['auto', 'device', 'host']).default('auto'));
}

/** loadDrafter's options from the flags. */
export function drafterOptions(flags: ModelFlags): LoadDrafterOptions {
  return { drafterOn: flags.drafterOn ?? 'auto' };
}

function threadCount(value: string): number | 'auto' {
  return value === 'auto' ? 'auto' : integer(1, 64)(value);
}

export async function openModel(flags: ModelFlags): Promise<LoadedModel> {
  let model = flags.model;
  let tokenizer = flags.tokenizer;
  if (!model) {
    const found = await resolveDefaultModel((message) => process.stderr.write(`${message}\n`));
    model = found.model;
    tokenizer ??= found.tokenizer;
  }
  let chatTemplate: string | undefined;
  if (flags.chatTemplate !== undefined) {
    try {
      chatTemplate = readFileSync(flags.chatTemplate, 'utf8');
    } catch (error) {
      throw new Error(`--chat-template: cannot read ${flags.chatTemplate}: ${(error as Error).message}`, { cause: error });
    }
  }
  return loadModel({ model, tokenizer, chatTemplate, chatTemplateOrigin: flags.chatTemplate, threads: flags.threads,
    contextLength: flags.context, backend: flags.backend });
}

/** --drafter, else the shipped stories260K drafter. */
export function resolveDrafterPath(drafter: string | undefined): string {
  const path = drafter ?? defaultDrafterPath();
  if (!path) throw new Error('pass --drafter DIR: none was given and the default drafter is not installed');
  return path;
}
