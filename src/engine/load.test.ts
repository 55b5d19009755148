import { test } from 'node:test';
import assert from 'node:assert/strict';
import { availableParallelism } from 'node:os';
import { autoThreads, loadModel } from './load.js';
import { generateText } from './generate.js';
import { randomCheckpoint } from '../model/random-checkpoint.js';
import { missing, stories260K } from '../../test/fixtures.js';

/** The config of a model with these dimensions (its weights are never read). */
const llama = (dim: number, hiddenDim: number, nLayers: number, nHeads: number, nKvHeads: number, vocabSize: number) =>
  randomCheckpoint({ dim, hiddenDim, nLayers, nHeads, nKvHeads, vocabSize, tiedClassifier: true }).config;

test("threads 'auto': one thread for a model too small to gain from more, every core for a large one", () => {
  assert.equal(autoThreads(llama(64, 172, 5, 8, 4, 512)), 1, 'stories260K-shaped');
  assert.equal(autoThreads(llama(768, 2048, 12, 12, 12, 32000)), Math.min(availableParallelism(), 16), '110M-shaped');
});

test("loadModel({ threads: 'auto' }) decodes stories260K on one thread", { skip: missing('stories260K', 'stories260K.bin') },
  async () => {
    const loaded = await loadModel({ model: stories260K.model, threads: 'auto' });
    try {
      assert.equal(loaded.kernels.threads, 1);
    } finally {
      await loaded.close();
    }
  });

test('loadModel({ chatTemplate }) renders conversations with it; its "<s>" encodes as BOS; a bad one fails at load, ' +
  'naming where it came from', { skip: missing('stories260K', 'stories260K.bin') }, async () => {
  const template = '{{ bos_token }}{% for m in messages %}<|{{ m.role }}|> {{ m.content }}{{ eos_token }}{% endfor %}' +
    '{% if add_generation_prompt %}<|assistant|>{% endif %}';
  const loaded = await loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer, chatTemplate: template,
    chatTemplateOrigin: 'chat.jinja' });
  try {
    const tokenizer = loaded.tokenizer!;
    const text = tokenizer.applyChatTemplate!([{ role: 'user', content: 'Hi there' }]);
    assert.equal(text, '<s><|user|> Hi there</s><|assistant|>');
    const ids = tokenizer.encode(text, { bos: false });
    assert.equal(ids[0], tokenizer.bosId);
    assert.ok(ids.includes(tokenizer.eosId), 'the template\'s "</s>" is EOS');
    const result = await generateText(loaded, { messages: [{ role: 'user', content: 'Hi there' }], maxTokens: 3 });
    assert.deepEqual(result.promptIds, ids);
  } finally {
    await loaded.close();
  }
  await assert.rejects(loadModel({ model: stories260K.model, tokenizer: stories260K.tokenizer,
    chatTemplate: '{% for m in messages %}', chatTemplateOrigin: 'broken.jinja' }),
  /broken\.jinja: chat template does not parse/);
});
