// stories260K-xl Q8_0 and its inflated drafter, generated into a temporary folder (src/model/xl.ts; ~1.5 s), for the
// browser tests and benchmark. Never written into the repository.

import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultDrafterPath } from '../src/engine/default-model.js';
import { makeXl } from '../src/model/xl.js';
import { stories260K } from './fixtures.js';

export interface XlFixture {
  readonly folder: string;
  /** stories260K-xl-q8_0.gguf */
  readonly model: string;
  readonly drafter: string;
  remove(): void;
}

export function makeXlQ8Fixture(): XlFixture {
  const drafter = defaultDrafterPath();
  if (drafter === undefined) throw new Error('models/stories260K-drafter is missing from the checkout');
  const folder = mkdtempSync(join(tmpdir(), 'redrafter-browser-xl-'));
  const result = makeXl({ model: stories260K.model, tokenizer: stories260K.tokenizer, out: folder, drafter,
    types: ['q8_0'] });
  if (result.drafter === undefined || !existsSync(result.files[0])) throw new Error('make-xl wrote no model');
  return { folder, model: result.files[0], drafter: result.drafter, remove: () => rmSync(folder, { recursive: true, force: true }) };
}
