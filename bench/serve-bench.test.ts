// bench:serve cannot rot: a --quick run of two rounds with a tiny request count on stories260K prints a full table
// (every model × speculation × concurrency cell, both rounds' requests completed, each mode ratio's spread over the
// rounds), and --write puts its section before bench:redrafter's
// marker in a copy of BENCHMARKS.md, replacing it on the next run and leaving the other sections as they were.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { missing, modelsFolder } from '../test/fixtures.js';

const here = dirname(fileURLToPath(import.meta.url));
const checkout = resolve(here, '..', '..');
const skip = missing('stories260K', 'stories260K.bin');

function run(args: string[]): string {
  const result = spawnSync(process.execPath, [join(here, 'serve-bench.js'), '--quick', '--requests', '2',
    '--max-tokens', '6', '--threads', '1', '--rounds', '2', ...args], { encoding: 'utf8', timeout: 60_000,
    env: { ...process.env, REDRAFTER_MODELS: modelsFolder } });
  assert.equal(result.status, 0, result.stderr);
  return result.stdout;
}

test('bench:serve --quick measures every cell; --write inserts and then replaces its section', { skip }, () => {
  const root = mkdtempSync(join(tmpdir(), 'redrafter-serve-bench-'));
  try {
    // The repository's file without its serving section, so that the first run inserts one and the second replaces it.
    const without = (text: string): string => text.replace(/<!-- serve-bench -->[\s\S]*?<!-- \/serve-bench -->\n\n?/, '');
    const original = without(readFileSync(join(checkout, 'BENCHMARKS.md'), 'utf8'));
    writeFileSync(join(root, 'BENCHMARKS.md'), original);
    const out = run(['--write', '--root', root]);
    assert.match(out, /^machine: .+, Node v\d+/m);
    const cellsOf = (line: string): string[] => line.split('|').slice(1, -1).map((c) => c.trim());
    const lines = out.split('\n').filter((line) => line.startsWith('| stories260K |'));
    // The main table's rows have ten columns; then the ratio table (five) and the prefix-reuse row (six).
    const rows = lines.filter((line) => cellsOf(line).length === 10);
    assert.equal(rows.length, 3 * 3, out);
    const ratios = lines.filter((line) => cellsOf(line).length === 5);
    assert.equal(ratios.length, 3, out);
    // auto ÷ off and fixed ÷ off over both rounds, then each one's lowest and highest round.
    for (const line of ratios) {
      for (const cell of cellsOf(line).slice(2, 4)) assert.match(cell, /^\d+\.\d\d× \(\d+\.\d\d–\d+\.\d\d\)$/, line);
    }
    const prefix = lines.find((line) => cellsOf(line).length === 6);
    assert.ok(prefix, out);
    // 202 prompt tokens; the second of each pair reuses 12 full 16-token blocks of its 200-token shared prefix.
    assert.deepEqual([cellsOf(prefix)[1], cellsOf(prefix)[5]], ['202', '192'], prefix);
    for (const mode of ['off', 'fixed 1×6', 'auto']) {
      for (const clients of [1, 4, 16]) {
        const row = rows.find((r) => r.startsWith(`| stories260K | ${mode} | ${clients} |`));
        assert.ok(row, `${mode} × ${clients}`);
        const cells = row.split('|').slice(1, -1).map((c) => c.trim());
        // At least one request per client in each of the two rounds, none failed; every figure a number.
        assert.equal(cells[3], String(2 * Math.max(2, clients)), row);
        for (const figure of cells.slice(4)) assert.ok(Number.isFinite(Number(figure)) && Number(figure) >= 0, row);
        assert.ok(Number(cells[4]) > 0, row);
      }
    }
    const written = readFileSync(join(root, 'BENCHMARKS.md'), 'utf8');
    const marker = '<!-- redrafter-bench -->';
    const section = written.slice(written.indexOf('<!-- serve-bench -->'), written.indexOf('<!-- /serve-bench -->'));
    assert.ok(section.includes('## Serving (`npm run bench:serve`'), section);
    assert.ok(section.includes('](docs/serve-throughput.svg)'));
    assert.ok(written.indexOf('<!-- /serve-bench -->') < written.indexOf(marker));
    // Everything else is the original, byte for byte.
    assert.equal(without(written), original);
    const svg = readFileSync(join(root, 'docs', 'serve-throughput.svg'), 'utf8');
    assert.match(svg, /^<svg [^>]*>[\s\S]*<\/svg>$/);
    assert.equal((svg.match(/<path /g) ?? []).length, 3, 'one line per speculation mode');
    run(['--write', '--root', root]);
    const again = readFileSync(join(root, 'BENCHMARKS.md'), 'utf8');
    assert.equal(again.split('<!-- serve-bench -->').length, 2, 'one section after two runs');
    assert.equal(without(again), original);
    assert.ok(existsSync(join(root, 'docs', 'serve-throughput.svg')));
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});
