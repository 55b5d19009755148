// llama2.c checkpoint ("legacy" version 0, the format run.c reads): seven int32 header fields, then float32 tensors
// stacked per kind over all layers. See ../shared/models/README.md. Tensors come back under canonical names with
// per-layer slices, so the model layer never sees the stacked layout.

import { FormatError } from './errors.js';
import { f32Bytes, readF32, readInto, withFile, writeFileAtomic } from './io.js';

export interface Llama2cConfig {
  readonly dim: number;
  readonly hiddenDim: number;
  readonly nLayers: number;
  readonly nHeads: number;
  readonly nKvHeads: number;
  readonly vocabSize: number;
  readonly seqLen: number;
  /** The classifier is the token embedding (a non-negative vocab_size in the header). */
  readonly sharedClassifier: boolean;
}

export interface F32Tensor {
  readonly shape: number[];
  readonly data: Float32Array;
}

export interface Llama2cCheckpoint {
  readonly config: Llama2cConfig;
  readonly tensors: Map<string, F32Tensor>;
}

const HEADER_BYTES = 7 * 4;
// "ak42" read as a little-endian int32: the magic of llama2.c's newer export versions, which run.c does not read.
const AK42_MAGIC = 0x616b3432;

// Upper bounds well above any released Llama-family model; they catch a non-checkpoint file early with a clear
// message instead of a confusing size mismatch.
const HEADER_LIMITS: ReadonlyArray<readonly [keyof Llama2cConfig, string, number]> = [
  ['dim', 'dim', 1 << 16],
  ['hiddenDim', 'hidden_dim', 1 << 18],
  ['nLayers', 'n_layers', 1 << 10],
  ['nHeads', 'n_heads', 1 << 10],
  ['nKvHeads', 'n_kv_heads', 1 << 10],
  ['vocabSize', 'vocab_size', 1 << 22],
  ['seqLen', 'seq_len', 1 << 24],
];

interface LayoutEntry {
  readonly name: string;
  readonly shape: number[];
  /** Legacy RoPE tables: present in the file, not returned (written as zeros). */
  readonly skip: boolean;
}

function count(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** The tensors of a checkpoint in file order, one entry per layer slice. */
export function llama2cLayout(config: Llama2cConfig): LayoutEntry[] {
  const { dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, seqLen } = config;
  const headSize = dim / nHeads;
  const kvDim = (dim * nKvHeads) / nHeads;
  const out: LayoutEntry[] = [{ name: 'token_embd', shape: [vocabSize, dim], skip: false }];
  const perLayer: ReadonlyArray<readonly [string, number[]]> = [
    ['attn_norm', [dim]],
    ['wq', [nHeads * headSize, dim]],
    ['wk', [kvDim, dim]],
    ['wv', [kvDim, dim]],
    ['wo', [dim, dim]],
    ['ffn_norm', [dim]],
    ['w1', [hiddenDim, dim]],
    ['w2', [dim, hiddenDim]],
    ['w3', [hiddenDim, dim]],
  ];
  for (const [kind, shape] of perLayer) {
    for (let l = 0; l < nLayers; l++) out.push({ name: `layers.${l}.${kind}`, shape, skip: false });
  }
  out.push({ name: 'norm', shape: [dim], skip: false });
  out.push({ name: 'freq_cis_real', shape: [seqLen, headSize / 2], skip: true });
  out.push({ name: 'freq_cis_imag', shape: [seqLen, headSize / 2], skip: true });
  if (!config.sharedClassifier) out.push({ name: 'output', shape: [vocabSize, dim], skip: false });
  return out;
}

/** Total file size implied by a config. */
export function llama2cFileSize(config: Llama2cConfig): number {
  return HEADER_BYTES + 4 * llama2cLayout(config).reduce((sum, e) => sum + count(e.shape), 0);
}

function describeConfig(c: Llama2cConfig): string {
  return (
    `dim ${c.dim}, hidden ${c.hiddenDim}, ${c.nLayers} layers, ${c.nHeads} heads, ${c.nKvHeads} kv heads, ` +
    `vocab ${c.vocabSize}, seq ${c.seqLen}, ${c.sharedClassifier ? 'shared' : 'separate'} classifier`
  );
}

/** Checks a config for plausibility; `file` is only used in error messages. */
export function validateLlama2cConfig(config: Llama2cConfig, file: string): void {
  for (const [key, headerName, max] of HEADER_LIMITS) {
    const v = config[key];
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > max) {
      throw new FormatError({
        file,
        field: `header.${headerName}`,
        expected: `an integer in 1..${max}`,
        got: String(v),
        detail: 'not a llama2.c checkpoint, or a corrupt header',
      });
    }
  }
  const { dim, nHeads, nKvHeads } = config;
  if (dim % nHeads !== 0) {
    throw new FormatError({ file, field: 'header.dim', expected: `a multiple of n_heads (${nHeads})`, got: String(dim) });
  }
  if ((dim / nHeads) % 2 !== 0) {
    throw new FormatError({
      file,
      field: 'header.dim',
      expected: `an even head size (dim / n_heads) for RoPE pairs`,
      got: `head size ${dim / nHeads}`,
    });
  }
  if (nKvHeads > nHeads || nHeads % nKvHeads !== 0) {
    throw new FormatError({
      file,
      field: 'header.n_kv_heads',
      expected: `a divisor of n_heads (${nHeads})`,
      got: String(nKvHeads),
    });
  }
}

/** Reads a llama2.c checkpoint; every tensor gets its own (aligned) Float32Array. */
export function readLlama2cCheckpoint(path: string): Llama2cCheckpoint {
  return withFile(path, (file) => {
    if (file.size < HEADER_BYTES) {
      throw new FormatError({
        file: path,
        field: 'header',
        expected: `${HEADER_BYTES} bytes (seven int32) at offset 0`,
        got: String(file.size),
        detail: 'file truncated',
      });
    }
    const headerBytes = new Uint8Array(HEADER_BYTES);
    readInto(file, headerBytes, 0);
    const view = new DataView(headerBytes.buffer);
    const h = (i: number): number => view.getInt32(4 * i, true);
    if (h(0) === AK42_MAGIC) {
      throw new FormatError({
        file: path,
        field: 'header',
        expected: 'a legacy (version 0) llama2.c checkpoint',
        got: 'the "ak42" magic of a newer llama2.c export version',
        detail: 're-export with export.py --version 0',
      });
    }
    const rawVocab = h(5);
    const config: Llama2cConfig = {
      dim: h(0),
      hiddenDim: h(1),
      nLayers: h(2),
      nHeads: h(3),
      nKvHeads: h(4),
      vocabSize: Math.abs(rawVocab),
      seqLen: h(6),
      sharedClassifier: rawVocab > 0,
    };
    validateLlama2cConfig(config, path);

    const layout = llama2cLayout(config);
    const expectedSize = llama2cFileSize(config);
    if (file.size < expectedSize) {
      let offset = HEADER_BYTES;
      for (const entry of layout) {
        const bytes = 4 * count(entry.shape);
        if (offset + bytes > file.size) {
          throw new FormatError({
            file: path,
            field: `tensor "${entry.name}"`,
            expected: `${bytes} bytes at offset ${offset}`,
            got: String(Math.max(0, file.size - offset)),
            detail: `file truncated: ${file.size} bytes, header implies ${expectedSize}`,
          });
        }
        offset += bytes;
      }
    }
    if (file.size > expectedSize) {
      const extra = file.size - expectedSize;
      const looksUnshared = config.sharedClassifier && extra === 4 * config.vocabSize * config.dim;
      throw new FormatError({
        file: path,
        field: 'file size',
        expected: `${expectedSize} bytes (${describeConfig(config)})`,
        got: `${file.size} bytes (${extra} extra)`,
        detail: looksUnshared
          ? 'the extra bytes are exactly one [vocab, dim] classifier: vocab_size should be negative'
          : 'trailing data, or a header that does not match the tensors',
      });
    }

    const tensors = new Map<string, F32Tensor>();
    let offset = HEADER_BYTES;
    for (const entry of layout) {
      const n = count(entry.shape);
      if (!entry.skip) tensors.set(entry.name, { shape: [...entry.shape], data: readF32(file, offset, n, `tensor "${entry.name}"`) });
      offset += 4 * n;
    }
    return { config, tensors };
  });
}

/**
 * Writes a llama2.c checkpoint from canonical tensor names (the inverse of readLlama2cCheckpoint). The legacy RoPE
 * tables are written as zeros: run.c and this project compute RoPE on the fly.
 */
export function writeLlama2cCheckpoint(path: string, config: Llama2cConfig, tensors: ReadonlyMap<string, F32Tensor>): void {
  validateLlama2cConfig(config, path);
  const layout = llama2cLayout(config);
  const expectedNames = new Set(layout.filter((e) => !e.skip).map((e) => e.name));
  for (const name of tensors.keys()) {
    if (!expectedNames.has(name)) {
      throw new FormatError({
        file: path,
        field: `tensor "${name}"`,
        expected: `one of the llama2.c tensors (${config.sharedClassifier ? 'no "output": classifier is shared' : 'token_embd, layers.N.*, norm, output'})`,
        got: 'an unknown or unexpected tensor name',
      });
    }
  }
  for (const entry of layout) {
    if (entry.skip) continue;
    const t = tensors.get(entry.name);
    const n = count(entry.shape);
    if (t === undefined) {
      throw new FormatError({ file: path, field: `tensor "${entry.name}"`, expected: `shape [${entry.shape.join(', ')}]`, got: 'nothing (missing)' });
    }
    if (t.shape.length !== entry.shape.length || t.shape.some((d, i) => d !== entry.shape[i]) || t.data.length !== n) {
      throw new FormatError({
        file: path,
        field: `tensor "${entry.name}"`,
        expected: `shape [${entry.shape.join(', ')}] with ${n} floats`,
        got: `shape [${t.shape.join(', ')}] with ${t.data.length} floats`,
      });
    }
  }

  const header = new DataView(new ArrayBuffer(HEADER_BYTES));
  const fields = [
    config.dim,
    config.hiddenDim,
    config.nLayers,
    config.nHeads,
    config.nKvHeads,
    config.sharedClassifier ? config.vocabSize : -config.vocabSize,
    config.seqLen,
  ];
  fields.forEach((v, i) => header.setInt32(4 * i, v, true));

  function* chunks(): Generator<Uint8Array> {
    yield new Uint8Array(header.buffer);
    for (const entry of layout) {
      if (entry.skip) {
        yield new Uint8Array(4 * count(entry.shape));
      } else {
        const t = tensors.get(entry.name);
        if (t !== undefined) yield f32Bytes(t.data);
      }
    }
  }
  writeFileAtomic(path, chunks());
}
