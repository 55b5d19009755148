// bench:constraints cannot rot: one round on the Llama 2 vocabulary prints the machine and the three rows.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { missing, modelsFolder } from '../test/fixtures.js';

const here = dirname(fileURLToPath(import.meta.url));

test('bench:constraints times JSON mode and a JSON Schema on one answer, machine named', {
  skip: missing('llama2-tokenizer', 'tokenizer.bin') }, () => {
  const result = spawnSync(process.execPath, [join(here, 'constraint-bench.js'), '--rounds', '1'],
    { encoding: 'utf8', timeout: 60_000, env: { ...process.env, REDRAFTER_MODELS: modelsFolder } });
  assert.equal(result.status, 0, result.stderr);
  assert.match(result.stdout, /^machine: .+, Node v\d+/m);
  assert.match(result.stdout, /vocabulary: 32000 tokens/);
  for (const row of ['json_object \\(automaton\\)', 'json_schema, cold', 'json_schema, warm']) {
    assert.match(result.stdout, new RegExp(`^\\| ${row} \\| \\d+\\.\\d{3} \\| \\d+\\.\\d{2} \\|$`, 'm'));
  }
});
