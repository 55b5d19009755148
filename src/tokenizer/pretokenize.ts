// Pre-tokenization for byte-level BPE: split text into words with the model's regexes (Hugging Face `Split` /
// `ByteLevel` / `Digits` pre-tokenizers, or llama.cpp's named `tokenizer.ggml.pre` sets), before the BPE merges run
// inside each word.
//
// The patterns are written for Oniguruma (the Rust `tokenizers` crate); JavaScript's `u` regexes read them the same
// way except for inline flag groups `(?i:...)`, which Node 20 lacks and which we expand into case classes, and
// possessive quantifiers, which none of the supported patterns use.

import { FormatError } from '../formats/errors.js';
import { GPT2_PATTERN } from '../formats/gguf-pre.js';
import type { HfPreTokenizerStep } from '../formats/tokenizer-json.js';

/** Oniguruma pattern → JavaScript `gu` RegExp. Throws a SyntaxError for constructs we do not translate. */
export function compileOnigPattern(pattern: string): RegExp {
  let out = '';
  // Depth of each open group, and the depth at which a case-insensitive group started (-1: none).
  let depth = 0;
  let caseless = -1;
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      // \p{...} / \P{...} / \x{...} go through whole, so their braces are not taken for a {n,m} quantifier.
      const braced = /^\\[pPx]\{[^}]*\}/.exec(pattern.slice(i));
      const escape = braced !== null ? braced[0] : c + (pattern[i + 1] ?? '');
      out += escape;
      i += escape.length - 1;
      continue;
    }
    if (inClass) {
      if (c === ']') inClass = false;
      out += caseless >= 0 && /[a-z]/i.test(c) ? `${c.toLowerCase()}${c.toUpperCase()}` : c;
      continue;
    }
    if (c === '[') {
      inClass = true;
      out += c;
      continue;
    }
    if (c === '(') {
      depth++;
      if (pattern.startsWith('(?i:', i)) {
        if (caseless < 0) caseless = depth;
        out += '(?:';
        i += 3;
        continue;
      }
      if (/^\(\?[a-z-]+[:)]/.test(pattern.slice(i)) && !pattern.startsWith('(?:', i)) {
        throw new SyntaxError(`unsupported inline flags in ${JSON.stringify(pattern)} at ${i}`);
      }
      out += c;
      continue;
    }
    if (c === ')') {
      if (depth === caseless) caseless = -1;
      depth--;
      out += c;
      continue;
    }
    if ((c === '+' || c === '*' || c === '?' || c === '}') && pattern[i + 1] === '+') {
      throw new SyntaxError(`possessive quantifier in ${JSON.stringify(pattern)} at ${i + 1}`);
    }
    out += caseless >= 0 && /[a-z]/i.test(c) ? `[${c.toLowerCase()}${c.toUpperCase()}]` : c;
  }
  return new RegExp(out, 'gu');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Splits each piece at the regex's matches, keeping matches and gaps as `behavior` says. */
function splitPieces(pieces: string[], regex: RegExp, behavior: HfPreTokenizerStep & { kind: 'split' }): string[] {
  const out: string[] = [];
  for (const piece of pieces) {
    // Segments of the piece: [text, isMatch].
    const segments: Array<[string, boolean]> = [];
    let last = 0;
    regex.lastIndex = 0;
    for (let m = regex.exec(piece); m !== null; m = regex.exec(piece)) {
      if (m[0] === '') {
        regex.lastIndex++;
        continue;
      }
      if (m.index > last) segments.push([piece.slice(last, m.index), false]);
      segments.push([m[0], true]);
      last = m.index + m[0].length;
    }
    if (last < piece.length) segments.push([piece.slice(last), false]);
    const isDelimiter = (s: [string, boolean]): boolean => s[1] !== behavior.invert;
    if (behavior.behavior === 'Isolated') {
      for (const s of segments) out.push(s[0]);
    } else if (behavior.behavior === 'Removed') {
      for (const s of segments) if (!isDelimiter(s)) out.push(s[0]);
    } else if (behavior.behavior === 'MergedWithPrevious') {
      let current = '';
      for (const s of segments) {
        current += s[0];
        if (isDelimiter(s)) {
          out.push(current);
          current = '';
        }
      }
      if (current !== '') out.push(current);
    } else {
      let current = '';
      for (const s of segments) {
        if (isDelimiter(s) && current !== '') {
          out.push(current);
          current = '';
        }
        current += s[0];
      }
      if (current !== '') out.push(current);
    }
  }
  return out;
}

/** A compiled pre-tokenizer: text → words (before the byte-to-unicode mapping). */
export type PreTokenizer = (text: string) => string[];

export function createPreTokenizer(steps: readonly HfPreTokenizerStep[], origin: string): PreTokenizer {
  const compiled = steps.map((step, i): ((pieces: string[]) => string[]) => {
    const compile = (pattern: string): RegExp => {
      try {
        return compileOnigPattern(pattern);
      } catch (err) {
        throw new FormatError({ file: origin, field: `pre-tokenizer step ${i} pattern`, expected: 'a regex JavaScript can run',
          got: JSON.stringify(pattern), detail: err instanceof Error ? err.message : String(err), cause: err });
      }
    };
    if (step.kind === 'split') {
      const regex = step.literal ? new RegExp(escapeRegExp(step.pattern), 'gu') : compile(step.pattern);
      return (pieces) => splitPieces(pieces, regex, step);
    }
    if (step.kind === 'digits') {
      const regex = new RegExp(step.individual ? '\\p{N}' : '\\p{N}+', 'gu');
      const isolated = { kind: 'split', pattern: '', literal: false, behavior: 'Isolated', invert: false } as const;
      return (pieces) => splitPieces(pieces, regex, isolated);
    }
    const regex = step.useRegex ? compile(GPT2_PATTERN) : undefined;
    const isolated = { kind: 'split', pattern: '', literal: false, behavior: 'Isolated', invert: false } as const;
    return (pieces) => {
      const prefixed = step.addPrefixSpace ? pieces.map((p) => (p.startsWith(' ') ? p : ` ${p}`)) : pieces;
      return regex === undefined ? prefixed : splitPieces(prefixed, regex, isolated);
    };
  });
  return (text) => {
    let pieces = text === '' ? [] : [text];
    for (const step of compiled) pieces = step(pieces);
    return pieces;
  };
}

/** GPT-2's reversible byte → printable character map (`bytes_to_unicode`). */
export function bytesToUnicode(): string[] {
  const map: string[] = new Array<string>(256);
  let n = 0;
  for (let b = 0; b < 256; b++) {
    const printable = (b >= 0x21 && b <= 0x7e) || (b >= 0xa1 && b <= 0xac) || (b >= 0xae && b <= 0xff);
    map[b] = String.fromCodePoint(printable ? b : 256 + n++);
  }
  return map;
}
