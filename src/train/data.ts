// Training data for the drafter (spec §6): token sequences with the LLM's final-norm hidden state at every token,
// written to disk once so that a run (or a resumed run) reads them instead of recomputing them.
//
// Two sources:
//  - distillation (spec §6.2): continuations sampled from the base model itself from a prompt set. Every window of a
//    sampled sequence is a sample of the LLM's own T-token continuation of its prefix, which is what the drafter must
//    predict. A fraction of the sequences switch to greedy decoding after a short sampled lead-in, so that the drafter
//    also sees the LLM's greedy continuations in varied contexts (greedy decoding is where most speculation happens).
//  - plain text (spec §6.1's dataset targets): documents tokenized with the model's tokenizer.
//
// Storing h costs 4·H bytes per token (256 B for stories260K); recomputing it per batch would cost a forward of the
// LLM per training position and target (measured ~6–10k rows/s on 2 cores, slower than training itself), so h is
// stored. Distillation gets it for free: the sampling forwards produce it.

import { existsSync, mkdirSync, readFileSync, renameSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic, f32Bytes } from '../formats/io.js';
import { createRng } from '../sampling/random.js';
import type { LoadedModel } from '../engine/load.js';
import { sampleSequences, type SampleJob } from './sample.js';

export interface DatasetSource {
  kind: 'distill' | 'text';
  /** distill: sequences to sample; text: the file. */
  samples?: number;
  temperature?: number;
  greedyFraction?: number;
  /** Longest sampled lead-in before a greedy sequence switches to greedy decoding. */
  leadIn?: number;
  /** Most generated tokens per sequence. */
  maxTokens?: number;
  seed?: number;
  /** Number of prompts and a digest of them (the prompts themselves are the caller's). */
  prompts?: { count: number; digest: string };
  file?: string;
}

export interface DatasetMeta {
  format: 'redrafter-drafter-dataset';
  version: 1;
  /** The base model the hidden states come from (path and size in bytes: a different model is refused). */
  model: { path: string; bytes: number };
  hiddenSize: number;
  source: DatasetSource;
  sequences: number;
  tokens: number;
  /** Seconds it took to build. */
  seconds: number;
}

export interface Dataset {
  meta: DatasetMeta;
  /** All sequences' tokens, concatenated. */
  tokens: Int32Array;
  /** Sequence s is tokens[starts[s] .. starts[s+1]). */
  starts: Int32Array;
  /** First token of sequence s whose hidden state is a training context (the last prompt token for distillation). */
  contextStarts: Int32Array;
  /** hidden[t·H .. t·H + H): the LLM's final-norm hidden state at token t. */
  hidden: Float32Array;
}

interface Sequence {
  ids: number[];
  /** Index (within ids) of the first training context. */
  contextStart: number;
  /** h of every token when already known (sampled sequences), else computed by assemble(). */
  hidden?: Float32Array;
}

/** Sequences decoded together while distilling (enough rows per forward to keep both cores busy). */
const SAMPLING_LANES = 32;

const PREFILL_CHUNK = 64;

/** Final-norm hidden states of every token of `ids`, from causal forwards in chunks (as the engine's prefill). */
export function hiddenStates(loaded: LoadedModel, ids: readonly number[], out: Float32Array, offset: number): void {
  const { model } = loaded;
  const H = model.config.dim;
  if (ids.length > model.contextLength) {
    throw new RangeError(`sequence of ${ids.length} tokens exceeds the context (${model.contextLength})`);
  }
  const cache = model.createCache(ids.length);
  const tokens = new Int32Array(PREFILL_CHUNK);
  const positions = new Int32Array(PREFILL_CHUNK);
  const prefixLengths = new Int32Array(PREFILL_CHUNK);
  try {
    for (let start = 0; start < ids.length; start += PREFILL_CHUNK) {
      const count = Math.min(PREFILL_CHUNK, ids.length - start);
      for (let i = 0; i < count; i++) {
        tokens[i] = ids[start + i];
        positions[i] = start + i;
        prefixLengths[i] = start + i + 1;
      }
      const { hidden } = model.forward(cache, { count, tokens, positions, writeSlot: start, prefixLengths, logits: 'none' });
      out.set(hidden.subarray(0, count * H), offset + start * H);
    }
  } finally {
    cache.free();
  }
}

export interface DistillOptions {
  prompts: readonly string[];
  samples: number;
  temperature: number;
  greedyFraction: number;
  leadIn: number;
  maxTokens: number;
  seed: number;
  onProgress?: (sequences: number, tokens: number) => void;
}

/**
 * Sequence i starts from prompt i mod n; its mode (sampled, or greedy after a sampled lead-in), lead-in length and
 * seed come from one stream seeded with `seed`. Sequences decode in batches of lanes (sample.ts) with their h.
 */
function distillSequences(loaded: LoadedModel, options: DistillOptions): Sequence[] {
  const { tokenizer, model } = loaded;
  if (!tokenizer) throw new RangeError(`distillation needs a tokenizer for ${loaded.path}`);
  const prompts = options.prompts.length > 0 ? options.prompts : [''];
  const plan = createRng(options.seed);
  const jobs: SampleJob[] = [];
  for (let i = 0; i < options.samples; i++) {
    const promptIds = tokenizer.encode(prompts[i % prompts.length], { bos: true }).slice(0, model.contextLength - 2);
    const greedy = plan.nextUniform() < options.greedyFraction;
    const lead = Math.floor(plan.nextUniform() * (options.leadIn + 1));
    const seed = Math.floor(plan.nextUniform() * 0x100000000);
    jobs.push({ promptIds, maxTokens: options.maxTokens, seed, temperature: options.temperature,
      greedyAfter: greedy ? lead : Infinity });
  }
  const sequences: Sequence[] = new Array<Sequence>(jobs.length);
  let done = 0;
  sampleSequences(loaded, jobs, SAMPLING_LANES, (index, sampled) => {
    sequences[index] = { ids: sampled.ids, contextStart: sampled.promptLength - 1, hidden: sampled.hidden };
    options.onProgress?.(++done, 0);
  });
  return sequences;
}

/**
 * Documents of a text file: split at `<|endoftext|>` when the file has it (TinyStories' format), else at blank lines;
 * each encoded with BOS and cut to the model's context.
 */
function textSequences(loaded: LoadedModel, file: string): Sequence[] {
  const { tokenizer, model } = loaded;
  if (!tokenizer) throw new RangeError(`text data needs a tokenizer for ${loaded.path}`);
  const text = readFileSync(file, 'utf8');
  const documents = (text.includes('<|endoftext|>') ? text.split('<|endoftext|>') : text.split(/\n\s*\n/))
    .map((d) => d.trim()).filter((d) => d.length > 0);
  const sequences: Sequence[] = [];
  for (const document of documents) {
    const ids = tokenizer.encode(document, { bos: true }).slice(0, model.contextLength);
    if (ids.length >= 3) sequences.push({ ids, contextStart: 0 });
  }
  if (sequences.length === 0) throw new RangeError(`${file}: no document of at least 3 tokens`);
  return sequences;
}

function assemble(loaded: LoadedModel, sequences: Sequence[], meta: Omit<DatasetMeta, 'sequences' | 'tokens'>,
  onProgress?: (tokens: number) => void): Dataset {
  const H = loaded.model.config.dim;
  const count = sequences.reduce((sum, s) => sum + s.ids.length, 0);
  const tokens = new Int32Array(count);
  const starts = new Int32Array(sequences.length + 1);
  const contextStarts = new Int32Array(sequences.length);
  const hidden = new Float32Array(count * H);
  let at = 0;
  sequences.forEach((sequence, s) => {
    starts[s] = at;
    contextStarts[s] = at + sequence.contextStart;
    tokens.set(sequence.ids, at);
    if (sequence.hidden) hidden.set(sequence.hidden, at * H);
    else hiddenStates(loaded, sequence.ids, hidden, at * H);
    at += sequence.ids.length;
    onProgress?.(at);
  });
  starts[sequences.length] = at;
  return { meta: { ...meta, sequences: sequences.length, tokens: count }, tokens, starts, contextStarts, hidden };
}

export type BuildSpec =
  | ({ kind: 'distill' } & Omit<DistillOptions, 'onProgress'>)
  | { kind: 'text'; file: string };

/** What the dataset's meta records about a spec (compared when a stored dataset is reused). */
export function describeSource(spec: BuildSpec): DatasetSource {
  if (spec.kind === 'text') return { kind: 'text', file: spec.file };
  return {
    kind: 'distill', samples: spec.samples, temperature: spec.temperature, greedyFraction: spec.greedyFraction,
    leadIn: spec.leadIn, maxTokens: spec.maxTokens, seed: spec.seed,
    prompts: { count: spec.prompts.length, digest: digest(spec.prompts.join('\n')) },
  };
}

/** FNV-1a over UTF-16 code units: enough to notice a changed prompt set. */
function digest(text: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < text.length; i++) h = Math.imul(h ^ text.charCodeAt(i), 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

export async function buildDataset(loaded: LoadedModel, spec: BuildSpec,
  onProgress?: (phase: 'sample' | 'hidden', done: number, total: number) => void): Promise<Dataset> {
  const started = performance.now();
  const sequences = spec.kind === 'distill'
    ? distillSequences(loaded, { ...spec, onProgress: (n) => onProgress?.('sample', n, spec.samples) })
    : textSequences(loaded, spec.file);
  const total = sequences.reduce((sum, s) => sum + s.ids.length, 0);
  const dataset = assemble(loaded, sequences, {
    format: 'redrafter-drafter-dataset', version: 1,
    model: { path: loaded.path, bytes: statSync(loaded.path).isFile() ? statSync(loaded.path).size : 0 },
    hiddenSize: loaded.model.config.dim, source: describeSource(spec), seconds: 0,
  }, (done) => onProgress?.('hidden', done, total));
  dataset.meta.seconds = Math.round((performance.now() - started) / 100) / 10;
  return dataset;
}

/** Writes the dataset folder atomically: a temporary folder, fsynced files, then one rename. */
export function writeDataset(dir: string, dataset: Dataset): void {
  const temporary = `${dir}.tmp-${process.pid}`;
  rmSync(temporary, { recursive: true, force: true });
  mkdirSync(temporary, { recursive: true });
  const bytes = (a: Int32Array | Float32Array): Uint8Array =>
    a instanceof Float32Array ? f32Bytes(a) : new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  writeFileAtomic(join(temporary, 'tokens.bin'), [bytes(dataset.tokens)]);
  writeFileAtomic(join(temporary, 'starts.bin'), [bytes(dataset.starts)]);
  writeFileAtomic(join(temporary, 'context-starts.bin'), [bytes(dataset.contextStarts)]);
  writeFileAtomic(join(temporary, 'hidden.bin'), [bytes(dataset.hidden)]);
  writeFileAtomic(join(temporary, 'dataset.json'), [new TextEncoder().encode(JSON.stringify(dataset.meta, null, 2) + '\n')]);
  rmSync(dir, { recursive: true, force: true });
  renameSync(temporary, dir);
}

export function readDatasetMeta(dir: string): DatasetMeta | null {
  const path = join(dir, 'dataset.json');
  if (!existsSync(path)) return null;
  return JSON.parse(readFileSync(path, 'utf8')) as DatasetMeta;
}

export function readDataset(dir: string): Dataset {
  const meta = readDatasetMeta(dir);
  if (!meta || meta.format !== 'redrafter-drafter-dataset' || meta.version !== 1) {
    throw new RangeError(`${dir}: not a drafter dataset (dataset.json missing or of another format)`);
  }
  const ints = (name: string, length: number): Int32Array => {
    const buffer = readFileSync(join(dir, name));
    if (buffer.length !== length * 4) throw new RangeError(`${join(dir, name)}: expected ${length * 4} bytes, got ${buffer.length}`);
    return new Int32Array(buffer.buffer.slice(buffer.byteOffset, buffer.byteOffset + buffer.length));
  };
  const hiddenBytes = readFileSync(join(dir, 'hidden.bin'));
  if (hiddenBytes.length !== meta.tokens * meta.hiddenSize * 4) {
    throw new RangeError(`${join(dir, 'hidden.bin')}: expected ${meta.tokens * meta.hiddenSize * 4} bytes, got ${hiddenBytes.length}`);
  }
  const hidden = new Float32Array(hiddenBytes.buffer.slice(hiddenBytes.byteOffset, hiddenBytes.byteOffset + hiddenBytes.length));
  return {
    meta,
    tokens: ints('tokens.bin', meta.tokens),
    starts: ints('starts.bin', meta.sequences + 1),
    contextStarts: ints('context-starts.bin', meta.sequences),
    hidden,
  };
}

/**
 * Training positions: every token p of a sequence from its first context on that has at least one target
 * (x_{p+1} is the drafter's first input, x_{p+2} its first target); `ends[k]` is the end of position k's sequence.
 */
export function trainingPositions(dataset: Dataset): { positions: Int32Array; ends: Int32Array } {
  let count = 0;
  const S = dataset.meta.sequences;
  for (let s = 0; s < S; s++) count += Math.max(0, dataset.starts[s + 1] - 2 - dataset.contextStarts[s]);
  const positions = new Int32Array(count);
  const ends = new Int32Array(count);
  let k = 0;
  for (let s = 0; s < S; s++) {
    for (let p = dataset.contextStarts[s]; p + 2 < dataset.starts[s + 1]; p++) {
      positions[k] = p;
      ends[k++] = dataset.starts[s + 1];
    }
  }
  return { positions, ends };
}
