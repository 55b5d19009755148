// The training loop (spec §6.1): random mini-batches of context positions from the stored dataset, the summed
// per-step cross-entropy, global-norm clipping, AdamW under warmup + cosine, atomic checkpoints, resume, and periodic
// evaluation by real ReDrafter decoding on held-out prompts.
//
// Determinism: weights are initialised from the seed, batches are drawn from one xoshiro128** stream seeded with it,
// and every computation is batch- and thread-invariant, so a seed gives the same checkpoint bytes whatever the
// thread count, with or without interruptions (the stream's state is part of the checkpoint).

import { appendFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import type { LoadedModel } from '../engine/load.js';
import { randomDrafter, writeDrafter, type DrafterWeights } from '../drafter/checkpoint.js';
import { readCheckpoint } from '../model/checkpoint.js';
import { createRng, createRngFromState } from '../sampling/random.js';
import { createTrainingGraph, type TrainingBatch } from './graph.js';
import { adamWStep, clipGradients, createAdamWState, learningRate, ADAMW_DEFAULTS } from './optim.js';
import { loadTrainingState, saveTrainingState, type TrainingRecipe, type TrainingState } from './checkpoint.js';
import {
  buildDataset, describeSource, readDataset, readDatasetMeta, trainingPositions, writeDataset, type BuildSpec,
  type Dataset,
} from './data.js';
import { evaluateDecoding, type DecodingEval } from './evaluate.js';
import { createProgress } from './progress.js';

export interface EvalSettings {
  prompts: readonly string[];
  beams: number;
  beamLength: number;
  maxTokens: number;
  /** Sampled texts per prompt at temperature 1 (seeds 1 + k + 1000·r). */
  samplesPerPrompt: number;
  /** Updates between evaluations; 0 = only at the end. */
  every: number;
}

export interface TrainDrafterOptions {
  /** Output folder: the drafter (config.json + model.safetensors) and train/ (dataset, checkpoint, log). */
  out: string;
  recipe: TrainingRecipe;
  data: BuildSpec;
  resume: boolean;
  /** Updates between checkpoints (and at the end). */
  checkpointEvery: number;
  evaluation: EvalSettings;
  /** Progress and log lines (stderr in the CLI). */
  stream: NodeJS.WriteStream;
}

export interface TrainDrafterResult {
  weights: DrafterWeights;
  steps: number;
  /** Mean loss and per-step top-1 accuracy over the last 10% of updates run in this process. */
  finalLoss: number;
  finalAccuracy: number[];
  /** Seconds spent in updates (all runs of this training) and in building the dataset. */
  trainSeconds: number;
  dataSeconds: number;
  dataset: { sequences: number; tokens: number; positions: number };
  evaluation: { greedy: DecodingEval; sampled: DecodingEval } | null;
}

function sameSource(a: unknown, b: unknown): boolean {
  return JSON.stringify(a) === JSON.stringify(b);
}

async function prepareDataset(loaded: LoadedModel, dir: string, spec: BuildSpec, resume: boolean,
  log: (line: string) => void, progress: ReturnType<typeof createProgress>): Promise<Dataset> {
  const meta = readDatasetMeta(dir);
  const source = describeSource(spec);
  if (meta && (resume || sameSource(meta.source, source))) {
    if (meta.hiddenSize !== loaded.model.config.dim) {
      throw new RangeError(`${dir}: dataset of hidden size ${meta.hiddenSize}, the model has ${loaded.model.config.dim}`);
    }
    log(`dataset: ${dir} (${meta.sequences} sequences, ${meta.tokens} tokens, reused)`);
    return readDataset(dir);
  }
  log(spec.kind === 'distill'
    ? `dataset: sampling ${spec.samples} sequences from the model (temperature ${spec.temperature}, ` +
      `${Math.round(spec.greedyFraction * 100)}% greedy after a lead-in of up to ${spec.leadIn} tokens)`
    : `dataset: tokenizing ${spec.file}`);
  const dataset = await buildDataset(loaded, spec, (phase, done, total) =>
    progress.update(done, total, phase === 'sample' ? 'sampling sequences' : 'hidden states'));
  progress.done();
  writeDataset(dir, dataset);
  log(`dataset: ${dataset.meta.sequences} sequences, ${dataset.meta.tokens} tokens in ${dataset.meta.seconds} s → ${dir}`);
  return dataset;
}

export async function trainDrafter(loaded: LoadedModel, options: TrainDrafterOptions): Promise<TrainDrafterResult> {
  const trainDir = join(options.out, 'train');
  mkdirSync(trainDir, { recursive: true });
  const progress = createProgress(options.stream);
  const log = (line: string): void => progress.log(line);

  // Temporary files of a killed run are incomplete by construction.
  for (const [folder, prefixes] of [[options.out, ['model.safetensors.tmp-', 'config.json.tmp-']],
    [trainDir, ['data.tmp-']]] as const) {
    for (const name of readdirSync(folder)) {
      if (prefixes.some((prefix) => name.startsWith(prefix))) rmSync(join(folder, name), { recursive: true, force: true });
    }
  }
  let state: TrainingState | null = loadTrainingState(trainDir);
  if (state && !options.resume) {
    throw new Error(`${options.out} already holds a training checkpoint (step ${state.step}); pass --resume to ` +
      `continue it, or choose another --out`);
  }
  if (!state && options.resume) log(`no checkpoint in ${trainDir}: starting from scratch`);
  const recipe = state ? state.recipe : options.recipe;
  const dataset = await prepareDataset(loaded, join(trainDir, 'data'), options.data, state !== null, log, progress);
  const dataSeconds = dataset.meta.seconds;
  const { positions, ends } = trainingPositions(dataset);
  if (positions.length === 0) throw new RangeError('dataset: no training position (sequences too short)');

  const base = loaded.model.config;
  const initial = randomDrafter(base, { exitDim: recipe.exitDim, numDraftLayers: recipe.layers, rnn: recipe.rnn,
    seed: recipe.seed });
  const config = state ? state.config : initial.config;
  const soft = recipe.softWeight ?? 0;
  const classifier = soft > 0 ? classifierOf(loaded) : null;
  const graph = createTrainingGraph(loaded.kernels, config, loaded.model.tokenEmbedding, {
    maxBatch: recipe.batch, predict: recipe.predict, stepDecay: recipe.stepDecay ?? 1,
    teacher: classifier ? { classifier: classifier.view, softWeight: soft } : undefined,
  });
  const optimizer = createAdamWState(graph.tensors);
  let rng = createRng(recipe.seed);
  let step = 0;
  let seconds = 0;
  if (state) {
    graph.setWeights({ config, tensors: state.weights, extraConfig: {} });
    optimizer.step = state.optimizer.step;
    state.optimizer.m.forEach((m, i) => optimizer.m[i].set(m));
    state.optimizer.v.forEach((v, i) => optimizer.v[i].set(v));
    rng = createRngFromState(state.rng);
    step = state.step;
    seconds = state.seconds;
    log(`resuming at step ${step}/${recipe.steps}`);
  } else {
    graph.setWeights(initial);
  }
  state = null;

  const H = base.dim;
  const T = recipe.predict;
  const B = recipe.batch;
  const warmup = Math.max(1, Math.round(recipe.warmupRatio * recipe.steps));
  const batch: TrainingBatch = { count: B, hidden: new Float32Array(B * H), tokens: new Int32Array(B * (T + 1)),
    targetHidden: soft > 0 ? new Float32Array(B * T * H) : undefined };
  // Copies one stored hidden state into the batch; a plain loop, because subarray() would allocate a view per row.
  const copyHidden = (position: number, to: Float32Array, row: number): void => {
    const from = dataset.hidden;
    for (let i = 0, src = position * H, dst = row * H; i < H; i++) to[dst + i] = from[src + i];
  };
  const drawBatch = (): void => {
    for (let b = 0; b < B; b++) {
      const k = Math.floor(rng.nextUniform() * positions.length);
      const p = positions[k];
      copyHidden(p, batch.hidden, b);
      for (let j = 0; j <= T; j++) {
        const at = p + 1 + j;
        batch.tokens[b * (T + 1) + j] = at < ends[k] ? dataset.tokens[at] : -1;
      }
      const targetHidden = batch.targetHidden;
      if (targetHidden) {
        // Step i+1's target x_{p+i+2} is distributed as the LLM's output at token p+i+1.
        for (let i = 0; i < T; i++) {
          const at = p + 1 + i;
          if (at + 1 < ends[k]) copyHidden(at, targetHidden, b * T + i);
          else targetHidden.fill(0, (b * T + i) * H, (b * T + i + 1) * H);
        }
      }
    }
  };

  // What is exported and evaluated: the trained weights with the output temperature folded in.
  const exported = (): DrafterWeights => withOutputTemperature(graph.weights(), recipe.outputTemperature ?? 1);
  // The exported drafter first: once a training checkpoint exists, so does a loadable drafter beside it.
  const save = (): void => {
    writeDrafter(options.out, exported());
    saveTrainingState(trainDir, {
      recipe, config, step, rng: Array.from(rng.getState()), weights: graph.weights().tensors, optimizer, seconds,
    });
  };
  const logFile = join(trainDir, 'log.jsonl');
  const record = (entry: Record<string, unknown>): void => appendFileSync(logFile, JSON.stringify(entry) + '\n');
  const evaluate = async (): Promise<{ greedy: DecodingEval; sampled: DecodingEval } | null> => {
    const { prompts, beams, beamLength, maxTokens, samplesPerPrompt } = options.evaluation;
    if (prompts.length === 0) return null;
    const weights = exported();
    const settings = { beams, beamLength, maxTokens, seed: 1, samplesPerPrompt };
    const greedy = await evaluateDecoding(loaded, weights, prompts, { ...settings, temperature: 0 });
    const sampled = await evaluateDecoding(loaded, weights, prompts, { ...settings, temperature: 1 });
    log(`eval @ ${step}: ${greedy.tokensPerStep.toFixed(2)} tokens/step greedy, ${sampled.tokensPerStep.toFixed(2)} ` +
      `at temperature 1 (W=${beams}, L=${beamLength}, ${prompts.length} held-out prompts, ≤${maxTokens} tokens each, ` +
      `${samplesPerPrompt} samples each at temperature 1)`);
    record({ step, eval: { beams, beamLength, greedy, sampled } });
    return { greedy, sampled };
  };

  // Running metrics for the bar (since the last redraw) and for the final report (last 10% of updates).
  const tailFrom = recipe.steps - Math.max(1, Math.floor(recipe.steps / 10));
  let tailLoss = 0;
  let tailUpdates = 0;
  const tailCorrect = new Float64Array(T);
  const tailCount = new Float64Array(T);
  let windowLoss = 0;
  let windowUpdates = 0;
  const windowCorrect = new Float64Array(T);
  const windowCount = new Float64Array(T);
  let windowStarted = performance.now();
  let windowPositions = 0;
  let lastDraw = 0;
  let evaluation: { greedy: DecodingEval; sampled: DecodingEval } | null = null;

  while (step < recipe.steps) {
    const started = performance.now();
    drawBatch();
    const result = graph.forwardBackward(batch);
    clipGradients(graph.tensors, recipe.clip);
    adamWStep(graph.tensors, optimizer, learningRate(step, recipe.steps, warmup, recipe.lr),
      { ...ADAMW_DEFAULTS, weightDecay: recipe.weightDecay });
    step++;
    seconds += (performance.now() - started) / 1000;

    windowLoss += result.loss;
    windowUpdates++;
    windowPositions += B;
    for (let i = 0; i < T; i++) {
      windowCorrect[i] += result.stepCorrect[i];
      windowCount[i] += result.stepCount[i];
    }
    if (step > tailFrom) {
      tailLoss += result.loss;
      tailUpdates++;
      for (let i = 0; i < T; i++) {
        tailCorrect[i] += result.stepCorrect[i];
        tailCount[i] += result.stepCount[i];
      }
    }
    const now = performance.now();
    if (now - lastDraw > 250 || step === recipe.steps) {
      const accuracy = Array.from(windowCorrect, (c, i) => Math.round((100 * c) / Math.max(1, windowCount[i])));
      const rate = windowPositions / Math.max(1e-9, (now - windowStarted) / 1000);
      const eta = ((recipe.steps - step) * (now - windowStarted)) / Math.max(1, windowUpdates) / 1000;
      progress.update(step, recipe.steps, `loss ${(windowLoss / windowUpdates).toFixed(3)} top-1 ` +
        `${accuracy.join('/')}% ${Math.round(rate)} tokens/s eta ${formatSeconds(eta)}`);
      record({ step, loss: windowLoss / windowUpdates, top1: accuracy.map((a) => a / 100), tokensPerSecond: rate });
      lastDraw = now;
      windowLoss = 0;
      windowUpdates = 0;
      windowPositions = 0;
      windowCorrect.fill(0);
      windowCount.fill(0);
      windowStarted = now;
    }
    if (step % options.checkpointEvery === 0 || step === recipe.steps) save();
    const evalDue = options.evaluation.every > 0 && step % options.evaluation.every === 0;
    if (evalDue || step === recipe.steps) evaluation = await evaluate();
  }
  progress.done();
  if (!existsSync(join(options.out, 'model.safetensors'))) save();
  const weights = exported();
  graph.dispose();
  classifier?.free();
  const finalAccuracy = Array.from(tailCorrect, (c, i) => c / Math.max(1, tailCount[i]));
  const summary: TrainDrafterResult = {
    weights, steps: step, finalLoss: tailUpdates > 0 ? tailLoss / tailUpdates : NaN, finalAccuracy,
    trainSeconds: seconds, dataSeconds,
    dataset: { sequences: dataset.meta.sequences, tokens: dataset.meta.tokens, positions: positions.length },
    evaluation,
  };
  writeFileSync(join(trainDir, 'summary.json'), JSON.stringify({ ...summary, weights: undefined, recipe }, null, 2) + '\n');
  return summary;
}

/**
 * The drafter with its logits divided by τ, folded into the vocabulary projection lm_head.{R}.weight (Apple's format
 * has no temperature, spec §1.2). τ < 1 sharpens q; the top-50 filter keeps the same tokens (it compares logits).
 */
export function withOutputTemperature(weights: DrafterWeights, temperature: number): DrafterWeights {
  if (!(temperature > 0)) throw new RangeError(`output temperature: expected a number > 0, got ${temperature}`);
  if (temperature === 1) return weights;
  const name = `lm_head.${weights.config.numDraftLayers}.weight`;
  const projection = weights.tensors.get(name);
  if (!projection) throw new RangeError(`drafter weights: no tensor ${name}`);
  const tensors = new Map(weights.tensors);
  tensors.set(name, projection.map((w) => w / temperature));
  return { ...weights, tensors };
}

/** The LLM's classifier [V, H] in the heap: the embedding table when tied, else a copy read from the checkpoint. */
function classifierOf(loaded: LoadedModel): { view: Float32Array; free(): void } {
  const { model } = loaded;
  if (model.config.tiedClassifier) return { view: model.tokenEmbedding, free: () => {} };
  const data = readCheckpoint(loaded.path).tensors.read('output');
  const heap = loaded.kernels.heap;
  const ptr = heap.alloc(data.length * 4);
  const view = heap.f32(ptr, data.length);
  view.set(data);
  return { view, free: () => heap.free(ptr) };
}

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?';
  const s = Math.round(seconds);
  return s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`;
}
