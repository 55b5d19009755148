// Shared by the server tests: stories260K with its shipped drafter behind a server on 127.0.0.1, port 0.

import type { FastifyInstance } from 'fastify';
import OpenAI from 'openai';
import { loadDrafter, loadModel, type LoadedDrafter, type LoadedModel } from '../src/engine/load.js';
import { defaultDrafterPath } from '../src/engine/default-model.js';
import { missing, stories260K } from './fixtures.js';
import { createServer, type ServerOptions } from '../src/server/index.js';

export const skip = missing('stories260K', 'stories260K.bin') || (defaultDrafterPath() ? false : 'no shipped drafter');

export interface Running {
  loaded: LoadedModel;
  drafter: LoadedDrafter;
  app: FastifyInstance;
  url: string;
  client: OpenAI;
  close(): Promise<void>;
}

export async function startServer(options: Partial<ServerOptions> = {}): Promise<Running> {
  const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, threads: 1 });
  const drafter = loadDrafter(loaded, defaultDrafterPath()!);
  const app = createServer({ loaded, drafter, ...options });
  const url = await app.listen({ host: '127.0.0.1', port: 0 });
  // maxRetries 0: a 429 or 5xx must reach the test, not be retried away by the client.
  const client = new OpenAI({ baseURL: `${url}/v1`, apiKey: options.apiKey ?? 'unused', maxRetries: 0 });
  return {
    loaded, drafter, app, url, client,
    async close() {
      await app.close();
      drafter.dispose();
      await loaded.close();
    },
  };
}

/** POSTs a raw body (string: sent as is) and returns the status, headers and parsed JSON. */
export async function post(url: string, body: unknown, headers: Record<string, string> = {}):
  Promise<{ status: number; headers: Headers; json: Record<string, unknown> }> {
  const response = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: typeof body === 'string' ? body : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, headers: response.headers, json: JSON.parse(text) as Record<string, unknown> };
}
