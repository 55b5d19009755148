// The demo page (redrafter demo) in Chromium: plain decoding and ReDrafter on the page give the Node engine's ids;
// a screenshot mid-generation with the tree drawn; a page served without COOP/COEP runs on one thread and says so;
// a model URL that fails, or a file that is not a model, gets a clear message and the page keeps working; a reload
// reads the files from Cache Storage; dropped files load.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Browser, Page } from 'playwright-core';
import { loadModel } from '../engine/load.js';
import { generateText } from '../engine/generate.js';
import { defaultDrafterPath } from '../engine/default-model.js';
import { startDemoServer, type DemoServer } from '../cli/demo.js';
import { missing, stories260K } from '../../test/fixtures.js';
import { chromiumMissing, launchChromium, openPage } from '../../test/chromium.js';
import { makeXlQ8Fixture, type XlFixture } from '../../test/xl-fixture.js';

const skip = chromiumMissing() || missing('stories260K', 'stories260K.bin');
const checkout = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..', '..');

interface Settings {
  prompt: string;
  maxTokens: number;
  temperature: number;
  seed: number;
  /** Fixed tree W × L, or the controller ('auto'). */
  shape: { beams: number; beamLength: number } | 'auto';
}

let isolated: DemoServer;
let plainServer: DemoServer;
let browser: Browser;
let xl: XlFixture;

before(async () => {
  if (skip) return;
  xl = makeXlQ8Fixture();
  const mounts = { '/xl/': xl.folder, '/stories/': dirname(stories260K.model) };
  isolated = await startDemoServer({ mounts });
  plainServer = await startDemoServer({ mounts, isolated: false });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await isolated?.close();
  await plainServer?.close();
  xl?.remove();
});

async function nodeIds(model: string, tokenizer: string | undefined, settings: Settings): Promise<number[]> {
  const loaded = await loadModel({ model, tokenizer });
  try {
    return (await generateText(loaded, { prompt: settings.prompt, maxTokens: settings.maxTokens,
      temperature: settings.temperature, seed: settings.seed })).ids;
  } finally {
    await loaded.close();
  }
}

/** A load has ended: the model is in, or the page shows why not. */
const LOAD_ENDED = '#status[data-state=loaded], #status[data-state=empty], #error:not([hidden])';

async function waitLoaded(page: Page): Promise<void> {
  await page.waitForSelector(LOAD_ENDED, { state: 'attached', timeout: 60_000 });
}

async function load(page: Page, files: { model: string; tokenizer?: string; drafter?: string; threads: string }):
  Promise<void> {
  await page.fill('#model-url', files.model);
  await page.fill('#tokenizer-url', files.tokenizer ?? '');
  await page.fill('#drafter-url', files.drafter ?? '');
  await page.fill('#threads', files.threads);
  await page.click('#load'); // sets #status to loading before it returns
  await waitLoaded(page);
}

async function setSettings(page: Page, settings: Settings, stepwise = false): Promise<void> {
  await page.fill('#prompt', settings.prompt);
  await page.fill('#max-tokens', String(settings.maxTokens));
  await page.fill('#temperature', String(settings.temperature));
  await page.fill('#seed', String(settings.seed));
  if (settings.shape === 'auto') {
    await page.check('input[name=shape][value=auto]');
  } else {
    await page.check('input[name=shape][value=fixed]');
    await page.fill('#beams', String(settings.shape.beams));
    await page.fill('#beam-length', String(settings.shape.beamLength));
  }
  await page.setChecked('#stepwise', stepwise);
}

async function idsOf(page: Page, column: 'plain' | 'redrafter'): Promise<number[]> {
  const ids = await page.getAttribute(`#${column}`, 'data-ids');
  assert.ok(ids !== null, `#${column} has its ids`);
  return JSON.parse(ids) as number[];
}

/** Runs both columns and returns their ids. */
async function runBoth(page: Page, settings: Settings): Promise<{ plain: number[]; redrafter: number[] }> {
  await setSettings(page, settings);
  await page.click('#run');
  await page.waitForSelector('#redrafter[data-state=done], #redrafter[data-state=error]', { timeout: 60_000 });
  assert.equal(await page.getAttribute('#redrafter', 'data-state'), 'done', await page.textContent('#error') ?? '');
  return { plain: await idsOf(page, 'plain'), redrafter: await idsOf(page, 'redrafter') };
}

const greedy: Settings = { prompt: 'Once upon a time', maxTokens: 64, temperature: 0, seed: 1, shape: 'auto' };
const sampled: Settings = { prompt: 'The little dog', maxTokens: 64, temperature: 0.8, seed: 5, shape: { beams: 4, beamLength: 5 } };

test('demo page: ids equal the Node engine\'s (stories260K on 1 and 2 threads, stories260K-xl Q8_0; greedy and sampled); ' +
  'a screenshot mid-generation with the tree drawn', { skip, timeout: 150_000 }, async () => {
  const { page, errors } = await openPage(browser, isolated.url);
  try {
    await waitLoaded(page);
    assert.match(await page.textContent('#isolation') ?? '', /Cross-origin isolated/);
    assert.match(await page.textContent('#backend-status') ?? '', /WebAssembly/);
    const story = { model: '/stories/stories260K.bin', tokenizer: '/stories/tok512.bin', drafter: '/files/drafter/' };
    for (const threads of [1, 2]) {
      await load(page, { ...story, threads: String(threads) });
      assert.match(await page.textContent('#status') ?? '', new RegExp(`on ${threads} thread`));
      for (const settings of [greedy, sampled]) {
        const expected = await nodeIds(stories260K.model, stories260K.tokenizer, settings);
        const got = await runBoth(page, settings);
        assert.deepEqual(got.plain, expected, `stories260K ${threads} threads, T ${settings.temperature}: plain`);
        assert.deepEqual(got.redrafter, expected, `stories260K ${threads} threads, T ${settings.temperature}: ReDrafter`);
      }
    }
    const large = { model: '/xl/stories260K-xl-q8_0.gguf', drafter: '/xl/stories260K-xl-drafter/' };
    const cases: [number, Settings][] = [
      [1, { prompt: 'Once upon a time', maxTokens: 16, temperature: 0, seed: 1, shape: { beams: 2, beamLength: 4 } }],
      [2, { prompt: 'Lily wanted', maxTokens: 16, temperature: 1, seed: 9, shape: { beams: 2, beamLength: 4 } }],
    ];
    for (const [threads, settings] of cases) {
      await load(page, { ...large, threads: String(threads) });
      assert.match(await page.textContent('#status') ?? '', new RegExp(`stories260K-xl-q8_0.gguf .* on ${threads} thread`));
      const expected = await nodeIds(xl.model, undefined, settings);
      const got = await runBoth(page, settings);
      assert.deepEqual(got.plain, expected, `xl Q8_0 ${threads} threads, T ${settings.temperature}: plain`);
      assert.deepEqual(got.redrafter, expected, `xl Q8_0 ${threads} threads, T ${settings.temperature}: ReDrafter`);
    }

    // Step by step: ReDrafter waits before each step; after three steps the third step's tree is drawn.
    await load(page, { ...story, threads: '1' });
    await setSettings(page, { ...greedy, maxTokens: 120, shape: { beams: 4, beamLength: 5 } }, true);
    await page.click('#run');
    await page.waitForSelector('#plain[data-state=done]');
    for (let step = 1; step <= 3; step++) {
      await page.click('#step');
      await page.waitForSelector(`#tree[data-step="${step}"]`);
    }
    assert.equal(await page.getAttribute('#redrafter', 'data-state'), 'running', 'paused mid-generation');
    assert.ok(await page.locator('#tree .node').count() > 5, 'the tree has its nodes');
    assert.equal(await page.locator('#tree .node.bonus').count(), 1, 'one bonus token');
    assert.ok(await page.locator('#tree .node.accepted').count() >= 1);
    assert.match(await page.textContent('#tree-caption') ?? '', /step 3: 4 beams × length 5/);
    const shots = process.env['REDRAFTER_UPDATE_SCREENSHOT'] === '1' ? join(checkout, 'docs') : join(checkout, 'dist', 'screenshots');
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: join(shots, 'demo.png'), fullPage: true });
    await page.click('#resume');
    await page.waitForSelector('#redrafter[data-state=done]');
    assert.deepEqual(await idsOf(page, 'redrafter'), await idsOf(page, 'plain'));
    assert.deepEqual(errors, []);
  } finally {
    await page.context().close();
  }
});

test('demo page without COOP/COEP: runs on one thread and says so', { skip, timeout: 60_000 }, async () => {
  const { page, errors } = await openPage(browser, plainServer.url);
  try {
    assert.equal(await page.evaluate(() => (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated), false);
    await waitLoaded(page);
    assert.match(await page.textContent('#isolation') ?? '', /Single thread: the page is not cross-origin isolated/);
    await load(page, { model: '/stories/stories260K.bin', tokenizer: '/stories/tok512.bin', drafter: '/files/drafter/',
      threads: '2' });
    const status = await page.textContent('#status') ?? '';
    assert.match(status, /on 1 thread/);
    assert.match(status, /running on 1 thread: the page is not cross-origin isolated/);
    const got = await runBoth(page, sampled);
    const expected = await nodeIds(stories260K.model, stories260K.tokenizer, sampled);
    assert.deepEqual(got.plain, expected);
    assert.deepEqual(got.redrafter, expected);
    assert.deepEqual(errors, []);
  } finally {
    await page.context().close();
  }
});

test('demo page: a failing model URL and a file that is not a model get clear messages, and the page keeps working; ' +
  'a reload reads the cache; dropped files load', { skip, timeout: 60_000 }, async () => {
  const { page } = await openPage(browser, isolated.url);
  try {
    await waitLoaded(page);
    assert.match(await page.getAttribute('#progress', 'data-sources') ?? '', /download/);
    await load(page, { model: '/no-such-model.gguf', threads: '1' });
    assert.match(await page.textContent('#error') ?? '',
      /Could not load the model: http:\/\/127\.0\.0\.1:\d+\/no-such-model\.gguf: HTTP 404/);
    assert.match(await page.textContent('#status') ?? '', /still using stories260K\.bin/);

    await load(page, { model: '/demo.css', tokenizer: '/stories/tok512.bin', threads: '1' });
    const message = await page.textContent('#error') ?? '';
    assert.match(message, /Could not load the model: .*demo\.css/);
    assert.doesNotMatch(message, /undefined|\[object/);

    // The page still runs the model it had.
    const expected = await nodeIds(stories260K.model, stories260K.tokenizer, greedy);
    const got = await runBoth(page, { ...greedy, shape: { beams: 2, beamLength: 3 } });
    assert.deepEqual(got.plain, expected);
    assert.deepEqual(got.redrafter, expected);
    assert.equal(await page.isHidden('#error'), true, 'a new run clears the message');

    // A reload loads the same files from Cache Storage, without downloading them again.
    await page.reload();
    await waitLoaded(page);
    assert.equal(await page.getAttribute('#progress', 'data-sources'), 'cache');

    // Dropped (here: chosen) files: model, tokenizer and the drafter's two files.
    const drafter = defaultDrafterPath()!;
    await page.setInputFiles('#files', [stories260K.model, stories260K.tokenizer, join(drafter, 'config.json'),
      join(drafter, 'model.safetensors')]);
    await waitLoaded(page);
    assert.equal(await page.isHidden('#error'), true, await page.textContent('#error') ?? '');
    assert.equal(await page.getAttribute('#progress', 'data-sources'), 'file');
    const dropped = await runBoth(page, { ...greedy, shape: 'auto' });
    assert.deepEqual(dropped.plain, expected);
    assert.deepEqual(dropped.redrafter, expected);
  } finally {
    await page.context().close();
  }
});

test('demo page on WebGPU (SwiftShader in Chromium): the backend choice is shown and ReDrafter equals plain decoding',
  { skip, timeout: 120_000 }, async () => {
    const { page, errors } = await openPage(browser, isolated.url);
    try {
      await waitLoaded(page);
      const webgpu = await page.$eval('#backend option[value=webgpu]', (o) => (o as unknown as { disabled: boolean }).disabled);
      assert.equal(webgpu, false, 'WebGPU is offered where navigator.gpu has an adapter');
      await page.selectOption('#backend', 'webgpu');
      await load(page, { model: '/stories/stories260K.bin', tokenizer: '/stories/tok512.bin', drafter: '/files/drafter/',
        threads: '1' });
      assert.match(await page.textContent('#backend-status') ?? '', /in use: WebGPU/);
      const settings: Settings = { prompt: 'Once upon a time', maxTokens: 24, temperature: 0.8, seed: 3,
        shape: { beams: 2, beamLength: 4 } };
      const got = await runBoth(page, settings);
      assert.ok(got.plain.length > 1);
      assert.deepEqual(got.redrafter, got.plain, 'ReDrafter on WebGPU = plain on WebGPU');
      assert.deepEqual(errors, []);
    } finally {
      await page.context().close();
    }
  });
