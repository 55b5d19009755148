import { test } from 'node:test';
import assert from 'node:assert/strict';
import { AbortedError, QueueFullError, RequestQueue, ShuttingDownError } from './queue.js';

/** A task that runs until `release` is called, recording its start. */
function gate(log: string[], name: string): { task: (signal: AbortSignal) => Promise<string>; release: () => void } {
  let release!: () => void;
  const done = new Promise<void>((resolve) => {
    release = resolve;
  });
  return {
    task: async (signal) => {
      log.push(`start ${name}`);
      await Promise.race([done, new Promise((resolve) => signal.addEventListener('abort', resolve))]);
      return signal.aborted ? `${name} aborted` : name;
    },
    release,
  };
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve));

test('requests run one at a time in arrival order; beyond maxWaiting they are refused', async () => {
  const counts: [number, number][] = [];
  const queue = new RequestQueue({ capacity: 1, maxWaiting: 2, onChange: (w, r) => counts.push([w, r]) });
  const log: string[] = [];
  const [a, b, c] = [gate(log, 'a'), gate(log, 'b'), gate(log, 'c')];
  const never = new AbortController().signal;
  const runs = [queue.run(never, a.task), queue.run(never, b.task), queue.run(never, c.task)];
  await tick();
  assert.deepEqual(log, ['start a']);
  assert.equal(queue.waiting, 2);
  await assert.rejects(queue.run(never, async () => 'd'), QueueFullError);
  assert.ok(queue.retryAfterSeconds() >= 1);
  a.release();
  await tick();
  assert.deepEqual(log, ['start a', 'start b']);
  b.release();
  c.release();
  assert.deepEqual(await Promise.all(runs), ['a', 'b', 'c']);
  assert.deepEqual(counts.at(-1), [0, 0]);
  assert.equal(queue.active, 0);
});

test('aborting while waiting gives the place up; aborting while running reaches the task', async () => {
  const queue = new RequestQueue({ capacity: 1, maxWaiting: 1 });
  const log: string[] = [];
  const [a, b] = [gate(log, 'a'), gate(log, 'b')];
  const runA = new AbortController();
  const waitB = new AbortController();
  const first = queue.run(runA.signal, a.task);
  const second = queue.run(waitB.signal, b.task);
  await tick();
  waitB.abort();
  await assert.rejects(second, AbortedError);
  assert.equal(queue.waiting, 0);
  // The freed place takes a new request.
  const third = queue.run(new AbortController().signal, async () => 'c');
  runA.abort();
  assert.equal(await first, 'a aborted');
  assert.equal(await third, 'c');
  assert.deepEqual(log, ['start a']);
});

test('close() refuses new requests, lets admitted ones finish, and aborts them past the deadline', async () => {
  const queue = new RequestQueue({ capacity: 1, maxWaiting: 4 });
  const log: string[] = [];
  const a = gate(log, 'a');
  const never = new AbortController().signal;
  const running = queue.run(never, a.task);
  const waiting = queue.run(never, async () => 'b');
  await tick();
  const closed = queue.close(50);
  await assert.rejects(queue.run(never, async () => 'late'), ShuttingDownError);
  // Past the deadline the running task is aborted and the waiting one refused.
  assert.equal(await running, 'a aborted');
  await assert.rejects(waiting, ShuttingDownError);
  await closed;

  const gentle = new RequestQueue({ capacity: 1, maxWaiting: 4 });
  const g = gate(log, 'g');
  const run = gentle.run(never, g.task);
  await tick();
  const closing = gentle.close(10_000);
  g.release();
  assert.equal(await run, 'g');
  await closing;
});
