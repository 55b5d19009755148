import { test } from 'node:test';
import assert from 'node:assert/strict';
import { HELDOUT_NAMES, HELDOUT_PROMPTS, TRAINING_PROMPTS, storyOpenings } from './story-prompts.js';

const capitalised = (text: string): string[] => text.match(/\b[A-Z][a-z]+\b/g) ?? [];

test('held-out prompts are disjoint from the training prompts, names included', () => {
  assert.equal(TRAINING_PROMPTS.length, 2000);
  assert.equal(new Set(TRAINING_PROMPTS).size, TRAINING_PROMPTS.length);
  assert.ok(HELDOUT_PROMPTS.length >= 40);
  assert.equal(new Set(HELDOUT_PROMPTS).size, HELDOUT_PROMPTS.length);
  const training = new Set(TRAINING_PROMPTS);
  for (const prompt of HELDOUT_PROMPTS) assert.ok(!training.has(prompt), prompt);
  const held = new Set(HELDOUT_NAMES);
  for (const prompt of TRAINING_PROMPTS) {
    for (const word of capitalised(prompt)) assert.ok(!held.has(word), `training prompt "${prompt}" uses ${word}`);
  }
  // Every held-out prompt names at least one held-out character, except the one about an unnamed bunny.
  const named = HELDOUT_PROMPTS.filter((prompt) => capitalised(prompt).some((word) => held.has(word)));
  assert.ok(named.length >= HELDOUT_PROMPTS.length - 1);
});

test('story openings are the same for a seed, different across seeds, and varied', () => {
  assert.deepEqual(storyOpenings(50, 7), storyOpenings(50, 7));
  assert.notDeepEqual(storyOpenings(50, 7), storyOpenings(50, 8));
  const names = new Set(TRAINING_PROMPTS.flatMap(capitalised));
  assert.ok(names.size > 100, `only ${names.size} distinct capitalised words`);
});
