// Tuned ReDrafter settings per (model, drafter, threads, decoding mode) on this machine: written by `redrafter tune`,
// read by `generate` (and the server) as their default beam width and length. Greedy and sampled decoding are tuned
// apart: sampling accepts fewer drafted tokens per step, so its fastest tree is smaller.

import { existsSync, mkdirSync, readFileSync, realpathSync, renameSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { homedir } from 'node:os';

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

function readAll(): Record<string, TunedSetting> {
  const file = tuningFile();
  if (!existsSync(file)) return {};
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Record<string, TunedSetting>;
  } catch {
    return {}; // a damaged tuning file only loses the tuned defaults
  }
}

export function readTuning(model: string, drafter: string, threads: number, mode: DecodingMode):
  TunedSetting | undefined {
  return readAll()[key(model, drafter, threads, mode)];
}

export function writeTuning(model: string, drafter: string, threads: number, mode: DecodingMode,
  setting: TunedSetting): void {
  const file = tuningFile();
  const all = readAll();
  all[key(model, drafter, threads, mode)] = setting;
  mkdirSync(dirname(file), { recursive: true });
  const temporary = `${file}.tmp-${process.pid}`;
  writeFileSync(temporary, JSON.stringify(all, null, 2) + '\n');
  renameSync(temporary, file);
}
