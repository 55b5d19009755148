// npm run bench:gpu [-- --quick] [--models xl,1b] [--encodings f32,q8_0] [--json FILE]
// The WebGPU backend on whatever adapter dawn.node finds (named in the output), on models generated here from
// stories260K (never carried or downloaded: src/model/inflate.ts): stories260K-xl (dim 768, 12 layers) and a 1B-class
// inflation in TinyLlama's shapes (dim 2048, 22 layers, FFN 5632, 32 heads, 4 KV heads). For each model and weight
// encoding it measures
//   - one token's forward time against the memory-bandwidth bound (weight bytes ÷ the measured copy bandwidth),
//   - plain greedy decoding tokens/s (a forward per token, reading back its argmax id only),
//   - a tree verification forward of k = 1, 2, 4, 8, 16, 32 nodes (argmax of every node + one hidden row read back),
//     relative to k = 1: how much of a tree is nearly free, the number that decides ReDrafter on GPUs,
//   - through the engine (generate(), as users run it): plain decoding against ReDrafter with the shipped
//     stories260K drafter inflated to the model's width (src/drafter/inflate.ts: the same acceptance as on
//     stories260K), greedy and T = 1, fixed trees 1×6 and 4×5 with the drafter on the GPU (webgpu/drafter.ts), and
//     1×6 with it on the host (the WebAssembly kernels, reading the hidden state back), with draft ms per step.
// --quick runs tiny sizes (a test runs it on SwiftShader so that a GPU run cannot fail on plumbing). It measures;
// it asserts nothing about time.

import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { readCheckpoint, type Checkpoint } from '../src/model/checkpoint.js';
import { inflateCheckpoint, inflatedCheckpoint, type InflatedShape } from '../src/model/inflate.js';
import { randomCheckpoint } from '../src/model/random-checkpoint.js';
import { XL_SHAPE } from '../src/model/xl.js';
import { modelFolders } from '../src/engine/default-model.js';
import { openNodeWebGpuDevice } from '../src/webgpu/node-device.js';
import { createWebGpuModel, type WebGpuModel } from '../src/webgpu/model.js';
import type { GpuMatrixEncoding } from '../src/webgpu/matmul.js';
import { engineModelOfWebGpu } from '../src/webgpu/engine-model.js';
import { createKernels } from '../src/kernels/index.js';
import type { Kernels } from '../src/kernels/types.js';
import { loadDrafter, type LoadedModel } from '../src/engine/load.js';
import { generateText, type GenerateOptions } from '../src/engine/generate.js';
import { defaultDrafterPath } from '../src/engine/default-model.js';
import { randomDrafter, readDrafter } from '../src/drafter/checkpoint.js';
import { inflateDrafter } from '../src/drafter/inflate.js';

const { values } = parseArgs({ options: {
  quick: { type: 'boolean', default: false },
  models: { type: 'string' },
  encodings: { type: 'string' },
  model: { type: 'string' },
  json: { type: 'string' },
  'budget-s': { type: 'string', default: '270' },
} });
const quick = values.quick;
const budgetMs = Number(values['budget-s']) * 1000;
const started = performance.now();
const log = (message: string): void => console.error(`[${((performance.now() - started) / 1000).toFixed(1)} s] ${message}`);

/** TinyLlama-1.1B's shapes (dim 2048, 22 layers, FFN 5632, head size 64: 32 heads; 4 KV heads from stories260K). */
const ONE_B_SHAPE: InflatedShape = { dim: 2048, hiddenDim: 5632, nLayers: 22, headDim: 64 };
const QUICK_SHAPE: InflatedShape = { dim: 128, hiddenDim: 256, nLayers: 6, headDim: 16 };
const MODEL_SHAPES: Record<string, InflatedShape> = { tiny: QUICK_SHAPE, xl: XL_SHAPE, '1b': ONE_B_SHAPE };

function findStories260K(): string | undefined {
  if (values.model !== undefined) return values.model;
  return modelFolders().map(({ folder }) => join(folder, 'stories260K', 'stories260K.bin')).find((path) => existsSync(path));
}

/** stories260K, or (where it is absent) a random model of its shape: the costs are the same, only the text differs. */
function baseCheckpoint(): Checkpoint {
  const path = findStories260K();
  if (path !== undefined) return readCheckpoint(path);
  log('stories260K.bin not found (REDRAFTER_MODELS or --model): inflating a random model of its shape instead');
  return randomCheckpoint({ dim: 64, hiddenDim: 172, nLayers: 5, nHeads: 8, nKvHeads: 4, vocabSize: 512,
    maxSequenceLength: 512, tiedClassifier: true }, 1);
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Copy bandwidth in bytes/s (read + write counted: 2·size per copy), the memory-bound reference. */
async function copyBandwidth(device: GPUDevice): Promise<number> {
  const size = quick ? 4 << 20 : 512 << 20;
  const usage = GPUBufferUsage.COPY_SRC | GPUBufferUsage.COPY_DST;
  const a = device.createBuffer({ size, usage });
  const b = device.createBuffer({ size, usage });
  const reps = quick ? 2 : 20;
  const times: number[] = [];
  for (let round = 0; round < 4; round++) {
    const encoder = device.createCommandEncoder();
    for (let i = 0; i < reps; i++) encoder.copyBufferToBuffer(i % 2 ? b : a, 0, i % 2 ? a : b, 0, size);
    const t = performance.now();
    device.queue.submit([encoder.finish()]);
    await device.queue.onSubmittedWorkDone();
    times.push((performance.now() - t) / 1000);
  }
  a.destroy();
  b.destroy();
  return (2 * size * reps) / median(times.slice(1));
}

interface Result {
  model: string;
  encoding: GpuMatrixEncoding;
  parameters: number;
  weightBytes: number;
  forwardMs: number;
  boundMs: number;
  encodeMs: number;
  waitMs: number;
  bytesRead: number;
  greedyTokensPerSecond: number;
  tree: { nodes: number; ms: number; relative: number }[];
  /** generate() on this model: tokens/s of plain decoding and of ReDrafter trees, greedy and T = 1. */
  engine: EngineRow[];
}

interface EngineRow {
  mode: 'greedy' | 'T=1';
  plainTokensPerSecond: number;
  /** Bytes read back from the GPU per decoding step (prefill included, spread over the steps). */
  plainBytesPerStep: number;
  trees: { shape: string; drafterOn: 'gpu' | 'host'; tokensPerSecond: number; speedup: number; tokensPerStep: number;
    bytesPerStep: number; draftMsPerStep: number }[];
}

const ENGINE_TREES: { beams: number; beamLength: number; drafterOn: 'gpu' | 'host' }[] = [
  { beams: 1, beamLength: 6, drafterOn: 'gpu' }, { beams: 4, beamLength: 5, drafterOn: 'gpu' },
  { beams: 1, beamLength: 6, drafterOn: 'host' }];

/**
 * Plain decoding and ReDrafter through generate() on the GPU model (the WebGPU backend as loadModel gives it), with
 * the shipped drafter inflated to the model's width (a random one where it is absent: then acceptance is low).
 */
async function measureEngine(model: WebGpuModel, kernels: Kernels): Promise<EngineRow[]> {
  const engineModel = engineModelOfWebGpu(model, kernels);
  const loaded: LoadedModel = { path: 'inflated', format: 'llama2c', backend: 'webgpu', model: engineModel,
    tokenizer: null, kernels, close: async () => undefined };
  const shipped = defaultDrafterPath();
  const weights = shipped !== undefined && model.config.vocabSize === 512
    ? inflateDrafter(readDrafter(shipped, base.config), model.config.dim) : randomDrafter(model.config, { seed: 1 });
  const drafter = loadDrafter(loaded, weights, { drafterOn: 'device' });
  const onHost = { ...drafter, deviceSearch: undefined, drafterOn: 'host' as const };
  const tokens = quick ? 8 : 128;
  const promptIds = [1, 403, 407, 261, 378].map((t) => t % model.config.vocabSize);
  const rows: EngineRow[] = [];
  try {
    for (const mode of ['greedy', 'T=1'] as const) {
      const base: GenerateOptions = { promptIds, maxTokens: tokens, stopTokens: [], temperature: mode === 'greedy' ? 0 : 1,
        seed: 7 };
      await generateText(loaded, { ...base, maxTokens: 4 }); // warm-up
      // Bytes read back per forward of one generation (totals are cumulative).
      const readBack = async (options: GenerateOptions): Promise<{ result: Awaited<ReturnType<typeof generateText>>;
        bytesPerStep: number; }> => {
        const [forwards, bytes] = [engineModel.totals.forwards, engineModel.totals.bytesRead];
        const result = await generateText(loaded, options);
        return { result, bytesPerStep: (engineModel.totals.bytesRead - bytes) / (engineModel.totals.forwards - forwards) };
      };
      const { result: plain, bytesPerStep: plainBytesPerStep } = await readBack(base);
      const row: EngineRow = { mode, plainTokensPerSecond: plain.stats.tokensPerSecond, plainBytesPerStep, trees: [] };
      for (const { beams, beamLength, drafterOn } of ENGINE_TREES) {
        if (performance.now() - started > budgetMs) break;
        const { result: drafted, bytesPerStep } = await readBack({ ...base, drafter: drafterOn === 'gpu' ? drafter : onHost,
          beams, beamLength });
        if (drafted.ids.join() !== plain.ids.join()) {
          throw new Error(`ReDrafter ${beams}×${beamLength} (drafter on the ${drafterOn}) ${mode}: ids differ from plain decoding`);
        }
        const steps = drafted.stats.committedPerStep.length;
        row.trees.push({ shape: `${beams}×${beamLength}`, drafterOn, tokensPerSecond: drafted.stats.tokensPerSecond,
          speedup: drafted.stats.tokensPerSecond / plain.stats.tokensPerSecond,
          tokensPerStep: steps > 0 ? drafted.stats.committedPerStep.reduce((a, b) => a + b, 0) / steps : 0, bytesPerStep,
          draftMsPerStep: steps > 0 ? ((drafted.stats.redrafter?.draftSeconds ?? 0) * 1000) / steps : 0 });
      }
      rows.push(row);
    }
  } finally {
    drafter.dispose();
  }
  return rows;
}

async function measure(model: WebGpuModel, name: string, encoding: GpuMatrixEncoding, parameters: number,
  bandwidth: number, kernels: Kernels): Promise<Result> {
  const prompt = [1, 403, 407, 261, 378, 432, 383, 286].map((t) => t % model.config.vocabSize);
  const capacity = 256;
  const cache = model.createCache(capacity);
  const prefill = async (): Promise<void> => {
    await model.forward(cache, { count: prompt.length, tokens: Int32Array.from(prompt), positions: Int32Array.from(prompt, (_, i) => i),
      writeSlot: 0, prefixLengths: Int32Array.from(prompt, (_, i) => i + 1), logits: 'none' }, { hidden: 'none' });
    cache.length = prompt.length;
  };
  await prefill();
  // One token: the forward a plain decoding step runs (argmax read back), at position prompt.length.
  const S = prompt.length;
  const token = Int32Array.of(prompt[S - 1]);
  const oneToken = { count: 1, tokens: token, positions: Int32Array.of(S), writeSlot: S, prefixLengths: Int32Array.of(S + 1),
    logits: 'last' as const };
  const reps = quick ? 3 : 30;
  const times: number[] = [];
  let stats = { encodeMs: 0, waitMs: 0, bytesRead: 0 };
  for (let i = 0; i < reps + 2; i++) {
    const t = performance.now();
    const out = await model.forward(cache, oneToken, { logits: 'argmax', hidden: 'none' });
    if (i >= 2) {
      times.push(performance.now() - t);
      stats = out.stats;
    }
  }
  const forwardMs = median(times);

  // Greedy decoding: each token's argmax feeds the next forward.
  const greedyTokens = quick ? 8 : 128;
  let next = prompt[S - 1];
  const greedyStart = performance.now();
  for (let i = 0; i < greedyTokens; i++) {
    const out = await model.forward(cache, { count: 1, tokens: Int32Array.of(next), positions: Int32Array.of(S + i),
      writeSlot: S + i, prefixLengths: Int32Array.of(S + i + 1), logits: 'last' }, { logits: 'argmax', hidden: 'none' });
    next = out.argmax[0];
  }
  const greedyTokensPerSecond = greedyTokens / ((performance.now() - greedyStart) / 1000);

  // Tree verification after the prompt: k nodes in a drafter's shape, branches of 3 under the root g0 (W beams of
  // length 4): node p ≥ 1 sits at depth (p − 1) % 3 + 1 of branch ⌊(p − 1)/3⌋ and attends the root, its branch's
  // nodes above it, and itself.
  const tree: Result['tree'] = [];
  for (const nodes of quick ? [1, 2, 4, 8] : [1, 2, 4, 8, 16, 32]) {
    const extraStarts = new Int32Array(nodes + 1);
    const extraSlots: number[] = [];
    const positions = new Int32Array(nodes);
    for (let p = 0; p < nodes; p++) {
      const depth = p === 0 ? 0 : ((p - 1) % 3) + 1;
      extraSlots.push(S);
      for (let q = p - depth + 1; q <= p && p > 0; q++) extraSlots.push(S + q);
      extraStarts[p + 1] = extraSlots.length;
      positions[p] = S + depth;
    }
    const batch = { count: nodes, tokens: Int32Array.from({ length: nodes }, (_, p) => (next + 7 * p) % model.config.vocabSize),
      positions, writeSlot: S, prefixLengths: new Int32Array(nodes).fill(S), extraStarts, extraSlots: Int32Array.from(extraSlots),
      logits: 'all' as const };
    const samples: number[] = [];
    for (let i = 0; i < reps + 2; i++) {
      const t = performance.now();
      await model.forward(cache, batch, { logits: 'argmax', hidden: [nodes - 1] });
      if (i >= 2) samples.push(performance.now() - t);
    }
    tree.push({ nodes, ms: median(samples), relative: 0 });
  }
  for (const entry of tree) entry.relative = entry.ms / tree[0].ms;
  cache.free();
  const engine = await measureEngine(model, kernels);
  return { model: name, encoding, parameters, weightBytes: model.weightBytes, forwardMs, boundMs: (model.weightBytes / bandwidth) * 1000,
    encodeMs: stats.encodeMs, waitMs: stats.waitMs, bytesRead: stats.bytesRead, greedyTokensPerSecond, tree, engine };
}

const gpu = await openNodeWebGpuDevice();
const device = gpu.device;
console.log(`adapter: ${gpu.adapterName}`);
const bandwidth = await copyBandwidth(device);
console.log(`copy bandwidth: ${(bandwidth / 1e9).toFixed(1)} GB/s (read + write)`);
const modelNames = (values.models ?? (quick ? 'tiny' : 'xl,1b')).split(',').map((m) => m.trim());
const base = baseCheckpoint();
const results: Result[] = [];
// The host's kernels, for the drafter of the engine rows (every core, as a user would run it).
const kernels = await createKernels({ threads: quick ? 1 : 4 });
for (const name of modelNames) {
  const shape = MODEL_SHAPES[name];
  if (shape === undefined) throw new RangeError(`--models: expected names from ${Object.keys(MODEL_SHAPES).join(', ')}, got "${name}"`);
  const encodings = (values.encodings ?? (quick ? 'f32,q8_0' : name === '1b' ? 'f16,q8_0' : 'f32,q8_0')).split(',')
    .map((e) => e.trim() as GpuMatrixEncoding);
  log(`inflating stories260K to ${name} (dim ${shape.dim}, ${shape.nLayers} layers, FFN ${shape.hiddenDim})`);
  const inflated = inflateCheckpoint(base, shape, 1);
  const parameters = [...inflated.tensors.values()].reduce((sum, t) => sum + t.length, 0);
  const checkpoint = inflatedCheckpoint(inflated, `stories260K-${name}`);
  for (const encoding of encodings) {
    if (performance.now() - started > budgetMs) {
      log(`time budget (${budgetMs / 1000} s) spent: skipping ${name} ${encoding}`);
      continue;
    }
    log(`loading ${name} as ${encoding}`);
    const model = createWebGpuModel(device, checkpoint, { contextLength: 512, weights: encoding });
    log(`measuring ${name} ${encoding} (${(model.weightBytes / 1e6).toFixed(0)} MB of weights)`);
    results.push(await measure(model, `stories260K-${name}`, encoding, parameters, bandwidth, kernels));
    model.dispose();
  }
}

const nodes = results[0]?.tree.map((t) => t.nodes) ?? [];
console.log('');
console.log(`| model | weights | MB | 1-token forward ms | bound ms | % of bound | greedy tok/s | submit ms | wait ms | bytes read | ` +
  nodes.map((k) => `k=${k}`).join(' | ') + ' |');
console.log('|---|---|---|---|---|---|---|---|---|---|' + nodes.map(() => '---|').join(''));
for (const r of results) {
  console.log(`| ${r.model} (${(r.parameters / 1e6).toFixed(0)}M) | ${r.encoding} | ${(r.weightBytes / 1e6).toFixed(0)} | ${r.forwardMs.toFixed(2)} | ` +
    `${r.boundMs.toFixed(3)} | ${((r.boundMs / r.forwardMs) * 100).toFixed(0)} % | ${r.greedyTokensPerSecond.toFixed(1)} | ` +
    `${r.encodeMs.toFixed(2)} | ${r.waitMs.toFixed(2)} | ${r.bytesRead} | ` + r.tree.map((t) => `${t.relative.toFixed(2)}×`).join(' | ') + ' |');
}
console.log('');
console.log('k=N: a tree verification forward of N nodes (argmax of each node + one hidden row read back), relative to k=1.');
console.log('');
console.log('Through the engine (generate(): greedy reads argmax ids, T = 1 logits rows; a drafter on the host reads the hidden');
console.log('states too, one on the GPU drafts there; sampler on the host; "B/step" = bytes a forward reads back, "draft" =');
console.log('drafting ms per step):');
console.log('');
console.log('| model | weights | decoding | plain tok/s (B/step) | ' + ENGINE_TREES.map(({ beams, beamLength, drafterOn }) =>
  `${beams}×${beamLength}, drafter on ${drafterOn}: tok/s (× plain, tokens/step, B/step, draft ms)`).join(' | ') + ' |');
console.log('|---|---|---|---|' + ENGINE_TREES.map(() => '---|').join(''));
for (const r of results) {
  for (const row of r.engine) {
    console.log(`| ${r.model} | ${r.encoding} | ${row.mode} | ${row.plainTokensPerSecond.toFixed(1)} ` +
      `(${row.plainBytesPerStep.toFixed(0)}) | ` + row.trees.map((t) =>
      `${t.tokensPerSecond.toFixed(1)} (${t.speedup.toFixed(2)}×, ${t.tokensPerStep.toFixed(2)}, ${t.bytesPerStep.toFixed(0)}, ` +
      `${t.draftMsPerStep.toFixed(2)})`)
      .join(' | ') + ' |');
  }
}
if (values.json !== undefined) {
  writeFileSync(values.json, JSON.stringify({ adapter: gpu.adapterName, bandwidth, results }, null, 2));
}
log('done');
await kernels.close();
gpu.destroy();
