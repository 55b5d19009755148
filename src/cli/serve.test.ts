// `redrafter serve` as a process: prints its bound address, 503 → 200 on /health, the API key, and SIGTERM draining
// an in-flight stream before exiting 0.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { missing, modelsFolder } from '../../test/fixtures.js';

const main = join(dirname(fileURLToPath(import.meta.url)), 'main.js');
const skip = missing('stories260K', 'stories260K.bin');

test('serve: listens on the printed address, needs the API key, drains on SIGTERM and exits 0', { skip }, async () => {
  const tuningDir = mkdtempSync(join(tmpdir(), 'redrafter-serve-tuning-'));
  const child = spawn(process.execPath, [main, 'serve', '--port', '0', '--api-key', 'k1', '--threads', '1'], {
    env: { ...process.env, REDRAFTER_MODELS: modelsFolder, REDRAFTER_TUNING: join(tuningDir, 'tuning.json') },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  const exited = once(child, 'exit') as Promise<[number | null, string | null]>;
  try {
    let stderr = '';
    child.stderr.setEncoding('utf8');
    const url = await new Promise<string>((resolve, reject) => {
      child.stderr.on('data', (text: string) => {
        stderr += text;
        const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stderr);
        if (match) resolve(match[1]);
      });
      void exited.then(() => reject(new Error(`serve exited early: ${stderr}`)));
    });
    // The model loads after the listener opens: poll /health until it is 200.
    let health = 0;
    for (let i = 0; i < 200 && health !== 200; i++) {
      health = (await fetch(`${url}/health`)).status;
      if (health !== 200) {
        assert.equal(health, 503);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    }
    assert.equal(health, 200);
    const body = JSON.stringify({ prompt: 'Once upon a time', max_tokens: 400, temperature: 1, seed: 2, stream: true });
    const denied = await fetch(`${url}/v1/completions`, { method: 'POST', body,
      headers: { 'content-type': 'application/json' } });
    assert.equal(denied.status, 401);
    const response = await fetch(`${url}/v1/completions`, { method: 'POST', body,
      headers: { 'content-type': 'application/json', authorization: 'Bearer k1' } });
    assert.equal(response.status, 200);
    const reader = response.body!.getReader();
    await reader.read();
    child.kill('SIGTERM');
    let text = '';
    const decoder = new TextDecoder();
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += decoder.decode(value, { stream: true });
    }
    assert.match(text, /data: \[DONE\]\n\n$/);
    const [code] = await exited;
    assert.equal(code, 0, stderr);
  } finally {
    child.kill('SIGKILL');
    rmSync(tuningDir, { recursive: true, force: true });
  }
});
