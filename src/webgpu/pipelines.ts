/// <reference types="@webgpu/types" />
// Compiled kernels (one compute pipeline per WGSL module, compiled on first use) and the uniform blocks that carry
// each kernel's sizes. Every dispatch of a forward reads its sizes from its own 256-byte slot of one uniform buffer,
// written once per forward, so a forward is one buffer write, one batch write and one submission.

import { attentionShader } from './attention.js';
import { matmulShader, type GpuMatrixEncoding, type KernelShape } from './matmul.js';
import { rowKernelShader, type RowKernelName } from './row-kernels.js';
import { draftKernelShader, type DraftKernelName } from './draft-kernels.js';

export type KernelName = RowKernelName | DraftKernelName | 'attention';

export interface Pipelines {
  readonly shape: KernelShape;
  kernel(name: KernelName): GPUComputePipeline;
  matmul(encoding: GpuMatrixEncoding, vectorized: boolean): GPUComputePipeline;
}

const isDraftKernel = (name: KernelName): name is DraftKernelName => name.startsWith('draft-');

export function createPipelines(device: GPUDevice, shape: KernelShape): Pipelines {
  const compiled = new Map<string, GPUComputePipeline>();
  const compile = (key: string, code: string): GPUComputePipeline => {
    let pipeline = compiled.get(key);
    if (pipeline === undefined) {
      const module = device.createShaderModule({ label: key, code });
      pipeline = device.createComputePipeline({ label: key, layout: 'auto', compute: { module, entryPoint: 'main' } });
      compiled.set(key, pipeline);
    }
    return pipeline;
  };
  return {
    shape,
    kernel: (name) => compile(name, name === 'attention' ? attentionShader(shape)
      : isDraftKernel(name) ? draftKernelShader(name, shape) : rowKernelShader(name, shape)),
    matmul: (encoding, vectorized) => compile(`matmul-${encoding}${vectorized ? '' : '-scalar'}`,
      matmulShader(encoding, vectorized, shape)),
  };
}

/** Bytes between uniform slots: WebGPU's minUniformBufferOffsetAlignment is at most 256. */
export const PARAM_SLOT_BYTES = 256;

export interface ParamSlots {
  readonly buffer: GPUBuffer;
  /** The slot's words as u32 (sizes, offsets) and as f32 (eps, scale): two views of the same 64 words. */
  u32(slot: number): Uint32Array;
  f32(slot: number): Float32Array;
  /** Uploads every slot (queued before the next submission). */
  flush(): void;
  /** The binding of one slot. */
  binding(slot: number): GPUBufferBinding;
}

export function createParamSlots(device: GPUDevice, count: number, label: string): ParamSlots {
  const host = new ArrayBuffer(count * PARAM_SLOT_BYTES);
  const buffer = device.createBuffer({ label, size: host.byteLength, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  const words = PARAM_SLOT_BYTES / 4;
  const u32 = Array.from({ length: count }, (_, slot) => new Uint32Array(host, slot * PARAM_SLOT_BYTES, words));
  const f32 = Array.from({ length: count }, (_, slot) => new Float32Array(host, slot * PARAM_SLOT_BYTES, words));
  return {
    buffer,
    u32: (slot) => u32[slot],
    f32: (slot) => f32[slot],
    flush: () => device.queue.writeBuffer(buffer, 0, host),
    binding: (slot) => ({ buffer, offset: slot * PARAM_SLOT_BYTES, size: PARAM_SLOT_BYTES }),
  };
}

/**
 * Workgroup counts (x, y) covering `groups` workgroups within the per-dimension limit (65535 by default); kernels
 * recover the flat index as x + y·groupsX and skip the excess.
 */
export function workgroupGrid(groups: number, perDimension: number): [number, number] {
  const x = Math.max(1, Math.min(groups, perDimension));
  return [x, Math.ceil(groups / x)];
}

/** A storage buffer holding `bytes` (padded to 4), uploaded through a mapping at creation. */
export function uploadBuffer(device: GPUDevice, bytes: Uint8Array, label: string, usage = 0): GPUBuffer {
  const size = Math.max(16, Math.ceil(bytes.length / 4) * 4);
  const buffer = device.createBuffer({ label, size, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_DST | usage,
    mappedAtCreation: true });
  new Uint8Array(buffer.getMappedRange()).set(bytes);
  buffer.unmap();
  return buffer;
}

export function bytesOf(data: Float32Array | Int32Array | Uint32Array): Uint8Array {
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}
