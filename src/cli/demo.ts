// `redrafter demo`: serves the browser demo (dist/browser, built by scripts/build-browser.mjs) on 127.0.0.1 with the
// headers that make the page cross-origin isolated (COOP same-origin, COEP require-corp), so the kernels run on Web
// Workers over a shared memory; the model, its tokenizer and the drafter are served beside it for the page to fetch.
// Tests and the browser benchmark start the same server (startDemoServer) with more folders mounted.

import { createReadStream, existsSync, statSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { basename, dirname, extname, join, resolve, sep } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Command } from 'commander';
import { defaultDrafterPath, resolveDefaultModel } from '../engine/default-model.js';
import { findTokenizer } from '../engine/load.js';
import { readCheckpoint } from '../model/checkpoint.js';
import { integer } from './options.js';

export interface DemoServerOptions {
  /** Model file (llama2.c .bin or .gguf); default: stories260K. */
  model?: string;
  /** Its tokenizer (llama2.c models); default: found beside the model. */
  tokenizer?: string;
  /** Drafter folder; default: the shipped stories260K drafter when no model is given; 'none' for none. */
  drafter?: string;
  port?: number;
  /** Send COOP/COEP (default true); false serves a page that is not cross-origin isolated (one thread). */
  isolated?: boolean;
  /** More URL prefixes to serve from folders ('/xl/' → a make-xl output folder, for tests and benchmarks). */
  mounts?: Record<string, string>;
  /** Threads the page asks for (default 'auto': every core the page may use). */
  threads?: number | 'auto';
}

export interface DemoServer {
  /** The page's address (http://127.0.0.1:PORT/). */
  readonly url: string;
  /** What the page loads by default (GET /demo-config.json). */
  readonly config: DemoConfig;
  close(): Promise<void>;
}

/** The page's defaults: URLs of the model, tokenizer and drafter files on this server. */
export interface DemoConfig {
  model: { url: string };
  tokenizer?: { url: string };
  drafter?: { url: string };
  threads: number | 'auto';
}

const CONTENT_TYPES: Readonly<Record<string, string>> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.css': 'text/css; charset=utf-8',
  '.json': 'application/json', '.wasm': 'application/wasm', '.map': 'application/json', '.png': 'image/png',
  '.svg': 'image/svg+xml',
};

/** dist/browser, from this file's place in dist/src/cli. */
function browserBuild(): string {
  return resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'browser');
}

export async function startDemoServer(options: DemoServerOptions = {}): Promise<DemoServer> {
  const assets = browserBuild();
  if (!existsSync(join(assets, 'demo.html'))) {
    throw new Error(`demo: ${assets}/demo.html not found: build the browser bundle (npm run build)`);
  }
  let model = options.model;
  let tokenizer = options.tokenizer;
  if (model === undefined) {
    const found = await resolveDefaultModel((message) => process.stderr.write(`${message}\n`));
    model = found.model;
    tokenizer ??= found.tokenizer;
  }
  // Read the header now, so that a wrong --model fails here with the reader's message, not later on the page.
  const checkpoint = readCheckpoint(model);
  if (checkpoint.format === 'hf') throw new Error(`demo: ${model}: serve a single .bin or .gguf file, not a folder`);
  if (tokenizer === undefined && checkpoint.format === 'llama2c') tokenizer = findTokenizer(model, checkpoint.config.vocabSize);
  const drafter = options.drafter === 'none' ? undefined
    : options.drafter ?? (options.model === undefined ? defaultDrafterPath() : undefined);
  if (drafter !== undefined && !existsSync(join(drafter, 'config.json'))) {
    throw new Error(`demo: ${drafter}: not a drafter folder (expected config.json and model.safetensors)`);
  }

  // URL path → file, for the three model files; folders for the mounts.
  const files = new Map<string, string>();
  files.set(`/files/model/${basename(model)}`, model);
  if (tokenizer !== undefined) files.set(`/files/tokenizer/${basename(tokenizer)}`, tokenizer);
  if (drafter !== undefined) {
    files.set('/files/drafter/config.json', join(drafter, 'config.json'));
    files.set('/files/drafter/model.safetensors', join(drafter, 'model.safetensors'));
  }
  const folders: [string, string][] = [['/', assets],
    ...Object.entries(options.mounts ?? {}).map(([prefix, folder]): [string, string] => [prefix, resolve(folder)])];
  folders.sort((a, b) => b[0].length - a[0].length);
  const config: DemoConfig = {
    model: { url: `/files/model/${encodeURIComponent(basename(model))}` },
    tokenizer: tokenizer === undefined ? undefined : { url: `/files/tokenizer/${encodeURIComponent(basename(tokenizer))}` },
    drafter: drafter === undefined ? undefined : { url: '/files/drafter/' },
    threads: options.threads ?? 'auto',
  };
  const isolated = options.isolated ?? true;

  function fileFor(path: string): string | undefined {
    const exact = files.get(path);
    if (exact !== undefined) return exact;
    for (const [prefix, folder] of folders) {
      if (!path.startsWith(prefix)) continue;
      const candidate = resolve(folder, `.${sep}${path.slice(prefix.length)}`);
      // Never outside the mounted folder ('..' in the URL).
      if (candidate !== folder && !candidate.startsWith(folder + sep)) return undefined;
      return candidate;
    }
    return undefined;
  }

  function handle(request: IncomingMessage, response: ServerResponse): void {
    if (isolated) {
      response.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
      response.setHeader('Cross-Origin-Embedder-Policy', 'require-corp');
    }
    response.setHeader('Cross-Origin-Resource-Policy', 'same-origin');
    response.setHeader('Cache-Control', 'no-store');
    const url = new URL(request.url ?? '/', 'http://127.0.0.1');
    let path: string;
    try {
      path = decodeURIComponent(url.pathname);
    } catch {
      response.writeHead(400).end('bad URL');
      return;
    }
    if (request.method !== 'GET' && request.method !== 'HEAD') {
      response.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (path === '/demo-config.json') {
      response.writeHead(200, { 'content-type': CONTENT_TYPES['.json'] }).end(JSON.stringify(config));
      return;
    }
    if (path === '/favicon.ico') {
      response.writeHead(204).end(); // browsers ask for one; a 404 would read as an error in the page's console
      return;
    }
    if (path === '/') path = '/demo.html';
    const file = fileFor(path);
    if (file === undefined || !existsSync(file) || !statSync(file).isFile()) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end(`${path}: not found`);
      return;
    }
    response.writeHead(200, {
      'content-type': CONTENT_TYPES[extname(file)] ?? 'application/octet-stream',
      'content-length': statSync(file).size,
    });
    if (request.method === 'HEAD') {
      response.end();
      return;
    }
    createReadStream(file).pipe(response);
  }

  const server = createServer(handle);
  await new Promise<void>((resolveListen, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, '127.0.0.1', () => resolveListen());
  });
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/`,
    config,
    close: () => new Promise<void>((resolveClose) => {
      server.closeAllConnections();
      server.close(() => resolveClose());
    }),
  };
}

interface DemoFlags {
  model?: string;
  tokenizer?: string;
  drafter?: string;
  port: number;
  isolation: boolean;
}

export function registerDemo(program: Command): void {
  program.command('demo')
    .description('serve the browser demo: plain decoding and ReDrafter side by side, each step\'s draft tree drawn')
    .option('-m, --model <path>', 'llama2.c .bin or GGUF file (default: stories260K)')
    .option('--tokenizer <path>', 'tokenizer.bin for a llama2.c model (default: found beside it)')
    .option('--drafter <dir>', 'ReDrafter drafter folder, or "none" (default: the shipped stories260K drafter when ' +
      '--model is not given, else none)')
    .option('--port <n>', 'port on 127.0.0.1; 0 = any free port', integer(0, 65535), 8090)
    .option('--no-isolation', 'omit the COOP/COEP headers (the page then runs on one thread, and says so)')
    .action(async (flags: DemoFlags) => {
      const server = await startDemoServer({ model: flags.model, tokenizer: flags.tokenizer, drafter: flags.drafter,
        port: flags.port, isolated: flags.isolation });
      process.stderr.write(`redrafter demo: open ${server.url}\n`);
      const stop = (): void => {
        void server.close().then(() => process.exit(0));
      };
      process.once('SIGINT', stop);
      process.once('SIGTERM', stop);
    });
}
