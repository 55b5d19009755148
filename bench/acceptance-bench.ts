// Acceptance of the default drafter (models/stories260K-drafter) with the default model on the held-out prompts:
// tokens per decoding step and how often the accepted path reaches each draft depth, for W ∈ {1,2,4,8} × L ∈ {2..6},
// greedy and at temperature 1 (exact verification: the output is the model's own). A measurement, not a test.
//
//   node dist/bench/acceptance-bench.js [--prompts N] [--tokens N] [--samples N] [--drafter DIR] [--threads N]
//     [--widths 1,2,4,8] [--lengths 2,3,4,5,6]   (a sub-grid, for quick comparisons between drafters)

import { cpus } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { performance } from 'node:perf_hooks';
import { loadModel } from '../src/engine/load.js';
import { resolveDefaultModel } from '../src/engine/default-model.js';
import { readDrafter } from '../src/drafter/checkpoint.js';
import { evaluateDecoding, type DecodingEval } from '../src/train/evaluate.js';
import { HELDOUT_PROMPTS } from '../src/train/story-prompts.js';

function flag(name: string, fallback: string): string {
  const at = process.argv.indexOf(name);
  return at >= 0 && at + 1 < process.argv.length ? process.argv[at + 1] : fallback;
}

const here = dirname(fileURLToPath(import.meta.url));
const drafterDir = resolve(flag('--drafter', join(here, '..', '..', 'models', 'stories260K-drafter')));
const promptCount = Number(flag('--prompts', String(HELDOUT_PROMPTS.length)));
const maxTokens = Number(flag('--tokens', '128'));
// Sampled texts per prompt at temperature 1: one per prompt moves the figure by ±0.05 from seed to seed.
const samplesPerPrompt = Number(flag('--samples', '4'));
const threads = Number(flag('--threads', '1'));
const list = (text: string): number[] => text.split(',').map(Number);
const widths = list(flag('--widths', '1,2,4,8'));
const lengths = list(flag('--lengths', '2,3,4,5,6'));

const files = await resolveDefaultModel();
const loaded = await loadModel({ model: files.model, tokenizer: files.tokenizer, threads });
const weights = readDrafter(drafterDir, loaded.model.config);
const prompts = HELDOUT_PROMPTS.slice(0, promptCount);
const started = performance.now();

const cell = (e: DecodingEval): string => e.tokensPerStep.toFixed(2);
const depths = (e: DecodingEval): string => e.acceptanceByDepth.map((a) => a.toFixed(2)).join(' / ');
const rows: string[] = [];
const summary = new Map<string, { greedy: number; sampled: number }>();
for (const W of widths) {
  for (const L of lengths) {
    const settings = { beams: W, beamLength: L, maxTokens, seed: 1, samplesPerPrompt };
    const greedy = await evaluateDecoding(loaded, weights, prompts, { ...settings, temperature: 0 });
    const sampled = await evaluateDecoding(loaded, weights, prompts, { ...settings, temperature: 1 });
    summary.set(`${W},${L}`, { greedy: greedy.tokensPerStep, sampled: sampled.tokensPerStep });
    rows.push(`| ${W} | ${L} | ${cell(greedy)} | ${depths(greedy)} | ${cell(sampled)} | ${depths(sampled)} |`);
    process.stderr.write(`W=${W} L=${L}: ${cell(greedy)} greedy, ${cell(sampled)} at T=1\n`);
  }
}
const seconds = (performance.now() - started) / 1000;
await loaded.close();

const cpu = cpus();
const out: string[] = [];
out.push(`## ReDrafter acceptance: stories260K + ${drafterDir.split('/').slice(-2).join('/')}`);
out.push('');
out.push(`Machine: ${cpu[0]?.model.trim() ?? 'unknown CPU'}, ${cpu.length} cores, Node ${process.version}. ` +
  `${prompts.length} held-out prompts (none in the training prompts), up to ${maxTokens} tokens each, exact ` +
  `verification (output identical to plain decoding); at temperature 1, ${samplesPerPrompt} sampled texts per prompt ` +
  `(seeds 1 + prompt index + 1000·r); ${seconds.toFixed(0)} s.`);
out.push('');
out.push('Tokens per step = tokens committed by decoding steps / steps (one LLM forward each). "Reached depth k" = ' +
  'fraction of steps whose accepted path includes the k-th drafted token (beam positions 1 … L−1).');
out.push('');
out.push('| W | L | greedy tokens/step | greedy: reached depth 1 / 2 / … | T=1 tokens/step | T=1: reached depth 1 / 2 / … |');
out.push('|---|---|---|---|---|---|');
out.push(...rows);
out.push('');
out.push('Tokens per step (greedy / temperature 1):');
out.push('');
out.push(`| W \\ L | ${lengths.join(' | ')} |`);
out.push(`|---|${lengths.map(() => '---').join('|')}|`);
for (const W of widths) {
  out.push(`| ${W} | ${lengths.map((L) => {
    const s = summary.get(`${W},${L}`)!;
    return `${s.greedy.toFixed(2)} / ${s.sampled.toFixed(2)}`;
  }).join(' | ')} |`);
}
process.stdout.write(out.join('\n') + '\n');
