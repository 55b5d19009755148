// `redrafter draft`: one ReDrafter step, shown as a person wants to see it — the beams and their scores, the packed
// prefix tree with shared prefixes drawn once, the path the LLM accepted and its bonus token.

import type { Command } from 'commander';
import { generate } from '../engine/generate.js';
import { loadDrafter, type LoadedModel } from '../engine/load.js';
import type { RedrafterStep } from '../engine/redrafter.js';
import { addModelOptions, drafterOptions, openModel, resolveDrafterPath, type ModelFlags } from './model-options.js';
import { decimal, format, idList, integer } from './options.js';

interface DraftFlags extends ModelFlags {
  drafter?: string;
  beams: number;
  beamLength: number;
  promptIds?: number[];
  temperature: number;
  seed: number;
  format: 'text' | 'json';
}

export function registerDraft(program: Command): void {
  const command = program.command('draft')
    .description('show one ReDrafter step: beams, packed tree, accepted path, bonus token')
    .argument('[prompt]', 'text prompt', 'Once upon a time');
  addModelOptions(command)
    .option('--drafter <path>', 'drafter folder (Apple format; default: the shipped stories260K drafter)')
    .option('-W, --beams <n>', 'beam width W', integer(1, 64), 4)
    .option('-L, --beam-length <n>', 'beam length L, counting g0', integer(2, 16), 5)
    .option('--prompt-ids <ids>', 'comma-separated prompt token ids instead of text', idList)
    .option('-t, --temperature <t>', 'sampling temperature of the LLM; 0 = greedy', decimal(0, 100), 0)
    .option('-s, --seed <s>', 'seed', integer(0, 0xffffffff), 0)
    .option('--format <format>', 'text (a tree) or json', format, 'text')
    .action(async (prompt: string, flags: DraftFlags) => {
      const loaded = await openModel(flags);
      const drafter = loadDrafter(loaded, resolveDrafterPath(flags.drafter), drafterOptions(flags));
      try {
        let step: RedrafterStep | undefined;
        const generation = generate(loaded, {
          prompt, promptIds: flags.promptIds, drafter, beams: flags.beams, beamLength: flags.beamLength,
          temperature: flags.temperature, seed: flags.seed, onStep: (s) => (step ??= s),
        });
        // The prompt forward yields g0; the first decoding step is the tree step to show.
        let chunks = 0;
        for await (const chunk of generation) {
          void chunk;
          if (++chunks === 2) break;
        }
        if (!step) throw new Error('the generation ended before a tree step (EOS right after the prompt?)');
        if (flags.format === 'json') {
          process.stdout.write(JSON.stringify({ promptIds: generation.promptIds, ...step,
            pieces: piecesOf(loaded, step) }) + '\n');
        } else {
          process.stdout.write(renderStep(loaded, generation.promptIds, step));
        }
      } finally {
        drafter.dispose();
        await loaded.close();
      }
    });
}

function piece(loaded: LoadedModel, token: number): string {
  return loaded.tokenizer ? JSON.stringify(loaded.tokenizer.tokenPiece(token)) : `#${token}`;
}

function piecesOf(loaded: LoadedModel, step: RedrafterStep): Record<number, string> {
  const pieces: Record<number, string> = {};
  const all = [step.g0, ...step.beams.flat(), ...step.committed];
  for (const token of all) pieces[token] = loaded.tokenizer?.tokenPiece(token) ?? String(token);
  return pieces;
}

export function renderStep(loaded: LoadedModel, promptIds: readonly number[], step: RedrafterStep): string {
  const lines: string[] = [];
  const show = (t: number): string => `${piece(loaded, t)} (${t})`;
  lines.push(`prompt: ${promptIds.length} tokens; g0 = ${show(step.g0)} at position ${step.position}`);
  lines.push('');
  lines.push(`beams (W = ${step.beams.length}, L = ${step.beams[0].length}), best first:`);
  step.beams.forEach((beam, w) => {
    lines.push(`  ${String(w).padStart(2)}  log q ${step.scores[w].toFixed(3).padStart(9)}  ` +
      beam.map((t) => piece(loaded, t)).join(' '));
  });
  lines.push('');
  const saved = step.beams.length * step.beams[0].length - step.nodes.length;
  lines.push(`packed tree: ${step.nodes.length} nodes verified in one forward (${saved} shared-prefix tokens saved); ` +
    '✓ = accepted, ★ = bonus');
  const accepted = new Set(step.acceptedPath);
  const children = step.nodes.map(() => [] as number[]);
  step.nodes.forEach((node, p) => node.parent >= 0 && children[node.parent].push(p));
  const bonus = step.committed[step.committed.length - 1];
  const walk = (p: number, prefix: string, last: boolean, root: boolean): void => {
    const mark = accepted.has(p) ? ' ✓' : '';
    lines.push(`${root ? '  ' : prefix + (last ? '└─ ' : '├─ ')}${show(step.nodes[p].token)}${mark}`);
    const next = root ? '  ' : prefix + (last ? '   ' : '│  ');
    children[p].forEach((q, i) => walk(q, next, i === children[p].length - 1, false));
    if (p === step.acceptedPath[step.acceptedPath.length - 1]) {
      lines.push(`${next}${children[p].length ? '' : ''}★ ${show(bonus)} (the LLM's own next token)`);
    }
  };
  walk(0, '', true, true);
  lines.push('');
  lines.push(`accepted ${step.acceptedPath.length - 1} drafted token(s) + 1 bonus: ` +
    step.committed.map((t) => piece(loaded, t)).join(' ') + ` → ${step.committed.length} tokens this step`);
  return lines.join('\n') + '\n';
}
