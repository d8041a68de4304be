/**
 * IDX files, the format MNIST and Fashion-MNIST are published in: a 4-byte
 * magic (0, 0, element type, number of dimensions), one big-endian uint32 per
 * dimension, then the elements row-major. Only unsigned bytes (type 0x08) in
 * one dimension (labels, magic 0x00000801) or three (images, magic 0x00000803)
 * are read: that is all these datasets use.
 *
 * A file may be gzip-compressed (recognised by its first two bytes, 1f 8b, not
 * by its name) or plain. The length must be exactly header + product of the
 * dimensions: a file cut short or with trailing bytes is corrupt, and reading
 * it anyway would shift every image after the damage.
 *
 * Reads are bounded by what the header declares: a file is opened only if
 * it is a regular file (not /dev/zero, a FIFO or a directory: see
 * read-file.ts), a plain file whose size differs from its header's is
 * refused before its body is read, and a gzip stream is decompressed with a
 * cap of exactly the declared size (the header is found by decompressing a
 * small prefix first), so a gzip bomb stops at the first byte too many. No
 * file may declare more than `MAX_IDX_BYTES`.
 */

import { constants as zlib, gunzipSync } from 'node:zlib'

import { ConfigError, DataError, IoError } from '../errors'
import { describe, type ImageBatch } from '../images'
import { binarize, checkBinarization, SEED_THRESHOLD, type Binarization } from './binarize'
import { checkOptions } from '../options'
import { openRegularFile, readRange } from './read-file'

export const IDX_IMAGES_MAGIC = 0x00000803
export const IDX_LABELS_MAGIC = 0x00000801

/**
 * The largest IDX file accepted, decompressed (1 GiB): the full MNIST
 * training images are 47 MB, and the cap keeps a corrupt or hostile header
 * from making us allocate or decompress without end.
 */
export const MAX_IDX_BYTES = 1 << 30

const ELEMENT_TYPES: Record<number, string> = {
  0x08: 'unsigned byte',
  0x09: 'signed byte',
  0x0b: 'int16',
  0x0c: 'int32',
  0x0d: 'float32',
  0x0e: 'float64',
}

/** The content of an IDX file of unsigned bytes. */
export interface IdxArray {
  /** `[count]` for labels, `[count, height, width]` for images. */
  dims: number[]
  /** The elements, row-major. */
  data: Uint8Array
}

/**
 * Parses an IDX file held in memory (gzip-compressed or not). `name` (a path
 * or URL) is only used in error messages. Throws `DataError` on anything
 * malformed, and never another error type.
 */
export function parseIdx(buffer: Uint8Array, name: string): IdxArray {
  if (buffer.length === 0) throw new DataError(`IDX file ${name} is empty`)
  const bytes = isGzip(buffer) ? gunzip(buffer, name) : buffer
  if (bytes.length === 0) throw new DataError(`IDX file ${name} is empty once decompressed`)
  const { dims, header, elements } = readHeader(bytes, name)
  if (bytes.length !== header + elements) {
    const what = bytes.length < header + elements ? 'is truncated' : 'has trailing bytes'
    throw new DataError(
      `IDX file ${name} ${what}: its header says ${dims.join('×')} = ${elements} elements ` +
        `(${header + elements} bytes with the ${header}-byte header), but it has ${bytes.length} bytes`,
    )
  }
  return { dims, data: bytes.subarray(header) }
}

/** The longest header accepted: magic and three dimensions. */
const MAX_HEADER_BYTES = 16

/**
 * The magic number and dimensions at the start of `bytes` (which may be just
 * a prefix of the file). Throws `DataError` when they are not a supported
 * IDX header or `bytes` is too short to hold it.
 */
function readHeader(bytes: Uint8Array, name: string): { dims: number[]; header: number; elements: number } {
  if (bytes.length < 4) {
    throw new DataError(`IDX file ${name} has ${bytes.length} byte(s), too short for the 4-byte magic number`)
  }
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const magic = view.getUint32(0)
  const type = bytes[2]
  const ndims = bytes[3]
  if (bytes[0] !== 0 || bytes[1] !== 0 || !(type in ELEMENT_TYPES)) {
    throw new DataError(
      `IDX file ${name} starts with ${hex(magic)}, which is not an IDX magic number ` +
        `(expected ${hex(IDX_IMAGES_MAGIC)} for images or ${hex(IDX_LABELS_MAGIC)} for labels)`,
    )
  }
  if (type !== 0x08) {
    throw new DataError(
      `IDX file ${name} has magic ${hex(magic)}: elements of type ${ELEMENT_TYPES[type]} (0x${type.toString(16).padStart(2, '0')}); ` +
        `only unsigned bytes (0x08) are supported`,
    )
  }
  if (ndims !== 1 && ndims !== 3) {
    throw new DataError(
      `IDX file ${name} has magic ${hex(magic)}: ${ndims} dimension(s); ` +
        `expected 3 for images (${hex(IDX_IMAGES_MAGIC)}) or 1 for labels (${hex(IDX_LABELS_MAGIC)})`,
    )
  }
  const header = 4 + 4 * ndims
  if (bytes.length < header) {
    throw new DataError(
      `IDX file ${name} has ${bytes.length} bytes, too short for its ${header}-byte header (${ndims} dimension(s))`,
    )
  }
  const dims: number[] = []
  for (let i = 0; i < ndims; i++) dims.push(view.getUint32(4 + 4 * i))
  // Doubles are exact up to 2^53; a product beyond that cannot equal a length anyway.
  const elements = dims.reduce((a, b) => a * b, 1)
  return { dims, header, elements }
}

/** A header declaring more than `MAX_IDX_BYTES` in all is refused before anything that large is read or inflated. */
function checkDeclaredSize(total: number, dims: number[], name: string): void {
  if (total > MAX_IDX_BYTES) {
    throw new DataError(
      `IDX file ${name} declares ${dims.join('×')} elements (${total} bytes), more than the ${MAX_IDX_BYTES} bytes accepted`,
    )
  }
}

/** Grayscale images (and their labels) read from IDX files. */
export interface IdxImages {
  /** 0–255 grayscale, `channels: 1`. */
  images: ImageBatch
  /** One label per image, when a labels file was given. */
  labels?: Uint8Array
}

/** Expected shape; a file that disagrees is rejected with a `DataError`. */
export interface LoadIdxOptions {
  count?: number
  height?: number
  width?: number
}

/**
 * Reads an IDX images file (magic 0x00000803) and optionally its labels file
 * (magic 0x00000801), both gzip-compressed or plain. The images are returned
 * as 0–255 grayscale; see `binarizeImages` to make them 0/1.
 */
export async function loadIdx(imagesPath: string, labelsPath?: string, options?: LoadIdxOptions): Promise<IdxImages> {
  const checked = checkOptions<LoadIdxOptions>(options, { fn: 'loadIdx', walk: true })
  if (typeof imagesPath !== 'string' || imagesPath === '') {
    // A number would be taken as a file descriptor (0 is stdin).
    throw new ConfigError(`\`imagesPath\` of loadIdx must be a non-empty path, got ${describe(imagesPath)}`)
  }
  if (labelsPath !== undefined && (typeof labelsPath !== 'string' || labelsPath === '')) {
    throw new ConfigError(`\`labelsPath\` of loadIdx must be a non-empty path or undefined, got ${describe(labelsPath)}`)
  }
  const images = imagesFromIdx(parseIdx(await readIdxFile(imagesPath), imagesPath), imagesPath)
  for (const key of ['count', 'height', 'width'] as const) {
    const expected = checked[key]
    if (expected !== undefined && images[key] !== expected) {
      throw new DataError(`IDX file ${imagesPath} holds images with ${key} ${images[key]}, expected ${expected}`)
    }
  }
  if (labelsPath === undefined) return { images }
  const labels = parseIdx(await readIdxFile(labelsPath), labelsPath)
  if (labels.dims.length !== 1) {
    throw new DataError(
      `IDX file ${labelsPath} should hold labels (magic ${hex(IDX_LABELS_MAGIC)}, 1 dimension) ` +
        `but has magic ${hex(0x0800 + labels.dims.length)} (${labels.dims.join('×')})`,
    )
  }
  if (labels.dims[0] !== images.count) {
    throw new DataError(
      `IDX file ${labelsPath} has ${labels.dims[0]} labels but ${imagesPath} has ${images.count} images`,
    )
  }
  return { images, labels: labels.data }
}

/** Turns 0–255 grayscale images into 0/1 (see `binarize` for `threshold`). */
export function binarizeImages(images: ImageBatch, threshold: Binarization = SEED_THRESHOLD, seed = 0): ImageBatch {
  const how = checkBinarization(threshold)
  if (!Number.isInteger(seed)) throw new ConfigError(`\`seed\` must be an integer, got ${describe(seed)}`)
  return { ...images, data: binarize(images.data, how, seed) }
}

function imagesFromIdx(idx: IdxArray, name: string): ImageBatch {
  if (idx.dims.length !== 3) {
    throw new DataError(
      `IDX file ${name} should hold images (magic ${hex(IDX_IMAGES_MAGIC)}, 3 dimensions) ` +
        `but has magic ${hex(0x0800 + idx.dims.length)} (${idx.dims.join('×')})`,
    )
  }
  const [count, height, width] = idx.dims
  return { count, height, width, channels: 1, data: idx.data }
}

/**
 * The bytes of an IDX file, read only as far as its header allows: a plain
 * file must be exactly as long as its header declares (checked against its
 * size before the body is read); a gzip file may not be longer than
 * `MAX_IDX_BYTES` (its decompression is then capped by `parseIdx`).
 */
async function readIdxFile(path: string): Promise<Uint8Array> {
  const file = await openRegularFile(path, 'IDX file')
  try {
    if (file.size === 0) throw new DataError(`IDX file ${path} is empty`)
    if (file.size > MAX_IDX_BYTES) {
      throw new DataError(`IDX file ${path} has ${file.size} bytes, more than the ${MAX_IDX_BYTES} bytes accepted`)
    }
    const head = await readRange(file, 0, Math.min(file.size, MAX_HEADER_BYTES), path, 'IDX file')
    if (!isGzip(head) && head.length >= 4) {
      const { dims, header, elements } = readHeader(head, path)
      const total = header + elements
      if (file.size !== total) {
        throw new DataError(
          `IDX file ${path} ${file.size < total ? 'is truncated' : 'has trailing bytes'}: its header declares ` +
            `${dims.join('×')} = ${elements} elements (${total} bytes with the ${header}-byte header), but the file has ${file.size} bytes`,
        )
      }
      checkDeclaredSize(total, dims, path)
    }
    return await readRange(file, 0, file.size, path, 'IDX file')
  } finally {
    await file.handle.close().catch(() => {})
  }
}

function isGzip(buffer: Uint8Array): boolean {
  return buffer.length >= 2 && buffer[0] === 0x1f && buffer[1] === 0x8b
}

/** Deflate cannot expand one input byte to more than 1032 output bytes; this bounds a prefix's output. */
const MAX_DEFLATE_RATIO = 1032

/**
 * Decompresses a gzip IDX file with an output cap of exactly the size its
 * header declares. The header is found first by decompressing a growing
 * prefix of the input (`Z_SYNC_FLUSH` accepts a stream cut anywhere), each
 * try bounded by deflate's worst-case ratio, so no step inflates more than a
 * few megabytes before the declared size is known.
 */
function gunzip(buffer: Uint8Array, name: string): Uint8Array {
  const invalid = (error: unknown, reason = (error as Error).message) =>
    new DataError(`IDX file ${name} is not a valid gzip stream: ${reason}`, { cause: error })
  let head: Uint8Array = new Uint8Array(0)
  for (let prefix = 1024; ; prefix *= 16) {
    const part = buffer.subarray(0, Math.min(prefix, buffer.length))
    try {
      head = gunzipSync(part, {
        finishFlush: zlib.Z_SYNC_FLUSH,
        maxOutputLength: Math.min(MAX_IDX_BYTES, part.length * MAX_DEFLATE_RATIO + 65536),
      })
    } catch (error) {
      if (error instanceof RangeError) throw invalid(error, `it decompresses to more than ${MAX_IDX_BYTES} bytes`)
      throw invalid(error)
    }
    if (head.length >= MAX_HEADER_BYTES || part.length === buffer.length) break
  }
  // Too short for a header even from the whole input: decompress it for real
  // (a few bytes at most if valid) so that a broken stream is reported as such.
  let total = MAX_HEADER_BYTES
  if (head.length >= 4) {
    const parsed = readHeader(head, name)
    total = parsed.header + parsed.elements
    checkDeclaredSize(total, parsed.dims, name)
  }
  try {
    return gunzipSync(buffer, { maxOutputLength: Math.max(1, total) })
  } catch (error) {
    if (error instanceof RangeError) {
      throw new DataError(
        `IDX file ${name} decompresses to more than the ${total} bytes its header declares (trailing bytes, or a gzip bomb)`,
        { cause: error },
      )
    }
    throw invalid(error)
  }
}

function hex(n: number): string {
  return '0x' + (n >>> 0).toString(16).padStart(8, '0')
}
