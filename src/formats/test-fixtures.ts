// Test support: where the shared model fixtures are, temporary folders, and a seeded PRNG. Fixtures are read in place
// (REDRAFTER_MODELS, else ../shared/models beside the repository) and never copied into the repository.

import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { FormatError } from './errors.js';

/** The fixture folder: $REDRAFTER_MODELS, else ../shared/models relative to the repository root. */
export function modelsDir(): string {
  const fromEnv = process.env.REDRAFTER_MODELS;
  if (fromEnv !== undefined && fromEnv !== '') return resolve(fromEnv);
  // This file runs as dist/src/formats/test-fixtures.js: four levels up is the folder that holds the repository.
  const here = dirname(fileURLToPath(import.meta.url));
  return resolve(here, '..', '..', '..', '..', 'shared', 'models');
}

export function fixturePath(relative: string): string {
  return join(modelsDir(), relative);
}

/** For node:test's `skip` option: a message when the fixture is missing, false when it is there. */
export function skipUnlessFixture(...relatives: string[]): string | false {
  const missing = relatives.filter((r) => !existsSync(fixturePath(r)));
  return missing.length === 0 ? false : `fixture missing: ${missing.map(fixturePath).join(', ')} (set REDRAFTER_MODELS)`;
}

/** Runs `body` with a fresh temporary folder that is removed afterwards. */
export function withTempDir<T>(body: (dir: string) => T): T {
  const dir = mkdtempSync(join(tmpdir(), 'redrafter-formats-'));
  try {
    return body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** withTempDir for async bodies: the folder lives until the promise settles. */
export async function withTempDirAsync<T>(body: (dir: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(join(tmpdir(), 'redrafter-formats-'));
  try {
    return await body(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** mulberry32: a small seeded PRNG so that randomized tests are reproducible. Returns floats in [0, 1). */
export function seededRandom(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export interface ExpectedFormatError {
  /** The file the error must name (compared with FormatError.file). */
  readonly file: string;
  /** Substring (or pattern) of FormatError.field. */
  readonly field?: string | RegExp;
  /** Substrings the message must contain (expected / got values). */
  readonly includes?: readonly string[];
}

/** Asserts that `body` throws a FormatError naming the file, the field and the given values; returns it. */
export function expectFormatError(body: () => unknown, expected: ExpectedFormatError): FormatError {
  let caught: unknown;
  try {
    body();
  } catch (err) {
    caught = err;
  }
  if (!(caught instanceof FormatError)) {
    assert.fail(`expected a FormatError, got ${caught instanceof Error ? `${caught.name}: ${caught.message}` : String(caught)}`);
  }
  assert.equal(caught.file, expected.file);
  assert.ok(caught.message.startsWith(`${basename(expected.file)}: `), `message names the file: ${caught.message}`);
  if (typeof expected.field === 'string') assert.ok(caught.field.includes(expected.field), `field "${caught.field}" includes "${expected.field}"`);
  else if (expected.field !== undefined) assert.match(caught.field, expected.field);
  for (const s of expected.includes ?? []) assert.ok(caught.message.includes(s), `message includes ${JSON.stringify(s)}: ${caught.message}`);
  return caught;
}

/** Builds a safetensors file from a header object (serialized as given) and raw data bytes. */
export function buildSafetensors(header: unknown, data: Uint8Array, headerText?: string): Uint8Array {
  const json = new TextEncoder().encode(headerText ?? JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}
