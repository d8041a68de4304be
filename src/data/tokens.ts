/**
 * Grids of integer tokens, the data of a model used as a prior over discrete
 * codes (a VQ-VAE's code indices): read from and written to the `.npy` files
 * a Python VQ-VAE writes with `numpy.save`.
 */

import { DataError } from '../errors'
import { writeFileAtomic } from '../write-file'
import { encodeNpy, parseNpy } from './npy'
import { readRegularFile } from './read-file'

/**
 * `count` grids of `height` × `width` tokens, row-major, grid after grid:
 * token (n, r, c) is `data[(n * height + r) * width + c]`, a whole number in
 * 0 … vocabulary − 1.
 */
export interface TokenGrid {
  count: number
  height: number
  width: number
  data: Uint16Array | Int32Array
}

/** The largest `.npy` file read: 2 GiB of int64 is 268 million tokens. */
export const MAX_NPY_BYTES = 2 ** 31 - 1

export interface LoadTokensOptions {
  /** When given, every token must be below it (the model's `vocabulary`); the first one that is not is named. */
  vocabulary?: number
}

/** Checks `value` as the token at flat index `i` of a (count, height, width) grid. */
function checkToken(value: number, i: number, shape: number[], file: string, vocabulary: number | undefined): void {
  const limit = vocabulary ?? 2 ** 31
  if (value >= 0 && value < limit) return
  const [, h, w] = shape
  const where = `grid ${Math.floor(i / (h * w))}, row ${Math.floor(i / w) % h}, column ${i % w}`
  const range = vocabulary === undefined ? 'tokens must be whole numbers from 0' : `tokens must be in 0 … ${vocabulary - 1} (vocabulary ${vocabulary})`
  throw new DataError(`${file}: the token at ${where} is ${value}; ${range}`)
}

/**
 * Reads a `.npy` file of shape (N, H, W) and dtype int16, int32 or int64 (either
 * byte order; also int8 and uint8–uint32, as `writeTokens` writes uint16) into a `TokenGrid`. Anything else — another dtype, another
 * number of dimensions, a negative token, or one at or above `vocabulary` —
 * is a `DataError` naming the file and what was wrong.
 */
export async function loadTokens(file: string, options: LoadTokensOptions = {}): Promise<TokenGrid> {
  const { vocabulary } = options
  if (vocabulary !== undefined && !(Number.isInteger(vocabulary) && vocabulary >= 2 && vocabulary <= 65536)) {
    throw new DataError(`loadTokens: \`vocabulary\` must be a whole number from 2 to 65536, got ${JSON.stringify(vocabulary)}`)
  }
  const array = parseNpy(await readRegularFile(file, 'the token file', MAX_NPY_BYTES), file)
  if (array.type === 'f4' || array.type === 'f8') {
    throw new DataError(`${file}: tokens must be integers (int16, int32, int64, or unsigned: numpy.save of an integer array), got dtype '${array.descr}'`)
  }
  if (array.shape.length !== 3 || array.shape.some((d) => d < 1)) {
    throw new DataError(`${file}: token grids must have shape (count, height, width), each at least 1, got (${array.shape.join(', ')})`)
  }
  const [count, height, width] = array.shape
  const data = new Int32Array(count * height * width)
  const source = array.data
  for (let i = 0; i < data.length; i++) {
    const value = typeof source[i] === 'bigint' ? Number(source[i] as bigint) : (source[i] as number)
    checkToken(value, i, array.shape, file, vocabulary)
    data[i] = value
  }
  return { count, height, width, data }
}

/** Checks a `TokenGrid`'s shape and values, naming `what` (a field, a file) in the `DataError`. */
export function checkTokenGrid(grid: TokenGrid, what: string): void {
  const { count, height, width, data } = grid
  for (const [key, value] of Object.entries({ count, height, width })) {
    if (!Number.isInteger(value) || value < 1) throw new DataError(`${what}.${key} must be a whole number of at least 1, got ${JSON.stringify(value)}`)
  }
  if (!(data instanceof Uint16Array || data instanceof Int32Array)) throw new DataError(`${what}.data must be a Uint16Array or an Int32Array`)
  if (data.length !== count * height * width) {
    throw new DataError(`${what}.data has ${data.length} tokens, but count × height × width = ${count * height * width}`)
  }
  for (let i = 0; i < data.length; i++) checkToken(data[i], i, [count, height, width], what, undefined)
}

/**
 * Writes `grid` as a `.npy` file of shape (N, H, W) — int32, or uint16 for a
 * `Uint16Array` — that `numpy.load` reads; atomically, like every file this
 * library writes.
 */
export async function writeTokens(file: string, grid: TokenGrid): Promise<void> {
  checkTokenGrid(grid, 'writeTokens: the grid')
  await writeFileAtomic(file, encodeNpy(grid.data, [grid.count, grid.height, grid.width]), 'the token file')
}
