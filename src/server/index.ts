// The OpenAI-compatible server as a library: `createServer({ loaded, drafter })` returns the fastify instance
// (listen on it, or `inject` requests in tests).

export { createServer, type ServerOptions } from './server.js';
export { defaultChatTemplate } from './openai.js';
export { RequestQueue, QueueFullError, ShuttingDownError, AbortedError } from './queue.js';
