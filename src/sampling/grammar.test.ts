import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTokenTrie, createGrammarConstraint, GrammarBuilder, matchGrammar, type Grammar } from './grammar.js';
import { createRng } from './random.js';

const encoder = new TextEncoder();
const match = (grammar: Grammar, text: string): string => matchGrammar(grammar, encoder.encode(text));

/** list ::= "[" items? "]", items ::= item ("," item)*, item ::= [a-c]+ | list (nesting by recursion). */
function listGrammar(): Grammar {
  const g = new GrammarBuilder();
  const list = g.rule('list');
  const letter = g.bytes((b) => b >= 0x61 && b <= 0x63);
  const word = g.rule('word');
  g.define(word, [[letter], [letter, word]]);
  const item = g.ruleOf('item', [[word], [list]]);
  const more = g.rule('more');
  g.define(more, [g.literal(']'), [...g.literal(','), item, more]]);
  g.define(list, [[...g.literal('['), g.ruleOf('first', [g.literal(']'), [item, more]])]]);
  return g.build(list);
}

test('a grammar reads whole sentences, their prefixes, and nothing else', () => {
  const grammar = listGrammar();
  for (const text of ['[]', '[a]', '[abc,b]', '[[a],[],[b,[c]]]']) {
    assert.equal(match(grammar, text), 'complete', text);
    for (let i = 0; i < text.length; i++) assert.equal(match(grammar, text.slice(0, i)), 'prefix', text.slice(0, i));
  }
  for (const text of ['a', '[d]', '[a,]', '[,a]', '[]]', '[a][', '[ab c]']) {
    assert.equal(match(grammar, text), 'invalid', text);
  }
  // Right recursion runs in constant depth: a long word is fine, as is deep but bounded nesting.
  assert.equal(match(grammar, `[${'a'.repeat(5000)}]`), 'complete');
  assert.equal(match(grammar, `${'['.repeat(100)}${']'.repeat(100)}`), 'complete');
});

test('left recursion, undefined rules and empty rules are refused when the grammar is built', () => {
  const g = new GrammarBuilder();
  const a = g.rule('a');
  const b = g.rule('b');
  const empty = g.ruleOf('maybe', [[]]);
  g.define(a, [[empty, b, ...g.literal('x')], g.literal('y')]);
  g.define(b, [[a], g.literal('z')]);
  assert.throws(() => g.build(a), /a → b → a refers to itself before reading any text \(left recursion\)/);
  const h = new GrammarBuilder();
  const c = h.rule('c');
  assert.throws(() => h.build(c), /rule c is never defined/);
  const k = new GrammarBuilder();
  assert.throws(() => k.build(k.ruleOf('none', [])), /rule none has no alternatives/);
});

// Tokens: single bytes, a few multi-byte pieces sharing prefixes, one control token and an end token.
const pieces = ['[', ']', ',', 'a', 'b', 'c', 'd', '[a', '[[', 'ab', 'abc', '],', ']]', 'a]', ',[', 'x'];
const CONTROL = pieces.length;
const END = pieces.length + 1;
const V = pieces.length + 2;
const tokenBytes = (id: number): Uint8Array => (id < pieces.length ? encoder.encode(pieces[id]) : new Uint8Array(0));

test('the mask is every token whose bytes continue the text (end tokens where it is complete), at any position of ' +
  'a history, in any order of asking; also when the machine keeps dropping its caches (a bound of 6 states)', () => {
  const grammar = listGrammar();
  const trie = buildTokenTrie(V, tokenBytes);
  const rng = createRng(3);
  for (let run = 0; run < 40; run++) {
    const constraint = createGrammarConstraint(grammar, trie, [END], run % 2 === 0 ? undefined : 6);
    const prompt = 2;
    constraint.start(prompt);
    const history = new Int32Array(64);
    const texts: string[] = [''];
    let length = prompt;
    for (; length < history.length - 1; length++) {
      const allowed = constraint.allowed(history, length);
      const text = texts[length - prompt];
      const choices: number[] = [];
      for (let t = 0; t < V; t++) {
        const expected = t === END ? match(grammar, text) === 'complete'
          : t !== CONTROL && match(grammar, text + pieces[t]) !== 'invalid';
        assert.equal(allowed[t] === 1, expected, `"${text}" then token ${t}`);
        if (allowed[t]) choices.push(t);
      }
      const token = choices[Math.floor(rng.nextUniform() * choices.length)];
      if (token === END) break;
      history[length] = token;
      texts.push(text + pieces[token]);
    }
    // Earlier positions again (a tree node's path): their masks, then a different branch from one of them.
    for (let probe = 0; probe < 6; probe++) {
      const at = prompt + Math.floor(rng.nextUniform() * (length - prompt));
      const allowed = constraint.allowed(history, at);
      const text = texts[at - prompt];
      for (let t = 0; t < pieces.length; t++) {
        assert.equal(allowed[t] === 1, match(grammar, text + pieces[t]) !== 'invalid', `again "${text}" + ${t}`);
      }
    }
  }
});

test('asked again and again about the positions of one history, the constraint gives the same masks', () => {
  const grammar = listGrammar();
  const constraint = createGrammarConstraint(grammar, buildTokenTrie(V, tokenBytes), [END]);
  constraint.start(0);
  const history = Int32Array.from([pieces.indexOf('['), pieces.indexOf('abc'), pieces.indexOf(','),
    pieces.indexOf('[a'), pieces.indexOf(']]')]);
  const masks = Array.from({ length: history.length + 1 }, (_, k) => [...constraint.allowed(history, k)]);
  for (let i = 0; i < 200; i++) {
    const k = (i * 7) % (history.length + 1);
    assert.deepEqual([...constraint.allowed(history, k)], masks[k], `position ${k}`);
  }
  assert.equal(masks[history.length][END], 1);
  assert.equal(masks[history.length - 1][END], 0);
});
