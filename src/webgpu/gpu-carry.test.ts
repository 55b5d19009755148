// The folder a lent GPU machine runs bench:gpu from (scripts/prepare-gpu-carry.mjs), end to end here: prepared
// (Node 24 from the npm registry, Debian's Vulkan loader), under the 64 MiB a call carries, and its run.sh runs the
// quick benchmark on this machine's adapter from the unpacked copy alone, with the shipped drafter found (the trees
// accept). The GPU run happens on a machine nobody can debug, so nothing there may be missing.

import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { test } from 'node:test';
import { firstLegOnly } from '../../test/fixtures.js';
import { testDevice } from './test-device.js';

const device = await testDevice();
device.gpu?.destroy();

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
const script = join(root, 'scripts', 'prepare-gpu-carry.mjs');
const tools = spawnSync('sh', ['-c', 'command -v apt-get && command -v dpkg-deb && command -v npm'], { encoding: 'utf8' });
// The folder does not depend on the Node running the tests (it carries its own): .ci/run checks it in one leg.
const skipCarry = firstLegOnly();

function folderBytes(dir: string): number {
  let total = 0;
  for (const name of readdirSync(dir)) {
    const path = join(dir, name);
    total += statSync(path).isDirectory() ? folderBytes(path) : statSync(path).size;
  }
  return total;
}

test('prepare-gpu-carry: the folder fits a call, and its run.sh runs bench:gpu --quick from it alone', {
  skip: device.skip || skipCarry || (tools.status === 0 ? false : 'apt-get, dpkg-deb or npm missing'), timeout: 600_000 },
() => {
  const dir = mkdtempSync(join(tmpdir(), 'redrafter-carry-test-'));
  try {
    const out = join(dir, 'carry');
    const prepared = spawnSync(process.execPath, [script, '--out', out], { cwd: root, encoding: 'utf8', timeout: 300_000 });
    assert.equal(prepared.status, 0, `prepare-gpu-carry failed:\n${prepared.stdout}\n${prepared.stderr}`);
    assert.ok(folderBytes(out) < 64 * 2 ** 20, `${folderBytes(out)} bytes`);
    assert.ok(existsSync(join(out, 'app', 'dist', 'src', 'kernels', 'kernels.wasm')));
    const json = join(dir, 'result.json');
    const run = spawnSync('sh', [join(out, 'run.sh'), '--quick', '--json', json], { encoding: 'utf8', timeout: 240_000,
      env: { ...process.env, TMPDIR: dir } });
    assert.equal(run.status, 0, `run.sh --quick failed:\n${run.stdout}\n${run.stderr}`);
    assert.match(run.stderr, /^node v24\./m);
    const report = JSON.parse(readFileSync(json, 'utf8')) as { results: { engine: { trees: { tokensPerStep: number }[] }[] }[] };
    // The shipped drafter came along: its inflated copy accepts on the inflated model (a random one would not).
    assert.ok(report.results[0].engine[0].trees[0].tokensPerStep > 1.5, JSON.stringify(report.results[0].engine[0]));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
