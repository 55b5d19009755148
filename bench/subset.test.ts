import { test } from 'node:test';
import assert from 'node:assert/strict';
import { listOption, pickModels } from './subset.js';

const models = [{ name: 'stories260K' }, { name: 'stories260K-xl F32' }, { name: 'stories260K-xl Q8_0' }];
const names = (picked: { name: string }[]): string[] => picked.map((m) => m.name);

test('--models: a whole name picks that model alone, other items pick the names containing them', () => {
  assert.deepEqual(names(pickModels(models, listOption('stories260K'))), ['stories260K']);
  assert.deepEqual(names(pickModels(models, listOption(' Q8_0 , F32,'))), ['stories260K-xl F32', 'stories260K-xl Q8_0']);
  assert.deepEqual(names(pickModels(models, listOption('xl'))), ['stories260K-xl F32', 'stories260K-xl Q8_0']);
  assert.deepEqual(names(pickModels(models, undefined)), names(models));
  assert.throws(() => pickModels(models, ['Q4_0']), /--models Q4_0: no model's name contains any of these/);
  assert.equal(listOption(undefined), undefined);
});
