// A byte-level context-free grammar and the token constraint it gives: the tokens whose bytes keep the generated text
// a prefix of some sentence of the grammar, and the end tokens once the text is a whole sentence. JSON schemas
// compile to such grammars (json-schema.ts); the engine is the one llama.cpp's grammar sampling uses, a set of
// pushdown stacks advanced byte by byte.
//
// A grammar is rules; a rule is alternatives; an alternative is a sequence of elements, each a byte set or a
// reference to a rule. A stack holds where each open rule goes on: its top is the byte set to match next, the
// entries below are return points. Reading a byte keeps the stacks whose top set holds it and expands them to
// their next byte sets; a stack that runs out accepts (the text so far is a sentence). No rule may call itself before
// reading a byte (left recursion is refused when the grammar is built), and references in tail position do not grow
// the stack, so a repetition written right-recursively runs in constant depth.
//
// Stacks are linked lists of interned nodes (node = position, parent), so equal stacks are one id and share their
// bottoms; sets of stacks are interned into states, and each (state, byte) transition is computed once: the grammar
// becomes a DFA built lazily, as the text explores it (GrammarMachine). Memory is bounded: past a number of states
// the caches start afresh.
//
// A mask walks a trie of the vocabulary's token bytes depth first, one transition per trie edge, skipping every
// subtree whose prefix no state reads; masks are cached by state (inside a string every character leads back to the
// same state, so most picks there reuse the last mask). `npm run bench:constraints` times it against JSON mode's
// automaton (constraints.ts) on the 32000-token Llama 2 vocabulary (BENCHMARKS.md).
//
// As for JSON mode (constraints.ts), the state is a function of the generated tokens alone, recomputed from the last
// position whose tokens still match, so a masked pick is a pure function of (logits, history, position) and tree
// verification stays exact.

import type { TokenConstraint } from './constraints.js';

/** End of an alternative (code entries ≥ 0 are 2·set for a byte set, 2·rule + 1 for a rule reference). */
const END = -1;
/** Deepest stack (open rules: ~3 per level of JSON nesting); the most stacks at once (beyond: an error). */
const MAX_STACK_DEPTH = 256;
const MAX_STACKS = 4096;

/** A compiled grammar: read-only, shared by every sequence that uses it. */
export interface Grammar {
  /** Alternatives laid end to end, each closed by END. */
  readonly code: Int32Array;
  /** Byte sets, 256 entries (0/1) each. */
  readonly sets: Uint8Array;
  /** ruleStarts[r] .. ruleStarts[r + 1]: indices into alternativeStarts of rule r's alternatives. */
  readonly ruleStarts: Int32Array;
  /** Code positions where alternatives begin. */
  readonly alternativeStarts: Int32Array;
  readonly ruleNames: readonly string[];
  readonly root: number;
}

/** A grammar symbol while building: a byte set or a rule reference (encoded as in Grammar.code). */
export type GrammarSymbol = number;

/** Builds a Grammar: declare rules, define each with alternatives of symbols, then build(root). */
export class GrammarBuilder {
  private readonly setKeys = new Map<string, number>();
  private readonly setList: Uint8Array[] = [];
  private readonly names: string[] = [];
  private readonly definitions: (GrammarSymbol[][] | undefined)[] = [];
  private readonly byName = new Map<string, number>();

  /** The symbol matching any byte b with member(b). */
  bytes(member: (b: number) => boolean): GrammarSymbol {
    const set = new Uint8Array(256);
    for (let b = 0; b < 256; b++) set[b] = member(b) ? 1 : 0;
    const key = set.join('');
    let id = this.setKeys.get(key);
    if (id === undefined) {
      id = this.setList.length;
      this.setList.push(set);
      this.setKeys.set(key, id);
    }
    return 2 * id;
  }

  /** The symbols matching text's UTF-8 bytes in order. */
  literal(text: string): GrammarSymbol[] {
    return Array.from(new TextEncoder().encode(text), (byte) => this.bytes((b) => b === byte));
  }

  /** A new rule (names are for messages; a taken name gets a suffix). */
  rule(name: string): GrammarSymbol {
    let unique = name;
    for (let i = 2; this.byName.has(unique); i++) unique = `${name}-${i}`;
    const id = this.names.length;
    this.names.push(unique);
    this.definitions.push(undefined);
    this.byName.set(unique, id);
    return 2 * id + 1;
  }

  /** Gives a declared rule its alternatives (an empty alternative matches nothing: the rule is optional). */
  define(rule: GrammarSymbol, alternatives: GrammarSymbol[][]): GrammarSymbol {
    const id = (rule - 1) / 2;
    if (this.definitions[id] !== undefined) throw new Error(`grammar: rule ${this.names[id]} is defined twice`);
    this.definitions[id] = alternatives;
    return rule;
  }

  /** A new rule defined at once. */
  ruleOf(name: string, alternatives: GrammarSymbol[][]): GrammarSymbol {
    return this.define(this.rule(name), alternatives);
  }

  build(root: GrammarSymbol): Grammar {
    const code: number[] = [];
    const alternativeStarts: number[] = [];
    const ruleStarts = new Int32Array(this.names.length + 1);
    for (let r = 0; r < this.names.length; r++) {
      const alternatives = this.definitions[r];
      if (alternatives === undefined) throw new Error(`grammar: rule ${this.names[r]} is never defined`);
      if (alternatives.length === 0) throw new Error(`grammar: rule ${this.names[r]} has no alternatives`);
      ruleStarts[r] = alternativeStarts.length;
      for (const alternative of alternatives) {
        alternativeStarts.push(code.length);
        code.push(...alternative, END);
      }
    }
    ruleStarts[this.names.length] = alternativeStarts.length;
    const sets = new Uint8Array(256 * this.setList.length);
    this.setList.forEach((set, i) => sets.set(set, 256 * i));
    const grammar: Grammar = {
      code: Int32Array.from(code), sets, ruleStarts, alternativeStarts: Int32Array.from(alternativeStarts),
      ruleNames: [...this.names], root: (root - 1) / 2,
    };
    refuseLeftRecursion(grammar, this.definitions as GrammarSymbol[][][]);
    return grammar;
  }
}

/** A rule that can reach itself before reading a byte would expand forever: named in the error. */
function refuseLeftRecursion(grammar: Grammar, definitions: GrammarSymbol[][][]): void {
  const rules = definitions.length;
  // Which rules can match the empty text (a fixpoint).
  const nullable = new Uint8Array(rules);
  for (let changed = true; changed;) {
    changed = false;
    for (let r = 0; r < rules; r++) {
      if (nullable[r]) continue;
      if (definitions[r].some((alt) => alt.every((s) => (s & 1) === 1 && nullable[(s - 1) / 2] === 1))) {
        nullable[r] = 1;
        changed = true;
      }
    }
  }
  // The rules each rule may call before reading a byte.
  const leftCalls = definitions.map((alternatives) => {
    const calls = new Set<number>();
    for (const alt of alternatives) {
      for (const s of alt) {
        if ((s & 1) === 0) break;
        calls.add((s - 1) / 2);
        if (!nullable[(s - 1) / 2]) break;
      }
    }
    return [...calls];
  });
  const state = new Uint8Array(rules); // 0 unseen, 1 on the path, 2 done
  const visit = (r: number, path: number[]): void => {
    state[r] = 1;
    path.push(r);
    for (const next of leftCalls[r]) {
      if (state[next] === 1) {
        const cycle = path.slice(path.indexOf(next)).map((i) => grammar.ruleNames[i]);
        throw new Error(`grammar: ${cycle.concat(grammar.ruleNames[next]).join(' → ')} refers to itself before ` +
          'reading any text (left recursion)');
      }
      if (state[next] === 0) visit(next, path);
    }
    path.pop();
    state[r] = 2;
  };
  for (let r = 0; r < rules; r++) if (state[r] === 0) visit(r, []);
}

/** The vocabulary's token bytes as a trie (built once per tokenizer, shared by every grammar constraint). */
export interface TokenTrie {
  /** edgeStarts[n] .. edgeStarts[n + 1]: node n's edges in edgeBytes / edgeTargets. */
  readonly edgeStarts: Int32Array;
  readonly edgeBytes: Uint8Array;
  readonly edgeTargets: Int32Array;
  /** tokenStarts[n] .. tokenStarts[n + 1]: the tokens whose bytes end at node n, in tokenIds. */
  readonly tokenStarts: Int32Array;
  readonly tokenIds: Int32Array;
  /** Tokens with no bytes (control tokens, the end tokens). */
  readonly emptyTokens: Int32Array;
  readonly depth: number;
  readonly vocabSize: number;
}

export function buildTokenTrie(vocabSize: number, tokenBytes: (id: number) => Uint8Array): TokenTrie {
  // Build with maps, then lay out flat, children in byte order.
  const children: Map<number, number>[] = [new Map()];
  const ending: number[][] = [[]];
  const empty: number[] = [];
  let depth = 0;
  for (let id = 0; id < vocabSize; id++) {
    const bytes = tokenBytes(id);
    if (bytes.length === 0) {
      empty.push(id);
      continue;
    }
    depth = Math.max(depth, bytes.length);
    let node = 0;
    for (const b of bytes) {
      let next = children[node].get(b);
      if (next === undefined) {
        next = children.length;
        children.push(new Map());
        ending.push([]);
        children[node].set(b, next);
      }
      node = next;
    }
    ending[node].push(id);
  }
  const nodes = children.length;
  const edgeStarts = new Int32Array(nodes + 1);
  const tokenStarts = new Int32Array(nodes + 1);
  const edgeBytes = new Uint8Array(nodes - 1);
  const edgeTargets = new Int32Array(nodes - 1);
  const tokenIds = new Int32Array(vocabSize - empty.length);
  let edges = 0;
  let tokens = 0;
  for (let n = 0; n < nodes; n++) {
    edgeStarts[n] = edges;
    for (const [b, target] of [...children[n]].sort((x, y) => x[0] - y[0])) {
      edgeBytes[edges] = b;
      edgeTargets[edges++] = target;
    }
    tokenStarts[n] = tokens;
    for (const id of ending[n]) tokenIds[tokens++] = id;
  }
  edgeStarts[nodes] = edges;
  tokenStarts[nodes] = tokens;
  return { edgeStarts, edgeBytes, edgeTargets, tokenStarts, tokenIds, emptyTokens: Int32Array.from(empty), depth,
    vocabSize };
}

/** A growable Int32Array list. */
class IntList {
  data = new Int32Array(64);
  length = 0;
  push(value: number): void {
    if (this.length === this.data.length) {
      const more = new Int32Array(2 * this.data.length);
      more.set(this.data);
      this.data = more;
    }
    this.data[this.length++] = value;
  }
}

function grown(a: Int32Array<ArrayBuffer>, size: number): Int32Array<ArrayBuffer> {
  if (size <= a.length) return a;
  const more = new Int32Array(Math.max(size, 2 * a.length));
  more.set(a);
  return more;
}

/**
 * Bounds of the machine's caches (a state's transitions take 1 KiB: at most ~20 MiB per sequence); beyond them it
 * starts afresh (generation + 1).
 */
const MAX_STATES = 20000;
const MAX_NODES = 1 << 20;
/** Node keys pack (position, parent + 1) into one number: positions must stay below this. */
const NODE_KEY = 2 ** 31;

/**
 * The grammar as a lazily built automaton: stacks are interned (equal stacks have one id, so a set of stacks is a
 * sorted list of ids), sets of stacks are interned into states, and each (state, byte) transition is computed once and
 * then read from a table. Inside a string, for instance, every character leads back to the same state, so a mask
 * walk costs one table read per trie edge. The caches are bounded: past MAX_STATES states or MAX_NODES nodes they are
 * dropped and `generation` moves on (state ids from before are then meaningless).
 */
export class GrammarMachine {
  generation = 0;
  // Interned stack nodes: position nodePosition[i] above nodeParent[i] (−1: the bottom), nodeDepth[i] deep.
  private nodePosition = new Int32Array(1024);
  private nodeParent = new Int32Array(1024);
  private nodeDepth = new Int32Array(1024);
  private nodeCount = 0;
  private readonly nodeIds = new Map<number, number>();
  // Interned states: the sorted stack tops stateTops[stateStart[s] .. stateStart[s + 1]), accepting[s].
  private stateTops = new Int32Array(1024);
  private stateStart = new Int32Array(1025);
  private accepting = new Uint8Array(1024);
  private stateCount = 0;
  private readonly stateIds = new Map<string, number>();
  /** transitions[256·s + b]: 0 not computed yet, −1 no stack reads b, else the next state + 1. */
  private transitions = new Int32Array(256 * 1024);
  private readonly tops = new IntList();
  private accept = false;
  private initialState = -1;

  /** maxStates: the bound on cached states (tests set it low to exercise the restart). */
  constructor(readonly grammar: Grammar, private readonly maxStates = MAX_STATES) {
    if (grammar.code.length >= NODE_KEY) throw new RangeError(`grammar: ${grammar.code.length} code entries is too many`);
  }

  private reset(): void {
    this.generation++;
    this.nodeCount = 0;
    this.nodeIds.clear();
    this.stateCount = 0;
    this.stateIds.clear();
    this.transitions.fill(0);
    this.initialState = -1;
  }

  private node(position: number, parent: number): number {
    const key = position + NODE_KEY * (parent + 1);
    const known = this.nodeIds.get(key);
    if (known !== undefined) return known;
    const id = this.nodeCount++;
    this.nodePosition = grown(this.nodePosition, id + 1);
    this.nodeParent = grown(this.nodeParent, id + 1);
    this.nodeDepth = grown(this.nodeDepth, id + 1);
    this.nodePosition[id] = position;
    this.nodeParent[id] = parent;
    this.nodeDepth[id] = parent < 0 ? 1 : this.nodeDepth[parent] + 1;
    this.nodeIds.set(key, id);
    return id;
  }

  /** Adds the stacks that continue at code position `position` above `parent`, expanded to their byte sets. */
  private expand(position: number, parent: number): void {
    const { code, ruleStarts, alternativeStarts } = this.grammar;
    for (;;) {
      const element = code[position];
      if (element === END) {
        if (parent < 0) {
          this.accept = true;
          return;
        }
        position = this.nodePosition[parent];
        parent = this.nodeParent[parent];
        continue;
      }
      if ((element & 1) === 0) {
        // Deeper nesting is not allowed (a model can loop on '['): the stack is dropped, its byte masked.
        if (parent >= 0 && this.nodeDepth[parent] >= MAX_STACK_DEPTH) return;
        const top = this.node(position, parent);
        const { data, length } = this.tops;
        for (let i = 0; i < length; i++) if (data[i] === top) return;
        if (length >= MAX_STACKS) {
          throw new RangeError(`grammar: more than ${MAX_STACKS} ways to read the text at once (too ambiguous)`);
        }
        this.tops.push(top);
        return;
      }
      // A rule reference: where it returns to (a reference in tail position returns where its caller does).
      const rule = (element - 1) / 2;
      const returnTo = code[position + 1] === END ? parent : this.node(position + 1, parent);
      const last = ruleStarts[rule + 1] - 1;
      for (let a = ruleStarts[rule]; a < last; a++) this.expand(alternativeStarts[a], returnTo);
      position = alternativeStarts[last];
      parent = returnTo;
    }
  }

  /** The state of this.tops and this.accept (interned; −1 when there is no stack at all). */
  private intern(): number {
    const tops = this.tops.data.subarray(0, this.tops.length).sort();
    if (tops.length === 0 && !this.accept) return -1;
    const key = `${tops.join(',')}${this.accept ? '!' : ''}`;
    const known = this.stateIds.get(key);
    if (known !== undefined) return known;
    const id = this.stateCount++;
    this.stateStart = grown(this.stateStart, id + 2);
    const begin = this.stateStart[id];
    this.stateTops = grown(this.stateTops, begin + tops.length);
    this.stateTops.set(tops, begin);
    this.stateStart[id + 1] = begin + tops.length;
    if (id >= this.accepting.length) {
      const more = new Uint8Array(2 * this.accepting.length);
      more.set(this.accepting);
      this.accepting = more;
    }
    this.accepting[id] = this.accept ? 1 : 0;
    this.transitions = grown(this.transitions, 256 * (id + 1));
    this.stateIds.set(key, id);
    return id;
  }

  /** The state before any byte. */
  initial(): number {
    if (this.initialState < 0) {
      const { ruleStarts, alternativeStarts, root } = this.grammar;
      this.tops.length = 0;
      this.accept = false;
      for (let a = ruleStarts[root]; a < ruleStarts[root + 1]; a++) this.expand(alternativeStarts[a], -1);
      this.initialState = this.intern();
    }
    return this.initialState;
  }

  /** The state after reading byte b in state s, −1 when nothing can read it. Call settle() first (cache bounds). */
  next(s: number, b: number): number {
    const cached = this.transitions[256 * s + b];
    if (cached !== 0) return cached < 0 ? -1 : cached - 1;
    const { code, sets } = this.grammar;
    this.tops.length = 0;
    this.accept = false;
    for (let i = this.stateStart[s]; i < this.stateStart[s + 1]; i++) {
      const top = this.stateTops[i];
      const position = this.nodePosition[top];
      if (sets[(code[position] << 7) + b] === 1) this.expand(position + 1, this.nodeParent[top]);
    }
    const next = this.intern();
    this.transitions[256 * s + b] = next < 0 ? -1 : next + 1;
    return next;
  }

  accepts(s: number): boolean {
    return this.accepting[s] === 1;
  }

  /** Drops the caches if they outgrew their bounds (between uses, never while state ids are held). */
  settle(): void {
    if (this.stateCount > this.maxStates || this.nodeCount > MAX_NODES) this.reset();
  }
}

/** Whether text (bytes) is a whole sentence of the grammar ('complete'), a prefix of one, or neither. */
export function matchGrammar(grammar: Grammar, bytes: Uint8Array): 'complete' | 'prefix' | 'invalid' {
  const machine = new GrammarMachine(grammar);
  let s = machine.initial();
  for (const b of bytes) {
    s = machine.next(s, b);
    if (s < 0) return 'invalid';
  }
  return machine.accepts(s) ? 'complete' : 'prefix';
}

/** Masks kept per constraint, by state (inside a string or a number most steps meet a state seen just before). */
const MASK_CACHE = 16;

/**
 * The constraint of one sequence under a grammar: tokens whose bytes continue a sentence, the end tokens (endIds)
 * only where the text is a whole sentence. Tokens with no bytes that are not end tokens are never allowed.
 */
export function createGrammarConstraint(grammar: Grammar, trie: TokenTrie, endIds: Iterable<number>,
  maxStates = MAX_STATES): TokenConstraint {
  const vocabSize = trie.vocabSize;
  const machine = new GrammarMachine(grammar, maxStates);
  const ends = new Uint8Array(vocabSize);
  for (const id of endIds) if (id >= 0 && id < vocabSize) ends[id] = 1;
  // Token bytes by id, from the trie (a token's bytes are its path from the root).
  const nodes = trie.edgeStarts.length - 1;
  const parentOf = new Int32Array(nodes).fill(-1);
  const byteInto = new Uint8Array(nodes);
  for (let n = 0; n < nodes; n++) {
    for (let e = trie.edgeStarts[n]; e < trie.edgeStarts[n + 1]; e++) {
      parentOf[trie.edgeTargets[e]] = n;
      byteInto[trie.edgeTargets[e]] = trie.edgeBytes[e];
    }
  }
  const endNode = new Int32Array(vocabSize).fill(-1); // the trie node where token t's bytes end (−1: none)
  for (let n = 0; n < nodes; n++) {
    for (let i = trie.tokenStarts[n]; i < trie.tokenStarts[n + 1]; i++) endNode[trie.tokenIds[i]] = n;
  }
  const pathBytes = new Uint8Array(trie.depth + 1);

  // stateAt[k]: the state after k generated tokens (−1: no text continues), tokens[k] the token read from it.
  let stateAt = new Int32Array(64);
  let tokens = new Int32Array(64);
  let known = 0; // stateAt[0 .. known) are computed, in machine generation `generation`
  let generation = -1;
  let start = 0;
  const masks = new Map<number, Uint8Array>();
  const none = new Uint8Array(vocabSize);
  // The mask walk's state and edge cursor per trie depth.
  const walkState = new Int32Array(trie.depth + 2);
  const walkNode = new Int32Array(trie.depth + 2);
  const walkEdge = new Int32Array(trie.depth + 2);

  function advance(s: number, token: number): number {
    const node = s >= 0 && token >= 0 && token < vocabSize ? endNode[token] : -1;
    // A token without bytes (an end token read as history, or a control token) leaves nothing to continue.
    if (node < 0) return -1;
    let length = 0;
    for (let n = node; n > 0; n = parentOf[n]) pathBytes[length++] = byteInto[n];
    for (let j = length - 1; j >= 0 && s >= 0; j--) s = machine.next(s, pathBytes[j]);
    return s;
  }

  function computeMask(s: number, allowed: Uint8Array): void {
    allowed.fill(0);
    if (machine.accepts(s)) {
      for (let i = 0; i < trie.emptyTokens.length; i++) {
        const id = trie.emptyTokens[i];
        if (ends[id] === 1) allowed[id] = 1;
      }
    }
    let depth = 0;
    walkState[0] = s;
    walkNode[0] = 0;
    walkEdge[0] = trie.edgeStarts[0];
    while (depth >= 0) {
      const edge = walkEdge[depth];
      if (edge === trie.edgeStarts[walkNode[depth] + 1]) {
        depth--;
        continue;
      }
      walkEdge[depth] = edge + 1;
      const next = machine.next(walkState[depth], trie.edgeBytes[edge]);
      if (next < 0) continue;
      const child = trie.edgeTargets[edge];
      for (let i = trie.tokenStarts[child]; i < trie.tokenStarts[child + 1]; i++) allowed[trie.tokenIds[i]] = 1;
      if (trie.edgeStarts[child] === trie.edgeStarts[child + 1]) continue;
      depth++;
      walkState[depth] = next;
      walkNode[depth] = child;
      walkEdge[depth] = trie.edgeStarts[child];
    }
  }

  return {
    start(position) {
      start = position;
      known = 0;
    },
    allowed(history, historyLength) {
      const k = historyLength - start;
      if (k < 0) {
        throw new RangeError(`grammar constraint: position ${historyLength} is before the generation's start ${start}`);
      }
      machine.settle();
      if (generation !== machine.generation) {
        // The machine dropped its caches: every state id held is stale.
        generation = machine.generation;
        known = 0;
        masks.clear();
      }
      if (known === 0) {
        stateAt[0] = machine.initial();
        known = 1;
      }
      let valid = 0;
      const limit = Math.min(known - 1, k);
      while (valid < limit && tokens[valid] === history[start + valid]) valid++;
      if (k >= tokens.length) {
        const size = Math.max(2 * tokens.length, k + 1);
        tokens = grown(tokens, size);
        stateAt = grown(stateAt, size + 1);
      }
      for (let i = valid; i < k; i++) {
        tokens[i] = history[start + i];
        stateAt[i + 1] = advance(stateAt[i], tokens[i]);
      }
      known = k + 1;
      const s = stateAt[k];
      if (s < 0) return none;
      let mask = masks.get(s);
      if (mask === undefined) {
        // Reuse the oldest mask's array once the cache is full.
        if (masks.size >= MASK_CACHE) {
          const [oldest, array] = masks.entries().next().value as [number, Uint8Array];
          masks.delete(oldest);
          mask = array;
        } else {
          mask = new Uint8Array(vocabSize);
        }
        computeMask(s, mask);
        masks.set(s, mask);
      }
      return mask;
    },
  };
}
