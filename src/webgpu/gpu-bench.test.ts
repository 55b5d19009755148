// `npm run bench:gpu -- --quick` end to end on this machine's adapter (SwiftShader in CI): the GPU run, which happens
// on a machine we cannot debug, must not be the first to exercise the benchmark's plumbing. Asserts that it ran and
// reported every measurement, not how fast anything was.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { testDevice } from './test-device.js';

const device = await testDevice();
// The benchmark opens its own device in its own process.
device.gpu?.destroy();

const bench = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', 'bench', 'gpu-bench.js');

test('bench:gpu --quick runs on this adapter and reports forward time, bound, greedy tokens/s and tree costs', {
  skip: device.skip || (existsSync(bench) ? false : `${bench} not built`) }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'redrafter-gpu-bench-'));
  try {
    const json = join(dir, 'result.json');
    const run = spawnSync(process.execPath, [bench, '--quick', '--json', json], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(run.status, 0, `bench:gpu --quick failed:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stdout, /^adapter: .+/m);
    assert.match(run.stdout, /\| stories260K-tiny \(\d+M\) \| f32 \|/);
    assert.match(run.stdout, /\| stories260K-tiny \(\d+M\) \| q8_0 \|/);
    // Through the engine: plain decoding and two ReDrafter trees, greedy and T = 1, for each encoding.
    for (const encoding of ['f32', 'q8_0']) {
      for (const mode of ['greedy', 'T=1']) {
        assert.match(run.stdout, new RegExp(`\\| stories260K-tiny \\| ${encoding} \\| ${mode} \\| [\\d.]+ \\(\\d+\\) \\| [\\d.]+ \\(`));
      }
    }
    const report = JSON.parse(readFileSync(json, 'utf8')) as { bandwidth: number; results: { forwardMs: number; boundMs: number;
      greedyTokensPerSecond: number; bytesRead: number; tree: { nodes: number; ms: number }[];
      engine: { mode: string; plainBytesPerStep: number; trees: { drafterOn: string; tokensPerStep: number; bytesPerStep: number;
        draftMsPerStep: number }[] }[] }[] };
    assert.ok(report.bandwidth > 0);
    assert.equal(report.results.length, 2);
    for (const result of report.results) {
      assert.ok(result.forwardMs > 0 && result.boundMs > 0 && result.greedyTokensPerSecond > 0);
      assert.equal(result.bytesRead, 4, 'a plain step reads back one argmax id');
      assert.deepEqual(result.tree.map((t) => t.nodes), [1, 2, 4, 8]);
      assert.equal(result.engine.length, 2);
      // The inflated shipped drafter accepts drafts on the inflated model (greedy), on the GPU as on the host; drafting
      // on the GPU reads back no hidden state.
      const [gpu1x6, , host1x6] = result.engine[0].trees;
      assert.ok(gpu1x6.drafterOn === 'gpu' && host1x6.drafterOn === 'host', JSON.stringify(result.engine[0]));
      assert.ok(gpu1x6.tokensPerStep > 1.5 && host1x6.tokensPerStep > 1.5, JSON.stringify(result.engine[0]));
      assert.ok(gpu1x6.bytesPerStep < host1x6.bytesPerStep && gpu1x6.draftMsPerStep > 0, JSON.stringify(result.engine[0]));
      // Greedy reads ids (and a tree's hidden states), T = 1 the logits rows: the table shows what crossed the bus.
      const [greedy, sampled] = result.engine;
      assert.ok(greedy.mode === 'greedy' && greedy.plainBytesPerStep < sampled.plainBytesPerStep / 10,
        `plain step bytes: greedy ${greedy.plainBytesPerStep}, T = 1 ${sampled.plainBytesPerStep}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
