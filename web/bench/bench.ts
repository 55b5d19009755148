// The browser benchmark page (bench/browser-bench.ts drives it headless): decoding speed of our engine (plain and
// ReDrafter) and of wllama (llama.cpp in WebAssembly) on the same GGUF file and thread count, on this page's main
// thread for ours (as Node runs it) and wllama's own worker for it. Measures only; the driver prints and compares.
import { Wllama } from '@wllama/wllama';

/** The subset of /redrafter.js used here (the library is loaded at run time, next to this page). */
interface RedrafterLibrary {
  loadModel(options: { model: string; threads: number; cache: false }): Promise<LoadedModel>;
  loadDrafter(loaded: LoadedModel, folder: string, options: { cache: false }): Promise<unknown>;
  generateText(loaded: LoadedModel, options: { prompt: string; maxTokens: number; temperature: number; seed: number;
    drafter?: unknown }): Promise<{ ids: number[]; stats: { tokens: number; tokensPerSecond: number; steps: number;
      redrafter?: { shapes: Record<string, number> } } }>;
}

interface LoadedModel {
  threads: number;
  threadNote: string | null;
  kernels: { simd: string };
  close(): Promise<void>;
}

export interface OursResult {
  threads: number;
  simd: string;
  /** tokens/s of each measured run (after one warm-up each). */
  plain: number[];
  redrafter: number[];
  tokens: number;
  shapes: Record<string, number>;
}

export interface WllamaResult {
  threads: number;
  /** llama.cpp's own decode rate (timings.predicted_per_second) of each measured run. */
  decode: number[];
  tokens: number;
}

export interface BenchSettings {
  model: string;
  drafter: string;
  threads: number;
  prompt: string;
  maxTokens: number;
  repeats: number;
}

function log(line: string): void {
  const element = document.getElementById('log');
  if (element !== null) element.textContent += `${line}\n`;
}

async function ours(settings: BenchSettings): Promise<OursResult> {
  const library = await import(new URL('redrafter.js', location.href).href) as RedrafterLibrary;
  const loaded = await library.loadModel({ model: settings.model, threads: settings.threads, cache: false });
  try {
    if (loaded.threadNote !== null) throw new Error(loaded.threadNote);
    const drafter = await library.loadDrafter(loaded, settings.drafter, { cache: false });
    const options = { prompt: settings.prompt, maxTokens: settings.maxTokens, temperature: 0, seed: 0 };
    const result: OursResult = { threads: loaded.threads, simd: loaded.kernels.simd, plain: [], redrafter: [], tokens: 0,
      shapes: {} };
    // Warm-ups: the JIT, and the speculation controller's calibration on the drafter's first use.
    await library.generateText(loaded, { ...options, maxTokens: 8 });
    await library.generateText(loaded, { ...options, maxTokens: 8, drafter });
    for (let r = 0; r < settings.repeats; r++) {
      const plain = await library.generateText(loaded, options);
      result.plain.push(plain.stats.tokensPerSecond);
      result.tokens = plain.stats.tokens;
      const drafted = await library.generateText(loaded, { ...options, drafter });
      result.redrafter.push(drafted.stats.tokensPerSecond);
      for (const [shape, n] of Object.entries(drafted.stats.redrafter?.shapes ?? {})) {
        result.shapes[shape] = (result.shapes[shape] ?? 0) + n;
      }
      log(`ours, ${settings.threads} threads: plain ${plain.stats.tokensPerSecond.toFixed(1)}, ReDrafter ` +
        `${drafted.stats.tokensPerSecond.toFixed(1)} tokens/s`);
    }
    return result;
  } finally {
    await loaded.close();
  }
}

async function wllama(settings: BenchSettings): Promise<WllamaResult> {
  const response = await fetch(settings.model);
  if (!response.ok) throw new Error(`${settings.model}: HTTP ${response.status}`);
  const file = new File([await response.blob()], 'model.gguf');
  const engine = new Wllama({ default: new URL('wllama/wasm/wllama.wasm', location.href).href },
    { suppressNativeLog: true, logger: { debug: () => {}, log: () => {}, warn: console.warn, error: console.error } });
  // n_gpu_layers 0: the CPU (WebAssembly) path only, as ours.
  await engine.loadModel([file], { n_threads: settings.threads, n_ctx: 512, n_gpu_layers: 0 });
  try {
    const result: WllamaResult = { threads: settings.threads, decode: [], tokens: 0 };
    await engine.createCompletion({ prompt: settings.prompt, max_tokens: 8, temperature: 0 });
    for (let r = 0; r < settings.repeats; r++) {
      const completion = await engine.createCompletion({ prompt: settings.prompt, max_tokens: settings.maxTokens,
        temperature: 0 });
      const timings = completion.timings;
      if (timings === undefined) throw new Error('wllama returned no timings');
      result.decode.push(timings.predicted_per_second);
      result.tokens = timings.predicted_n;
      log(`wllama, ${settings.threads} threads: ${timings.predicted_per_second.toFixed(1)} tokens/s`);
    }
    return result;
  } finally {
    await engine.exit();
  }
}

declare global {
  interface Window {
    redrafterBench: { ours: typeof ours; wllama: typeof wllama };
  }
}

window.redrafterBench = { ours, wllama };
