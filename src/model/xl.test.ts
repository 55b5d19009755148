import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { loadDrafter, loadModel } from '../engine/load.js';
import { generateText } from '../engine/generate.js';
import { randomDrafter, writeDrafter } from '../drafter/checkpoint.js';
import { readCheckpoint } from './checkpoint.js';
import { makeXl } from './xl.js';
import { missing, stories260K } from '../../test/fixtures.js';

test('make-xl writes GGUF files and an inflated drafter that reproduce stories260K (small inflation, F32 and Q8_0)',
  { skip: missing('stories260K', 'stories260K.bin') }, async () => {
    const dir = mkdtempSync(join(tmpdir(), 'redrafter-xl-'));
    try {
      const smallDrafter = join(dir, 'small-drafter');
      writeDrafter(smallDrafter, randomDrafter(readCheckpoint(stories260K.model).config, { seed: 3 }));
      const result = makeXl({ model: stories260K.model, tokenizer: stories260K.tokenizer, out: dir, drafter: smallDrafter,
        shape: { dim: 192, hiddenDim: 256, nLayers: 6, headDim: 16 }, types: ['f32', 'q8_0'] });
      assert.equal(result.files.length, 2);
      const small = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer });
      const expected = await generateText(small, { prompt: 'Once upon a time', maxTokens: 60 });
      await small.close();
      const xl = await loadModel({ model: result.files[0] });
      try {
        assert.equal(xl.model.config.dim, 192);
        assert.equal(xl.model.config.ropeLayout, 'pairs');
        const got = await generateText(xl, { prompt: 'Once upon a time', maxTokens: 60 });
        assert.deepEqual(got.promptIds, expected.promptIds);
        assert.deepEqual(got.ids, expected.ids);
        const drafter = loadDrafter(xl, result.drafter!);
        const drafted = await generateText(xl, { prompt: 'Once upon a time', maxTokens: 60, drafter, beams: 4,
          beamLength: 5 });
        assert.deepEqual(drafted.ids, expected.ids);
      } finally {
        await xl.close();
      }
      // Q8_0 weights are an approximation: the file must load and generate the same kind of text.
      const q8 = await loadModel({ model: result.files[1] });
      try {
        const got = await generateText(q8, { prompt: 'Once upon a time', maxTokens: 20 });
        const agree = got.ids.findIndex((id, i) => id !== expected.ids[i]);
        assert.ok(agree === -1 || agree >= 5, `Q8_0 diverges at token ${agree}`);
      } finally {
        await q8.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
