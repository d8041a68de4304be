/**
 * Binarization of grayscale images, explicit because it changes the
 * likelihoods a model reports:
 * - a number `t` (0–255): a pixel becomes 1 when its value is ≥ t. The seed
 *   uses 0.33 × 256 = 84.48, i.e. values 0–84 become 0 and 85–255 become 1;
 * - `'stochastic'`: each pixel is 1 with probability value / 255, drawn from a
 *   seeded generator (the protocol of the published binarized-MNIST results);
 * - `'none'`: no binarization: the 8-bit grayscale as it is, for models with
 *   `output: 'categorical'`.
 */

import { ConfigError } from '../errors'
import { describe } from '../images'

export type Binarization = number | 'stochastic' | 'none'

/** The seed's threshold: `np.where(x < 0.33 * 256, 0, 1)`. */
export const SEED_THRESHOLD = 0.33 * 256

export function checkBinarization(value: unknown, field = 'threshold'): Binarization {
  if (value === 'stochastic' || value === 'none') return value
  if (typeof value === 'number' && Number.isFinite(value) && value >= 0 && value <= 256) return value
  throw new ConfigError(`\`${field}\` must be a number between 0 and 256, 'stochastic' or 'none', got ${describe(value)}`)
}

/** Binarizes 0–255 grayscale bytes (`'none'`: a copy, unchanged). */
export function binarize(gray: Uint8Array, how: Binarization = SEED_THRESHOLD, seed = 0): Uint8Array {
  if (how === 'none') return gray.slice()
  const out = new Uint8Array(gray.length)
  if (how === 'stochastic') {
    const random = mulberry32(seed)
    for (let i = 0; i < gray.length; i++) out[i] = random() * 255 < gray[i] ? 1 : 0
  } else {
    for (let i = 0; i < gray.length; i++) out[i] = gray[i] < how ? 0 : 1
  }
  return out
}

/** A small seeded generator, so that stochastic binarization is reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}
