/** Batches of images as they cross the API: row-major N×H×W×C bytes. */

import { DataError } from './errors'

export interface ImageBatch {
  count: number
  height: number
  width: number
  channels: number
  /** N×H×W×C bytes; binary images hold 0 and 1. */
  data: Uint8Array
}

/** Checks the shape of a batch (not its values: the core checks those). */
export function checkImageBatch(batch: unknown, what: string): asserts batch is ImageBatch {
  if (typeof batch !== 'object' || batch === null) {
    throw new DataError(`${what} must be an ImageBatch { count, height, width, channels, data }, got ${describe(batch)}`)
  }
  const b = batch as Record<string, unknown>
  for (const key of ['count', 'height', 'width', 'channels'] as const) {
    const v = b[key]
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) {
      throw new DataError(`${what}.${key} must be a non-negative integer, got ${describe(v)}`)
    }
  }
  if (!(b.data instanceof Uint8Array)) {
    throw new DataError(`${what}.data must be a Uint8Array, got ${describe(b.data)}`)
  }
  const expected = (b.count as number) * (b.height as number) * (b.width as number) * (b.channels as number)
  if (b.data.length !== expected) {
    throw new DataError(
      `${what}.data has ${b.data.length} bytes but count×height×width×channels = ` +
        `${b.count}×${b.height}×${b.width}×${b.channels} = ${expected}`,
    )
  }
}

/** Images `start` … `start + count − 1` of a batch, sharing its memory. */
export function sliceImages(batch: ImageBatch, start: number, count: number): ImageBatch {
  const size = batch.height * batch.width * batch.channels
  const end = Math.min(batch.count, start + count)
  return { ...batch, count: Math.max(0, end - start), data: batch.data.subarray(start * size, end * size) }
}

export function describe(v: unknown): string {
  if (v === undefined) return 'undefined'
  if (v === null) return 'null'
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '…' : v)
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v)
  if (Array.isArray(v)) return `an array of length ${v.length}`
  if (ArrayBuffer.isView(v)) return `${article(v.constructor.name)} of length ${(v as Uint8Array).length}`
  return article(typeof v === 'object' ? (v.constructor?.name || 'object') : typeof v)
}

/** `a Map`, `an Object`, `an Int8Array`: the name with its indefinite article. */
function article(name: string): string {
  return `${/^[aeiou]/i.test(name) ? 'an' : 'a'} ${name}`
}
