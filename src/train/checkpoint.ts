// Training checkpoints: weights, AdamW moments, step, random-stream state and the recipe, so that a resumed run
// continues exactly where the saved one was (same bytes as an uninterrupted run).
//
// Crash safety (kill -9 at any instant): a checkpoint is written into `checkpoint.tmp-<pid>/` (every file fsynced),
// then `checkpoint/` is renamed to `checkpoint.old/`, the new folder renamed to `checkpoint/`, and the old one
// removed. At every instant one complete checkpoint exists: `checkpoint/`, or `checkpoint.old/` between the two
// renames; readers take `checkpoint/` first. Leftover temporary folders are incomplete by definition and deleted.

import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from '../formats/io.js';
import { readSafetensors, writeSafetensors } from '../formats/safetensors.js';
import type { DrafterConfig } from '../drafter/config.js';
import type { AdamWState } from './optim.js';

export interface TrainingRecipe {
  steps: number;
  batch: number;
  lr: number;
  predict: number;
  exitDim: number;
  layers: number;
  rnn: boolean;
  weightDecay: number;
  /** Warmup updates as a fraction of all updates. */
  warmupRatio: number;
  clip: number;
  seed: number;
  /** Weight of the LLM's own distribution in each step's target (0 = the sampled token only). */
  softWeight: number;
  /** Loss weight of step i is stepDecay^(i−1), normalised to sum to T (absent in older checkpoints: 1). */
  stepDecay?: number;
  /**
   * The exported drafter's logits are divided by this (folded into lm_head.{R}.weight; the checkpoint keeps the
   * trained weights). Absent in older checkpoints: 1.
   */
  outputTemperature?: number;
}

export interface TrainingState {
  recipe: TrainingRecipe;
  config: DrafterConfig;
  /** Updates done. */
  step: number;
  /** xoshiro128** state of the batch-sampling stream. */
  rng: number[];
  /** name → values, in the graph's tensor order. */
  weights: Map<string, Float32Array>;
  optimizer: AdamWState;
  /** Seconds of training so far (across resumes), for reports. */
  seconds: number;
}

const CURRENT = 'checkpoint';
const PREVIOUS = 'checkpoint.old';

function fsyncDir(dir: string): void {
  try {
    const fd = openSync(dir, 'r');
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
  } catch {
    // Not every platform can fsync a directory; the renames are still atomic.
  }
}

export function saveTrainingState(dir: string, state: TrainingState): void {
  mkdirSync(dir, { recursive: true });
  const temporary = join(dir, `${CURRENT}.tmp-${process.pid}`);
  rmSync(temporary, { recursive: true, force: true });
  mkdirSync(temporary);
  const names = [...state.weights.keys()];
  const tensors = (pick: (name: string, index: number) => Float32Array) =>
    new Map(names.map((name, index) => [name, { shape: [pick(name, index).length], data: pick(name, index) }]));
  writeSafetensors(join(temporary, 'weights.safetensors'), tensors((name) => state.weights.get(name)!));
  writeSafetensors(join(temporary, 'adam-m.safetensors'), tensors((_, index) => state.optimizer.m[index]));
  writeSafetensors(join(temporary, 'adam-v.safetensors'), tensors((_, index) => state.optimizer.v[index]));
  const json = {
    format: 'redrafter-training-state', version: 1, recipe: state.recipe, config: state.config, step: state.step,
    rng: state.rng, adamStep: state.optimizer.step, tensors: names, seconds: state.seconds,
  };
  writeFileAtomic(join(temporary, 'state.json'), [new TextEncoder().encode(JSON.stringify(json, null, 2) + '\n')]);
  fsyncDir(temporary);
  const current = join(dir, CURRENT);
  const previous = join(dir, PREVIOUS);
  rmSync(previous, { recursive: true, force: true });
  if (existsSync(current)) renameSync(current, previous);
  renameSync(temporary, current);
  fsyncDir(dir);
  rmSync(previous, { recursive: true, force: true });
}

/** The newest complete checkpoint in `dir`, or null; removes leftovers of interrupted saves. */
export function loadTrainingState(dir: string): TrainingState | null {
  if (!existsSync(dir)) return null;
  for (const name of readdirSync(dir)) if (name.startsWith(`${CURRENT}.tmp-`)) rmSync(join(dir, name), { recursive: true, force: true });
  const current = join(dir, CURRENT);
  const previous = join(dir, PREVIOUS);
  const folder = existsSync(current) ? current : existsSync(previous) ? previous : null;
  if (!folder) return null;
  const json = JSON.parse(readFileSync(join(folder, 'state.json'), 'utf8')) as {
    format: string; version: number; recipe: TrainingRecipe; config: DrafterConfig; step: number; rng: number[];
    adamStep: number; tensors: string[]; seconds: number;
  };
  if (json.format !== 'redrafter-training-state' || json.version !== 1) {
    throw new RangeError(`${folder}/state.json: not a redrafter training state`);
  }
  const read = (file: string): Float32Array[] => {
    const st = readSafetensors(join(folder, file));
    return json.tensors.map((name) => st.getF32(name));
  };
  const values = read('weights.safetensors');
  const state: TrainingState = {
    recipe: json.recipe, config: json.config, step: json.step, rng: json.rng, seconds: json.seconds ?? 0,
    weights: new Map(json.tensors.map((name, index) => [name, values[index]])),
    optimizer: { step: json.adamStep, m: read('adam-m.safetensors'), v: read('adam-v.safetensors') },
  };
  if (folder === previous) {
    // A crash between the two renames: make the surviving checkpoint the current one again.
    renameSync(previous, current);
  }
  return state;
}
