// Typed parse errors (architecture.md, invariant 5): every reader in formats/ throws a FormatError that names the
// file, the tensor/field/offset at fault, what was expected and what was found, so a user can fix the file (or the
// path) without a debugger.

import { basename } from 'node:path';

export interface FormatErrorDetails {
  /** Path of the file (or folder) being read or written. */
  readonly file: string;
  /** What is wrong, e.g. `tensor "layers.3.wq"`, `header.dim`, `field "hidden_size"`, `token 17`. */
  readonly field: string;
  readonly expected: string;
  readonly got: string;
  /** Optional hint appended in parentheses, e.g. "file truncated". */
  readonly detail?: string;
  readonly cause?: unknown;
}

export class FormatError extends Error {
  readonly file: string;
  readonly field: string;
  readonly expected: string;
  readonly got: string;
  readonly detail: string | undefined;

  constructor(details: FormatErrorDetails) {
    const hint = details.detail === undefined ? '' : ` (${details.detail})`;
    super(`${basename(details.file)}: ${details.field}: expected ${details.expected}, got ${details.got}${hint}`, {
      cause: details.cause,
    });
    this.name = 'FormatError';
    this.file = details.file;
    this.field = details.field;
    this.expected = details.expected;
    this.got = details.got;
    this.detail = details.detail;
  }
}

/** A short, printable rendering of a JSON value for error messages (`got ...`). */
export function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing (field missing)';
  let text: string;
  try {
    text = JSON.stringify(value) ?? String(value);
  } catch {
    // Absurdly deep nesting overflows the stack (String() on nested arrays would too): describe the type only.
    text = Array.isArray(value) ? 'a deeply nested array' : `a deeply nested ${typeof value}`;
  }
  return text.length > 80 ? `${text.slice(0, 77)}...` : text;
}
