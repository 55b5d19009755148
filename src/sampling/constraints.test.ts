import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bothConstraints, createJsonConstraint, createMinTokensConstraint, initialJsonState, jsonComplete, stepJson }
  from './constraints.js';
import { createSampler } from './sampler.js';
import { createRng } from './random.js';

const encoder = new TextEncoder();

/** Runs text through the automaton: 'complete', 'prefix' (valid so far) or 'invalid'. */
function classify(text: string): 'complete' | 'prefix' | 'invalid' {
  const state = initialJsonState();
  for (const b of encoder.encode(text)) if (!stepJson(state, b)) return 'invalid';
  return jsonComplete(state) ? 'complete' : 'prefix';
}

test('the automaton accepts exactly the prefixes of one JSON object', () => {
  const complete = ['{}', ' {"a": 1}', '{"a":[1,2.5,-0.5e+3,true,false,null,{"b":"c\\"\\\\\\u00e9"}],"d":{}}',
    '{"k": "naïve 東京 🙂"}', '{"x": [[], [[]], {}]}', '{"n": 0}', '{"n": 1E5}'];
  for (const text of complete) {
    assert.equal(classify(text), 'complete', text);
    JSON.parse(text);
    // Every proper prefix is a prefix.
    for (let i = 0; i < text.length; i++) assert.notEqual(classify(text.slice(0, i)), 'invalid', text.slice(0, i));
  }
  for (const text of ['{"a": 1', '{"a"', '{', '  ', '{"a": -', '{"a": 1.', '{"a": tr', '{"s": "\\u00']) {
    assert.equal(classify(text), 'prefix', text);
  }
  const invalid = ['[]', '"x"', '1', '{a: 1}', "{'a': 1}", '{"a" 1}', '{"a": 01}', '{"a": 1.}', '{"a": .5}',
    '{"a": +1}', '{"a": tru}', '{"a": 1,}', '{"a": [1,]}', '{"a": 1}}', '{"a": 1} x', '{"a": "\\x"}',
    '{"a": "\n"}', '{"a": [}', '{"a": 1]', '{}{}', `{${' '.repeat(30)}}`, `{}${' '.repeat(30)}`];
  for (const text of invalid) assert.equal(classify(text), 'invalid', JSON.stringify(text));
  // Nesting is bounded (64 levels).
  assert.equal(classify(`{"a":${'['.repeat(63)}`), 'prefix');
  assert.equal(classify(`{"a":${'['.repeat(64)}`), 'invalid');
});

// A vocabulary of single ASCII bytes, a few multi-byte tokens, one control token (empty bytes) and the end token.
const pieces = [...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)), '\n', '{"', '": ', '", "', '"}',
  'true', '12', '],', 'é'];
const bytesOf = pieces.map((piece) => encoder.encode(piece));
const CONTROL = pieces.length;
const END = pieces.length + 1;
const V = pieces.length + 2;
const tokenBytes = (id: number): Uint8Array => (id < pieces.length ? bytesOf[id] : new Uint8Array(0));

test('sampling under the constraint always yields a JSON prefix, ends only when complete, and is a pure function of ' +
  'the history', () => {
  const rng = createRng(7);
  let finished = 0;
  for (let run = 0; run < 60; run++) {
    const constraint = createJsonConstraint(V, tokenBytes, [END]);
    const sampler = createSampler({ temperature: 1 }, V, constraint);
    const history = new Int32Array(600);
    const prompt = 3;
    constraint.start(prompt);
    let length = prompt;
    let text = '';
    const logits = new Float32Array(V);
    for (; length < history.length; length++) {
      for (let t = 0; t < V; t++) logits[t] = 2 * rng.nextUniform();
      // Lean towards closing, so that most runs finish.
      for (const c of ['}', ']', '"', ',']) logits[pieces.indexOf(c)] += 2.5;
      logits[END] += 4;
      logits[CONTROL] += 10;
      const token = sampler.pick(logits, history, length, rng.nextUniform());
      assert.notEqual(token, CONTROL, 'a control token is never picked');
      history[length] = token;
      if (token === END) {
        assert.equal(classify(text), 'complete', text);
        JSON.parse(text);
        finished++;
        break;
      }
      text += pieces[token];
      assert.notEqual(classify(text), 'invalid', text);
      assert.equal(classify(text) === 'complete', constraint.allowed(history, length + 1)[END] === 1);
    }
    // Asked again about any earlier position (a tree node's path), the constraint gives that position's mask.
    const at = prompt + Math.floor(rng.nextUniform() * (length - prompt));
    const again = Array.from(constraint.allowed(history, at));
    const fresh = createJsonConstraint(V, tokenBytes, [END]);
    fresh.start(prompt);
    assert.deepEqual(again, Array.from(fresh.allowed(history, at)));
  }
  assert.ok(finished >= 40, `${finished} of 60 runs closed their object`);
});

test('a tree\'s branches: the state follows whatever tokens the history holds at the asked position', () => {
  const constraint = createJsonConstraint(V, tokenBytes, [END]);
  constraint.start(0);
  const history = Int32Array.from(['{"', 'a', '"', ':', ' ', '1'].map((piece) => pieces.indexOf(piece)));
  const brace = pieces.indexOf('}');
  assert.equal(constraint.allowed(history, 6)[brace], 1); // {"a": 1 → } may follow
  history[5] = pieces.indexOf('[');
  assert.equal(constraint.allowed(history, 6)[brace], 0); // {"a": [ → } may not
  assert.equal(constraint.allowed(history, 6)[pieces.indexOf(']')], 1);
  history[1] = pieces.indexOf('"'); // {"" : [ … the key is now empty: the rest no longer parses as before
  assert.equal(constraint.allowed(history, 2)[pieces.indexOf(':')], 1);
  assert.equal(constraint.allowed(history, 6)[brace], 0);
});

test('min tokens: the end tokens wait for that many generated tokens; both constraints together allow the tokens ' +
  'each allows', () => {
  const least = createMinTokensConstraint(V, [END], 3);
  least.start(2);
  const history = new Int32Array(8);
  assert.equal(least.allowed(history, 2)[END], 0);
  assert.equal(least.allowed(history, 4)[END], 0);
  assert.equal(least.allowed(history, 5)[END], 1);
  assert.equal(least.allowed(history, 4)[pieces.indexOf('a')], 1);
  // JSON and min tokens: '{}' is complete after 2 tokens, but the end must wait for the third.
  const json = createJsonConstraint(V, tokenBytes, [END]);
  const both = bothConstraints(json, createMinTokensConstraint(V, [END], 3), V);
  both.start(0);
  const h = Int32Array.from([pieces.indexOf('{'), pieces.indexOf('}'), 0]);
  assert.equal(both.allowed(h, 2)[END], 0);
  assert.equal(both.allowed(h, 2)[pieces.indexOf('a')], 0, 'after the object JSON allows whitespace and the end');
  assert.equal(both.allowed(h, 2)[pieces.indexOf(' ')], 1);
  h[2] = END;
  assert.equal(json.allowed(h, 2)[END], 1);
});
