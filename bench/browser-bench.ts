// npm run bench:browser [-- --tokens N --repeats R --threads 1,2]
// Decoding speed in Chromium (headless, the browser build on a cross-origin isolated page) against the Node engine,
// in one run, on stories260K-xl Q8_0 (generated into a temporary folder) at the same thread counts; and beside
// wllama 3.8.1 (llama.cpp in WebAssembly) on the same GGUF file: our plain decoding and our ReDrafter (the
// speculation controller's choice) each as a ratio to wllama's decoding. Greedy, the same prompt everywhere.
// Medians of R runs after warm-ups. Measures only: nothing here asserts a time.

import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { generateText, loadDrafter, loadModel } from '../src/index.js';
import { startDemoServer } from '../src/cli/demo.js';
import { chromiumMissing, launchChromium, openPage } from '../test/chromium.js';
import { makeXlQ8Fixture } from '../test/xl-fixture.js';

interface OursResult { threads: number; simd: string; plain: number[]; redrafter: number[]; tokens: number;
  shapes: Record<string, number> }
interface WllamaResult { threads: number; decode: number[]; tokens: number }
interface BenchSettings { model: string; drafter: string; threads: number; prompt: string; maxTokens: number;
  repeats: number }
interface BenchWindow { redrafterBench: { ours(s: BenchSettings): Promise<OursResult>; wllama(s: BenchSettings):
  Promise<WllamaResult> } }

const { values } = parseArgs({ options: {
  tokens: { type: 'string', default: '64' }, repeats: { type: 'string', default: '3' },
  threads: { type: 'string', default: '1,2' },
} });
const maxTokens = Number(values.tokens);
const repeats = Number(values.repeats);
const threadCounts = values.threads.split(',').map(Number);
const prompt = 'Once upon a time';

const median = (xs: number[]): number => {
  const sorted = [...xs].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};

async function nodeSpeed(model: string, drafterPath: string, threads: number): Promise<OursResult> {
  const loaded = await loadModel({ model, threads });
  try {
    const drafter = loadDrafter(loaded, drafterPath);
    const options = { prompt, maxTokens, temperature: 0, seed: 0 };
    await generateText(loaded, { ...options, maxTokens: 8 });
    await generateText(loaded, { ...options, maxTokens: 8, drafter });
    const result: OursResult = { threads, simd: loaded.kernels.simd, plain: [], redrafter: [], tokens: 0, shapes: {} };
    for (let r = 0; r < repeats; r++) {
      const plain = await generateText(loaded, options);
      result.plain.push(plain.stats.tokensPerSecond);
      result.tokens = plain.stats.tokens;
      const drafted = await generateText(loaded, { ...options, drafter });
      result.redrafter.push(drafted.stats.tokensPerSecond);
      for (const [shape, n] of Object.entries(drafted.stats.redrafter?.shapes ?? {})) {
        result.shapes[shape] = (result.shapes[shape] ?? 0) + n;
      }
    }
    return result;
  } finally {
    await loaded.close();
  }
}

const skip = chromiumMissing();
if (skip) {
  console.error(`bench:browser: ${skip}`);
  process.exit(2);
}
const repository = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const xl = makeXlQ8Fixture();
const server = await startDemoServer({ mounts: { '/xl/': xl.folder,
  '/wllama/': join(repository, 'node_modules', '@wllama', 'wllama', 'esm') } });
const browser = await launchChromium();
try {
  const { page, errors } = await openPage(browser, new URL('bench.html', server.url).href);
  await page.waitForFunction(() => 'redrafterBench' in globalThis);
  const cpu = cpus();
  console.log(`CPU: ${cpu[0]?.model.trim() ?? 'unknown'} (${cpu.length} logical CPUs); Node ${process.version}; ` +
    `Chromium ${browser.version()}; model stories260K-xl Q8_0 (${xl.model.split('/').pop()}), prompt ` +
    `${JSON.stringify(prompt)}, greedy, ${maxTokens} tokens, median of ${repeats}`);
  const rows: string[] = [];
  for (const threads of threadCounts) {
    const settings: BenchSettings = { model: '/xl/stories260K-xl-q8_0.gguf', drafter: '/xl/stories260K-xl-drafter/',
      threads, prompt, maxTokens, repeats };
    const node = await nodeSpeed(xl.model, xl.drafter, threads);
    const chromium = await page.evaluate((s) => (globalThis as unknown as BenchWindow).redrafterBench.ours(s), settings);
    const wllama = await page.evaluate((s) => (globalThis as unknown as BenchWindow).redrafterBench.wllama(s), settings);
    const w = median(wllama.decode);
    const [np, nr, cp, cr] = [median(node.plain), median(node.redrafter), median(chromium.plain), median(chromium.redrafter)];
    const shapes = (s: Record<string, number>): string => Object.entries(s).sort((a, b) => b[1] - a[1]).slice(0, 3)
      .map(([k, n]) => `${k}:${n}`).join(' ');
    rows.push(`| ${threads} | ${np.toFixed(1)} | ${cp.toFixed(1)} | ${(np / cp).toFixed(2)}× | ${nr.toFixed(1)} | ` +
      `${cr.toFixed(1)} | ${(nr / cr).toFixed(2)}× | ${w.toFixed(1)} | ${(cp / w).toFixed(2)} | ${(cr / w).toFixed(2)} | ` +
      `${shapes(chromium.shapes)} |`);
    console.log(`threads ${threads}: Node plain ${node.plain.map((x) => x.toFixed(1)).join('/')}, ReDrafter ` +
      `${node.redrafter.map((x) => x.toFixed(1)).join('/')} (${node.simd}); Chromium plain ` +
      `${chromium.plain.map((x) => x.toFixed(1)).join('/')}, ReDrafter ${chromium.redrafter.map((x) => x.toFixed(1)).join('/')} ` +
      `(${chromium.simd}); wllama ${wllama.decode.map((x) => x.toFixed(1)).join('/')} tokens/s (${wllama.tokens} tokens)`);
  }
  console.log('\n| threads | Node plain tok/s | Chromium plain tok/s | Node ÷ Chromium | Node ReDrafter tok/s | ' +
    'Chromium ReDrafter tok/s | Node ÷ Chromium | wllama tok/s | our plain ÷ wllama | our ReDrafter ÷ wllama | ' +
    'Chromium ReDrafter shapes |');
  console.log('|---|---|---|---|---|---|---|---|---|---|---|');
  for (const row of rows) console.log(row);
  if (errors.length > 0) console.log(`page errors: ${errors.join('; ')}`);
} finally {
  await browser.close();
  await server.close();
  xl.remove();
}
