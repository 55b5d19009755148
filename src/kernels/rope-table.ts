/**
 * The RoPE (cos, sin) table the `rope` kernel reads: [maxPosition, headDim/2, 2] f32, frequency i of position p
 * at angle p · theta^(-2i/headDim), computed in f32 steps as llama2.c's run.c does.
 */
export function ropeTable(maxPosition: number, headDim: number, theta = 10000): Float32Array {
  if (headDim % 2 !== 0) throw new RangeError(`ropeTable: headDim must be even, got ${headDim}`);
  const half = headDim / 2;
  const table = new Float32Array(maxPosition * headDim);
  for (let i = 0; i < half; i++) {
    const freq = Math.fround(1 / Math.fround(Math.pow(theta, Math.fround((2 * i) / headDim))));
    for (let pos = 0; pos < maxPosition; pos++) {
      const angle = Math.fround(pos * freq);
      table[(pos * half + i) * 2] = Math.cos(angle);
      table[(pos * half + i) * 2 + 1] = Math.sin(angle);
    }
  }
  return table;
}
