// Autoregressive decoding speed of the engine (`npm run bench`): tokens/s and effective weight bandwidth for
// stories260K and a random-weight 110M Llama (stories110M's shape) in f32 and with Q8_0 matrices, at 1 and 2 threads.
// A measurement, not a test; `npm run bench:llama-cpp` compares with llama.cpp on GGUF files.
//
//   npm run bench                 # all
//   npm run bench -- --quick      # fewer tokens and rounds

import { cpus, totalmem } from 'node:os';
import { performance } from 'node:perf_hooks';
import { createKernels } from '../src/kernels/index.js';
import { readCheckpoint, type Checkpoint } from '../src/model/checkpoint.js';
import { createModel } from '../src/model/model.js';
import { randomCheckpoint } from '../src/model/random-checkpoint.js';
import { quantize } from '../src/formats/quant.js';
import { createAutoregressiveDecoder } from '../src/engine/decoder.js';
import { resolveDefaultModel } from '../src/engine/default-model.js';

interface Row {
  model: string;
  threads: number;
  tokens: number;
  tokensPerSecond: number[];
  weightBytes: number;
}

const quick = process.argv.includes('--quick');
const rounds = quick ? 2 : 5;

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function measure(name: string, checkpoint: Checkpoint, threads: number, tokens: number): Promise<Row> {
  const kernels = await createKernels({ threads });
  const model = createModel(kernels, checkpoint, { contextLength: Math.min(checkpoint.config.maxSequenceLength, 512) });
  const prompt = [1, 403, 407, 261, 378];
  const out = new Int32Array(1);
  const run = (): number => {
    const decoder = createAutoregressiveDecoder(model, { temperature: 0 });
    decoder.prefill(prompt);
    const started = performance.now();
    for (let i = 0; i < tokens; i++) decoder.step(out);
    const seconds = (performance.now() - started) / 1000;
    decoder.dispose();
    return tokens / seconds;
  };
  run(); // warm-up: JIT, caches, worker spin-up
  const tokensPerSecond: number[] = [];
  for (let r = 0; r < rounds; r++) tokensPerSecond.push(run());
  const row = { model: name, threads, tokens, tokensPerSecond, weightBytes: model.weightBytes };
  model.dispose();
  await kernels.close();
  return row;
}

/** The checkpoint with its matrices offered as Q8_0 blocks, as a Q8_0 GGUF file holds them (the native kernels' input). */
function withQ8_0Matrices(checkpoint: Checkpoint): Checkpoint {
  const tensors = checkpoint.tensors;
  return { ...checkpoint, tensors: { ...tensors, raw(name) {
    const shape = tensors.shape(name);
    if (shape === undefined || shape.length !== 2) return undefined;
    return { type: 'Q8_0', shape, bytes: () => quantize('Q8_0', tensors.read(name)) };
  } } };
}

const machine = `${cpus()[0]?.model ?? 'unknown CPU'}, ${cpus().length} logical CPUs, ` +
  `${Math.round(totalmem() / 2 ** 30)} GiB, Node ${process.version}`;
console.log(`# engine benchmark — autoregressive greedy decoding\n\nmachine: ${machine}\n` +
  `rounds: ${rounds} after one warm-up; median (min–max)\n`);

const rows: Row[] = [];
const stories = readCheckpoint((await resolveDefaultModel()).model);
const model110M = randomCheckpoint({ dim: 768, hiddenDim: 2048, nLayers: 12, nHeads: 12, nKvHeads: 12, vocabSize: 32000,
  maxSequenceLength: 1024 });
for (const threads of [1, 2]) {
  rows.push(await measure('stories260K', stories, threads, quick ? 200 : 256));
}
for (const threads of [1, 2]) {
  rows.push(await measure('random 110M (dim 768, 12 layers, vocab 32000)', model110M, threads, quick ? 32 : 64));
}
const model110MQ8 = withQ8_0Matrices(model110M);
for (const threads of [1, 2]) {
  rows.push(await measure('random 110M, Q8_0 matrices', model110MQ8, threads, quick ? 32 : 64));
}

console.log('| model | threads | tokens | tokens/s | weight GB/s |');
console.log('|---|---:|---:|---:|---:|');
for (const row of rows) {
  const mid = median(row.tokensPerSecond);
  const lo = Math.min(...row.tokensPerSecond);
  const hi = Math.max(...row.tokensPerSecond);
  console.log(`| ${row.model} | ${row.threads} | ${row.tokens} | ${mid.toFixed(1)} (${lo.toFixed(1)}–${hi.toFixed(1)}) | ` +
    `${((mid * row.weightBytes) / 1e9).toFixed(2)} |`);
}
