/**
 * The classic PixelCNN picture: for each image, the original, what the model
 * was shown (the top `rows` rows), then several completions of the rest.
 */

import { sliceImages, type ImageBatch } from './images'
import type { PixelCNN } from './model'
import type { Precision } from './types'

/** Completes each of `originals` `repeats` times from its top `rows` rows; returns the grid (one row per image). */
export async function completionGrid(
  model: PixelCNN,
  originals: ImageBatch,
  options: { rows: number; repeats: number; seed?: number; temperature?: number; labels?: ArrayLike<number>; precision?: Precision },
): Promise<ImageBatch> {
  const { rows, repeats } = options
  const count = originals.count
  const size = originals.height * originals.width * originals.channels
  const repeated: ImageBatch = { ...originals, count: count * repeats, data: new Uint8Array(count * repeats * size) }
  for (let r = 0; r < repeats; r++) repeated.data.set(originals.data.subarray(0, count * size), r * count * size)
  // Conditional models: each original's class, for each of its repeats.
  const labels = options.labels && Array.from({ length: count * repeats }, (_, i) => options.labels![i % count])
  const done = await model.complete(repeated, { known: { rows }, seed: options.seed, temperature: options.temperature, labels, precision: options.precision })
  const columns = repeats + 2
  const grid: ImageBatch = { ...originals, count: count * columns, data: new Uint8Array(count * columns * size) }
  for (let n = 0; n < count; n++) {
    const at = (column: number) => (n * columns + column) * size
    const original = sliceImages(originals, n, 1).data
    grid.data.set(original, at(0))
    grid.data.set(original.subarray(0, rows * originals.width * originals.channels), at(1))
    for (let r = 0; r < repeats; r++) grid.data.set(sliceImages(done, r * count + n, 1).data, at(2 + r))
  }
  return grid
}
