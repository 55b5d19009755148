import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRng, createRngFromState, seedState, splitmix32 } from './random.js';

// Expected values below come from the reference C code (xoshiro128starstar.c by Blackman & Vigna, plus the splitmix32
// seeding of random.ts written in C with uint32_t arithmetic), compiled with gcc; they are not produced by this module.

test('xoshiro128** matches the reference C implementation', () => {
  const a = createRngFromState([1, 2, 3, 4]);
  assert.deepEqual(
    Array.from({ length: 6 }, () => a.nextUint32()),
    [11520, 0, 5927040, 70819200, 2031721883, 1637235492],
  );
  // A full-width state (also the test vector of the edorfaus/xoshiro-6502 port, taken from the C reference).
  const b = createRngFromState([0x964d4a0c, 0xd40ab895, 0xad7fdecb, 0x3006f0f0]);
  assert.deepEqual(
    Array.from({ length: 4 }, () => b.nextUint32()),
    [0xf1391922, 0x6fe53806, 0xa5be2840, 0xf510ee70],
  );
});

test('splitmix32 seeding and first outputs for known seeds', () => {
  const cases: Array<{ seed: number; state: number[]; out: number[]; u3: number }> = [
    {
      seed: 0,
      state: [1684164658, 3653269916, 2939563536, 2141751570],
      out: [1789933344, 44971166, 2521387044, 3848737593],
      u3: 0.26503673325810317,
    },
    {
      seed: 42,
      state: [551831576, 144025891, 322543647, 3034809370],
      out: [660444221, 3652823732, 77672526, 910233633],
      u3: 0.53489062846834756,
    },
    {
      seed: 4294967295,
      state: [3950124170, 4293442868, 1302505678, 2762329221],
      out: [4104197751, 1825856343, 1152209388, 2427537429],
      u3: 0.85801477835956252,
    },
  ];
  for (const c of cases) {
    assert.deepEqual(Array.from(seedState(c.seed)), c.state, `state for seed ${c.seed}`);
    const rng = createRng(c.seed);
    assert.deepEqual(Array.from(rng.getState()), c.state);
    assert.deepEqual(Array.from({ length: 4 }, () => rng.nextUint32()), c.out, `outputs for seed ${c.seed}`);
    // The third uniform of the stream uses outputs 5 and 6.
    assert.equal(rng.nextUniform(), c.u3, `uniform for seed ${c.seed}`);
  }
  assert.equal(splitmix32(0), 0);
});

test('nextUniform takes 53 bits from two consecutive outputs and stays in [0, 1)', () => {
  const a = createRng(7);
  const b = createRng(7);
  let sum = 0;
  const n = 100000;
  for (let i = 0; i < n; i++) {
    const u = a.nextUniform();
    const hi = b.nextUint32() >>> 5;
    const lo = b.nextUint32() >>> 6;
    assert.equal(u, (hi * 2 ** 26 + lo) / 2 ** 53);
    assert.ok(u >= 0 && u < 1);
    assert.ok(Number.isInteger(u * 2 ** 53));
    sum += u;
  }
  // Mean of n uniforms: standard error 1/sqrt(12 n) ~ 0.0009.
  assert.ok(Math.abs(sum / n - 0.5) < 0.005, `mean ${sum / n}`);
});

test('the same seed gives the same stream; different seeds differ', () => {
  const a = createRng(123);
  const b = createRng(123);
  const c = createRng(124);
  const sa = Array.from({ length: 50 }, () => a.nextUniform());
  const sb = Array.from({ length: 50 }, () => b.nextUniform());
  const sc = Array.from({ length: 50 }, () => c.nextUniform());
  assert.deepEqual(sa, sb);
  assert.notDeepEqual(sa, sc);
});

test('getState / setState rewind the stream', () => {
  const rng = createRng(99);
  for (let i = 0; i < 5; i++) rng.nextUniform();
  const saved = rng.getState();
  const first = Array.from({ length: 10 }, () => rng.nextUniform());
  assert.notDeepEqual(Array.from(rng.getState()), Array.from(saved));
  rng.setState(saved);
  assert.deepEqual(
    Array.from({ length: 10 }, () => rng.nextUniform()),
    first,
  );
  // getState(out) fills and returns the caller's array.
  const out = new Uint32Array(4);
  assert.equal(rng.getState(out), out);
  // A state moved to another generator continues the same stream there.
  const other = createRngFromState(out);
  assert.equal(other.nextUint32(), rng.nextUint32());
  // The saved array is a copy, not a live view of the generator.
  const snapshot = Array.from(saved);
  rng.nextUint32();
  assert.deepEqual(Array.from(saved), snapshot);
});

test('bad seeds and states are rejected with the value named', () => {
  assert.throws(() => createRng(-1), /seed must be an integer in \[0, 4294967295\]; got -1/);
  assert.throws(() => createRng(2 ** 32), RangeError);
  assert.throws(() => createRng(1.5), /got 1.5/);
  assert.throws(() => createRng(Number.NaN), RangeError);
  const rng = createRng(1);
  assert.throws(() => rng.setState([1, 2, 3]), /4 words; got 3/);
  assert.throws(() => rng.setState([0, 0, 0, 0]), /all zero/);
  assert.throws(() => rng.setState([1, 2, 3, 2 ** 32]), /word 3/);
  assert.throws(() => rng.setState([1, -2, 3, 4]), /word 1/);
  assert.throws(() => rng.getState(new Uint32Array(3)), RangeError);
  // A rejected state leaves the generator untouched.
  const before = Array.from(rng.getState());
  assert.throws(() => rng.setState([0, 0, 0, 0]));
  assert.deepEqual(Array.from(rng.getState()), before);
});
