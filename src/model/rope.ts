// RoPE (cos, sin) table for every position the model may see. Computed in float32 step by step, the way llama2.c's
// run.c (`1.0f / powf(theta, i / (float)head_size)`, `pos * freq`, `cosf`) and Hugging Face's float32 `inv_freq`
// do it, so that our rotations round like theirs.

import type { RopeScaling } from './config.js';

const f32 = Math.fround;

/** Inverse frequencies θ^(−2i/d) for i < headDim/2, with the checkpoint's scaling applied. */
export function ropeInverseFrequencies(headDim: number, theta: number, scaling: RopeScaling | null): Float32Array {
  const half = headDim / 2;
  const inv = new Float32Array(half);
  for (let i = 0; i < half; i++) {
    inv[i] = f32(1 / f32(Math.pow(theta, f32((2 * i) / headDim))));
  }
  if (scaling?.kind === 'linear') {
    for (let i = 0; i < half; i++) inv[i] = f32(inv[i] / scaling.factor);
  } else if (scaling?.kind === 'llama3') {
    // Hugging Face `_compute_llama3_parameters`: long wavelengths are slowed by `factor`, short ones kept, the band
    // between interpolated.
    const { factor, lowFreqFactor, highFreqFactor, originalMaxPositions } = scaling;
    const lowFreqWavelength = originalMaxPositions / lowFreqFactor;
    const highFreqWavelength = originalMaxPositions / highFreqFactor;
    for (let i = 0; i < half; i++) {
      const wavelength = (2 * Math.PI) / inv[i];
      if (wavelength > lowFreqWavelength) {
        inv[i] = f32(inv[i] / factor);
      } else if (wavelength >= highFreqWavelength) {
        const smooth = (originalMaxPositions / wavelength - lowFreqFactor) / (highFreqFactor - lowFreqFactor);
        inv[i] = f32((1 - smooth) * (inv[i] / factor) + smooth * inv[i]);
      }
    }
  }
  return inv;
}

/** Fills `table` ([positions, headDim/2, 2] as (cos, sin)) for positions 0 .. positions-1. */
export function fillRopeTable(table: Float32Array, positions: number, headDim: number, theta: number,
  scaling: RopeScaling | null): void {
  const half = headDim / 2;
  const inv = ropeInverseFrequencies(headDim, theta, scaling);
  for (let pos = 0; pos < positions; pos++) {
    const row = pos * half * 2;
    for (let i = 0; i < half; i++) {
      const angle = f32(pos * inv[i]);
      table[row + 2 * i] = f32(Math.cos(angle));
      table[row + 2 * i + 1] = f32(Math.sin(angle));
    }
  }
}
