// The worker pool: workers take part, results do not depend on who computed a share, errors surface on the caller,
// the memory can grow under running workers, and close() stops them so the process can exit.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { describe, it } from 'node:test';
import { CONTROL, CONTROL_OFFSET } from './dispatch.js';
import { createKernels, type Kernels } from './index.js';
import { assertSameBits, put, randomFloats, read, seeded } from './testing.js';

function workerShares(k: Kernels): number {
  return Atomics.load(new Int32Array(k.heap.memory.buffer, CONTROL_OFFSET, CONTROL.ints), CONTROL.workerShares);
}

function failedShares(k: Kernels): number {
  return Atomics.load(new Int32Array(k.heap.memory.buffer, CONTROL_OFFSET, CONTROL.ints), CONTROL.failed);
}

describe('worker pool', () => {
  it('workers compute shares of large calls', async () => {
    const k = await createKernels({ threads: 2 });
    const [rows, inDim, outDim] = [8, 256, 512];
    const px = put(k.heap, randomFloats(seeded(1), rows * inDim));
    const pw = put(k.heap, randomFloats(seeded(2), outDim * inDim));
    const out = k.heap.alloc(rows * outDim * 4);
    // Time-bounded rather than count-bounded: on a loaded machine the worker may not get a core for a while.
    const start = performance.now();
    while (workerShares(k) === 0 && performance.now() - start < 5000) k.matmul(out, px, pw, rows, inDim, outDim);
    assert.ok(workerShares(k) > 0, 'no share was computed by a worker');
    await k.close();
  });

  it('gives single-thread bits under oversubscription (late workers, shares taken over by the caller)', async () => {
    // Four threads on fewer cores: workers are often descheduled mid-spin, so claims race with the caller.
    const one = await createKernels({ threads: 1 });
    const four = await createKernels({ threads: 4, minParallelWork: 0 });
    const rand = seeded(9);
    const shapes = Array.from({ length: 40 }, (_, i) => [1 + (i % 7), 16 + ((i * 37) % 200), 8 + ((i * 53) % 120)]);
    const data = shapes.map(([rows, inDim, outDim]) => [randomFloats(rand, rows * inDim), randomFloats(rand, outDim * inDim)]);
    const run = (k: Kernels): Float32Array[] => {
      const ptrs = data.map(([x, w]) => [put(k.heap, x), put(k.heap, w)]);
      const outs = shapes.map(([rows, , outDim]) => k.heap.alloc(rows * outDim * 4));
      // Back to back, several rounds, so that calls overlap workers still finishing their previous spin or wake-up.
      for (let round = 0; round < 5; round++) {
        shapes.forEach(([rows, inDim, outDim], i) => {
          k.matmul(outs[i], ptrs[i][0], ptrs[i][1], rows, inDim, outDim);
          k.siluMul(outs[i], outs[i], outs[i], rows * outDim);
        });
      }
      return shapes.map(([rows, , outDim], i) => read(k.heap, outs[i], rows * outDim));
    };
    const expected = run(one);
    const got = run(four);
    got.forEach((g, i) => assertSameBits(g, expected[i], `call ${i}`));
    await one.close();
    await four.close();
  });

  it('small calls stay on the calling thread', async () => {
    const k = await createKernels({ threads: 2 });
    const px = put(k.heap, randomFloats(seeded(3), 64));
    const pw = put(k.heap, Float32Array.from({ length: 64 }, () => 1));
    for (let i = 0; i < 100; i++) {
      k.rmsnorm(px, px, pw, 1, 64, 1e-5);
      k.add(px, px, pw, 64);
    }
    assert.equal(workerShares(k), 0);
    await k.close();
  });

  it('sees memory grown after the workers started', async () => {
    const one = await createKernels({ threads: 1 });
    const two = await createKernels({ threads: 2, minParallelWork: 0, initialBytes: 1024 * 1024 + 65536 });
    const before = two.heap.memory.buffer.byteLength;
    const [rows, inDim, outDim] = [5, 300, 701];
    const x = randomFloats(seeded(4), rows * inDim);
    const w = randomFloats(seeded(5), outDim * inDim);
    const results = [one, two].map((k) => {
      const px = put(k.heap, x);
      const pw = put(k.heap, w);
      const out = k.heap.alloc(rows * outDim * 4);
      k.matmul(out, px, pw, rows, inDim, outDim);
      return read(k.heap, out, rows * outDim);
    });
    assert.ok(two.heap.memory.buffer.byteLength > before, 'the memory did not grow');
    assertSameBits(results[1], results[0], 'matmul on grown memory');
    await one.close();
    await two.close();
  });

  it('reports a failing share on the caller and stays usable', async () => {
    const k = await createKernels({ threads: 2, minParallelWork: 0 });
    const px = put(k.heap, randomFloats(seeded(6), 16));
    const pw = put(k.heap, randomFloats(seeded(7), 16));
    // An output pointer past the end of the memory: every share traps.
    assert.throws(() => k.matmul(0xfffff000, px, pw, 4, 4, 1024), /out of bounds|failed on a worker/);
    const out = k.heap.alloc(16);
    k.matmul(out, px, pw, 1, 4, 4);
    assert.equal(k.heap.f32(out, 4).length, 4);
    await k.close();
  });

  it('a call whose caller and worker shares both fail does not taint the next call', async () => {
    const k = await createKernels({ threads: 2, minParallelWork: 0 });
    // A long inner dimension keeps the caller busy before its first store traps, so the spinning worker claims and
    // fails its own share in the same call (the case that once made the next, valid call throw).
    const [rows, inDim, outDim] = [2, 4096, 16];
    const x = randomFloats(seeded(11), rows * inDim);
    const w = randomFloats(seeded(12), outDim * inDim);
    const px = put(k.heap, x);
    const pw = put(k.heap, w);
    const out = k.heap.alloc(rows * outDim * 4);
    const one = await createKernels({ threads: 1 });
    const expected = (() => {
      const o = one.heap.alloc(rows * outDim * 4);
      one.matmul(o, put(one.heap, x), put(one.heap, w), rows, inDim, outDim);
      return read(one.heap, o, rows * outDim);
    })();
    // Whether the worker claims its share before the caller takes it over is a race (the worker may be asleep or
    // descheduled), so the test runs until it has seen both fail in one call a few times.
    let bothFailed = 0;
    const scratch = put(k.heap, new Float32Array(64));
    for (let i = 0; i < 1000 && bothFailed < 5; i++) {
      for (let j = 0; j < 20; j++) k.add(scratch, scratch, scratch, 64); // wakes the worker: it spins after a call
      const failedBefore = failedShares(k);
      assert.throws(() => k.matmul(0xfffff000, px, pw, rows, inDim, outDim), /out of bounds|failed on a worker/);
      if (failedShares(k) !== failedBefore) bothFailed++;
      k.matmul(out, px, pw, rows, inDim, outDim);
      assertSameBits(read(k.heap, out, rows * outDim), expected, `valid call after failing call ${i}`);
    }
    assert.ok(bothFailed > 0, 'the worker never failed with the caller: the test did not reach the case it is for');
    await k.close();
    await one.close();
  });

  it("names the failing worker's own error, never an earlier call's", async () => {
    const k = await createKernels({ threads: 2, minParallelWork: 0 });
    const [inDim, outDim] = [16384, 16];
    const px = put(k.heap, new Float32Array(inDim));
    const pw = put(k.heap, randomFloats(seeded(14), outDim * inDim));
    let workerFailures = 0;
    // Who computes thread 1's share is a race (the caller takes it over when the worker is descheduled), so the
    // test runs until it has seen the worker fail a few times.
    for (let i = 0; i < 1000 && workerFailures < 5; i++) {
      // Columns 0-7 (thread 0's share) fit below the end of the memory, columns 8-15 (thread 1's) do not.
      const out = k.heap.memory.buffer.byteLength - 8 * 4;
      // Wake the worker: it spins for a while after a call, so it claims its share of the next call at once.
      for (let j = 0; j < 20; j++) k.add(px, px, px, 64);
      try {
        k.matmul(out, px, pw, 1, inDim, outDim);
        assert.fail('the out-of-bounds share did not trap');
      } catch (error) {
        const message = (error as Error).message;
        if (!message.includes('worker thread')) continue; // the caller took thread 1's share over and trapped itself
        workerFailures++;
        assert.match(message, /^kernels: matmul failed on a worker thread: thread 1: [^;]*out of bounds[^;]*$/);
      }
      await new Promise((resolve) => setImmediate(resolve)); // let any late message arrive before the next call
    }
    assert.ok(workerFailures > 0, 'thread 1 never ran its own share');
    await k.close();
  });

  it('close() stops the workers; later parallel calls throw', async () => {
    const k = await createKernels({ threads: 2, minParallelWork: 0 });
    const p = put(k.heap, randomFloats(seeded(8), 64));
    k.add(p, p, p, 64);
    await k.close();
    assert.throws(() => k.add(p, p, p, 64), /after close/);
    await k.close();
  });

  it('a process that used the pool exits, with or without close()', () => {
    const index = new URL('./index.js', import.meta.url).href;
    for (const closing of [true, false]) {
      const script = `import { createKernels } from '${index}';
        const k = await createKernels({ threads: 2, minParallelWork: 0 });
        const p = k.heap.alloc(4096);
        for (let i = 0; i < 100; i++) k.add(p, p, p, 1024);
        ${closing ? 'await k.close();' : ''}`;
      const child = spawnSync(process.execPath, ['--input-type=module', '-e', script], { timeout: 20000, encoding: 'utf8' });
      assert.equal(child.error, undefined, `child ${closing ? 'with' : 'without'} close(): ${String(child.error)}`);
      assert.equal(child.status, 0, `child exited with ${child.status}: ${child.stderr}`);
    }
  });

  it('starts its workers in a process run with V8 and per-process flags, which workers refuse', () => {
    const index = new URL('./index.js', import.meta.url).href;
    const script = `import { createKernels } from '${index}';
      const k = await createKernels({ threads: 2, minParallelWork: 0 });
      const p = k.heap.alloc(4096);
      for (let i = 0; i < 100; i++) k.add(p, p, p, 1024);
      await k.close();
      console.log('ok');`;
    const flags = ['--no-concurrent-recompilation', '--max-old-space-size=512', '--stack-trace-limit=20'];
    const child = spawnSync(process.execPath, [...flags, '--input-type=module', '-e', script],
      { timeout: 20000, encoding: 'utf8' });
    assert.equal(child.error, undefined, String(child.error));
    assert.equal(child.status, 0, `child exited with ${child.status}: ${child.stderr}`);
    assert.equal(child.stdout.trim(), 'ok');
  });
});
