// `redrafter serve`: the OpenAI-compatible HTTP server. It listens at once and loads the model behind it, so /health
// answers 503 until the model is ready; SIGTERM / SIGINT drain admitted requests, then exit 0.

import { InvalidArgumentError, type Command } from 'commander';
import { loadDrafter, type LoadedDrafter } from '../engine/load.js';
import { defaultDrafterPath } from '../engine/default-model.js';
import { readTuning, type DecodingMode } from '../engine/tuning.js';
import { speculationController } from '../engine/speculation.js';
import { createServer } from '../server/index.js';
import { addModelOptions, drafterOptions, openModel, type ModelFlags } from './model-options.js';
import { integer } from './options.js';

interface ServeFlags extends ModelFlags {
  drafter?: string;
  host: string;
  port: number;
  apiKey?: string;
  maxQueue: number;
  maxSequences: number;
  kvBudget?: number;
  servedModelName?: string;
  shutdownTimeout: number;
  requestTimeout: number;
}

const BYTE_UNITS: Readonly<Record<string, number>> = { '': 1, b: 1, k: 1e3, kb: 1e3, kib: 1024, m: 1e6, mb: 1e6,
  mib: 2 ** 20, g: 1e9, gb: 1e9, gib: 2 ** 30 };

/** A byte count: a number, optionally with a unit (KB/MB/GB decimal, KiB/MiB/GiB binary). */
export function byteSize(text: string): number {
  const match = /^\s*(\d+(?:\.\d+)?)\s*([a-zA-Z]*)\s*$/.exec(text);
  const unit = match ? BYTE_UNITS[match[2].toLowerCase()] : undefined;
  if (!match || unit === undefined) {
    throw new InvalidArgumentError(`expected a byte count such as 268435456, 256MiB or 1GiB, got "${text}"`);
  }
  const bytes = Math.floor(Number(match[1]) * unit);
  if (!(bytes > 0)) throw new InvalidArgumentError(`expected a positive byte count, got "${text}"`);
  return bytes;
}

export function registerServe(program: Command): void {
  const command = program.command('serve')
    .description('serve the model over an OpenAI-compatible HTTP API (/v1/completions, /v1/chat/completions, …)');
  addModelOptions(command)
    .option('--drafter <path>', 'ReDrafter drafter folder, or "none" for plain decoding only (default: the shipped ' +
      'stories260K drafter when --model is not given, else none)')
    .option('--host <host>', 'address to listen on', '127.0.0.1')
    .option('--port <n>', 'port to listen on; 0 = any free port (the bound address is printed)', integer(0, 65535), 8080)
    .option('--api-key <key>', 'require "Authorization: Bearer <key>" on /v1/*, /tokenize and /detokenize ' +
      '(default: the REDRAFTER_API_KEY environment variable, else none)')
    .option('--max-queue <n>', 'most requests waiting for their turn; more get 429', integer(0, 1_000_000), 16)
    .option('--max-sequences <n>', 'sequences generated at once, batched into one forward per step', integer(1, 1024), 8)
    .option('--kv-budget <bytes>', 'KV memory for all sequences, e.g. 268435456, 256MiB, 1GiB (default: room for ' +
      '--max-sequences sequences at the full context, at most 1 GiB)', byteSize)
    .option('--served-model-name <name>', 'model id in /v1/models and requests (default: the model file name)')
    .option('--request-timeout <seconds>', 'seconds a client has to send its whole request (headers and body); a ' +
      'slower one gets 408 and is disconnected', integer(1, 3600), 30)
    .option('--shutdown-timeout <seconds>', 'on SIGTERM, seconds admitted requests have to finish before they are ' +
      'aborted', integer(0, 3600), 30)
    .action(async (flags: ServeFlags) => {
      const loading = openModel(flags);
      const drafterPath = flags.drafter ?? (flags.model === undefined ? defaultDrafterPath() : undefined);
      const drafter = loading.then((loaded): LoadedDrafter | undefined => {
        if (!drafterPath || drafterPath === 'none') return undefined;
        const result = loadDrafter(loaded, drafterPath, drafterOptions(flags));
        // Start the speculation controllers from what earlier runs here measured (the tuning file), as generate does.
        const modelKey = (flags.model ?? loaded.path) + (loaded.backend === 'webgpu' ? ' (webgpu)' : '');
        for (const mode of ['greedy', 'sampled'] satisfies DecodingMode[]) {
          const saved = readTuning(modelKey, result.path, loaded.kernels.threads, mode).controller;
          if (saved) speculationController(loaded, result, mode, saved);
        }
        return result;
      });
      const app = createServer({
        loaded: loading, drafter, apiKey: flags.apiKey ?? process.env['REDRAFTER_API_KEY'], maxQueue: flags.maxQueue,
        maxSequences: flags.maxSequences, kvBudgetBytes: flags.kvBudget, modelName: flags.servedModelName,
        shutdownDeadlineMs: flags.shutdownTimeout * 1000, requestTimeoutMs: flags.requestTimeout * 1000, logger: true,
      });
      const address = await app.listen({ host: flags.host, port: flags.port });
      process.stderr.write(`redrafter serve: listening on ${address}\n`);
      let stopping = false;
      const stop = (signal: string): void => {
        if (stopping) return;
        stopping = true;
        process.stderr.write(`redrafter serve: ${signal}, finishing admitted requests\n`);
        void app.close().then(async () => {
          const [loaded, loadedDrafter] = await Promise.all([loading, drafter]);
          loadedDrafter?.dispose();
          await loaded.close();
          process.exit(0);
        }, (error: unknown) => {
          process.stderr.write(`redrafter serve: ${String(error)}\n`);
          process.exit(1);
        });
      };
      process.on('SIGTERM', () => stop('SIGTERM'));
      process.on('SIGINT', () => stop('SIGINT'));
      try {
        const loaded = await loading;
        await drafter;
        process.stderr.write(`redrafter serve: ${loaded.path} loaded (context ${loaded.model.contextLength}, ` +
          `${loaded.kernels.threads} threads)\n`);
      } catch (error) {
        await app.close();
        throw error;
      }
    });
}
