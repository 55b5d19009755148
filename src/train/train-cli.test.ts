// `redrafter train-drafter` end to end on a tiny budget, and kill -9 at random moments (during updates and during
// checkpoint saves) followed by --resume: the checkpoint always loads, and the resumed run ends with the same bytes as
// an uninterrupted one (also across thread counts: the kernels are thread invariant).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { missing, modelsFolder, stories260K } from '../../test/fixtures.js';
import { readDrafter } from '../drafter/checkpoint.js';
import { loadTrainingState } from './checkpoint.js';

const main = join(dirname(fileURLToPath(import.meta.url)), '..', 'cli', 'main.js');
const skip = missing('stories260K', 'stories260K.bin');
const env = { ...process.env, REDRAFTER_MODELS: modelsFolder };

// A budget of seconds: a few short sequences, a small drafter, a checkpoint after every update.
const tiny = ['--samples', '6', '--sequence-tokens', '40', '--steps', '24', '--batch', '32', '--exit-dim', '48',
  '--layers', '1', '--checkpoint-every', '1', '--eval-count', '1', '--eval-tokens', '12', '--eval-beams', '2',
  '--eval-beam-length', '3', '--seed', '3'];

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const result = spawnSync(process.execPath, [main, ...args], { encoding: 'utf8', env, timeout: 120_000 });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('train-drafter trains, evaluates and exports an Apple-format drafter on a tiny budget', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'redrafter-train-'));
  try {
    const out = join(dir, 'drafter');
    const result = run(['train-drafter', '--model', stories260K.model, '--out', out, ...tiny]);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /wrote .*: 24 updates .* tokens\/step greedy/);
    assert.match(result.stderr, /eval @ 24: [\d.]+ tokens\/step greedy, [\d.]+ at temperature 1/);
    const weights = readDrafter(out);
    assert.equal(weights.config.exitDim, 48);
    assert.equal(weights.config.numDraftLayers, 1);
    assert.ok(weights.tensors.has('input_proj.weight') && weights.tensors.has('rnn_w.weight'));
    const config = JSON.parse(readFileSync(join(out, 'config.json'), 'utf8')) as Record<string, unknown>;
    assert.equal(config['model_type'], 'recurrent_drafting_drafter');
    // A second run into the same folder without --resume refuses to clobber the checkpoint.
    const again = run(['train-drafter', '--model', stories260K.model, '--out', out, ...tiny]);
    assert.equal(again.status, 1);
    assert.match(again.stderr, /^redrafter: .*already holds a training checkpoint \(step 24\); pass --resume/);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Starts a training and kills it with SIGKILL `delayMs` after its first checkpoint appears. */
async function killDuringTraining(out: string, args: string[], delayMs: number): Promise<boolean> {
  const child = spawn(process.execPath, [main, ...args], { env, stdio: 'ignore' });
  const exited = new Promise<void>((resolve) => child.on('exit', () => resolve()));
  const train = join(out, 'train');
  const deadline = Date.now() + 60_000;
  let finished = false;
  child.on('exit', () => { finished = true; });
  while (!finished && Date.now() < deadline &&
    !existsSync(join(train, 'checkpoint')) && !existsSync(join(train, 'checkpoint.old'))) {
    await new Promise((resolve) => setTimeout(resolve, 5));
  }
  await new Promise((resolve) => setTimeout(resolve, delayMs));
  const killed = !finished;
  child.kill('SIGKILL');
  await exited;
  return killed;
}

test('kill -9 at random moments, then --resume: loadable checkpoints and the uninterrupted result', { skip }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'redrafter-resume-'));
  try {
    const reference = join(dir, 'reference');
    const straight = run(['train-drafter', '--model', stories260K.model, '--out', reference, '--threads', '1', ...tiny]);
    assert.equal(straight.status, 0, straight.stderr);

    const out = join(dir, 'interrupted');
    const args = ['train-drafter', '--model', stories260K.model, '--out', out, '--threads', '2', ...tiny];
    // Random delays after the first checkpoint: with a save after every update most land inside a save.
    let kills = 0;
    for (const delay of [Math.random() * 40, Math.random() * 80]) {
      if (await killDuringTraining(out, kills === 0 ? args : [...args, '--resume'], delay)) kills++;
      const state = loadTrainingState(join(out, 'train'));
      assert.ok(state, 'a checkpoint survives the kill');
      assert.ok(state.step >= 1 && state.step <= 24);
      readDrafter(out);
    }
    assert.ok(kills >= 1, 'the training was killed at least once before it finished');
    const resumed = run([...args, '--resume']);
    assert.equal(resumed.status, 0, resumed.stderr);
    assert.deepEqual(readFileSync(join(out, 'model.safetensors')), readFileSync(join(reference, 'model.safetensors')));
    const a = loadTrainingState(join(out, 'train'))!;
    const b = loadTrainingState(join(reference, 'train'))!;
    assert.equal(a.step, 24);
    assert.deepEqual(a.optimizer.m, b.optimizer.m);
    assert.deepEqual(a.optimizer.v, b.optimizer.v);
    assert.deepEqual(a.rng, b.rng);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
