// Constraints on the tokens a sampler may pick, each a function of the generated tokens (TokenConstraint): JSON
// mode, and min_tokens (end tokens masked until that many tokens), composed by bothConstraints.
//
// JSON mode (OpenAI's response_format {"type": "json_object"}): a constraint that allows only the tokens whose bytes
// keep the generated text a prefix of one JSON object (RFC 8259; the top level an object, as OpenAI's mode asks),
// and the end tokens only once that object is complete. The sampler masks every other token to −Infinity before
// anything else it does (sampler.ts), so greedy and sampled decoding both emit JSON.
//
// The state is a function of the generated tokens alone (history[start .. position)), recomputed from the last
// position whose tokens still match, so a masked pick stays a pure function of (logits, history, position): tree
// verification, which picks at every node with that node's own path as the history, stays exact.
//
// Cost: a pick runs every vocabulary token's bytes through the automaton from the current state (O(vocabulary ·
// token length)): fine for small vocabularies and CPU decoding rates; a trie over the token bytes would share work.

/** Decides which tokens may come next, from the generated tokens so far. */
export interface TokenConstraint {
  /** The generation starts at history position `position` (the prompt's length); earlier tokens are not looked at. */
  start(position: number): void;
  /** allowed[t] is 1 where token t may continue history[start .. historyLength), else 0 (valid until the next call). */
  allowed(history: Int32Array, historyLength: number): Uint8Array;
}

// Modes of the automaton.
const TOP = 0; // before the top-level object
const VALUE = 1; // a value is expected
const OBJECT_FIRST = 2; // after '{': a key or '}'
const OBJECT_KEY = 3; // after ',' in an object: a key
const COLON = 4; // after a key
const AFTER = 5; // after a value inside a container: ',' or the closer
const ARRAY_FIRST = 6; // after '[': a value or ']'
const STRING = 7;
const ESCAPE = 8; // after '\' in a string
const HEX = 9; // in \uXXXX: AUX = digits left
const NUMBER = 10; // AUX = the number's sub-state (below)
const LITERAL = 11; // AUX = bytes of the literal matched, KEY = which literal
const DONE = 12; // the top-level object is closed: whitespace, then an end token
const FAILED = 13;

// State fields (an Int32Array, so that copying a state is one set()).
const MODE = 0;
const DEPTH = 1;
const AUX = 2;
const KEY = 3; // STRING: 1 when the string is an object key; LITERAL: the literal's index
const SPACES = 4; // whitespace bytes in a row
const STACK = 5; // container kinds, one per depth: 1 = object, 2 = array

/** Deepest nesting allowed, and the longest whitespace run (a model can loop on newlines). */
const MAX_DEPTH = 64;
const MAX_SPACES = 24;
const STATE_INTS = STACK + MAX_DEPTH;
const OBJECT = 1;
const ARRAY = 2;
const LITERALS = ['true', 'false', 'null'].map((word) => new TextEncoder().encode(word));
const NO_BYTES = new Uint8Array(0);

const isSpace = (b: number): boolean => b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
const isDigit = (b: number): boolean => b >= 0x30 && b <= 0x39;
const isHex = (b: number): boolean => isDigit(b) || (b >= 0x41 && b <= 0x46) || (b >= 0x61 && b <= 0x66);

// Number sub-states: 0 after '-', 1 a leading 0, 2 integer digits, 3 after '.', 4 fraction digits, 5 after 'e',
// 6 after the exponent's sign, 7 exponent digits. A number can end in 1, 2, 4 and 7.
const NUMBER_ENDS = [false, true, true, false, true, false, false, true];

/** A value ended: the container continues, or the top-level object is complete. */
function valueDone(s: Int32Array): void {
  s[MODE] = s[DEPTH] === 0 ? DONE : AFTER;
}

function push(s: Int32Array, kind: number, mode: number): boolean {
  if (s[DEPTH] >= MAX_DEPTH) return false;
  s[STACK + s[DEPTH]] = kind;
  s[DEPTH]++;
  s[MODE] = mode;
  return true;
}

/** Starts a value at byte b (mode VALUE or ARRAY_FIRST); false if b cannot start one. */
function startValue(s: Int32Array, b: number): boolean {
  if (b === 0x7b) return push(s, OBJECT, OBJECT_FIRST);
  if (b === 0x5b) return push(s, ARRAY, ARRAY_FIRST);
  if (b === 0x22) {
    s[MODE] = STRING;
    s[KEY] = 0;
    return true;
  }
  if (b === 0x2d || isDigit(b)) {
    s[MODE] = NUMBER;
    s[AUX] = b === 0x2d ? 0 : b === 0x30 ? 1 : 2;
    return true;
  }
  for (let i = 0; i < LITERALS.length; i++) {
    if (LITERALS[i][0] === b) {
      s[MODE] = LITERAL;
      s[KEY] = i;
      s[AUX] = 1;
      return true;
    }
  }
  return false;
}

/** Closes the innermost container with byte b ('}' or ']') if it is of that kind. */
function close(s: Int32Array, b: number): boolean {
  const kind = s[STACK + s[DEPTH] - 1];
  if ((b === 0x7d && kind !== OBJECT) || (b === 0x5d && kind !== ARRAY)) return false;
  s[DEPTH]--;
  valueDone(s);
  return true;
}

/** Advances state s by one byte; false (and s unusable) when the byte cannot continue a JSON object's text. */
export function stepJson(s: Int32Array, b: number): boolean {
  const mode = s[MODE];
  if (mode === STRING) {
    if (b === 0x22) {
      if (s[KEY] === 1) s[MODE] = COLON;
      else valueDone(s);
    } else if (b === 0x5c) {
      s[MODE] = ESCAPE;
    } else if (b < 0x20) {
      return false;
    }
    return true;
  }
  if (mode === ESCAPE) {
    if (b === 0x75) {
      s[MODE] = HEX;
      s[AUX] = 4;
      return true;
    }
    s[MODE] = STRING;
    return b === 0x22 || b === 0x5c || b === 0x2f || b === 0x62 || b === 0x66 || b === 0x6e || b === 0x72 || b === 0x74;
  }
  if (mode === HEX) {
    if (!isHex(b)) return false;
    if (--s[AUX] === 0) s[MODE] = STRING;
    return true;
  }
  if (mode === LITERAL) {
    const word = LITERALS[s[KEY]];
    if (word[s[AUX]] !== b) return false;
    if (++s[AUX] === word.length) valueDone(s);
    return true;
  }
  if (mode === NUMBER) {
    const n = s[AUX];
    if (isDigit(b)) {
      if (n === 1) return false; // no digit after a leading 0
      s[AUX] = n === 0 ? (b === 0x30 ? 1 : 2) : n === 3 ? 4 : n === 5 || n === 6 ? 7 : n;
      return true;
    }
    if (b === 0x2e && (n === 1 || n === 2)) {
      s[AUX] = 3;
      return true;
    }
    if ((b === 0x65 || b === 0x45) && (n === 1 || n === 2 || n === 4)) {
      s[AUX] = 5;
      return true;
    }
    if ((b === 0x2b || b === 0x2d) && n === 5) {
      s[AUX] = 6;
      return true;
    }
    // Any other byte ends the number (if it can end here) and is read after it.
    if (!NUMBER_ENDS[n]) return false;
    valueDone(s);
    return stepJson(s, b);
  }
  if (mode === FAILED) return false;
  // The structural modes, and after the object (so that min_tokens can be met): whitespace, up to a limit.
  if (isSpace(b)) {
    return ++s[SPACES] <= MAX_SPACES;
  }
  if (mode === DONE) return false;
  s[SPACES] = 0;
  switch (mode) {
    case TOP:
      return b === 0x7b && push(s, OBJECT, OBJECT_FIRST);
    case VALUE:
      return startValue(s, b);
    case ARRAY_FIRST:
      return b === 0x5d ? close(s, b) : startValue(s, b);
    case OBJECT_FIRST:
      if (b === 0x7d) return close(s, b);
      if (b !== 0x22) return false;
      s[MODE] = STRING;
      s[KEY] = 1;
      return true;
    case OBJECT_KEY:
      if (b !== 0x22) return false;
      s[MODE] = STRING;
      s[KEY] = 1;
      return true;
    case COLON:
      if (b !== 0x3a) return false;
      s[MODE] = VALUE;
      return true;
    case AFTER:
      if (b === 0x2c) {
        s[MODE] = s[STACK + s[DEPTH] - 1] === OBJECT ? OBJECT_KEY : VALUE;
        return true;
      }
      return (b === 0x7d || b === 0x5d) && close(s, b);
    default:
      return false;
  }
}

/** A fresh automaton state: nothing generated yet. */
export function initialJsonState(): Int32Array {
  return new Int32Array(STATE_INTS);
}

/** Whether the state is a complete JSON object (an end token may come). */
export function jsonComplete(s: Int32Array): boolean {
  return s[MODE] === DONE;
}

/**
 * The JSON-object constraint for one sequence. tokenBytes(t): what token t adds to the text (Tokenizer.tokenBytes);
 * endIds: the tokens that end the sequence (allowed once the object is complete, and only then).
 */
export function createJsonConstraint(vocabSize: number, tokenBytes: (id: number) => Uint8Array,
  endIds: Iterable<number>): TokenConstraint {
  const bytes = Array.from({ length: vocabSize }, (_, id) => tokenBytes(id));
  const ends = new Uint8Array(vocabSize);
  for (const id of endIds) if (id >= 0 && id < vocabSize) ends[id] = 1;
  const allowed = new Uint8Array(vocabSize);
  const scratch = new Int32Array(STATE_INTS);
  // states[k · STATE_INTS …]: the state after k generated tokens; tokens[k]: the token read from state k.
  let states = new Int32Array(64 * STATE_INTS);
  let tokens = new Int32Array(64);
  let known = 1; // states 0 .. known − 1 are computed
  let start = 0;
  /** The position whose mask `allowed` holds, or −1. */
  let maskFor = -1;

  // States are copied field by field (no views: nothing is allocated per token).
  const walker = new Int32Array(STATE_INTS);

  /** Copies state k's fields and live stack into `to`. */
  function load(to: Int32Array, k: number): void {
    const base = k * STATE_INTS;
    const used = STACK + states[base + DEPTH];
    for (let i = 0; i < used; i++) to[i] = states[base + i];
  }

  function store(k: number, from: Int32Array): void {
    const base = k * STATE_INTS;
    const used = STACK + from[DEPTH];
    for (let i = 0; i < used; i++) states[base + i] = from[i];
  }

  function grow(k: number): void {
    if (k < tokens.length) return;
    const more = new Int32Array(Math.max(2 * states.length, (k + 1) * STATE_INTS));
    more.set(states);
    states = more;
    const moreTokens = new Int32Array(Math.max(2 * tokens.length, k + 1));
    moreTokens.set(tokens);
    tokens = moreTokens;
  }

  return {
    start(position) {
      start = position;
      known = 1;
      states.fill(0, 0, STATE_INTS); // the initial state: TOP, depth 0
      maskFor = -1;
    },
    allowed(history, historyLength) {
      const k = historyLength - start;
      if (k < 0) throw new RangeError(`json constraint: position ${historyLength} is before the generation's start ${start}`);
      // States 0 .. valid stand while the tokens that led to them are still the history's; from there, recompute.
      let valid = 0;
      const limit = Math.min(known - 1, k);
      while (valid < limit && tokens[valid] === history[start + valid]) valid++;
      if (maskFor > valid) maskFor = -1;
      known = valid + 1;
      grow(k);
      for (let i = valid; i < k; i++) {
        const token = history[start + i];
        load(walker, i);
        tokens[i] = token;
        if (walker[MODE] !== FAILED) {
          const b = token >= 0 && token < vocabSize ? bytes[token] : NO_BYTES;
          let ok = b.length > 0 || ends[token] === 1;
          for (let j = 0; ok && j < b.length; j++) ok = stepJson(walker, b[j]);
          if (!ok) walker[MODE] = FAILED;
        }
        store(i + 1, walker);
      }
      known = k + 1;
      if (maskFor === k) return allowed;
      load(walker, k);
      const complete = walker[MODE] === DONE;
      // A token's bytes can pop at most what is there and write above it: the fields and the live stack suffice.
      const used = STACK + walker[DEPTH];
      for (let t = 0; t < vocabSize; t++) {
        const b = bytes[t];
        if (b.length === 0) {
          allowed[t] = complete && ends[t] === 1 ? 1 : 0;
          continue;
        }
        for (let i = 0; i < used; i++) scratch[i] = walker[i];
        let ok = true;
        for (let j = 0; ok && j < b.length; j++) ok = stepJson(scratch, b[j]);
        allowed[t] = ok ? 1 : 0;
      }
      maskFor = k;
      return allowed;
    },
  };
}

/**
 * vLLM's min_tokens: the end tokens are disallowed until `minTokens` tokens have been generated (everything else
 * stays allowed).
 */
export function createMinTokensConstraint(vocabSize: number, endIds: Iterable<number>, minTokens: number):
  TokenConstraint {
  const all = new Uint8Array(vocabSize).fill(1);
  const noEnd = new Uint8Array(vocabSize).fill(1);
  for (const id of endIds) if (id >= 0 && id < vocabSize) noEnd[id] = 0;
  let start = 0;
  return {
    start(position) {
      start = position;
    },
    allowed(_history, historyLength) {
      return historyLength - start < minTokens ? noEnd : all;
    },
  };
}

/** Tokens both constraints allow. */
export function bothConstraints(a: TokenConstraint, b: TokenConstraint, vocabSize: number): TokenConstraint {
  const allowed = new Uint8Array(vocabSize);
  return {
    start(position) {
      a.start(position);
      b.start(position);
    },
    allowed(history, historyLength) {
      const x = a.allowed(history, historyLength);
      const y = b.allowed(history, historyLength);
      for (let t = 0; t < vocabSize; t++) allowed[t] = x[t] & y[t];
      return allowed;
    },
  };
}
