// What the speculation controller knows per (model, drafter, threads, decoding mode) on this machine: the measured
// costs of its steps and the acceptance by depth seen so far, written by `redrafter tune` and by every CLI
// generation, read back as the controller's starting point; and the best fixed tree `tune` found, for the record.
// Greedy and sampled decoding are kept apart: sampling accepts fewer drafted tokens per step.

import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { homedir } from 'node:os';
import type { SpeculationCostsJson } from './speculation-costs.js';

/** The controller's acceptance counts (controller.ts AcceptanceCounts) as plain arrays. */
export interface AcceptanceCountsJson {
  trials: number[];
  successes: number[];
}

/** What the controller starts from. */
export interface ControllerState {
  costs: SpeculationCostsJson;
  acceptance?: AcceptanceCountsJson;
  updatedAt: string;
  machine: string;
}

/** The best fixed tree of a `tune` sweep (generate uses the controller, not this, unless told a shape). */
export interface TunedSetting {
  beams: number;
  beamLength: number;
  tokensPerSecond: number;
  speedup: number;
  measuredAt: string;
  machine: string;
}

export function tuningFile(): string {
  const base = process.env['XDG_CACHE_HOME'] || join(homedir(), '.cache');
  return process.env['REDRAFTER_TUNING'] ?? join(base, 'redrafter', 'tuning.json');
}

/** Greedy (temperature 0) or sampled decoding: the two accept differently, so each has its own best tree. */
export type DecodingMode = 'greedy' | 'sampled';

export function decodingMode(temperature: number): DecodingMode {
  return temperature > 0 ? 'sampled' : 'greedy';
}

function key(model: string, drafter: string, threads: number, mode: DecodingMode): string {
  const real = (path: string): string => {
    try {
      return realpathSync(path);
    } catch {
      return path;
    }
  };
  return `${real(model)}|${real(drafter)}|${threads}|${mode}`;
}

/** One entry of the tuning file. */
export interface TuningEntry {
  best?: TunedSetting;
  controller?: ControllerState;
}

function readAll(): Record<string, TuningEntry> {
  const file = tuningFile();
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, TuningEntry>;
  } catch {
    return {}; // a damaged tuning file only loses what the controller had learnt
  }
}

export function readTuning(model: string, drafter: string, threads: number, mode: DecodingMode): TuningEntry {
  const entry = readAll()[key(model, drafter, threads, mode)];
  return typeof entry === 'object' && entry !== null ? entry : {};
}

/** Merges `update` into the entry of (model, drafter, threads, mode). */
export function writeTuning(model: string, drafter: string, threads: number, mode: DecodingMode,
  update: TuningEntry): void {
  const file = tuningFile();
  const all = readAll();
  const k = key(model, drafter, threads, mode);
  all[k] = { ...all[k], ...update };
  mkdirSync(dirname(file), { recursive: true });
  const temporary = `${file}.tmp-${process.pid}`;
  writeFileSync(temporary, JSON.stringify(all, null, 2) + '\n');
  renameSync(temporary, file);
}
