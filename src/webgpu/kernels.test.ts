// Each WGSL kernel against the plain TypeScript reference (src/kernels/reference.ts), and its batch invariance: a
// row computed alone or among other rows, at any place, gives the same bits.

import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import * as reference from '../kernels/reference.js';
import { assertClose, randomFloats, seeded } from '../kernels/testing.js';
import { quantize } from '../formats/quant.js';
import { fillRopeTable } from '../model/rope.js';
import { BATCH_FIELDS } from './attention.js';
import { CPU_KERNEL_SHAPE, GPU_KERNEL_SHAPE, MATMUL_ACCUMULATE, MATMUL_BIAS, matmulColumns, matmulVectorized,
  type GpuMatrixEncoding, type KernelShape } from './matmul.js';
import { bytesOf, createPipelines, PARAM_SLOT_BYTES, uploadBuffer, workgroupGrid } from './pipelines.js';
import { requireDevice, testDevice } from './test-device.js';

const device = await testDevice();
after(() => device.gpu?.destroy());
const skip = device.skip;
/** Both shapes are checked: the GPU one is what real GPUs run, the CPU one what the model tests run here. */
const SHAPES: readonly KernelShape[] = [GPU_KERNEL_SHAPE, CPU_KERNEL_SHAPE];

/** Runs one kernel: params (u32 words, f32 at the given word indices), then the buffers in binding order. */
async function runKernel(pipeline: GPUComputePipeline, params: number[], floatWords: number[], buffers: GPUBuffer[],
  grid: [number, number], read: GPUBuffer, floats: number): Promise<Float32Array> {
  const gpu = requireDevice(device).device;
  const words = new ArrayBuffer(PARAM_SLOT_BYTES);
  const u32 = new Uint32Array(words);
  const f32 = new Float32Array(words);
  params.forEach((v, i) => (floatWords.includes(i) ? (f32[i] = v) : (u32[i] = v)));
  const uniform = gpu.createBuffer({ size: PARAM_SLOT_BYTES, usage: GPUBufferUsage.UNIFORM | GPUBufferUsage.COPY_DST });
  gpu.queue.writeBuffer(uniform, 0, words);
  const group = gpu.createBindGroup({ layout: pipeline.getBindGroupLayout(0),
    entries: [uniform, ...buffers].map((buffer, binding) => ({ binding, resource: { buffer } })) });
  const staging = gpu.createBuffer({ size: floats * 4, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const encoder = gpu.createCommandEncoder();
  const pass = encoder.beginComputePass();
  pass.setPipeline(pipeline);
  pass.setBindGroup(0, group);
  pass.dispatchWorkgroups(grid[0], grid[1]);
  pass.end();
  encoder.copyBufferToBuffer(read, 0, staging, 0, floats * 4);
  gpu.queue.submit([encoder.finish()]);
  await staging.mapAsync(GPUMapMode.READ);
  const out = new Float32Array(staging.getMappedRange().slice(0));
  staging.unmap();
  for (const b of [uniform, staging]) b.destroy();
  return out;
}

const store = (data: Float32Array | Int32Array | Uint32Array | Uint8Array): GPUBuffer =>
  uploadBuffer(requireDevice(device).device, data instanceof Uint8Array ? data : bytesOf(data), 'test', GPUBufferUsage.COPY_SRC);

function bits(a: Float32Array): Uint32Array {
  return new Uint32Array(a.buffer, a.byteOffset, a.length);
}

/** Weights of an encoding and their exact f32 values. */
function encodeWeights(encoding: GpuMatrixEncoding, values: Float32Array, outDim: number, inDim: number): { bytes: Uint8Array; exact: Float32Array } {
  switch (encoding) {
    case 'f32': return { bytes: bytesOf(values), exact: values };
    case 'f16': case 'bf16': {
      const bytes = quantize(encoding === 'f16' ? 'F16' : 'BF16', values);
      const halves = new Uint16Array(bytes.buffer, 0, values.length);
      const exact = Float32Array.from(halves, (h) => encoding === 'f16' ? reference.halfToFloat(h)
        : new Float32Array(new Uint32Array([h << 16]).buffer)[0]);
      return { bytes, exact };
    }
    case 'q8_0': case 'q4_0': {
      const bytes = quantize(encoding === 'q8_0' ? 'Q8_0' : 'Q4_0', values);
      return { bytes, exact: reference.dequantizeWeights(encoding, bytes, outDim, inDim) };
    }
  }
}

test('matmul, every encoding: the reference product with the exact weights; bias and accumulate; rows alone give the same bits',
  { skip }, async () => {
    for (const shape of SHAPES) {
    const pipelines = createPipelines(requireDevice(device).device, shape);
    const rand = seeded(7);
    const rows = 6;
    for (const encoding of ['f32', 'f16', 'bf16', 'q8_0', 'q4_0'] as const) {
      // 96 inputs: whole blocks and vec4 steps; 70: the scalar form of the float encodings.
      for (const inDim of encoding.startsWith('q') ? [96] : [96, 70]) {
        const outDim = 37;
        const { bytes, exact } = encodeWeights(encoding, randomFloats(rand, outDim * inDim, 0.3), outDim, inDim);
        const x = randomFloats(rand, rows * inDim);
        const bias = randomFloats(rand, outDim);
        const start = randomFloats(rand, rows * outDim);
        const expected = new Float32Array(rows * outDim);
        reference.matmulBias(expected, x, exact, bias, rows, inDim, outDim);
        for (let i = 0; i < expected.length; i++) expected[i] += start[i];
        const vectorized = matmulVectorized(encoding, inDim);
        const pipeline = pipelines.matmul(encoding, vectorized);
        const weights = store(bytes);
        const run = async (count: number, firstRow: number): Promise<Float32Array> => {
          const out = store(start.slice(firstRow * outDim, (firstRow + count) * outDim));
          const grid = workgroupGrid(Math.ceil(outDim / matmulColumns(shape)), 65535);
          const result = await runKernel(pipeline, [count, inDim, outDim, firstRow * inDim, 0, MATMUL_BIAS | MATMUL_ACCUMULATE, grid[0]],
            [], [store(x), weights, store(bias), out], grid, out, count * outDim);
          return result;
        };
        const all = await run(rows, 0);
        const what = `${encoding}, inDim ${inDim}${vectorized ? '' : ' (scalar)'}, workgroup ${shape.workgroup}`;
        assertClose(all, expected, 1e-5, 1e-5, what);
        for (const row of [0, 3, 5]) {
          assert.deepEqual(bits(await run(1, row)), bits(all.slice(row * outDim, (row + 1) * outDim)), `${what}: row ${row} alone`);
        }
        assert.deepEqual(bits(await run(3, 2)), bits(all.slice(2 * outDim, 5 * outDim)), `${what}: rows 2..4`);
      }
    }
    }
  });

test('rmsnorm, rope (pairs and halves), swiglu match the reference', { skip }, async () => {
  for (const shape of SHAPES) {
  const pipelines = createPipelines(requireDevice(device).device, shape);
  const size = shape.workgroup;
  const rand = seeded(3);
  const rows = 3;
  const dim = 300;
  const x = randomFloats(rand, rows * dim, 2);
  const weight = randomFloats(rand, dim);
  const expectedNorm = new Float32Array(rows * dim);
  reference.rmsnorm(expectedNorm, x, weight, rows, dim, 1e-5);
  const out = store(new Float32Array(rows * dim));
  assertClose(await runKernel(pipelines.kernel('rmsnorm'), [rows, dim, 1e-5], [2], [store(x), store(weight), out], [rows, 1], out,
    rows * dim), expectedNorm, 1e-5, 1e-5, 'rmsnorm');

  const heads = 3;
  const headDim = 8;
  const positions = Int32Array.of(0, 5, 17);
  const table = new Float32Array(32 * headDim);
  fillRopeTable(table, 32, headDim, 10000, null);
  for (const layout of ['pairs', 'halves'] as const) {
    const offset = 4;
    const values = randomFloats(rand, offset + rows * heads * headDim);
    const expected = values.slice();
    reference.rope(expected.subarray(offset), rows, heads, headDim, positions, table, layout);
    const target = store(values);
    const pairs = rows * heads * headDim / 2;
    const grid = workgroupGrid(Math.ceil(pairs / size), 65535);
    assertClose(await runKernel(pipelines.kernel('rope'), [rows, heads, headDim, layout === 'pairs' ? 0 : 1, offset, grid[0], 0], [],
      [store(positions), store(table), target], grid, target, values.length), expected, 1e-6, 1e-6, `rope ${layout}`);
  }

  const n = 500;
  const gate = randomFloats(rand, n, 4);
  const up = randomFloats(rand, n);
  const expected = new Float32Array(n);
  reference.siluMul(expected, gate, up, n);
  const gateBuffer = store(gate);
  const grid = workgroupGrid(Math.ceil(n / size), 65535);
  assertClose(await runKernel(pipelines.kernel('swiglu'), [n, grid[0]], [], [store(up), gateBuffer], grid, gateBuffer, n),
    expected, 1e-6, 1e-5, 'swiglu');
  }
});

test('argmax: the first largest value of each row', { skip }, async () => {
  for (const shape of SHAPES) {
  const pipelines = createPipelines(requireDevice(device).device, shape);
  const n = 1000;
  const logits = randomFloats(seeded(5), 3 * n);
  logits[123] = 5; logits[700] = 5; // a tie: the lower index wins
  logits[n + 999] = 9;
  logits.fill(-Infinity, 2 * n, 3 * n);
  logits[2 * n + 512] = -1e30;
  const ids = store(new Uint32Array(3));
  const result = await runKernel(pipelines.kernel('argmax'), [3, n], [], [store(logits), ids], [3, 1], ids, 3);
  assert.deepEqual(Array.from(new Uint32Array(result.buffer)), [123, 999, 512], `workgroup ${shape.workgroup}`);
  }
});

test('attention over cache prefix + listed slots matches the reference; a query alone gives the same bits', { skip }, async () => {
  for (const shape of SHAPES) {
  const pipelines = createPipelines(requireDevice(device).device, shape);
  const rand = seeded(11);
  const heads = 4;
  const kvHeads = 2;
  const headDim = 16;
  const kvDim = kvHeads * headDim;
  const capacity = 150;
  const keys = randomFloats(rand, capacity * kvDim);
  const values = randomFloats(rand, capacity * kvDim);
  // Query 0: a long prefix (more keys than threads); 1: prefix then extras out of order; 2: extras only.
  const queries = [
    { prefix: 140, extras: [] as number[] },
    { prefix: 10, extras: [120, 100, 149] },
    { prefix: 0, extras: [7, 3] },
  ];
  const rows = queries.length;
  const q = randomFloats(rand, rows * heads * headDim);
  const expected = new Float32Array(rows * heads * headDim);
  reference.attention(expected, q, queries.map((query) => ({ k: keys, v: values, prefixLength: query.prefix,
    extraSlots: Int32Array.from(query.extras) })), heads, kvHeads, headDim, 1 / Math.sqrt(headDim));
  const run = async (selected: number[]): Promise<Float32Array> => {
    const stride = selected.length;
    const extraList = selected.flatMap((r) => queries[r].extras);
    const batch = new Uint32Array(BATCH_FIELDS.extraSlots * stride + Math.max(1, extraList.length));
    let at = 0;
    selected.forEach((r, i) => {
      batch[BATCH_FIELDS.prefix * stride + i] = queries[r].prefix;
      batch[BATCH_FIELDS.extraStart * stride + i] = at;
      batch[BATCH_FIELDS.extraCount * stride + i] = queries[r].extras.length;
      at += queries[r].extras.length;
    });
    batch.set(extraList, BATCH_FIELDS.extraSlots * stride);
    const cache = new Float32Array(2 * capacity * kvDim);
    cache.set(keys);
    cache.set(values, capacity * kvDim);
    const qRows = new Float32Array(selected.length * heads * headDim);
    selected.forEach((r, i) => qRows.set(q.subarray(r * heads * headDim, (r + 1) * heads * headDim), i * heads * headDim));
    const out = store(new Float32Array(qRows.length));
    const maxKeys = Math.max(...selected.map((r) => queries[r].prefix + queries[r].extras.length));
    const grid = workgroupGrid(selected.length * heads, 65535);
    return runKernel(pipelines.kernel('attention'),
      [selected.length, heads, kvHeads, headDim, 1 / Math.sqrt(headDim), capacity * kvDim, stride, maxKeys, grid[0], 0], [4],
      [store(qRows), store(cache), store(batch), store(new Float32Array(selected.length * heads * maxKeys)), out], grid, out, qRows.length);
  };
  const all = await run([0, 1, 2]);
  assertClose(all, expected, 1e-5, 1e-5, 'attention');
  const width = heads * headDim;
  for (const r of [0, 1, 2]) {
    assert.deepEqual(bits(await run([r])), bits(all.slice(r * width, (r + 1) * width)), `query ${r} alone`);
  }
  assert.ok(shape.workgroup < 140, 'the long query spans more keys than a workgroup has threads');
  }
});
