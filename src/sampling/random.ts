// The per-sequence random stream (architecture.md, invariant 2: shared randomness).
//
// Generator: xoshiro128** 1.0 (Blackman & Vigna, https://prng.di.unimi.it/xoshiro128starstar.c), 128-bit state.
// Seeding: a 32-bit unsigned integer seed s; the four state words are splitmix32(s + k·0x9e3779b9) for k = 1..4,
// i.e. four consecutive outputs of a splitmix32 stream started at s. splitmix32 is a bijection of its 32-bit counter,
// so the four words are distinct and the state is never all zero (the one state xoshiro cannot leave).
// Uniforms: nextUniform() uses 53 bits from two consecutive 32-bit outputs, (a >>> 5) · 2^26 + (b >>> 6), scaled by
// 2^-53, so every double k · 2^-53 in [0, 1) is reachable and probabilities far below 2^-32 (the tail of a 32k or 128k
// vocabulary) are still resolved. One uniform therefore advances the generator by two steps.
//
// Everything is 32-bit integer arithmetic (Math.imul, >>> 0), so a seed produces the same stream on every platform.

/** The generator's 128-bit state as four unsigned 32-bit words [s0, s1, s2, s3], the order of the reference code. */
export type RngState = Uint32Array;

export interface Rng {
  /** The next 32-bit output of xoshiro128**, as an unsigned integer in [0, 2^32). Advances the state by one step. */
  nextUint32(): number;
  /** A uniform double in [0, 1) with 53 random bits. Advances the state by two steps. */
  nextUniform(): number;
  /**
   * Copies the current state into `out` (allocated when omitted; pass a preallocated array in the decode loop) and
   * returns it. Speculative decoding saves the state before verification and rewinds with setState().
   */
  getState(out?: RngState): RngState;
  /** Restores a state returned by getState(). Throws a RangeError for a malformed or all-zero state. */
  setState(state: ArrayLike<number>): void;
}

const GOLDEN_GAMMA = 0x9e3779b9;
const TWO_POW_26 = 67108864;
const TWO_POW_MINUS_53 = 1 / 9007199254740992;

/**
 * splitmix32 (the 32-bit splitmix variant with the lowbias32 finalizer constants 0x21f0aaad / 0x735a2d97): the output
 * for counter value `x`, which is already advanced by the caller. Exported for tests.
 */
export function splitmix32(x: number): number {
  let z = x | 0;
  z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
  z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
  return (z ^ (z >>> 15)) >>> 0;
}

/** The xoshiro128** state derived from a 32-bit seed (see the file header). */
export function seedState(seed: number): RngState {
  if (!Number.isInteger(seed) || seed < 0 || seed > 0xffffffff) {
    throw new RangeError(`seed must be an integer in [0, 4294967295]; got ${String(seed)}`);
  }
  const state = new Uint32Array(4);
  let counter = seed | 0;
  for (let k = 0; k < 4; k++) {
    counter = (counter + GOLDEN_GAMMA) | 0;
    state[k] = splitmix32(counter);
  }
  return state;
}

/** A generator seeded from a 32-bit unsigned integer (see the file header for the exact derivation). */
export function createRng(seed: number): Rng {
  return createRngFromState(seedState(seed));
}

/** A generator that starts from an explicit state (for example one saved with getState()). */
export function createRngFromState(initial: ArrayLike<number>): Rng {
  // The state lives in four closure-local int32 variables: no typed-array traffic on the hot path.
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;

  function setState(state: ArrayLike<number>): void {
    if (state.length !== 4) {
      throw new RangeError(`Rng state must have 4 words; got ${state.length}`);
    }
    for (let k = 0; k < 4; k++) {
      const w = state[k];
      if (!Number.isInteger(w) || w < 0 || w > 0xffffffff) {
        throw new RangeError(`Rng state word ${k} must be an integer in [0, 4294967295]; got ${String(w)}`);
      }
    }
    if (state[0] === 0 && state[1] === 0 && state[2] === 0 && state[3] === 0) {
      throw new RangeError('Rng state must not be all zero (xoshiro128** would output zeros forever)');
    }
    s0 = state[0] | 0;
    s1 = state[1] | 0;
    s2 = state[2] | 0;
    s3 = state[3] | 0;
  }

  function nextUint32(): number {
    const m = Math.imul(s1, 5);
    const result = Math.imul((m << 7) | (m >>> 25), 9) >>> 0;
    const t = s1 << 9;
    s2 ^= s0;
    s3 ^= s1;
    s1 ^= s2;
    s0 ^= s3;
    s2 ^= t;
    s3 = (s3 << 11) | (s3 >>> 21);
    return result;
  }

  function nextUniform(): number {
    const hi = nextUint32() >>> 5; // 27 bits
    const lo = nextUint32() >>> 6; // 26 bits
    return (hi * TWO_POW_26 + lo) * TWO_POW_MINUS_53;
  }

  function getState(out?: RngState): RngState {
    const target = out ?? new Uint32Array(4);
    if (target.length !== 4) {
      throw new RangeError(`getState: out must have 4 words; got ${target.length}`);
    }
    target[0] = s0;
    target[1] = s1;
    target[2] = s2;
    target[3] = s3;
    return target;
  }

  setState(initial);
  return { nextUint32, nextUniform, getState, setState };
}
