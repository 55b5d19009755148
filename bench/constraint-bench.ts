// What constrained decoding costs per pick: the mask of JSON mode's automaton (constraints.ts) and of a JSON
// Schema's grammar (grammar.ts, json-schema.ts), both on the same vocabulary and the same answer, in one process.
//
//   node dist/bench/constraint-bench.js [--tokenizer FILE] [--rounds N]
//
// Default vocabulary: the 32000-token Llama 2 tokenizer of the shared fixtures (REDRAFTER_MODELS or ../shared/models
// beside the checkout). Per round each constraint answers every position of the answer once from a fresh start
// (cold: the schema machine builds its states as it goes) and once more (warm: its states and masks cached).

import { existsSync } from 'node:fs';
import { cpus } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { performance } from 'node:perf_hooks';
import { loadSentencePieceTokenizer } from '../src/tokenizer/sentencepiece.js';
import { buildTokenTrie, compileJsonSchema, createGrammarConstraint, createJsonConstraint, type TokenConstraint }
  from '../src/sampling/index.js';
import { modelFolders } from '../src/engine/default-model.js';

const { values } = parseArgs({ options: { tokenizer: { type: 'string' }, rounds: { type: 'string' } } });
const tokenizerPath = values.tokenizer ?? modelFolders().map(({ folder }) => join(folder, 'llama2-tokenizer',
  'tokenizer.bin')).find((path) => existsSync(path)) ?? 'llama2-tokenizer/tokenizer.bin';
if (!existsSync(tokenizerPath)) {
  throw new Error(`constraint-bench: no tokenizer at ${tokenizerPath} (give --tokenizer FILE or set REDRAFTER_MODELS)`);
}
const rounds = Number(values.rounds ?? 5);
const tokenizer = loadSentencePieceTokenizer(tokenizerPath);
const vocab = tokenizer.vocabSize;
const tokenBytes = (id: number): Uint8Array => tokenizer.tokenBytes(id);

let t0 = performance.now();
const trie = buildTokenTrie(vocab, tokenBytes);
const trieMs = performance.now() - t0;
const schema = {
  type: 'object',
  properties: {
    name: { type: 'string', maxLength: 40 }, age: { type: 'integer' },
    tags: { type: 'array', items: { type: 'string' }, maxItems: 5 }, born: { type: 'string', format: 'date' },
    pet: { anyOf: [{ type: 'null' }, { type: 'object', properties: { kind: { enum: ['cat', 'dog'] } } }] },
  },
  required: ['name', 'age', 'tags', 'born', 'pet'],
};
t0 = performance.now();
const grammar = compileJsonSchema(schema);
const compileMs = performance.now() - t0;
const answer = '{"name": "Ann Smith, the third of her name", "age": 41, "tags": ["sailor", "cook"], ' +
  '"born": "1985-04-12", "pet": {"kind": "cat"}}';
const ids = Int32Array.from(tokenizer.encode(answer, { bos: false }));

/** Milliseconds per pick over the answer's positions. */
function timePicks(constraint: TokenConstraint): number {
  const start = performance.now();
  for (let k = 0; k <= ids.length; k++) {
    const allowed = constraint.allowed(ids, k);
    if (k < ids.length && allowed[ids[k]] !== 1) throw new Error(`constraint-bench: token ${k} of the answer masked`);
  }
  return (performance.now() - start) / (ids.length + 1);
}

const results = { json: [] as number[], schemaCold: [] as number[], schemaWarm: [] as number[] };
for (let round = 0; round < rounds; round++) {
  const json = createJsonConstraint(vocab, tokenBytes, [tokenizer.eosId]);
  json.start(0);
  results.json.push(timePicks(json));
  const constrained = createGrammarConstraint(grammar, trie, [tokenizer.eosId]);
  constrained.start(0);
  results.schemaCold.push(timePicks(constrained));
  constrained.start(0);
  results.schemaWarm.push(timePicks(constrained));
}
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
console.log(`machine: ${cpus()[0]?.model.trim() ?? 'unknown CPU'}, Node ${process.version}`);
console.log(`vocabulary: ${vocab} tokens (${tokenizerPath}); trie ${trie.edgeStarts.length - 1} nodes built in ` +
  `${trieMs.toFixed(0)} ms; schema compiled in ${compileMs.toFixed(1)} ms; answer ${ids.length} tokens; ` +
  `medians of ${rounds} rounds`);
console.log('| constraint | ms per pick | ÷ json_object |');
console.log('|---|---:|---:|');
const base = median(results.json);
for (const [name, xs] of [['json_object (automaton)', results.json], ['json_schema, cold', results.schemaCold],
  ['json_schema, warm', results.schemaWarm]] as const) {
  console.log(`| ${name} | ${median(xs).toFixed(3)} | ${(median(xs) / base).toFixed(2)} |`);
}
