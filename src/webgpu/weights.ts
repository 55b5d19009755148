/// <reference types="@webgpu/types" />
// Checkpoint tensors onto the GPU. Projection matrices keep the width the file stores them in (f16 and bf16 as
// 16-bit words, Q8_0 / Q4_0 as their raw blocks); Q4_K / Q6_K are re-quantized to Q8_0 at load, as model.ts does.
// Norm weights, biases and the token embedding are f32.

import { FormatError } from '../formats/errors.js';
import { quantize, type GgmlTypeName } from '../formats/quant.js';
import type { Checkpoint } from '../model/checkpoint.js';
import { matrixRowBytes, type GpuMatrixEncoding } from './matmul.js';
import { bytesOf, uploadBuffer } from './pipelines.js';

/** 'native': each matrix as the file stores it (see above); an encoding: every matrix converted to it at load. */
export type WeightEncodingChoice = 'native' | GpuMatrixEncoding;

export interface GpuMatrix {
  readonly buffer: GPUBuffer;
  readonly encoding: GpuMatrixEncoding;
  readonly rows: number;
  readonly columns: number;
  /** Bytes of the encoded matrix (what one single-row product reads). */
  readonly bytes: number;
}

const GGML_NAME: Readonly<Record<GpuMatrixEncoding, GgmlTypeName>> = {
  f32: 'F32', f16: 'F16', bf16: 'BF16', q8_0: 'Q8_0', q4_0: 'Q4_0',
};

export function checkShape(checkpoint: Checkpoint, name: string, shape: readonly number[]): void {
  const got = checkpoint.tensors.shape(name);
  if (!got) {
    throw new FormatError({ file: checkpoint.tensors.origin, field: `tensor "${name}"`,
      expected: `shape [${shape.join(', ')}]`, got: 'missing' });
  }
  if (got.length !== shape.length || got.some((d, i) => d !== shape[i])) {
    throw new FormatError({ file: checkpoint.tensors.origin, field: `tensor "${name}"`,
      expected: `shape [${shape.join(', ')}]`, got: `[${got.join(', ')}]` });
  }
}

/** The encoding and bytes matrix `name` ([rows, columns]) will have on the GPU. */
export function encodeMatrix(checkpoint: Checkpoint, name: string, rows: number, columns: number,
  choice: WeightEncodingChoice): { encoding: GpuMatrixEncoding; bytes: Uint8Array } {
  const blocksFit = columns % 32 === 0;
  const convert = (encoding: GpuMatrixEncoding): { encoding: GpuMatrixEncoding; bytes: Uint8Array } => {
    const quantized = encoding === 'q8_0' || encoding === 'q4_0';
    // Rows that are not whole 32-blocks stay f32, as in model.ts.
    const target = quantized && !blocksFit ? 'f32' : encoding;
    const values = checkpoint.tensors.read(name);
    return { encoding: target, bytes: target === 'f32' ? bytesOf(values) : quantize(GGML_NAME[target], values) };
  };
  if (choice !== 'native') return convert(choice);
  const raw = checkpoint.tensors.raw?.(name);
  const stored: Readonly<Partial<Record<GgmlTypeName, GpuMatrixEncoding>>> = { F16: 'f16', BF16: 'bf16', Q8_0: 'q8_0', Q4_0: 'q4_0' };
  const encoding = raw === undefined ? undefined : stored[raw.type];
  if (raw !== undefined && encoding !== undefined && (blocksFit || encoding === 'f16' || encoding === 'bf16')) {
    const bytes = raw.bytes();
    const expected = rows * matrixRowBytes(encoding, columns);
    if (bytes.length !== expected) {
      throw new FormatError({ file: checkpoint.tensors.origin, field: `tensor "${name}"`,
        expected: `${expected} bytes of ${raw.type}`, got: `${bytes.length} bytes` });
    }
    return { encoding, bytes };
  }
  if (raw !== undefined && (raw.type === 'Q4_K' || raw.type === 'Q6_K') && blocksFit) return convert('q8_0');
  return convert('f32');
}

export function uploadMatrix(device: GPUDevice, checkpoint: Checkpoint, name: string, rows: number, columns: number,
  choice: WeightEncodingChoice): GpuMatrix {
  checkShape(checkpoint, name, [rows, columns]);
  const { encoding, bytes } = encodeMatrix(checkpoint, name, rows, columns, choice);
  const limit = device.limits.maxStorageBufferBindingSize;
  if (bytes.length > limit) {
    throw new RangeError(`tensor "${name}" (${encoding}, ${bytes.length} bytes) exceeds this device's largest storage ` +
      `binding (${limit} bytes)`);
  }
  return { buffer: uploadBuffer(device, bytes, name), encoding, rows, columns, bytes: bytes.length };
}

export function uploadVector(device: GPUDevice, checkpoint: Checkpoint, name: string, shape: readonly number[]): GPUBuffer {
  checkShape(checkpoint, name, shape);
  return uploadBuffer(device, bytesOf(checkpoint.tensors.read(name)), name);
}
