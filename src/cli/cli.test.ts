import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fixture, missing, modelsFolder, stories260K } from '../../test/fixtures.js';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
const skip = missing('stories260K', 'stories260K.bin');
// The CLI keeps the speculation controller's state in a tuning file: the tests' own, never the user's.
const tuningDir = mkdtempSync(join(tmpdir(), 'redrafter-cli-tuning-'));
after(() => rmSync(tuningDir, { recursive: true, force: true }));

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [main, ...args], {
    encoding: 'utf8', env: { ...process.env, REDRAFTER_MODELS: modelsFolder, REDRAFTER_TUNING: join(tuningDir, 'tuning.json') },
    timeout: 120_000,
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

function json(args: string[]): Record<string, unknown> {
  const result = run(args);
  assert.equal(result.status, 0, result.stderr);
  return JSON.parse(result.stdout) as Record<string, unknown>;
}

test('generate --format json on the default model (with its default drafter) reproduces llama2.c greedy ids', { skip },
  () => {
  const reference = JSON.parse(readFileSync(stories260K.referenceGreedy, 'utf8').split('\n')[0]) as
    { prompt_ids: number[]; greedy_ids: number[] };
  const out = json(['generate', '--prompt-ids', reference.prompt_ids.join(','), '--max-tokens',
    String(reference.greedy_ids.length), '--format', 'json']);
  assert.deepEqual(out['promptIds'], reference.prompt_ids);
  assert.deepEqual(out['ids'], reference.greedy_ids);
  const stats = out['stats'] as Record<string, number>;
  assert.equal(stats['tokens'], reference.greedy_ids.length);
  assert.ok(stats['tokensPerSecond'] > 0);
  // The shipped drafter is used by default with the default model, through the speculation controller: on
  // stories260K drafting costs more than a forward of the model, so it decodes plainly (same ids either way).
  const redrafter = (stats as unknown as Record<string, Record<string, unknown>>)['redrafter'];
  assert.equal(redrafter['speculation'], 'auto');
  assert.equal(Object.values(redrafter['shapes'] as Record<string, number>).reduce((a, b) => a + b, 0), stats['steps']);
  // A forced tree drafts: same ids, fewer steps.
  const forced = json(['generate', '--prompt-ids', reference.prompt_ids.join(','), '--max-tokens',
    String(reference.greedy_ids.length), '--format', 'json', '-W', '4', '-L', '5']);
  assert.deepEqual(forced['ids'], reference.greedy_ids);
  const forcedStats = forced['stats'] as Record<string, number>;
  assert.ok(forcedStats['steps'] < reference.greedy_ids.length - 1);
  assert.ok(forcedStats['tokensPerStep'] > 2);
});

test('generate --drafter gives the same ids as without, plus ReDrafter stats (greedy and sampled)', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'redrafter-cli-'));
  try {
    const drafter = join(dir, 'drafter');
    const init = run(['drafter', 'init', '--out', drafter, '--seed', '4']);
    assert.equal(init.status, 0, init.stderr);
    for (const sampling of [[], ['--temperature', '1', '--top-p', '0.9', '--seed', '7'],
      ['--frequency-penalty', '0.8', '--presence-penalty', '0.4', '--penalty-window', '0', '--logit-bias', '13=-inf',
        '--logit-bias', '400=1.5']]) {
      const common = ['generate', 'Once upon a time', '--max-tokens', '64', '--format', 'json', ...sampling];
      const plain = json([...common, '--drafter', 'none']);
      const drafted = json([...common, '--drafter', drafter, '--beams', '4', '--beam-length', '5']);
      assert.deepEqual(drafted['ids'], plain['ids']);
      assert.equal(drafted['text'], plain['text']);
      const stats = drafted['stats'] as Record<string, unknown>;
      assert.equal(typeof stats['tokensPerStep'], 'number');
      const perStep = stats['committedPerStep'] as number[];
      assert.equal(perStep.length, stats['steps']);
      assert.equal(1 + perStep.reduce((a, b) => a + b, 0), 64);
      const redrafter = stats['redrafter'] as Record<string, unknown>;
      assert.equal(redrafter['beams'], 4);
      assert.equal(redrafter['beamLength'], 5);
      assert.equal((redrafter['acceptedAtDepth'] as number[]).length, 4);
    }
    // The penalties and biases reach the sampler: a forced token repeats, a banned one never comes.
    const forced = json(['generate', 'Once upon a time', '--max-tokens', '4', '--format', 'json', '--drafter', 'none',
      '--logit-bias', '400=100']);
    assert.deepEqual(forced['ids'], [400, 400, 400, 400]);
    const none = json(['generate', 'Once upon a time', '--max-tokens', '8', '--format', 'json', '--drafter', 'none']);
    assert.equal((none['stats'] as Record<string, unknown>)['redrafter'], undefined);
    const shown = run(['draft', 'Once upon a time', '--drafter', drafter, '-W', '3', '-L', '4']);
    assert.equal(shown.status, 0, shown.stderr);
    assert.match(shown.stdout, /beams \(W = 3, L = 4\)/);
    assert.match(shown.stdout, /packed tree: \d+ nodes/);
    assert.match(shown.stdout, /★ /);
    const shownJson = json(['draft', 'Once upon a time', '--drafter', drafter, '--format', 'json']);
    assert.equal((shownJson['beams'] as number[][]).length, 4);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tune keeps the controller\'s costs and acceptance per decoding mode; generate starts from them', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'redrafter-tune-'));
  const env = { ...process.env, REDRAFTER_MODELS: modelsFolder, REDRAFTER_TUNING: join(dir, 'tuning.json') };
  const cli = (args: string[]): Record<string, unknown> => {
    const result = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', env, timeout: 120_000 });
    assert.equal(result.status, 0, result.stderr);
    return JSON.parse(result.stdout) as Record<string, unknown>;
  };
  try {
    // One fixed shape per mode in the sweep, so that the test knows what each mode must have stored as its best.
    const greedy = cli(['tune', '--widths', '2', '--lengths', '3', '--tokens', '8', '--rounds', '1', '--format', 'json']);
    const sampled = cli(['tune', '--widths', '1', '--lengths', '4', '--tokens', '8', '--rounds', '1', '--temperature',
      '1', '--format', 'json']);
    const best = (out: Record<string, unknown>): unknown[] => {
      const b = out['best'] as Record<string, unknown>;
      return [b['beams'], b['beamLength']];
    };
    assert.deepEqual([...best(greedy), ...best(sampled)], [2, 3, 1, 4]);
    assert.ok(typeof (greedy['auto'] as Record<string, unknown>)['speedup'] === 'number');
    type Stored = Record<string, { best?: { beams: number }; controller?: { costs: { verify: number[] };
      acceptance: { trials: number[] } } }>;
    const stored = JSON.parse(readFileSync(join(dir, 'tuning.json'), 'utf8')) as Stored;
    assert.deepEqual(Object.keys(stored).map((k) => k.split('|').pop()).sort(), ['greedy', 'sampled']);
    for (const entry of Object.values(stored)) {
      assert.ok(entry.controller && entry.controller.costs.verify[1] > 0, 'costs stored');
      assert.ok(entry.controller.acceptance.trials.some((t) => t > 0) || greedy['auto'] !== undefined);
    }
    const speculation = (args: string[]): Record<string, unknown> => {
      const out = cli(['generate', 'Once upon a time', '--max-tokens', '8', '--format', 'json', ...args]);
      return (out['stats'] as Record<string, Record<string, unknown>>)['redrafter'];
    };
    const auto = speculation([]);
    assert.equal(auto['speculation'], 'auto');
    assert.equal(auto['calibrationSeconds'], 0, 'generate started from the stored costs');
    assert.equal(speculation(['--temperature', '0.8', '--seed', '3'])['calibrationSeconds'], 0);
    const forced = speculation(['--beams', '4']);
    assert.deepEqual([forced['speculation'], forced['beams'], forced['beamLength']], ['fixed', 4, 5],
      'an explicit shape is a fixed tree');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tokenize --format json prints ids, with BOS only when asked', { skip: missing('llama2-tokenizer') }, () => {
  const tokenizer = fixture('llama2-tokenizer', 'tokenizer.bin');
  assert.deepEqual(json(['tokenize', 'Hello world!', '--tokenizer', tokenizer, '--format', 'json']),
    { ids: [15043, 3186, 29991] });
  assert.deepEqual(json(['tokenize', 'Hello world!', '--tokenizer', tokenizer, '--bos', '--format', 'json']),
    { ids: [1, 15043, 3186, 29991] });
});

test('generate --chat --chat-template renders the conversation with that template', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'redrafter-template-'));
  try {
    const file = join(dir, 'chat.jinja');
    writeFileSync(file, '{{ bos_token }}{% for m in messages %}[{{ m.role }}] {{ m.content }}\n{% endfor %}');
    const out = json(['generate', 'Tell me a story', '--chat', '--system', 'Be kind.', '--chat-template', file,
      '--max-tokens', '4', '--format', 'json', '--drafter', 'none']);
    const tokenize = run(['tokenize', '[system] Be kind.\n[user] Tell me a story\n', '--format', 'json']);
    assert.equal(tokenize.status, 0, tokenize.stderr);
    const textIds = (JSON.parse(tokenize.stdout) as { ids: number[] }).ids;
    assert.deepEqual(out['promptIds'], [1, ...textIds], 'the template\'s "<s>" is BOS, then the rendered text');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('generate --json-schema FILE answers JSON the schema accepts; an unenforceable or unreadable schema is refused',
  { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'redrafter-schema-'));
  try {
    const file = join(dir, 'person.json');
    writeFileSync(file, JSON.stringify({ type: 'object', properties: { name: { type: 'string', maxLength: 10 },
      age: { type: 'integer' } }, required: ['name', 'age'] }));
    const out = json(['generate', 'Once upon a time', '--json-schema', file, '--temperature', '0.8', '--seed', '3',
      '--max-tokens', '100', '--format', 'json']);
    assert.equal(out['finishReason'], 'eos', String(out['text']));
    assert.deepEqual(Object.keys(JSON.parse(String(out['text'])) as object), ['name', 'age']);
    const bad = join(dir, 'bad.json');
    writeFileSync(bad, JSON.stringify({ type: 'string', pattern: '^a' }));
    const refused = run(['generate', 'hi', '--json-schema', bad]);
    assert.notEqual(refused.status, 0);
    assert.match(refused.stderr, /--json-schema .*bad\.json: json schema at #: "pattern" is not supported/);
    const unreadable = run(['generate', 'hi', '--json-schema', join(dir, 'none.json')]);
    assert.notEqual(unreadable.status, 0);
    assert.match(unreadable.stderr, /--json-schema: cannot read .*none\.json as JSON/);
    const both = run(['generate', 'hi', '--json-schema', file, '--response-format', 'json_object']);
    assert.match(both.stderr, /--json-schema: cannot be combined with --response-format json_object/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('bad input gives a clear message and a non-zero exit', { skip }, () => {
  const missingModel = run(['generate', 'hi', '--model', '/nonexistent/model.bin']);
  assert.notEqual(missingModel.status, 0);
  assert.match(missingModel.stderr, /\/nonexistent\/model\.bin/);
  const badBias = run(['generate', 'hi', '--logit-bias', '5']);
  assert.notEqual(badBias.status, 0);
  assert.match(badBias.stderr, /--logit-bias.*expected TOKEN_ID=BIAS \(a token id, a number or -inf\), got "5"/);
  const outsideBias = run(['generate', 'hi', '--logit-bias', '512=1']);
  assert.notEqual(outsideBias.status, 0);
  assert.match(outsideBias.stderr, /--logit-bias: token id 512 is outside the model's vocabulary 0\.\.511/);
  const noTemplate = run(['generate', 'hi', '--chat', '--chat-template', '/nonexistent/chat.jinja']);
  assert.notEqual(noTemplate.status, 0);
  assert.match(noTemplate.stderr, /--chat-template: cannot read \/nonexistent\/chat\.jinja/);
  const badBeams = run(['generate', 'hi', '--beams', '0']);
  assert.notEqual(badBeams.status, 0);
  assert.match(badBeams.stderr, /--beams.*expected an integer in 1\.\.64, got "0"/);
  const badDrafter = run(['generate', 'hi', '--drafter', '/nonexistent/drafter']);
  assert.notEqual(badDrafter.status, 0);
  assert.match(badDrafter.stderr, /config\.json/);
  const tooLong = run(['generate', '--prompt-ids', Array.from({ length: 600 }, () => '5').join(',')]);
  assert.notEqual(tooLong.status, 0);
  assert.match(tooLong.stderr, /600 tokens do not fit the context of 512/);
  const golden = run(['generate', '--model', fixture('apple-golden-tiny-llama'), 'hello']);
  assert.notEqual(golden.status, 0);
  assert.match(golden.stderr, /no tokenizer; pass a tokenizer or promptIds/);
});

test('an HF checkpoint without tokenizer generates from --prompt-ids', { skip: missing('apple-golden-tiny-llama') }, () => {
  const out = json(['generate', '--model', fixture('apple-golden-tiny-llama'), '--prompt-ids', '1,3,4', '--max-tokens',
    '6', '--format', 'json']);
  assert.equal((out['ids'] as number[]).length <= 6, true);
  assert.ok((out['ids'] as number[]).every((id) => id >= 0 && id < 7));
});
