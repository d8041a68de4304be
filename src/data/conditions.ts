/**
 * Condition vectors for a model with `conditionSize` (one real vector per
 * image: an embedding, a descriptor), read from the `.npy` file a Python
 * pipeline writes with `numpy.save`.
 */

import { DataError } from '../errors'
import { MAX_NPY_BYTES } from './tokens'
import { parseNpy } from './npy'
import { readRegularFile } from './read-file'

/** `count` vectors of `size` values, row-major: vector n is `data[n * size …]`. */
export interface ConditionVectors {
  count: number
  size: number
  data: Float32Array
}

/**
 * Reads a `.npy` file of shape (N, D) — float32 or float64, or integers
 * (one-hot labels, say) — into N vectors of D float32 values. Another number
 * of dimensions or a value that is not finite is a `DataError` naming the
 * file (and the vector and component).
 */
export async function loadConditions(file: string): Promise<ConditionVectors> {
  const array = parseNpy(await readRegularFile(file, 'the conditions file', MAX_NPY_BYTES), file)
  if (array.shape.length !== 2 || array.shape.some((d) => d < 1)) {
    throw new DataError(`${file}: condition vectors must have shape (count, size), each at least 1, got (${array.shape.join(', ')})`)
  }
  const [count, size] = array.shape
  const data = new Float32Array(count * size)
  for (let i = 0; i < data.length; i++) {
    const value = Number(array.data[i])
    if (!Number.isFinite(value)) throw new DataError(`${file}: vector ${Math.floor(i / size)}, component ${i % size} is ${value}; conditions must be finite`)
    data[i] = value
  }
  return { count, size, data }
}

/** `count` condition maps of `height` × `width` × `channels` values, channels-last: tokens for a token map. */
export interface ConditionMaps {
  count: number
  height: number
  width: number
  channels: number
  data: Float32Array | Int32Array
}

/**
 * Reads a `.npy` file of condition maps: shape (N, H, W) (one channel) or
 * (N, H, W, C), real values (any numeric dtype) or, with `vocabulary`, a
 * token map's tokens (an integer dtype, each below it). Another shape, a
 * value that is not finite or a token out of range is a `DataError` naming
 * the file.
 */
export async function loadMaps(file: string, options: { vocabulary?: number } = {}): Promise<ConditionMaps> {
  const { vocabulary } = options
  const array = parseNpy(await readRegularFile(file, 'the maps file', MAX_NPY_BYTES), file)
  if ((array.shape.length !== 3 && array.shape.length !== 4) || array.shape.some((d) => d < 1)) {
    throw new DataError(`${file}: condition maps must have shape (count, height, width) or (count, height, width, channels), got (${array.shape.join(', ')})`)
  }
  const [count, height, width, channels = 1] = array.shape
  if (vocabulary !== undefined && channels !== 1) throw new DataError(`${file}: a token map has one channel, got ${channels}`)
  const data = vocabulary === undefined ? new Float32Array(array.data.length) : new Int32Array(array.data.length)
  for (let i = 0; i < data.length; i++) {
    const value = Number(array.data[i])
    const ok = vocabulary === undefined ? Number.isFinite(value) : Number.isInteger(value) && value >= 0 && value < vocabulary
    if (!ok) throw new DataError(`${file}: value ${i} (map ${Math.floor(i / (height * width * channels))}) is ${value}; ${vocabulary === undefined ? 'maps must be finite' : `tokens must be in 0 … ${vocabulary - 1}`}`)
    data[i] = value
  }
  return { count, height, width, channels, data }
}
