// The serving benchmark (issue 14): `redrafter serve` in this process on loopback, driven by N concurrent streaming
// clients (plain fetch, server-sent events) at concurrency 1, 4 and 16, speculation off / a fixed tree / auto, on
// stories260K-xl F32 and Q8_0, all in one run. Per cell: total tokens per second, time to first token and
// inter-token latency (p50 / p99), and TPOT. It measures; it asserts nothing about time.
//
//   npm run bench:serve                        # print the report (markdown)
//   npm run bench:serve -- --write             # also write BENCHMARKS.md's serving section and docs/serve-throughput.svg
//   npm run bench:serve -- --quick             # stories260K only, a few short requests per cell (a smoke run)
//   options: --requests N (per cell and round, at least one per client), --rounds N, --max-tokens N, --threads N|auto,
//            --cell-seconds S (no new request after S seconds in a cell), --xl DIR (where make-xl writes),
//            --root DIR (where --write writes BENCHMARKS.md and docs/; default the repository)
//   subsets (print only; --write needs every cell): --models Q8_0 (names containing one of these, comma-separated;
//            bench/subset.ts),
//            --modes off,auto (of off, fixed, auto), --clients 16 (of 1, 4, 16)
//
// The clients run on a worker thread of their own (runRoundOnClients), the server and the model on the main one.
// Cells run in rounds (--rounds, default 3): each round runs every speculation mode at one concurrency back to back,
// so modes compared share the host's state of the moment; a cell's figures pool its rounds. Why: on a shared 2-core
// host the same 16-row forward read 63 ms and 130 ms a second apart, and single cells minutes apart put auto ÷ off
// anywhere in 0.90–1.11× with the controller choosing the same steps. Every cell's clients first open their
// connections (GET /health), as long-lived clients hold them: a cell that opened them under load saw its requests
// accepted one per step (a new connection needs event-loop turns the server gets only between steps) while the
// next cell, on the connections left open, had its burst join one step, and time to first token compared that.
// The server is created with maxSequences 16; a server that cannot batch yet refuses that, and the bench runs it with
// the most it accepts (reported), so the same bench measures before and after continuous batching.

import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { isMainThread, parentPort, Worker } from 'node:worker_threads';
import type { FastifyInstance } from 'fastify';
import { describeMachine } from '../src/engine/benchmark.js';
import { resolveDefaultModel } from '../src/engine/default-model.js';
import { loadDrafter, loadModel, type LoadedDrafter, type LoadedModel } from '../src/engine/load.js';
import { BENCH_PROMPTS } from '../src/cli/bench.js';
import { makeXl } from '../src/model/xl.js';
import { createServer } from '../src/server/index.js';
import { lineChart } from './svg.js';
import { listOption, pickModels } from './subset.js';

const repository = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({ options: {
  quick: { type: 'boolean', default: false }, write: { type: 'boolean', default: false },
  requests: { type: 'string' }, rounds: { type: 'string' }, 'max-tokens': { type: 'string' }, threads: { type: 'string', default: 'auto' },
  'cell-seconds': { type: 'string' }, xl: { type: 'string' }, root: { type: 'string' },
  models: { type: 'string' }, modes: { type: 'string' }, clients: { type: 'string' },
} });
// --root: where --write puts BENCHMARKS.md and docs/ (default the repository; the bench's test writes to a copy).
const root = values.root ? resolve(values.root) : repository;
const quick = values.quick ?? false;
const positive = (text: string | undefined, fallback: number, name: string): number => {
  if (text === undefined) return fallback;
  const value = Number(text);
  if (!Number.isFinite(value) || value <= 0) throw new Error(`--${name}: expected a positive number, got ${text}`);
  return value;
};
const REQUESTS = Math.round(positive(values.requests, quick ? 4 : 32, 'requests'));
const ROUNDS = Math.round(positive(values.rounds, quick ? 1 : 3, 'rounds'));
const MAX_TOKENS = Math.round(positive(values['max-tokens'], quick ? 16 : 64, 'max-tokens'));
const CELL_SECONDS = positive(values['cell-seconds'], quick ? 10 : 120, 'cell-seconds');
const THREADS: number | 'auto' = values.threads === 'auto' ? 'auto' : Math.round(positive(values.threads, 1, 'threads'));
const CONCURRENCY = [1, 4, 16];
const WANTED_SEQUENCES = 16;

type Speculative = false | 'auto' | { beams: number; beam_length: number };
const MODES: { name: string; speculative: Speculative }[] = [
  { name: 'off', speculative: false },
  { name: 'fixed 1×6', speculative: { beams: 1, beam_length: 6 } },
  { name: 'auto', speculative: 'auto' },
];

/** A mode's name in --modes: off, fixed, auto. */
const modeKey = (mode: (typeof MODES)[number]): string => mode.name.split(' ')[0];
const onlyModels = listOption(values.models);
const onlyModes = listOption(values.modes);
const onlyClients = listOption(values.clients)?.map(Number);
if ((onlyModels || onlyModes || onlyClients) && values.write) {
  throw new Error('--models, --modes or --clients with --write: BENCHMARKS.md\'s section holds every cell; print a ' +
    'subset, do not write it');
}
const badMode = onlyModes?.find((name) => !MODES.some((mode) => modeKey(mode) === name));
if (badMode !== undefined) throw new Error(`--modes: expected some of off, fixed, auto, got ${badMode}`);
const badClients = onlyClients?.find((n) => !CONCURRENCY.includes(n));
if (badClients !== undefined) throw new Error(`--clients: expected some of ${CONCURRENCY.join(', ')}, got ${badClients}`);
const cellModes = MODES.filter((mode) => !onlyModes || onlyModes.includes(modeKey(mode)));
const cellClients = CONCURRENCY.filter((n) => !onlyClients || onlyClients.includes(n));

interface ModelSpec {
  name: string;
  model: string;
  tokenizer?: string;
  drafter: string;
}

interface Cell {
  model: string;
  mode: string;
  concurrency: number;
  requests: number;
  tokens: number;
  seconds: number;
  tokensPerSecond: number;
  ttft: { p50: number; p99: number };
  itl: { p50: number; p99: number };
  tpot: number;
  failed: number;
  /** Total tokens per second of each round. */
  roundRates: number[];
}

async function models(): Promise<ModelSpec[]> {
  const stories = await resolveDefaultModel();
  const drafter = join(repository, 'models', 'stories260K-drafter');
  if (!existsSync(join(drafter, 'config.json'))) throw new Error(`the default drafter is missing: ${drafter}`);
  if (quick) return [{ name: 'stories260K', model: stories.model, tokenizer: stories.tokenizer, drafter }];
  // The same cache folder as bench:redrafter, so one make-xl serves both benches.
  const xlDir = values.xl ?? join(process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'redrafter', 'xl');
  const xl = join(xlDir, 'stories260K-xl.gguf');
  const xlDrafter = join(xlDir, 'stories260K-xl-drafter');
  if (!existsSync(xl) || !existsSync(join(xlDir, 'stories260K-xl-q8_0.gguf')) ||
    !existsSync(join(xlDrafter, 'config.json'))) {
    console.error(`writing stories260K-xl to ${xlDir} …`);
    makeXl({ model: stories.model, tokenizer: stories.tokenizer, out: xlDir, drafter, types: ['f32', 'q8_0'] });
  }
  const all = [
    { name: 'stories260K-xl F32', model: xl, drafter: xlDrafter },
    { name: 'stories260K-xl Q8_0', model: join(xlDir, 'stories260K-xl-q8_0.gguf'), drafter: xlDrafter },
  ];
  return pickModels(all, onlyModels);
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const at = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[at];
}

interface RequestResult {
  ok: boolean;
  tokens: number;
  /** Seconds from sending to the first streamed text. */
  ttft: number;
  /** Seconds between consecutive streamed text chunks (a step committing several tokens streams them as one). */
  gaps: number[];
  /** Seconds from the first to the last text chunk over the tokens after the first. */
  tpot: number | undefined;
}

/** One streaming completion; reads the SSE stream to its end. */
async function streamOne(url: string, prompt: string, speculative: Speculative, seed: number): Promise<RequestResult> {
  const sent = performance.now();
  const response = await fetch(`${url}/v1/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ prompt, max_tokens: MAX_TOKENS, temperature: 0, seed, stream: true,
      stream_options: { include_usage: true }, speculative }),
  });
  if (response.status !== 200 || !response.body) {
    await response.text();
    return { ok: false, tokens: 0, ttft: NaN, gaps: [], tpot: undefined };
  }
  const decoder = new TextDecoder();
  let buffer = '';
  let first: number | undefined;
  let last: number | undefined;
  const gaps: number[] = [];
  let tokens = 0;
  let done = false;
  for await (const bytes of response.body as AsyncIterable<Uint8Array>) {
    const now = performance.now();
    buffer += decoder.decode(bytes, { stream: true });
    let end: number;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const event = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      if (!event.startsWith('data: ')) continue;
      const data = event.slice(6);
      if (data === '[DONE]') {
        done = true;
        continue;
      }
      const chunk = JSON.parse(data) as { choices: { text: string }[]; usage?: { completion_tokens: number } | null };
      if (chunk.usage) tokens = chunk.usage.completion_tokens;
      if ((chunk.choices[0]?.text ?? '') === '') continue;
      if (first === undefined) first = now;
      else gaps.push((now - (last ?? now)) / 1000);
      last = now;
    }
  }
  const ttft = first === undefined ? NaN : (first - sent) / 1000;
  const tpot = first !== undefined && last !== undefined && tokens > 1 ? (last - first) / 1000 / (tokens - 1) : undefined;
  return { ok: done, tokens, ttft, gaps, tpot };
}

/** One round of a cell on the client thread: its requests' results and its seconds. */
interface RoundResult {
  results: RequestResult[];
  seconds: number;
}

/**
 * `concurrency` clients share `requests` requests (at least one each); none starts after the cell's deadline. Each
 * client opens its connection first (GET /health, all at once, outside the timing).
 */
async function runRound(url: string, mode: (typeof MODES)[number], concurrency: number): Promise<RoundResult> {
  await Promise.all(Array.from({ length: concurrency }, async () => {
    const response = await fetch(`${url}/health`);
    await response.text();
  }));
  const total = Math.max(concurrency, REQUESTS);
  let next = 0;
  const results: RequestResult[] = [];
  const started = performance.now();
  const deadline = started + CELL_SECONDS * 1000;
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total && performance.now() < deadline) {
      const index = next++;
      results.push(await streamOne(url, BENCH_PROMPTS[index % BENCH_PROMPTS.length], mode.speculative, index));
    }
  }));
  return { results, seconds: (performance.now() - started) / 1000 };
}

/** A cell's figures over its rounds: tokens and seconds summed, latencies pooled. */
function cellOf(model: string, mode: string, concurrency: number, rounds: RoundResult[]): Cell {
  const results = rounds.flatMap((round) => round.results);
  const tokensOf = (list: RequestResult[]): number => list.reduce((a, r) => a + (r.ok ? r.tokens : 0), 0);
  const seconds = rounds.reduce((a, round) => a + round.seconds, 0);
  const ok = results.filter((r) => r.ok);
  const tokens = tokensOf(ok);
  const ttfts = ok.map((r) => r.ttft).sort((a, b) => a - b);
  const gaps = ok.flatMap((r) => r.gaps).sort((a, b) => a - b);
  const tpots = ok.flatMap((r) => (r.tpot === undefined ? [] : [r.tpot])).sort((a, b) => a - b);
  return { model, mode, concurrency, requests: ok.length, tokens, seconds, tokensPerSecond: tokens / seconds,
    ttft: { p50: percentile(ttfts, 50), p99: percentile(ttfts, 99) },
    itl: { p50: percentile(gaps, 50), p99: percentile(gaps, 99) }, tpot: percentile(tpots, 50),
    failed: results.length - ok.length, roundRates: rounds.map((round) => tokensOf(round.results) / round.seconds) };
}

interface PrefixResult {
  model: string;
  promptTokens: number;
  /** Medians over the pairs: the first request's TTFT (nothing cached), the second's (sharing the prefix). */
  first: number;
  second: number;
  cachedTokens: number;
}

/**
 * Prefix reuse: pairs of requests whose prompts share a SYSTEM_TOKENS-token prefix (a fresh one per pair, so the
 * first of each pair finds nothing cached); time to the first token of each, one request at a time.
 */
const SYSTEM_TOKENS = 200;
async function measurePrefixReuse(url: string, model: string, loaded: LoadedModel): Promise<PrefixResult> {
  const vocab = loaded.model.config.vocabSize;
  const firsts: number[] = [];
  const seconds: number[] = [];
  let cachedTokens = 0;
  const ask = async (prompt: number[]): Promise<{ ttft: number; cached: number }> => {
    const sent = performance.now();
    const response = await fetch(`${url}/v1/completions`, { method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ prompt, max_tokens: 1, temperature: 0, speculative: false }) });
    const json = await response.json() as { usage: { prompt_tokens_details?: { cached_tokens: number } } };
    // One generated token: the response time is the time to it.
    return { ttft: (performance.now() - sent) / 1000, cached: json.usage.prompt_tokens_details?.cached_tokens ?? 0 };
  };
  for (let pair = 0; pair < 5; pair++) {
    // A pseudo-random system prompt of ordinary ids (not BOS/EOS), different for every pair and every run.
    let state = (Date.now() + pair * 7919) >>> 0;
    const system = [1, ...Array.from({ length: SYSTEM_TOKENS - 1 }, () => {
      state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
      return 3 + (state % (vocab - 3));
    })];
    const first = await ask([...system, 3 + (pair % (vocab - 3)), 4]);
    const second = await ask([...system, 5, 3 + ((pair + 1) % (vocab - 3))]);
    firsts.push(first.ttft);
    seconds.push(second.ttft);
    cachedTokens = second.cached;
  }
  firsts.sort((a, b) => a - b);
  seconds.sort((a, b) => a - b);
  return { model, promptTokens: SYSTEM_TOKENS + 2, first: percentile(firsts, 50), second: percentile(seconds, 50),
    cachedTokens };
}

/** The server with as many sequences at once as it accepts, up to 16 (1 before continuous batching). */
function startServer(loaded: LoadedModel, drafter: LoadedDrafter): { app: FastifyInstance; maxSequences: number } {
  for (let maxSequences = WANTED_SEQUENCES; ; maxSequences = Math.floor(maxSequences / 2)) {
    try {
      // A queue deep enough that 16 clients never see a 429: the bench measures waiting, not refusals.
      return { app: createServer({ loaded, drafter, maxSequences, maxQueue: 4 * WANTED_SEQUENCES }), maxSequences };
    } catch (error) {
      if (!(error instanceof RangeError) || maxSequences <= 1) throw error;
    }
  }
}

const ms = (seconds: number): string => (Number.isFinite(seconds) ? (seconds * 1000).toFixed(1) : '–');

function report(cells: Cell[], sequences: Map<string, number>, prefixes: PrefixResult[]): string {
  const lines = [
    `machine: ${describeMachine()}`,
    `settings: ${ROUNDS} round${ROUNDS === 1 ? '' : 's'} of ${REQUESTS} streaming requests per cell (at least one per ` +
      `client; a round runs every speculation mode at one concurrency in turn, each on connections its clients opened ` +
      `first; a cell's figures pool its rounds), ${MAX_TOKENS} tokens each, greedy, the ${BENCH_PROMPTS.length} bench ` +
      `prompts in turn (their blocks cached beforehand); threads ${THREADS}; server on 127.0.0.1 in the bench's ` +
      `process, sequences at once: ${[...sequences].map(([m, n]) => `${m} ${n}`).join(', ')}`,
    'TTFT: sending to the first streamed text (queueing included). ITL: between consecutive streamed chunks (a step ' +
      'that commits several tokens streams them as one chunk). TPOT: per request, (last − first chunk) / (tokens − 1), ' +
      'median over requests.',
    ...([...sequences.values()].some((n) => n === 1) ? ['The server ran one sequence at a time (before continuous ' +
      'batching), so more clients only queue: TTFT grows with them and total tok/s stays that of one stream.'] : []),
    '',
    '| model | speculation | clients | requests | total tok/s | TTFT p50 ms | TTFT p99 ms | ITL p50 ms | ITL p99 ms | TPOT p50 ms |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|',
  ];
  const byMode = [...cells].sort((a, b) => (a.model === b.model
    ? MODES.findIndex((m) => m.name === a.mode) - MODES.findIndex((m) => m.name === b.mode) || a.concurrency - b.concurrency
    : 0));
  for (const c of byMode) {
    lines.push(`| ${c.model} | ${c.mode} | ${c.concurrency} | ${c.requests}${c.failed ? ` (${c.failed} failed)` : ''} | ` +
      `${c.tokensPerSecond.toFixed(1)} | ${ms(c.ttft.p50)} | ${ms(c.ttft.p99)} | ${ms(c.itl.p50)} | ${ms(c.itl.p99)} | ` +
      `${ms(c.tpot)} |`);
  }
  // The issue's ratios: auto against off at each concurrency, and 16 streams against one with speculation off; with
  // rounds, each mode ratio's lowest and highest over the rounds (a round's cells ran back to back).
  const spread = (a: Cell, b: Cell): string => {
    if (a.roundRates.length < 2) return '';
    const ratios = a.roundRates.map((rate, i) => rate / b.roundRates[i]);
    return ` (${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)})`;
  };
  lines.push('', `| model | clients | auto ÷ off${ROUNDS > 1 ? ' (rounds)' : ''} | fixed ÷ off${ROUNDS > 1 ? ' (rounds)' : ''} | ` +
    'off: total ÷ one stream |', '|---|---:|---:|---:|---:|');
  for (const model of [...new Set(cells.map((c) => c.model))]) {
    const at = (mode: string, concurrency: number): Cell | undefined =>
      cells.find((c) => c.model === model && c.mode === mode && c.concurrency === concurrency);
    for (const concurrency of CONCURRENCY) {
      const off = at('off', concurrency);
      const auto = at('auto', concurrency);
      const fixed = at(MODES[1].name, concurrency);
      const one = at('off', 1);
      if (!off || !auto || !fixed || !one) continue;
      lines.push(`| ${model} | ${concurrency} | ${(auto.tokensPerSecond / off.tokensPerSecond).toFixed(2)}×` +
        `${spread(auto, off)} | ${(fixed.tokensPerSecond / off.tokensPerSecond).toFixed(2)}×${spread(fixed, off)} | ` +
        `${(off.tokensPerSecond / one.tokensPerSecond).toFixed(2)}× |`);
    }
  }
  if (prefixes.length > 0) {
    lines.push('', `Prefix reuse: pairs of requests sharing a ${SYSTEM_TOKENS}-token prefix (a fresh one per pair), one at ` +
      'a time, 1 token generated; time to the first token, median of 5 pairs.', '',
      '| model | prompt tokens | first (nothing cached) ms | second (prefix cached) ms | second ÷ first | cached tokens |',
      '|---|---:|---:|---:|---:|---:|');
    for (const p of prefixes) {
      lines.push(`| ${p.model} | ${p.promptTokens} | ${ms(p.first)} | ${ms(p.second)} | ` +
        `${(p.second / p.first).toFixed(2)}× | ${p.cachedTokens} |`);
    }
  }
  return lines.join('\n') + '\n';
}

function chart(cells: Cell[]): string {
  const series = [...new Set(cells.map((c) => `${c.model}|${c.mode}`))].map((key) => {
    const [model, mode] = key.split('|');
    return { name: `${model.replace('stories260K-xl ', 'xl ')} ${mode}`, points: cells
      .filter((c) => c.model === model && c.mode === mode).map((c) => ({ x: c.concurrency, y: c.tokensPerSecond })) };
  });
  return lineChart('redrafter serve: total tokens/s by concurrent streams', 'concurrent streaming clients',
    'total tokens/s', series);
}

/** Replaces the text between the serve-bench markers, else inserts it before bench:redrafter's marker (which owns
 * everything after it), else appends it; other sections stay as they are. */
function writeSection(section: string): void {
  const file = join(root, 'BENCHMARKS.md');
  const previous = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
  const [open, close] = ['<!-- serve-bench -->', '<!-- /serve-bench -->'];
  const block = `${open}\n${section}${close}\n`;
  let next: string;
  if (previous.includes(open) && previous.includes(close)) {
    next = previous.slice(0, previous.indexOf(open)) + block + previous.slice(previous.indexOf(close) + close.length + 1);
  } else if (previous.includes('<!-- redrafter-bench -->')) {
    const at = previous.indexOf('<!-- redrafter-bench -->');
    next = `${previous.slice(0, at)}${block}\n${previous.slice(at)}`;
  } else {
    next = `${previous.trimEnd()}\n\n${block}`;
  }
  writeFileSync(file, next);
}

/** One round of a cell for the client thread: the server's address, MODES[mode], the clients at once. */
interface RoundRequest {
  url: string;
  mode: number;
  concurrency: number;
}

/**
 * runRound on the client thread. Clients on the server's own event loop could send and read only between its steps (a
 * forward log of 16 clients starting at once: each forward carried one new prompt), so their timings were partly
 * the bench's; a worker thread has a loop of its own, as a remote client has.
 */
function runRoundOnClients(clients: Worker, request: RoundRequest): Promise<RoundResult> {
  return new Promise((resolve, reject) => {
    const onError = (error: Error): void => {
      clients.off('message', onMessage);
      reject(error);
    };
    const onMessage = (round: RoundResult): void => {
      clients.off('error', onError);
      resolve(round);
    };
    clients.once('message', onMessage);
    clients.once('error', onError);
    clients.postMessage(request);
  });
}

if (!isMainThread) {
  const port = parentPort!;
  port.on('message', (request: RoundRequest) => {
    void runRound(request.url, MODES[request.mode], request.concurrency).then((round) => port.postMessage(round));
  });
} else {
  const specs = await models();
  // The same script, with the same options, as the client thread.
  const clients = new Worker(new URL(import.meta.url), { argv: process.argv.slice(2) });
  clients.unref(); // the listening server keeps the process alive while a cell runs; nothing else should
  const cells: Cell[] = [];
  const prefixes: PrefixResult[] = [];
  const sequences = new Map<string, number>();
  const began = performance.now();
  for (const spec of specs) {
    console.error(`measuring ${spec.name} …`);
    const loaded = await loadModel({ model: spec.model, tokenizer: spec.tokenizer, threads: THREADS });
    const drafter = loadDrafter(loaded, spec.drafter);
    const { app, maxSequences } = startServer(loaded, drafter);
    sequences.set(spec.name, maxSequences);
    try {
      const url = await app.listen({ host: '127.0.0.1', port: 0 });
      // Warm-up: the kernels' first calls and the speculation controller's calibration (on first use) stay out of the
      // first cell, and every bench prompt's blocks are cached (prefix reuse) for every cell alike.
      for (const mode of MODES) await streamOne(url, BENCH_PROMPTS[0], mode.speculative, 0);
      for (const prompt of BENCH_PROMPTS.slice(1)) await streamOne(url, prompt, false, 0);
      for (const concurrency of cellClients) {
        const rounds = cellModes.map((): RoundResult[] => []);
        for (let round = 0; round < ROUNDS; round++) {
          for (const [m, mode] of cellModes.entries()) {
            rounds[m].push(await runRoundOnClients(clients, { url, mode: MODES.indexOf(mode), concurrency }));
          }
        }
        for (const [m, mode] of cellModes.entries()) {
          const cell = cellOf(spec.name, mode.name, concurrency, rounds[m]);
          console.error(`  ${mode.name}, ${concurrency} clients: ${cell.tokensPerSecond.toFixed(1)} tok/s ` +
            `(rounds: ${cell.roundRates.map((rate) => rate.toFixed(1)).join(', ')})`);
          cells.push(cell);
        }
      }
      if (loaded.model.contextLength > SYSTEM_TOKENS + 8 && !onlyModes && !onlyClients) {
        prefixes.push(await measurePrefixReuse(url, spec.name, loaded));
      }
    } finally {
      await app.close();
      drafter.dispose();
      await loaded.close();
    }
  }
  const text = report(cells, sequences, prefixes);
  process.stdout.write(text);
  console.error(`done in ${((performance.now() - began) / 1000).toFixed(0)} s`);
  if (values.write) {
    mkdirSync(join(root, 'docs'), { recursive: true });
    writeFileSync(join(root, 'docs', 'serve-throughput.svg'), chart(cells));
    writeSection(`## Serving (\`npm run bench:serve\`, ${new Date().toISOString().slice(0, 10)})\n\n${text}\n` +
      '![total tokens/s by concurrency](docs/serve-throughput.svg)\n');
    console.error('wrote BENCHMARKS.md (serving section) and docs/serve-throughput.svg');
  }
}
