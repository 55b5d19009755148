// Where tests find the real model fixtures: REDRAFTER_MODELS, else ../shared/models beside the checkout.
// They are never copied into the repository.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
// Compiled to dist/test/fixtures.js: the checkout is two folders up.
const checkout = resolve(here, '..', '..');

export const modelsFolder: string = process.env['REDRAFTER_MODELS']
  ? resolve(process.env['REDRAFTER_MODELS'])
  : resolve(checkout, '..', 'shared', 'models');

export function fixture(...parts: string[]): string {
  return join(modelsFolder, ...parts);
}

/** A skip reason when the fixture is absent (node:test's `skip` option), else false. */
export function missing(...parts: string[]): string | false {
  const path = fixture(...parts);
  return existsSync(path) ? false : `fixture ${path} not found (set REDRAFTER_MODELS)`;
}

/**
 * A skip reason in CI's second leg (.ci/run sets REDRAFTER_CI_SECOND_LEG), else false: that leg reruns the suite on
 * Node 24 for the relaxed-SIMD kernel build, so the long tests that exercise none of it (the WebGPU sweeps, the GPU
 * carry) run in the first leg only, which keeps the suite within its time budget.
 */
export function firstLegOnly(): string | false {
  return process.env['REDRAFTER_CI_SECOND_LEG'] ? 'CI second leg (REDRAFTER_CI_SECOND_LEG): ran in the first leg' : false;
}

export const stories260K = {
  model: fixture('stories260K', 'stories260K.bin'),
  tokenizer: fixture('stories260K', 'tok512.bin'),
  referenceGreedy: fixture('stories260K', 'reference-greedy.jsonl'),
};
