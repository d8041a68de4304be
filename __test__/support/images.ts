import { mulberry32 } from '../../src/data/binarize'
import type { ImageBatch } from '../../src/index'

/** Seeded binary images with about `density` ones. */
export function randomImages(count: number, height: number, width: number, seed = 1, density = 0.3): ImageBatch {
  const random = mulberry32(seed)
  const data = new Uint8Array(count * height * width)
  for (let i = 0; i < data.length; i++) data[i] = random() < density ? 1 : 0
  return { count, height, width, channels: 1, data }
}

/** Images whose rows are all ones or all zeros: structure a model can learn fast. */
export function stripedImages(count: number, height: number, width: number, seed = 1): ImageBatch {
  const rows = randomImages(count, height, 1, seed, 0.5)
  const data = new Uint8Array(count * height * width)
  for (let r = 0; r < count * height; r++) data.fill(rows.data[r], r * width, (r + 1) * width)
  return { count, height, width, channels: 1, data }
}

/** Seeded 8-bit images (0–255, `channels` interleaved per pixel), smooth along rows so that a model has something to learn. */
export function levelImages(count: number, height: number, width: number, channels: number, seed = 1): ImageBatch {
  const random = mulberry32(seed)
  const data = new Uint8Array(count * height * width * channels)
  for (let i = 0; i < data.length; i++) {
    const left = i >= channels && Math.floor(i / channels) % width !== 0 ? data[i - channels] : Math.floor(random() * 256)
    data[i] = Math.max(0, Math.min(255, left + Math.round((random() - 0.5) * 40)))
  }
  return { count, height, width, channels, data }
}

/** A tiny network for fast tests. */
export const TINY = { height: 8, width: 8, filters: 16, residualBlocks: 1, inputKernel: 5, residualKernel: 3, outputLayers: 1 } as const
