import { test } from 'node:test';
import assert from 'node:assert/strict';
import { buildTokenTrie, createGrammarConstraint, matchGrammar, type Grammar } from './grammar.js';
import { compileJsonSchema, JsonSchemaError } from './json-schema.js';
import { createSampler } from './sampler.js';
import { createRng } from './random.js';

const encoder = new TextEncoder();
const match = (grammar: Grammar, text: string): string => matchGrammar(grammar, encoder.encode(text));

function assertAccepts(grammar: Grammar, texts: string[]): void {
  for (const text of texts) {
    assert.equal(match(grammar, text), 'complete', text);
    for (let i = 0; i < text.length; i++) assert.notEqual(match(grammar, text.slice(0, i)), 'invalid', text.slice(0, i));
  }
}

function assertRefuses(grammar: Grammar, texts: string[]): void {
  for (const text of texts) assert.notEqual(match(grammar, text), 'complete', text);
}

const person = {
  type: 'object',
  properties: {
    name: { type: 'string', minLength: 1, maxLength: 8 },
    age: { type: 'integer' },
    tags: { type: 'array', items: { enum: ['a', 'b', 7, null] }, minItems: 1, maxItems: 3 },
    email: { type: 'string', description: 'optional' },
    kind: { const: 'person', type: 'string' },
    born: { type: 'string', format: 'date' },
    home: { $ref: '#/$defs/place' },
    nickname: { anyOf: [{ type: 'string' }, { type: 'null' }] },
  },
  required: ['name', 'age', 'tags', 'kind', 'born', 'home', 'nickname'],
  additionalProperties: false,
  $defs: { place: { type: 'object', properties: { city: { type: 'string' }, zip: { type: ['integer', 'null'] } },
    required: ['city'] } },
};

test('an object schema: properties in order, required ones present, optional ones left out or not, values typed',
  () => {
    const grammar = compileJsonSchema(person);
    const base = (over: Record<string, string>): string => {
      const fields: Record<string, string> = { name: '"Ann"', age: '41', tags: '["a", 7]', kind: '"person"',
        born: '"2026-12-05"', home: '{"city": "Oslo"}', nickname: 'null', ...over };
      const inOrder = Object.keys(person.properties).filter((k) => fields[k] !== undefined && fields[k] !== '');
      return `{${inOrder.map((k) => `"${k}": ${fields[k]}`).join(', ')}}`;
    };
    const valid = [base({}), base({ email: '"a@b.c"' }), base({ name: '"naïve 東京"', age: '-3' }),
      base({ tags: '[null]', home: '{"city":"x","zip":1234}', nickname: '"Al"' }),
      // Whitespace as models write it, bounded.
      base({ home: '{\n    "city": "x",\n    "zip": null\n  }' }), `\n${base({})}\n`];
    assertAccepts(grammar, valid);
    for (const text of valid) JSON.parse(text);
    assertRefuses(grammar, [
      base({ name: '""' }), base({ name: '"123456789"' }), base({ age: '4.5' }), base({ age: '"41"' }),
      base({ tags: '[]' }), base({ tags: '["a","a","a","a"]' }), base({ tags: '["c"]' }), base({ kind: '"cat"' }),
      base({ born: '"2026-13-01"' }), base({ born: '"yesterday"' }), base({ home: '{"zip": 1}' }),
      base({ nickname: '' }), base({ age: '' }),
      `{"email": "a@b.c", ${base({}).slice(1)}`, // optional, but in its place only
      '{"age": 41, "name": "Ann"}', // out of order
      `${base({}).slice(0, -1)}, "extra": 1}`, // no additional properties
      base({ name: '"a\\q"' }), // a bad escape
      `${base({})}${' '.repeat(30)}`, ` \n${base({})}`, `{\n\n\n"name": "Ann"}`,
    ]);
  });

test('numbers, strings, arrays, any value, recursion through $ref, and formats', () => {
  assertAccepts(compileJsonSchema({ type: 'number' }), ['0', '-0.5', '12e3', '1.25E-7', '9007199254740991']);
  assertRefuses(compileJsonSchema({ type: 'number' }), ['01', '.5', '1.', '+1', '1e', '12345678901234567', 'NaN']);
  assertAccepts(compileJsonSchema({ type: 'string', maxLength: 2 }), ['""', '"ab"', '"é🙂"', '"\\u00e9\\n"']);
  assertRefuses(compileJsonSchema({ type: 'string', maxLength: 2 }), ['"abc"', '"\u0001"', 'abc']);
  const any = compileJsonSchema({});
  assertAccepts(any, ['1', '"x"', 'null', '[1, {"a": [true, false]}, []]', '{"k": {"k": {}}}']);
  assertRefuses(any, ['[1,]', '{"a"}', 'nul', '{1: 2}']);
  assertAccepts(compileJsonSchema(true), ['[]']);
  const tree = { $defs: { node: { type: 'object', properties: { v: { type: 'integer' },
    kids: { type: 'array', items: { $ref: '#/$defs/node' } } }, required: ['v', 'kids'] } }, $ref: '#/$defs/node' };
  assertAccepts(compileJsonSchema(tree), ['{"v": 1, "kids": [{"v": 2, "kids": []}, {"v": 3, "kids": [{"v": 4, ' +
    '"kids": []}]}]}']);
  assertRefuses(compileJsonSchema(tree), ['{"v": 1, "kids": [{"v": 2}]}']);
  // A map: no properties, additionalProperties a schema.
  assertAccepts(compileJsonSchema({ type: 'object', additionalProperties: { type: 'boolean' } }),
    ['{}', '{"x": true, "y": false}']);
  assertRefuses(compileJsonSchema({ type: 'object', additionalProperties: { type: 'boolean' } }), ['{"x": 1}']);
  assertAccepts(compileJsonSchema({ format: 'date-time' }), ['"2026-12-05T16:30:00Z"', '"2026-12-05T16:30:00.123+01:00"']);
  assertAccepts(compileJsonSchema({ type: 'string', format: 'uuid' }), ['"123e4567-e89b-12d3-a456-426614174000"']);
  assertRefuses(compileJsonSchema({ type: 'string', format: 'uuid' }), ['"123e4567e89b12d3a456426614174000"']);
  // oneOf reads as anyOf; allOf of one schema as that schema; type lists as alternatives.
  assertAccepts(compileJsonSchema({ oneOf: [{ type: 'integer' }, { type: 'boolean' }] }), ['3', 'true']);
  assertAccepts(compileJsonSchema({ allOf: [{ type: 'null' }] }), ['null']);
  assertAccepts(compileJsonSchema({ type: ['string', 'integer'] }), ['"3"', '3']);
});

test('schemas that cannot be enforced are refused with the keyword and where it is', () => {
  const cases: [unknown, RegExp][] = [
    [{ type: 'object', properties: { n: { type: 'integer', minimum: 0 } } },
      /json schema at #\/properties\/n: "minimum" is not supported \(supported: type, /],
    [{ type: 'string', pattern: '^a' }, /at #: "pattern" is not supported/],
    [{ type: 'string', format: 'email' }, /format: "email" is not supported \(supported: date, time, date-time, uuid\)/],
    [{ type: 'thing' }, /type: expected one of object, array, string, number, integer, boolean, null, got "thing"/],
    [{ $ref: 'https://example.com/s.json' }, /only references inside the schema/],
    [{ $ref: '#/$defs/missing' }, /"#\/\$defs\/missing" points at nothing/],
    [{ type: 'object', properties: { a: {} }, required: ['b'] }, /required: "b" is not one of the properties \("a"\)/],
    [{ type: 'array', minItems: 3, maxItems: 2 }, /minItems 3 is above maxItems 2: no array fits/],
    [{ type: 'string', maxLength: -1 }, /maxLength: expected a non-negative integer, got -1/],
    [{ type: 'array', maxItems: 5000 }, /maxItems: at most 1000 is supported, got 5000/],
    [{ anyOf: [] }, /anyOf: expected a non-empty array of schemas/],
    [{ type: 'string', anyOf: [{ maxLength: 1 }] }, /"anyOf" beside "type" is not supported/],
    [{ allOf: [{ type: 'string' }, { maxLength: 2 }] }, /allOf: only one schema is supported, got 2/],
    [false, /the schema false accepts no value/],
    [{ type: 'array', items: [{}] }, /tuple form/],
    [{ $defs: { a: { $ref: '#/$defs/a' } }, $ref: '#/$defs/a' }, /refers to itself before reading any text/],
  ];
  for (const [schema, message] of cases) {
    assert.throws(() => compileJsonSchema(schema), (error: unknown) => {
      assert.ok(error instanceof RangeError, String(error));
      assert.match((error as Error).message, message);
      return true;
    }, JSON.stringify(schema));
  }
  assert.throws(() => compileJsonSchema({ type: 'string', pattern: 'x' }), JsonSchemaError);
});

test('sampling under a schema always yields text that validates, whatever the logits', () => {
  // A byte-level vocabulary (printable ASCII, newline, a few multi-byte pieces), a control token and the end token.
  const pieces = [...Array.from({ length: 95 }, (_, i) => String.fromCharCode(32 + i)), '\n', '{"', '": ', '", "',
    '"}', 'true', '12', '],', 'é', 'person', '"name": "'];
  const CONTROL = pieces.length;
  const END = pieces.length + 1;
  const V = pieces.length + 2;
  const bytes = pieces.map((piece) => encoder.encode(piece));
  const trie = buildTokenTrie(V, (id) => (id < pieces.length ? bytes[id] : new Uint8Array(0)));
  const grammar = compileJsonSchema(person);
  const rng = createRng(11);
  let finished = 0;
  for (let run = 0; run < 12; run++) {
    const constraint = createGrammarConstraint(grammar, trie, [END]);
    const sampler = createSampler({ temperature: 1 }, V, constraint);
    const history = new Int32Array(800);
    constraint.start(0);
    let text = '';
    const logits = new Float32Array(V);
    for (let length = 0; length < history.length; length++) {
      for (let t = 0; t < V; t++) logits[t] = 3 * rng.nextUniform();
      for (const c of ['"', '}', ']', ',', '": ', '", "']) logits[pieces.indexOf(c)] += 3;
      logits[END] += 6;
      logits[CONTROL] += 20;
      const token = sampler.pick(logits, history, length, rng.nextUniform());
      assert.notEqual(token, CONTROL);
      history[length] = token;
      if (token === END) {
        const value = JSON.parse(text) as Record<string, unknown>;
        assert.deepEqual(Object.keys(value).filter((k) => k !== 'email'),
          ['name', 'age', 'tags', 'kind', 'born', 'home', 'nickname']);
        assert.equal(value['kind'], 'person');
        assert.ok(Number.isInteger(value['age']));
        assert.ok(typeof value['name'] === 'string' && value['name'].length >= 1 && value['name'].length <= 8);
        assert.match(String(value['born']), /^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])$/);
        finished++;
        break;
      }
      text += pieces[token];
      assert.notEqual(match(grammar, text), 'invalid', text);
    }
  }
  assert.ok(finished >= 6, `${finished} of 12 runs finished`);
});
