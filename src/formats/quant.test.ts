import assert from 'node:assert/strict';
import { test } from 'node:test';
import { dequantize, floatToBf16, floatToHalf, GGML_TYPES, halfToFloatTable, quantize, type GgmlTypeName } from './quant.js';
import { seededRandom } from './test-fixtures.js';

test('float16: every finite half survives half → float → half; rounding is to nearest even', () => {
  const table = halfToFloatTable();
  for (let h = 0; h < 65536; h++) {
    if (Number.isNaN(table[h])) continue;
    assert.equal(floatToHalf(table[h]), h, `half 0x${h.toString(16)}`);
  }
  assert.equal(floatToHalf(1 + 2 ** -11), 0x3c00, 'a tie rounds to the even mantissa (down)');
  assert.equal(floatToHalf(1 + 3 * 2 ** -11), 0x3c02, 'a tie rounds to the even mantissa (up)');
  assert.equal(floatToHalf(65520), 0x7c00, 'overflow to infinity');
  assert.equal(floatToHalf(2 ** -25), 0, 'half the smallest subnormal ties to zero');
  assert.equal(floatToHalf(1.5 * 2 ** -25), 1);
  assert.equal(floatToHalf(-0), 0x8000);
  assert.equal(floatToHalf(NaN) & 0x7e00, 0x7e00);
  assert.equal(floatToBf16(1), 0x3f80);
  assert.equal(floatToBf16(1 + 2 ** -8), 0x3f80, 'tie to even');
  assert.equal(floatToBf16(1 + 3 * 2 ** -8), 0x3f82);
});

test('Q8_0 and Q4_0: hand-checked blocks', () => {
  // Q8_0: d = 0.5 (half 0x3800), q = -3, 0, 127 ... → -1.5, 0, 63.5
  const q8 = new Uint8Array(34);
  new DataView(q8.buffer).setUint16(0, 0x3800, true);
  q8[2] = 0xfd; // -3
  q8[4] = 127;
  const x8 = dequantize('Q8_0', q8, 32);
  assert.deepEqual([x8[0], x8[1], x8[2], x8[3]], [-1.5, 0, 63.5, 0]);
  // Q4_0: d = 2 (0x4000); byte 0 = 0xF1: low nibble 1 → (1-8)·2 = -14 at j=0, high nibble 15 → 14 at j=16
  const q4 = new Uint8Array(18);
  new DataView(q4.buffer).setUint16(0, 0x4000, true);
  q4[2] = 0xf1;
  q4[3] = 0x88;
  const x4 = dequantize('Q4_0', q4, 32);
  assert.equal(x4[0], -14);
  assert.equal(x4[16], 14);
  assert.equal(x4[1], 0);
  assert.equal(x4[17], 0);
  assert.equal(x4[2], -16, 'an all-zero byte is q = 0 → -8·d');
  // ggml's reference quantizers: amax/127 and max/-8 scales, roundf for Q8_0.
  const values = Float32Array.from({ length: 32 }, (_, i) => (i - 10) / 4);
  const enc8 = quantize('Q8_0', values);
  assert.equal(halfToFloatTable()[new DataView(enc8.buffer).getUint16(0, true)], halfToFloatTable()[floatToHalf(Math.fround(5.25 / 127))]);
  assert.equal(new Int8Array(enc8.buffer)[2 + 31], 127);
  const enc4 = quantize('Q4_0', values);
  assert.equal(dequantize('Q4_0', enc4, 32)[31], Math.fround(-8 * halfToFloatTable()[floatToHalf(5.25 / -8)]), 'the largest value maps to -8·d');
});

test('Q4_K: a hand-built block decodes as ggml computes it', () => {
  const block = new Uint8Array(144);
  const view = new DataView(block.buffer);
  view.setUint16(0, 0x3c00, true); // d = 1
  view.setUint16(2, 0x3800, true); // dmin = 0.5
  // sub-block 0: sc 3, m 2; sub-block 1: sc 5, m 0; sub-block 5: sc 0b100111 (39), m 0b010001 (17)
  block[4 + 0] = 3; // scales[0]: sc0 low 6 bits
  block[4 + 4] = 2; // scales[4]: m0
  block[4 + 1] = 5 | (39 >> 4) << 6; // scales[1]: sc1 and the top bits of sc5
  block[4 + 5] = 0 | (17 >> 4) << 6; // scales[5]: m1 and the top bits of m5
  block[4 + 9] = (39 & 15) | ((17 & 15) << 4); // scales[9]: low nibbles of sc5 / m5
  block[16 + 0] = 0x7a; // element 0: low nibble 10 (sub-block 0), element 32: high nibble 7 (sub-block 1)
  block[16 + 64 + 0] = 0xc0; // element 128 (sub-block 4, low nibble 0), element 160: high nibble 12 (sub-block 5)
  const x = dequantize('Q4_K', block, 256);
  assert.equal(x[0], 1 * 3 * 10 - 0.5 * 2);
  assert.equal(x[1], -1, 'q 0 → -dmin·m');
  assert.equal(x[32], 5 * 7);
  assert.equal(x[160], 39 * 12 - 0.5 * 17);
  assert.equal(x[128], 0, 'sub-block 4 has scale and min 0');
});

test('Q6_K: a hand-built block decodes as ggml computes it', () => {
  const block = new Uint8Array(210);
  const view = new DataView(block.buffer);
  view.setUint16(208, 0x3800, true); // d = 0.5
  const scales = new Int8Array(block.buffer, 192, 16);
  scales[0] = 4;
  scales[2] = -3;
  scales[12] = 7;
  // element 0: ql[0] low 4 bits = 5, qh[0] bits 0-1 = 2 → q = 5 | 2<<4 = 37 → 37-32 = 5; y = 0.5·4·5 = 10
  // element 32: ql[32] low = 1, qh[0] bits 2-3 = 3 → q = 1 | 48 = 49 → 17; scale index 2 → 0.5·(-3)·17 = -25.5
  block[0] = 5;
  block[32] = 1;
  block[128] = 2 | (3 << 2);
  // element 192 (second half, l = 0, +64): ql[64] high nibble 9, qh[32] bits 4-5 = 1 → 9 | 16 = 25 → -7; scale 12 → -24.5
  block[64] = 9 << 4;
  block[128 + 32] = 1 << 4;
  const x = dequantize('Q6_K', block, 256);
  assert.equal(x[0], 10);
  assert.equal(x[32], -25.5);
  assert.equal(x[192], 0.5 * 7 * -7);
  assert.equal(x[1], 0.5 * 4 * -32, 'all-zero bits are q = -32');
});

test('quantize → dequantize stays within each type\'s step, and F32/F16/BF16 round-trip', () => {
  const rand = seededRandom(9);
  const values = Float32Array.from({ length: 1024 }, () => (rand() * 2 - 1) * 0.1);
  const cases: Array<[GgmlTypeName, number]> = [['F32', 0], ['F16', 1e-4], ['BF16', 1e-3], ['Q8_0', 0.1 / 127], ['Q4_0', 0.1 / 7], ['Q4_K', 0.2 / 15], ['Q6_K', 0.1 / 31 + 0.1 / 127 / 31 * 2]];
  for (const [type, tolerance] of cases) {
    const bytes = quantize(type, values);
    assert.equal(bytes.length, (values.length / GGML_TYPES[type].blockSize) * GGML_TYPES[type].blockBytes, type);
    const back = dequantize(type, bytes, values.length);
    let worst = 0;
    for (let i = 0; i < values.length; i++) worst = Math.max(worst, Math.abs(back[i] - values[i]));
    assert.ok(worst <= tolerance * 1.01, `${type}: max error ${worst} > ${tolerance}`);
    // Re-encoding what we decoded is stable for the reference quantizers.
    if (type === 'F32' || type === 'F16' || type === 'BF16' || type === 'Q8_0') assert.deepEqual(quantize(type, back), bytes, type);
  }
  assert.throws(() => quantize('Q8_0', new Float32Array(33)), /whole blocks/);
});
