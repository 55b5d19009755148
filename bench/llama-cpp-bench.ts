// Our autoregressive decoding speed next to llama.cpp's on the same GGUF files (`npm run bench:llama-cpp`): a random
// 110M-class Llama (dim 768, 12 layers, FFN 2048, vocab 32000, the Llama 2 vocabulary) written as F32 and Q8_0; ours
// at 1 and 2 threads, llama.cpp (node-llama-cpp 3.21.1, CPU, 1 thread: at 2 it spawns threads per call and collapses
// on the 2-core machines we run on) from the same process, as ratios. The two engines take turns (ours, llama.cpp,
// ours, llama.cpp, ours) so that a change in machine speed during the run lands on both; the table shows medians and
// the spread.
//
//   npm run bench:llama-cpp                    # files cached in ~/.cache/redrafter/bench-110m
//   npm run bench:llama-cpp -- --quick         # fewer tokens and rounds
//   npm run bench:llama-cpp -- --dir DIR       # where the GGUF files are written (about 560 MB)

import { existsSync, mkdirSync } from 'node:fs';
import { cpus, homedir, loadavg, totalmem } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { createKernels } from '../src/kernels/index.js';
import { ggufVocabFromTokenizerBin, writeCanonicalGguf, type GgufOutputType } from '../src/formats/convert-gguf.js';
import { readCheckpoint, type Checkpoint } from '../src/model/checkpoint.js';
import { createModel } from '../src/model/model.js';
import { randomCheckpoint, tensorShapes } from '../src/model/random-checkpoint.js';
import { createAutoregressiveDecoder } from '../src/engine/decoder.js';
import { fixture } from '../test/fixtures.js';
import { measureLlamaCpp } from './llama-cpp.js';

const { values } = parseArgs({ options: { quick: { type: 'boolean', default: false }, dir: { type: 'string' } } });
const quick = values.quick ?? false;
const TOKENS = quick ? 32 : 64;
/** Measured rounds of ours per turn (after a warm-up); turns alternate with llama.cpp's. */
const ROUNDS = 1;
const TURNS = quick ? 2 : 3;
const PROMPTS: number[][] = [[1, 450, 2030, 767, 17096, 304], [1, 341, 423, 1476, 263, 528], [1, 739, 471, 1153, 292]];
const dir = values.dir ?? join(process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'redrafter', 'bench-110m');

function median(v: readonly number[]): number {
  const sorted = [...v].sort((a, b) => a - b);
  return sorted.length % 2 ? sorted[sorted.length >> 1] : (sorted[sorted.length / 2 - 1] + sorted[sorted.length / 2]) / 2;
}

/** The random 110M model as GGUF files of each type (written once, then reused). */
function modelFiles(types: readonly GgufOutputType[]): Map<GgufOutputType, string> {
  const files = new Map(types.map((t) => [t, join(dir, `random-110m-${t}.gguf`)] as const));
  const missing = types.filter((t) => !existsSync(files.get(t) ?? ''));
  if (missing.length > 0) {
    mkdirSync(dir, { recursive: true });
    const random = randomCheckpoint({ dim: 768, hiddenDim: 2048, nLayers: 12, nHeads: 12, nKvHeads: 12, vocabSize: 32000,
      maxSequenceLength: 1024 }, 7);
    const c = random.config;
    const vocabulary = ggufVocabFromTokenizerBin(fixture('llama2-tokenizer', 'tokenizer.bin'), c.vocabSize);
    const tensors = new Map([...tensorShapes(c)].map(([name, shape]) => [name, { shape, data: random.tensors.read(name) }]));
    for (const type of missing) {
      console.error(`writing ${files.get(type)} …`);
      writeCanonicalGguf(files.get(type) ?? '', { arch: 'llama', contextLength: c.maxSequenceLength, dim: c.dim,
        hiddenDim: c.hiddenDim, nLayers: c.nLayers, nHeads: c.nHeads, nKvHeads: c.nKvHeads, headDim: c.headDim,
        vocabSize: c.vocabSize, eps: c.normEps, ropeTheta: c.ropeTheta }, vocabulary, tensors, type, 'random 110M');
    }
  }
  return files;
}

interface Ours {
  tokensPerSecond: number[];
  weightBytes: number;
  matrices: string;
}

/** Greedy decoding speed of our engine: TOKENS tokens after each prompt, ROUNDS rounds after a warm-up. */
async function measureOurs(checkpoint: Checkpoint, threads: number): Promise<Ours> {
  const kernels = await createKernels({ threads });
  try {
    const model = createModel(kernels, checkpoint, { contextLength: 512 });
    const out = new Int32Array(1);
    const tokensPerSecond: number[] = [];
    for (let round = 0; round <= ROUNDS; round++) {
      let seconds = 0;
      for (const prompt of PROMPTS) {
        const decoder = createAutoregressiveDecoder(model, { temperature: 0 });
        decoder.prefill(prompt);
        const started = performance.now();
        for (let i = 0; i < TOKENS; i++) decoder.step(out);
        seconds += (performance.now() - started) / 1000;
        decoder.dispose();
      }
      if (round > 0) tokensPerSecond.push((TOKENS * PROMPTS.length) / seconds);
    }
    const matrices = Object.entries(model.matrices).filter(([, n]) => n > 0).map(([e, n]) => `${n} ${e}`).join(', ');
    const result = { tokensPerSecond, weightBytes: model.weightBytes, matrices };
    model.dispose();
    return result;
  } finally {
    await kernels.close();
  }
}

const load = (): string => loadavg().map((l) => l.toFixed(2)).join(' ');
const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical CPUs, ${Math.round(totalmem() / 2 ** 30)} GiB, ` +
  `Node ${process.version}`;
console.log(`# our decoding speed vs llama.cpp — random 110M Llama (dim 768, 12 layers, FFN 2048, vocab 32000)\n\n` +
  `machine: ${machine}\nload average at start: ${load()}\n` +
  `greedy, ${TOKENS} tokens after each of ${PROMPTS.length} prompts; ${TURNS} turns of ours and ${TURNS - 1} of llama.cpp ` +
  `(node-llama-cpp 3.21.1, CPU, 1 thread), alternating; median (min–max) over turns\n`);

const range = (v: readonly number[]): string =>
  `${median(v).toFixed(1)} (${Math.min(...v).toFixed(1)}–${Math.max(...v).toFixed(1)})`;
const rows: string[] = [];
for (const [type, path] of modelFiles(['f32', 'q8_0'])) {
  const checkpoint = readCheckpoint(path);
  const ours: Ours[][] = [[], []];
  const cpp: number[] = [];
  for (let turn = 0; turn < TURNS; turn++) {
    for (const threads of [1, 2]) ours[threads - 1].push(await measureOurs(checkpoint, threads));
    if (turn === TURNS - 1) break;
    const speed = await measureLlamaCpp(path, PROMPTS, TOKENS + 1, [1]);
    if (typeof speed === 'string') console.log(`llama.cpp could not run on ${path}: ${speed}`);
    else cpp.push(speed.tokensPerSecond);
  }
  const cppSpeed = cpp.length > 0 ? median(cpp) : NaN;
  [1, 2].forEach((threads) => {
    const turns = ours[threads - 1];
    const speeds = turns.map((t) => median(t.tokensPerSecond));
    const mid = median(speeds);
    rows.push(`| ${type.toUpperCase()} | ${threads} | ${range(speeds)} | ${((mid * turns[0].weightBytes) / 1e9).toFixed(1)} | ` +
      `${cpp.length > 0 ? range(cpp) : 'n/a'} | ${(mid / cppSpeed).toFixed(2)} | ${turns[0].matrices} |`);
  });
}
console.log('| file | our threads | our tokens/s | our weight GB/s | llama.cpp tokens/s (1 thread) | ours / llama.cpp | our matrices |');
console.log('|---|---:|---:|---:|---:|---:|---|');
for (const row of rows) console.log(row);
console.log(`\nload average at end: ${load()} (above ~1 means another process competed for the 2 cores)`);
