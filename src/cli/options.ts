// Option parsers shared by the commands: each names the option and what it expected when the value is bad.

import { InvalidArgumentError } from 'commander';

export function integer(min: number, max = Number.MAX_SAFE_INTEGER): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (!/^-?\d+$/.test(value.trim()) || !Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`expected an integer in ${min}..${max === Number.MAX_SAFE_INTEGER ? '∞' : max}, got "${value}"`);
    }
    return parsed;
  };
}

export function decimal(min: number, max: number): (value: string) => number {
  return (value) => {
    const parsed = Number(value);
    if (value.trim() === '' || !Number.isFinite(parsed) || parsed < min || parsed > max) {
      throw new InvalidArgumentError(`expected a number in ${min}..${max}, got "${value}"`);
    }
    return parsed;
  };
}

export function idList(value: string): number[] {
  const parts = value.split(',').map((p) => p.trim()).filter((p) => p.length > 0);
  if (parts.length === 0) throw new InvalidArgumentError(`expected comma-separated token ids, got "${value}"`);
  return parts.map((part) => {
    if (!/^\d+$/.test(part)) throw new InvalidArgumentError(`expected a token id, got "${part}" in "${value}"`);
    return Number(part);
  });
}

export function collect(value: string, previous: string[] = []): string[] {
  return [...previous, value];
}

export function format(value: string): 'text' | 'json' {
  if (value !== 'text' && value !== 'json') throw new InvalidArgumentError(`expected "text" or "json", got "${value}"`);
  return value;
}

export function acceptance(value: string): 'exact' | 'apple' {
  if (value !== 'exact' && value !== 'apple') throw new InvalidArgumentError(`expected "exact" or "apple", got "${value}"`);
  return value;
}

/** One --logit-bias ID=BIAS (repeatable): a token id and the number added to its logit; -inf bans the token. */
export function logitBias(value: string, previous: Record<number, number> = {}): Record<number, number> {
  const match = /^\s*(\d+)\s*=\s*(\S+)\s*$/.exec(value);
  const bias = match ? (/^-inf(inity)?$/i.test(match[2]) ? -Infinity : Number(match[2])) : Number.NaN;
  if (!match || !Number.isSafeInteger(Number(match[1])) || !(Number.isFinite(bias) || bias === -Infinity)) {
    throw new InvalidArgumentError(`expected TOKEN_ID=BIAS (a token id, a number or -inf), got "${value}"`);
  }
  return { ...previous, [Number(match[1])]: bias };
}
