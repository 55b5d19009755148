// The browser build in Chromium, through the library (dist/browser/redrafter.js on a cross-origin isolated page):
// the same model, prompt and settings give the same token ids as the Node engine, plain decoding and ReDrafter,
// greedy and seeded sampling, stories260K and stories260K-xl Q8_0, on 1 and 2 threads.

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import type { Browser } from 'playwright-core';
import { loadDrafter, loadModel } from '../engine/load.js';
import { generateText } from '../engine/generate.js';
import { defaultDrafterPath } from '../engine/default-model.js';
import { startDemoServer, type DemoServer } from '../cli/demo.js';
import { firstLegOnly, missing, stories260K } from '../../test/fixtures.js';
import { chromiumMissing, launchChromium, openPage } from '../../test/chromium.js';
import { makeXlQ8Fixture, type XlFixture } from '../../test/xl-fixture.js';

const skip = chromiumMissing() || missing('stories260K', 'stories260K.bin');

/** One generation to run in both engines. */
interface Case {
  name: string;
  prompt: string;
  maxTokens: number;
  temperature: number;
  seed: number;
  topP?: number;
  /** ReDrafter's fixed tree; absent: the speculation controller chooses. */
  beams?: number;
  beamLength?: number;
}

interface ModelUnderTest {
  name: string;
  /** Paths for Node, URLs (on the test server) for the page. */
  model: string;
  tokenizer?: string;
  drafter: string;
  modelUrl: string;
  tokenizerUrl?: string;
  drafterUrl: string;
  cases: Case[];
}

interface PageResult {
  threads: number;
  threadNote: string | null;
  simd: string;
  results: { plain: number[]; redrafter: number[] }[];
}

let server: DemoServer;
let browser: Browser;
let xl: XlFixture;

before(async () => {
  if (skip) return;
  xl = makeXlQ8Fixture();
  server = await startDemoServer({ mounts: { '/xl/': xl.folder, '/stories/': stories260K.model.replace(/[^/]+$/, '') } });
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
  await server?.close();
  xl?.remove();
});

function models(): ModelUnderTest[] {
  const drafter = defaultDrafterPath()!;
  const story: Case[] = [
    { name: 'greedy', prompt: 'Once upon a time', maxTokens: 64, temperature: 0, seed: 0 },
    { name: 'sampled', prompt: 'The little dog', maxTokens: 64, temperature: 0.8, seed: 7, topP: 0.9 },
  ];
  const large: Case[] = [
    { name: 'greedy', prompt: 'Once upon a time', maxTokens: 20, temperature: 0, seed: 0, beams: 2, beamLength: 4 },
    { name: 'sampled', prompt: 'Lily wanted', maxTokens: 20, temperature: 1, seed: 3, beams: 2, beamLength: 4 },
  ];
  return [
    { name: 'stories260K', model: stories260K.model, tokenizer: stories260K.tokenizer, drafter,
      modelUrl: '/stories/stories260K.bin', tokenizerUrl: '/stories/tok512.bin', drafterUrl: '/files/drafter/', cases: story },
    { name: 'stories260K-xl Q8_0', model: xl.model, drafter: xl.drafter, modelUrl: '/xl/stories260K-xl-q8_0.gguf',
      drafterUrl: '/xl/stories260K-xl-drafter/', cases: large },
  ];
}

/** The Node engine's ids for every case (1 thread: the kernels give the same bits on any thread count). */
async function nodeIds(subject: ModelUnderTest): Promise<number[][]> {
  const loaded = await loadModel({ model: subject.model, tokenizer: subject.tokenizer });
  try {
    const drafter = loadDrafter(loaded, subject.drafter);
    const ids: number[][] = [];
    for (const c of subject.cases) {
      const plain = await generateText(loaded, c);
      const drafted = await generateText(loaded, { ...c, drafter });
      assert.deepEqual(drafted.ids, plain.ids, `${subject.name} ${c.name}: Node ReDrafter = Node plain`);
      ids.push(plain.ids);
    }
    return ids;
  } finally {
    await loaded.close();
  }
}

/** What the page imports from /redrafter.js (the subset used here). */
interface BrowserLibrary {
  loadModel(options: { model: string; tokenizer?: string; threads: number }): Promise<{
    threads: number; threadNote: string | null; kernels: { simd: string }; close(): Promise<void>;
  }>;
  loadDrafter(loaded: unknown, folder: string): Promise<unknown>;
  generateText(loaded: unknown, options: Case & { drafter?: unknown }): Promise<{ ids: number[] }>;
}

async function browserIds(subject: ModelUnderTest, threads: number): Promise<PageResult> {
  const { page, errors } = await openPage(browser, new URL('library.html', server.url).href);
  try {
    assert.equal(await page.evaluate(() => (globalThis as { crossOriginIsolated?: boolean }).crossOriginIsolated), true,
      'the test page is isolated');
    const run = { library: new URL('redrafter.js', server.url).href, model: subject.modelUrl,
      tokenizer: subject.tokenizerUrl, drafter: subject.drafterUrl, threads, cases: subject.cases };
    const result = await page.evaluate(async (args): Promise<PageResult> => {
      const library = await import(args.library) as BrowserLibrary;
      const loaded = await library.loadModel({ model: args.model, tokenizer: args.tokenizer, threads: args.threads });
      try {
        const drafter = await library.loadDrafter(loaded, args.drafter);
        const results: PageResult['results'] = [];
        for (const c of args.cases) {
          const plain = await library.generateText(loaded, c);
          const drafted = await library.generateText(loaded, { ...c, drafter });
          results.push({ plain: plain.ids, redrafter: drafted.ids });
        }
        return { threads: loaded.threads, threadNote: loaded.threadNote, simd: loaded.kernels.simd, results };
      } finally {
        await loaded.close();
      }
    }, run);
    assert.deepEqual(errors, []);
    return result;
  } finally {
    await page.context().close();
  }
}

for (const threads of [1, 2]) {
  test(`Chromium library, ${threads} thread${threads > 1 ? 's' : ''}: ids equal the Node engine's (stories260K, ` +
    'stories260K-xl Q8_0; greedy and sampled; plain and ReDrafter)', { skip, timeout: 120_000 }, async () => {
    for (const subject of models()) {
      const expected = await nodeIds(subject);
      const got = await browserIds(subject, threads);
      assert.equal(got.threads, threads, `${subject.name}: threads in use`);
      assert.equal(got.threadNote, null);
      assert.equal(got.simd, 'relaxed', 'Chromium validates relaxed SIMD');
      subject.cases.forEach((c, i) => {
        assert.ok(expected[i].length > 1, `${subject.name} ${c.name}: Node generated tokens`);
        assert.deepEqual(got.results[i].plain, expected[i], `${subject.name} ${c.name}: browser plain = Node`);
        assert.deepEqual(got.results[i].redrafter, expected[i], `${subject.name} ${c.name}: browser ReDrafter = Node`);
      });
    }
  });
}

test('Chromium library on WebGPU (SwiftShader): ReDrafter ids equal plain ids, and equal the Node engine on WebGPU',
  { skip: skip || firstLegOnly(), timeout: 240_000 }, async () => {
    const { testDevice } = await import('../webgpu/test-device.js');
    const device = await testDevice();
    // stories260K on 1 thread, greedy and sampled; stories260K-xl Q8_0 (75 M parameters: SwiftShader takes seconds
    // per token) a few greedy tokens with the drafter on 2 threads.
    const subjects = [
      { model: '/stories/stories260K.bin', tokenizer: '/stories/tok512.bin' as string | undefined,
        drafter: '/files/drafter/', threads: 1, node: { model: stories260K.model, tokenizer: stories260K.tokenizer as
          string | undefined }, cases: [
          { name: 'greedy', prompt: 'Once upon a time', maxTokens: 24, temperature: 0, seed: 0, beams: 2, beamLength: 4 },
          { name: 'sampled', prompt: 'The little dog', maxTokens: 24, temperature: 0.8, seed: 7, topP: 0.9, beams: 1,
            beamLength: 5 },
        ] as Case[] },
      { model: '/xl/stories260K-xl-q8_0.gguf', tokenizer: undefined, drafter: '/xl/stories260K-xl-drafter/', threads: 2,
        node: { model: xl.model, tokenizer: undefined }, cases: [
          { name: 'xl greedy', prompt: 'Once upon a time', maxTokens: 4, temperature: 0, seed: 0, beams: 1, beamLength: 3 },
        ] as Case[] },
    ];
    for (const subject of subjects) {
      const cases = subject.cases;
      const { page, errors } = await openPage(browser, new URL('library.html', server.url).href);
      try {
        const run = { library: new URL('redrafter.js', server.url).href, cases, model: subject.model,
          tokenizer: subject.tokenizer, drafter: subject.drafter, threads: subject.threads };
        const got = await page.evaluate(async (args) => {
          const library = await import(args.library) as {
            browserCapabilities(): Promise<{ backends: { name: string; available: boolean }[] }>;
            loadModel(options: { model: string; tokenizer?: string; backend: string; contextLength: number;
              threads: number }): Promise<{ backend: string; adapter?: string; threads: number; close(): Promise<void> }>;
            loadDrafter(loaded: unknown, folder: string): Promise<unknown>;
            generateText(loaded: unknown, options: Case & { drafter?: unknown }): Promise<{ ids: number[] }>;
          };
          const capabilities = await library.browserCapabilities();
          const loaded = await library.loadModel({ model: args.model, tokenizer: args.tokenizer, backend: 'webgpu',
            contextLength: 256, threads: args.threads });
          try {
            const drafter = await library.loadDrafter(loaded, args.drafter);
            const results: { plain: number[]; redrafter: number[] }[] = [];
            for (const c of args.cases) {
              const plain = await library.generateText(loaded, c);
              const drafted = await library.generateText(loaded, { ...c, drafter });
              results.push({ plain: plain.ids, redrafter: drafted.ids });
            }
            return { backend: loaded.backend, adapter: loaded.adapter, threads: loaded.threads, results,
              webgpuListed: capabilities.backends.find((b) => b.name === 'webgpu')?.available ?? false };
          } finally {
            await loaded.close();
          }
        }, run);
        assert.deepEqual(errors, []);
        assert.equal(got.backend, 'webgpu');
        assert.equal(got.threads, subject.threads);
        assert.equal(got.webgpuListed, true, 'browserCapabilities lists WebGPU as available');
        got.results.forEach((r, i) => {
          assert.ok(r.plain.length > 1);
          assert.deepEqual(r.redrafter, r.plain, `${cases[i].name}: ReDrafter on WebGPU = plain on WebGPU`);
        });
        if (device.gpu !== undefined) {
          // Node on WebGPU (dawn.node over the same SwiftShader): the same ids.
          const loaded = await loadModel({ model: subject.node.model, tokenizer: subject.node.tokenizer, backend: 'webgpu',
            contextLength: 256 });
          try {
            for (const [i, c] of cases.entries()) {
              assert.deepEqual(got.results[i].plain, (await generateText(loaded, c)).ids, `${c.name}: browser = Node (WebGPU)`);
            }
          } finally {
            await loaded.close();
          }
        }
      } finally {
        await page.context().close();
      }
    }
  });
