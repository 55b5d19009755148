// npm run make-xl -- --out DIR [--drafter DIR] [--types f32,q8_0]
// Writes DIR/stories260K-xl.gguf (and -q8_0.gguf) and DIR/stories260K-xl-drafter/ (from the default drafter).

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { resolveDefaultModel } from '../src/engine/default-model.js';
import type { GgufOutputType } from '../src/formats/convert-gguf.js';
import { makeXl } from '../src/model/xl.js';

const { values } = parseArgs({ options: {
  out: { type: 'string' }, drafter: { type: 'string' }, types: { type: 'string', default: 'f32,q8_0' },
} });
if (!values.out) {
  console.error('usage: npm run make-xl -- --out DIR [--drafter DIR] [--types f32,q8_0]');
  process.exit(2);
}
const repository = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const defaultDrafter = join(repository, 'models', 'stories260K-drafter');
const drafter = values.drafter ?? (existsSync(join(defaultDrafter, 'config.json')) ? defaultDrafter : undefined);
const { model, tokenizer } = await resolveDefaultModel((m) => console.error(m));
const started = Date.now();
const result = makeXl({ model, tokenizer, out: values.out, drafter,
  types: values.types.split(',').map((t) => t.trim()) as GgufOutputType[] });
console.log(`wrote ${result.files.join(', ')}${result.drafter ? ` and ${result.drafter}` : ' (no drafter found)'}: ` +
  `${(result.parameters / 1e6).toFixed(1)}M parameters in ${((Date.now() - started) / 1000).toFixed(1)} s`);
