// The BPE merge loop both tokenizers share: adjacent symbols in a linked list, a heap of candidate pairs, the best
// pair merged first (leftmost on ties), stale candidates skipped. SentencePiece ranks pairs by piece score, byte-level
// BPE by merge rank; `cost` maps a pair to a number where smaller merges first, or undefined when it cannot merge.

import { heapPop, heapPush } from './heap.js';

interface Candidate {
  readonly cost: number;
  readonly left: number;
  readonly right: number;
  /** Combined length when queued; a mismatch later means either side has changed since (symbols only grow). */
  readonly length: number;
}

function before(a: Candidate, b: Candidate): boolean {
  return a.cost < b.cost || (a.cost === b.cost && a.left < b.left);
}

/** Merges `symbols` in place; returns the surviving symbols in order. */
export function mergeSymbols(symbols: string[], cost: (left: string, right: string) => number | undefined): string[] {
  const n = symbols.length;
  const prev = new Int32Array(n);
  const next = new Int32Array(n);
  for (let i = 0; i < n; i++) {
    prev[i] = i - 1;
    next[i] = i + 1 < n ? i + 1 : -1;
  }
  const heap: Candidate[] = [];
  const consider = (left: number, right: number): void => {
    if (left < 0 || right < 0) return;
    const c = cost(symbols[left], symbols[right]);
    if (c !== undefined) {
      heapPush(heap, { cost: c, left, right, length: symbols[left].length + symbols[right].length }, before);
    }
  };
  for (let i = 1; i < n; i++) consider(i - 1, i);
  for (let top = heapPop(heap, before); top !== undefined; top = heapPop(heap, before)) {
    const { left, right } = top;
    const a = symbols[left];
    const b = symbols[right];
    if (a === '' || b === '' || next[left] !== right || a.length + b.length !== top.length) continue; // stale
    symbols[left] = a + b;
    symbols[right] = '';
    next[left] = next[right];
    if (next[right] >= 0) prev[next[right]] = left;
    consider(prev[left], left);
    consider(left, next[left]);
  }
  const merged: string[] = [];
  for (let i = n > 0 ? 0 : -1; i >= 0; i = next[i]) merged.push(symbols[i]);
  return merged;
}
