// The ReDrafter benchmark harness (issue 6): autoregressive vs ReDrafter decoding, alternating rounds in one process,
// on stories260K and stories260K-xl (F32 and Q8_0), greedy and temperature 1, 1 and 2 threads; a W × L sweep; the
// verify-cost curve; llama.cpp on the same GGUF files. Each model runs in its own child process (peak RSS per model).
//
//   npm run bench:redrafter                      # print the report
//   npm run bench:redrafter -- --write           # also write BENCHMARKS.md's ReDrafter section and docs/*.svg
//   npm run bench:redrafter -- --quick           # fewer tokens and rounds
//   npm run bench:redrafter -- --llama-bench DIR # also build (once, in DIR) and run llama.cpp's llama-bench
//   npm run bench:redrafter -- --models Q8_0     # only the models whose name contains one of these (comma-separated;
//                                                # a model's whole name picks it alone: --models stories260K),
//                                                # e.g. a second runtime's figures (print only: not with --write)

import { spawnSync } from 'node:child_process';
import { listOption, pickModels } from './subset.js';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { compareSpeed, describeMachine, verifyCostCurve, type SpeedComparison } from '../src/engine/benchmark.js';
import { resolveDefaultModel } from '../src/engine/default-model.js';
import { loadDrafter, loadModel } from '../src/engine/load.js';
import { BENCH_PROMPTS } from '../src/cli/bench.js';
import { makeXl } from '../src/model/xl.js';
import { barChart, lineChart } from './svg.js';
import { buildLlamaBench, measureLlamaCpp, runLlamaBench, type LlamaBenchRow, type LlamaCppSpeed } from './llama-cpp.js';

const repository = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({ options: {
  quick: { type: 'boolean', default: false }, write: { type: 'boolean', default: false },
  section: { type: 'string' }, xl: { type: 'string' }, 'llama-bench': { type: 'string' },
  beams: { type: 'string' }, 'beam-length': { type: 'string' }, models: { type: 'string' },
} });
const quick = values.quick ?? false;
const TOKENS = quick ? 48 : 96;
const ROUNDS = quick ? 1 : 3;
const VERIFY_SIZES = [1, 4, 8, 16, 32];
const WIDTHS = [1, 2, 4, 8];
const LENGTHS = [2, 3, 4, 5, 6, 7, 8];
const TEMPERATURES = [0, 1];

interface ModelSpec {
  name: string;
  model: string;
  drafter: string;
  gguf: boolean;
  /**
   * Alternating rounds of the best-tree and controller comparisons (default ROUNDS). stories260K's steps take ~65 us
   * and a round ~0.1 s, so its per-round ratios spread ±10 % (one 2-thread cell read 0.92x where 15 rounds give
   * 0.97-0.99x): it gets more rounds, which cost seconds.
   */
  rounds?: number;
}

interface Run {
  threads: number;
  temperature: number;
  /** The fixed tree, or 0 × 0 for the speculation controller's choice per step. */
  beams: number;
  beamLength: number;
  result: SpeedComparison;
}

const isAuto = (run: Run): boolean => run.beams === 0;

interface SectionResult {
  name: string;
  runs: Run[];
  sweep: { temperature: number; beams: number; beamLength: number; speedup: number; tokensPerStep: number;
    tokensPerSecond: number }[];
  verifyCost: { threads: number; curve: { tokens: number; seconds: number; relative: number }[] }[];
  llamaCpp?: LlamaCppSpeed | string;
  peakRssMb: number;
}

async function models(): Promise<ModelSpec[]> {
  const stories = await resolveDefaultModel();
  const drafter = join(repository, 'models', 'stories260K-drafter');
  if (!existsSync(join(drafter, 'config.json'))) throw new Error(`the default drafter is missing: ${drafter}`);
  const xlDir = values.xl ?? join(process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache'), 'redrafter', 'xl');
  const xl = join(xlDir, 'stories260K-xl.gguf');
  if (!existsSync(xl) || !existsSync(join(xlDir, 'stories260K-xl-drafter', 'config.json'))) {
    console.error(`writing stories260K-xl to ${xlDir} …`);
    makeXl({ model: stories.model, tokenizer: stories.tokenizer, out: xlDir, drafter, types: ['f32', 'q8_0'] });
  }
  const xlDrafter = join(xlDir, 'stories260K-xl-drafter');
  return [
    { name: 'stories260K', model: stories.model, drafter, gguf: false, rounds: quick ? 1 : 15 },
    { name: 'stories260K-xl F32', model: xl, drafter: xlDrafter, gguf: true },
    { name: 'stories260K-xl Q8_0', model: join(xlDir, 'stories260K-xl-q8_0.gguf'), drafter: xlDrafter, gguf: true },
  ];
}

/**
 * One model: a W × L sweep per temperature (2 threads), then each temperature's best W/L at 1 and 2 threads;
 * verify cost. Greedy and sampling want different trees (sampling accepts less deep), so each gets its own best.
 */
async function runSection(spec: ModelSpec): Promise<SectionResult> {
  const result: SectionResult = { name: spec.name, runs: [], sweep: [], verifyCost: [], peakRssMb: 0 };
  const chosen = { beams: Number(values.beams ?? 4), beamLength: Number(values['beam-length'] ?? 5) };
  const best = new Map(TEMPERATURES.map((t) => [t, chosen]));
  for (const threads of [2, 1]) {
    const loaded = await loadModel({ model: spec.model, threads, contextLength: 512 });
    const drafter = loadDrafter(loaded, spec.drafter);
    try {
      if (threads === 2 && values.beams === undefined) {
        for (const temperature of TEMPERATURES) {
          const sweepOptions = { prompts: BENCH_PROMPTS.slice(0, 3), tokens: quick ? 32 : 48, temperature, seed: 1 };
          const cells: SectionResult['sweep'] = [];
          for (const beams of WIDTHS) {
            for (const beamLength of LENGTHS) {
              const r = await compareSpeed(loaded, drafter, { ...sweepOptions, beams, beamLength, rounds: 1 });
              cells.push({ temperature, beams, beamLength, speedup: r.speedup,
                tokensPerStep: r.redrafter.tokensPerStep, tokensPerSecond: r.redrafter.tokensPerSecond });
            }
          }
          result.sweep.push(...cells);
          // One round per cell is noisy on a shared machine (a burst of other work during one side's turn can
          // double a ratio), so the three best cells are measured again over more rounds and the best of those
          // runs. Ranked by speed-up, a ratio of alternating turns, not by tokens/s, which drifts with the machine.
          const finalists = [...cells].sort((a, b) => b.speedup - a.speedup).slice(0, 3);
          let bestSpeedup = 0;
          for (const cell of finalists) {
            const r = await compareSpeed(loaded, drafter, { ...sweepOptions, beams: cell.beams,
              beamLength: cell.beamLength, rounds: 3 });
            if (r.speedup > bestSpeedup) {
              bestSpeedup = r.speedup;
              best.set(temperature, { beams: cell.beams, beamLength: cell.beamLength });
            }
          }
        }
      }
      for (const temperature of TEMPERATURES) {
        const shape = best.get(temperature)!;
        const r = await compareSpeed(loaded, drafter, { prompts: BENCH_PROMPTS, tokens: TOKENS, ...shape, temperature,
          seed: 1, rounds: spec.rounds ?? ROUNDS });
        result.runs.push({ threads, temperature, ...shape, result: r });
        // The default: the speculation controller, calibrating here on first use and learning as it goes.
        const auto = await compareSpeed(loaded, drafter, { prompts: BENCH_PROMPTS, tokens: TOKENS, temperature,
          seed: 1, rounds: spec.rounds ?? ROUNDS });
        result.runs.push({ threads, temperature, beams: 0, beamLength: 0, result: auto });
      }
      result.verifyCost.push({ threads, curve: verifyCostCurve(loaded, 64, VERIFY_SIZES) });
    } finally {
      drafter.dispose();
      await loaded.close();
    }
  }
  result.peakRssMb = process.resourceUsage().maxRSS / 1024;
  return result;
}

async function runLlamaSection(spec: ModelSpec): Promise<LlamaCppSpeed | string> {
  const loaded = await loadModel({ model: spec.model });
  const prompts = BENCH_PROMPTS.map((p) => loaded.tokenizer!.encode(p, { bos: true }));
  await loaded.close();
  return measureLlamaCpp(spec.model, prompts, TOKENS, VERIFY_SIZES);
}

function child(section: string): unknown {
  const args = [fileURLToPath(import.meta.url), '--section', section, ...(quick ? ['--quick'] : []),
    ...(values.xl ? ['--xl', values.xl] : []), ...(values.beams ? ['--beams', values.beams] : []),
    ...(values['beam-length'] ? ['--beam-length', values['beam-length']] : [])];
  const out = spawnSync(process.execPath, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'],
    maxBuffer: 64 * 2 ** 20 });
  if (out.status !== 0) throw new Error(`section ${section} failed (exit ${out.status})`);
  return JSON.parse(out.stdout.trim().split('\n').pop()!);
}

const pct = (x: number): string => `${(x * 100).toFixed(0)}%`;

/** "1x4 82%, plain 10%, …": the controller's steps by shape, most used first (shapes under 5 % left out). */
function shapeShares(shapes: Record<string, number>): string {
  const total = Object.values(shapes).reduce((a, b) => a + b, 0) || 1;
  return Object.entries(shapes).sort((a, b) => b[1] - a[1]).filter(([, n]) => n / total >= 0.05)
    .map(([shape, n]) => `${shape} ${pct(n / total)}`).join(', ');
}

function report(sections: SectionResult[], llamaBench: Map<string, LlamaBenchRow[] | string>): string {
  const lines: string[] = [];
  lines.push(`machine: ${describeMachine()}`, `settings: ${BENCH_PROMPTS.length} held-out prompts × ${TOKENS} tokens, ` +
    `${ROUNDS} alternating rounds after a warm-up${quick ? '' : ' (stories260K: 15, its rounds are short and noisy)'}; tokens/s are ` +
    'medians over rounds, speed-up the median per-round ratio', '');
  lines.push('| model | threads | T | W×L | autoregressive tok/s | ReDrafter tok/s | speed-up | tokens/step | ' +
    'accepted at depth 1…L−1 | draft / verify / rest | identical | peak RSS |');
  lines.push('|---|---:|---:|---|---:|---:|---:|---:|---|---|---|---:|');
  for (const s of sections) {
    for (const run of s.runs) {
      const { autoregressive: ar, redrafter: rd } = run.result;
      const shape = isAuto(run) ? `auto: ${shapeShares(rd.shapes)}` : `${run.beams}×${run.beamLength}`;
      lines.push(`| ${s.name} | ${run.threads} | ${run.temperature} | ${shape} | ` +
        `${ar.tokensPerSecond.toFixed(1)} | ${rd.tokensPerSecond.toFixed(1)} | **${run.result.speedup.toFixed(2)}x** | ` +
        `${rd.tokensPerStep.toFixed(2)} | ${rd.acceptanceByDepth.map((a) => a.toFixed(2)).join(' ')} | ` +
        `${pct(rd.timeSplit.draft)} / ${pct(rd.timeSplit.verify)} / ${pct(rd.timeSplit.bookkeeping)} | ` +
        `${run.result.identical ? 'yes' : 'NO'} | ${s.peakRssMb.toFixed(0)} MB |`);
    }
  }
  lines.push('', '### The speculation controller against the best fixed tree', '',
    'auto / best = the controller\'s speed-up over autoregressive decoding divided by the best fixed tree\'s (each ' +
    'against its own alternating autoregressive rounds, in the same process).', '');
  lines.push('| model | threads | T | best fixed W×L | its speed-up | auto speed-up | auto / best |');
  lines.push('|---|---:|---:|---|---:|---:|---:|');
  for (const s of sections) {
    for (const run of s.runs.filter(isAuto)) {
      const fixed = s.runs.find((r) => !isAuto(r) && r.threads === run.threads && r.temperature === run.temperature)!;
      lines.push(`| ${s.name} | ${run.threads} | ${run.temperature} | ${fixed.beams}×${fixed.beamLength} | ` +
        `${fixed.result.speedup.toFixed(2)}x | ${run.result.speedup.toFixed(2)}x | ` +
        `**${(run.result.speedup / fixed.result.speedup).toFixed(2)}** |`);
    }
  }
  lines.push('', '### llama.cpp on the same GGUF files', '');
  lines.push('| model | llama.cpp (node-llama-cpp, 1 thread) tok/s | our autoregressive, 1 thread | ours / llama.cpp | ' +
    'our ReDrafter (auto), 2 threads | ReDrafter / llama.cpp |');
  lines.push('|---|---:|---:|---:|---:|---:|');
  for (const s of sections) {
    if (s.llamaCpp === undefined) continue;
    if (typeof s.llamaCpp === 'string') {
      lines.push(`| ${s.name} | ${s.llamaCpp} | | | | |`);
      continue;
    }
    const ours = s.runs.find((r) => r.threads === 1 && r.temperature === 0 && isAuto(r))!.result;
    const rd2 = s.runs.find((r) => r.threads === 2 && r.temperature === 0 && isAuto(r))!.result;
    lines.push(`| ${s.name} | ${s.llamaCpp.tokensPerSecond.toFixed(1)} | ${ours.autoregressive.tokensPerSecond.toFixed(1)} | ` +
      `${(ours.autoregressive.tokensPerSecond / s.llamaCpp.tokensPerSecond).toFixed(2)} | ` +
      `${rd2.redrafter.tokensPerSecond.toFixed(1)} | ${(rd2.redrafter.tokensPerSecond / s.llamaCpp.tokensPerSecond).toFixed(2)} |`);
  }
  for (const [name, rows] of llamaBench) {
    lines.push('', `llama-bench (${name}): ` + (typeof rows === 'string' ? rows
      : rows.map((r) => `${r.threads} thread${r.threads > 1 ? 's' : ''}: ${r.tokensPerSecond.toFixed(1)} tok/s`).join(', ')));
  }
  lines.push('', '### Verify cost: one forward over k tokens after a 64-token context, relative to k = 1', '');
  lines.push(`| model | threads | ${VERIFY_SIZES.map((k) => `k=${k}`).join(' | ')} |`);
  lines.push(`|---|---:|${VERIFY_SIZES.map(() => '---:').join('|')}|`);
  for (const s of sections) {
    for (const v of s.verifyCost) {
      lines.push(`| ${s.name} (ours) | ${v.threads} | ${v.curve.map((c) => `${c.relative.toFixed(2)} ` +
        `(${(c.seconds * 1000).toFixed(1)} ms)`).join(' | ')} |`);
    }
    if (s.llamaCpp && typeof s.llamaCpp !== 'string') {
      lines.push(`| ${s.name} (llama.cpp) | 1 | ${s.llamaCpp.verifyCost.map((c) => `${c.relative.toFixed(2)} ` +
        `(${(c.seconds * 1000).toFixed(1)} ms)`).join(' | ')} |`);
    }
  }
  for (const s of sections.filter((x) => x.sweep.length)) {
    for (const temperature of TEMPERATURES) {
      const cells = s.sweep.filter((x) => x.temperature === temperature);
      const chosen = s.runs.find((r) => r.threads === 2 && r.temperature === temperature && !isAuto(r));
      const best = cells.find((c) => c.beams === chosen?.beams && c.beamLength === chosen?.beamLength);
      lines.push('', `### W × L sweep: ${s.name}, 2 threads, ${temperature === 0 ? 'greedy' : `T = ${temperature}`} ` +
        '(speed-up in one round / tokens per step; ★ = the shape chosen after re-measuring the best three)', '');
      lines.push(`| W \\ L | ${LENGTHS.join(' | ')} |`, `|---|${LENGTHS.map(() => '---:').join('|')}|`);
      for (const w of WIDTHS) {
        lines.push(`| ${w} | ${LENGTHS.map((l) => {
          const cell = cells.find((x) => x.beams === w && x.beamLength === l)!;
          return `${cell === best ? '★ ' : ''}${cell.speedup.toFixed(2)}x / ${cell.tokensPerStep.toFixed(2)}`;
        }).join(' | ')} |`);
      }
    }
  }
  return lines.join('\n') + '\n';
}

function writeCharts(sections: SectionResult[]): string[] {
  mkdirSync(join(repository, 'docs'), { recursive: true });
  const written: string[] = [];
  const xl = sections.find((s) => s.name === 'stories260K-xl F32' && s.sweep.length);
  if (xl) {
    const svg = lineChart('stories260K-xl F32, 2 threads, greedy: speed-up over autoregressive', 'beam length L',
      'speed-up', WIDTHS.map((w) => ({ name: `W = ${w}`, points: LENGTHS.map((l) => ({ x: l,
        y: xl.sweep.find((c) => c.temperature === 0 && c.beams === w && c.beamLength === l)!.speedup })) })), 1);
    writeFileSync(join(repository, 'docs', 'speedup-sweep.svg'), svg);
    written.push('docs/speedup-sweep.svg');
  }
  const run = sections.find((s) => s.name === 'stories260K-xl F32')?.runs.find((r) => r.threads === 2 &&
    r.temperature === 0 && !isAuto(r));
  if (run) {
    const histogram = run.result.redrafter.tokensPerStepHistogram;
    const total = Object.values(histogram).reduce((a, b) => a + b, 0);
    const svg = barChart(`Tokens per step (stories260K-xl, W=${run.beams}, L=${run.beamLength}, greedy)`,
      'tokens committed in one step', 'share of steps', Array.from({ length: run.beamLength }, (_, i) =>
        ({ label: String(i + 1), value: (histogram[i + 1] ?? 0) / (total || 1) })));
    writeFileSync(join(repository, 'docs', 'tokens-per-step.svg'), svg);
    written.push('docs/tokens-per-step.svg');
  }
  return written;
}

if (values.section) {
  const spec = (await models()).find((m) => m.name === values.section!.replace(/^llama:/, ''));
  if (!spec) throw new Error(`unknown section ${values.section}`);
  const out = values.section.startsWith('llama:') ? await runLlamaSection(spec) : await runSection(spec);
  process.stdout.write(JSON.stringify(out) + '\n');
} else {
  const only = listOption(values.models);
  if (only && values.write) {
    throw new Error('--models with --write: BENCHMARKS.md\'s section holds every model; print a subset, do not write it');
  }
  const specs = pickModels(await models(), only);
  const sections: SectionResult[] = [];
  for (const spec of specs) {
    console.error(`measuring ${spec.name} …`);
    const section = child(spec.name) as SectionResult;
    if (spec.gguf) section.llamaCpp = child(`llama:${spec.name}`) as LlamaCppSpeed | string;
    sections.push(section);
  }
  const llamaBench = new Map<string, LlamaBenchRow[] | string>();
  if (values['llama-bench']) {
    const binary = buildLlamaBench(values['llama-bench'], (m) => console.error(m));
    for (const spec of specs.filter((s) => s.gguf)) llamaBench.set(spec.name, runLlamaBench(binary, spec.model));
  }
  const text = report(sections, llamaBench);
  process.stdout.write(text);
  if (values.write) {
    const charts = writeCharts(sections);
    const file = join(repository, 'BENCHMARKS.md');
    const previous = existsSync(file) ? readFileSync(file, 'utf8') : '# Benchmarks\n';
    const marker = '<!-- redrafter-bench -->';
    // What follows the end marker (the hand-written reading of a run) is kept; write a new reading for a new run.
    const endMarker = '<!-- /redrafter-bench -->';
    const head = previous.includes(marker) ? previous.slice(0, previous.indexOf(marker)) : previous + '\n';
    const tail = previous.includes(endMarker) ? previous.slice(previous.indexOf(endMarker) + endMarker.length) : '\n';
    writeFileSync(file, `${head}${marker}\n## ReDrafter vs autoregressive (\`npm run bench:redrafter\`, ` +
      `${new Date().toISOString().slice(0, 10)})\n\n${text}\n${charts.map((c) => `![${c}](${c})`).join('\n')}\n` +
      `${endMarker}${tail}`);
    console.error(`wrote BENCHMARKS.md and ${charts.join(', ')}`);
  }
}
