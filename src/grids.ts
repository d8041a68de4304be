/**
 * What a model reads and writes: image batches for pixel models, token grids
 * for models with a `vocabulary`, and the one shape both take on their way
 * to the core (bytes in `data`, or 32-bit tokens in `tokens`).
 */

import { DataError } from './errors'
import { checkImageBatch, describe, type ImageBatch } from './images'
import { checkTokenGrid, type TokenGrid } from './data/tokens'
import type { ModelConfig } from './types'
import type { ImageBatch as NativeBatch } from '../native/index'

/** An `ImageBatch` (pixel models) or a `TokenGrid` (models with a `vocabulary`). */
export type Grid = ImageBatch | TokenGrid

/** The batch as the native core takes it: bytes in `data`, or 32-bit tokens in `tokens`. */
export type { ImageBatch as NativeBatch } from '../native/index'

/** Whether `batch` is a `TokenGrid` (its values are 16- or 32-bit integers) rather than an `ImageBatch`. */
export function isTokenGrid(batch: unknown): batch is TokenGrid {
  if (typeof batch !== 'object' || batch === null) return false
  const data = (batch as { data?: unknown }).data
  return data instanceof Uint16Array || data instanceof Int32Array
}

/**
 * Checks `batch` against the model's kind — token grids for a model with a
 * `vocabulary`, image batches otherwise — and converts it for the core.
 * The core checks the values (levels, tokens below the vocabulary).
 */
export function toNativeBatch(batch: unknown, config: ModelConfig, what: string): NativeBatch {
  if (config.vocabulary === undefined) {
    if (isTokenGrid(batch)) {
      throw new DataError(`${what}: this model takes images (an ImageBatch with Uint8Array data), not a token grid; create a model with a \`vocabulary\` for tokens`)
    }
    checkImageBatch(batch, what)
    return batch
  }
  if (!isTokenGrid(batch)) {
    throw new DataError(
      `${what} must be a TokenGrid { count, height, width, data: Uint16Array | Int32Array } for this model (vocabulary ${config.vocabulary}), got ${describe(batch)}` +
        (typeof batch === 'object' && batch !== null ? ` with data ${describe((batch as { data?: unknown }).data)}` : ''),
    )
  }
  checkTokenGrid(batch, what)
  const { count, height, width, data } = batch
  return { count, height, width, channels: 1, tokens: data instanceof Int32Array ? data : Int32Array.from(data) }
}

/** A sampler's result as the model's kind of batch. */
export function fromNative(config: ModelConfig, count: number, result: { images?: Uint8Array | null; tokens?: Int32Array | null }): Grid {
  const { height, width, channels } = config
  if (config.vocabulary !== undefined) {
    if (!result.tokens) throw new DataError('the core returned no tokens for a token-grid model')
    return { count, height, width, data: result.tokens }
  }
  if (!result.images) throw new DataError('the core returned no images for a pixel model')
  return { count, height, width, channels, data: result.images }
}

/** Values per batch element: H·W·C sub-pixels, or H·W tokens. */
export function valuesPerItem(config: ModelConfig): number {
  return config.height * config.width * config.channels
}
