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
