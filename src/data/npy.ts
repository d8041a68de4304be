/**
 * NumPy's `.npy` format (numpy.lib.format, versions 1.0–3.0), as
 * `numpy.save` writes it: the magic "\x93NUMPY", a major and minor version
 * byte, the header's length (2 bytes little-endian in 1.0, 4 in 2.0 and 3.0),
 * a Python dict literal `{'descr': '<i4', 'fortran_order': False, 'shape':
 * (N, H, W), }` padded with spaces to a multiple of 64 bytes and ended by a
 * newline, then the elements in C order. Only the numeric dtypes this
 * library reads are decoded; anything else is a `DataError` naming the file.
 */

import { DataError } from '../errors'

const MAGIC = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]) // \x93NUMPY

/** The dtypes decoded here: the kind and size of a `descr` without its byte order. */
export type NpyType = 'i1' | 'u1' | 'i2' | 'u2' | 'i4' | 'u4' | 'i8' | 'f4' | 'f8'
const SIZES: Record<NpyType, number> = { i1: 1, u1: 1, i2: 2, u2: 2, i4: 4, u4: 4, i8: 8, f4: 4, f8: 8 }

/** The content of a `.npy` file: its shape, its dtype, and its elements as numbers, in C order. */
export interface NpyArray {
  shape: number[]
  /** As the header spells it, for messages (`'<i4'`, `'>f8'`, `'|u1'`). */
  descr: string
  type: NpyType
  /** The elements; int64 ones as bigint, so that none is silently rounded. */
  data: Int8Array | Uint8Array | Int16Array | Uint16Array | Int32Array | Uint32Array | BigInt64Array | Float32Array | Float64Array
}

/** The header's dict, read without evaluating Python: three known keys, each once. */
function parseHeader(text: string, name: string): { descr: string; fortranOrder: boolean; shape: number[] } {
  const bad = (why: string) => new DataError(`${name}: not a .npy file NumPy writes: ${why} (header ${JSON.stringify(text.trim())})`)
  const descr = /'descr'\s*:\s*'([^']*)'/.exec(text)?.[1]
  const fortran = /'fortran_order'\s*:\s*(True|False)/.exec(text)?.[1]
  const shapeText = /'shape'\s*:\s*\(([^)]*)\)/.exec(text)?.[1]
  if (descr === undefined || fortran === undefined || shapeText === undefined) throw bad("the header lacks 'descr', 'fortran_order' or 'shape'")
  const parts = shapeText.split(',').map((s) => s.trim()).filter((s) => s !== '')
  const shape = parts.map((s) => (/^\d+$/.test(s) ? Number(s) : NaN))
  if (shape.some((d) => !Number.isSafeInteger(d))) throw bad(`the shape (${shapeText}) is not a tuple of whole numbers`)
  return { descr, fortranOrder: fortran === 'True', shape }
}

/** `'<i4'` → little-endian i4; `'|u1'` and `'<u1'` alike; null for dtypes not decoded here. */
function splitDescr(descr: string): { littleEndian: boolean; type: NpyType } | null {
  const match = /^([<>|=]?)([iuf]\d)$/.exec(descr)
  if (!match || !(match[2] in SIZES)) return null
  // '=' is the writer's native order; every machine NumPy writes .npy files on today is little-endian.
  return { littleEndian: match[1] !== '>', type: match[2] as NpyType }
}

/**
 * Parses a `.npy` file held in memory. `name` (a path) is only used in
 * messages. Throws `DataError` on anything malformed or of a dtype not
 * decoded here (strings, objects, booleans, complex, structured arrays), and
 * on Fortran-ordered arrays, which `numpy.ascontiguousarray` turns into C order.
 */
export function parseNpy(bytes: Uint8Array, name: string): NpyArray {
  const buffer = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  if (buffer.length < 10 || !buffer.subarray(0, 6).equals(MAGIC)) throw new DataError(`${name}: not a .npy file (it does not start with "\\x93NUMPY")`)
  const major = buffer[6]
  if (major < 1 || major > 3) throw new DataError(`${name}: .npy format version ${major}.${buffer[7]} is not one of 1.0, 2.0, 3.0`)
  const [lengthBytes, headerLength] = major === 1 ? [2, buffer.readUInt16LE(8)] : [4, buffer.length >= 12 ? buffer.readUInt32LE(8) : -1]
  const start = 8 + lengthBytes
  if (headerLength < 0 || start + headerLength > buffer.length) throw new DataError(`${name}: the .npy header is cut off (the file has ${buffer.length} bytes)`)
  const header = parseHeader(buffer.toString(major === 3 ? 'utf8' : 'latin1', start, start + headerLength), name)
  const split = splitDescr(header.descr)
  if (!split) throw new DataError(`${name}: dtype '${header.descr}' is not a numeric dtype this library reads (int8–int64, uint8–uint32, float32, float64)`)
  if (header.fortranOrder && header.shape.length > 1) {
    throw new DataError(`${name}: the array is in Fortran order; save numpy.ascontiguousarray(array) instead`)
  }
  const count = header.shape.reduce((a, b) => a * b, 1)
  const size = SIZES[split.type]
  const dataStart = start + headerLength
  if (buffer.length - dataStart !== count * size) {
    throw new DataError(`${name}: shape (${header.shape.join(', ')}) of '${header.descr}' needs ${count * size} bytes of data, the file has ${buffer.length - dataStart}`)
  }
  return { shape: header.shape, descr: header.descr, type: split.type, data: decode(buffer.subarray(dataStart), split.type, split.littleEndian, count) }
}

function decode(bytes: Buffer, type: NpyType, littleEndian: boolean, count: number): NpyArray['data'] {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength)
  const read = <T extends { [i: number]: number | bigint }>(out: T, get: (offset: number) => number | bigint, size: number): T => {
    for (let i = 0; i < count; i++) out[i] = get(i * size)
    return out
  }
  switch (type) {
    case 'i1': return read(new Int8Array(count), (o) => view.getInt8(o), 1)
    case 'u1': return read(new Uint8Array(count), (o) => view.getUint8(o), 1)
    case 'i2': return read(new Int16Array(count), (o) => view.getInt16(o, littleEndian), 2)
    case 'u2': return read(new Uint16Array(count), (o) => view.getUint16(o, littleEndian), 2)
    case 'i4': return read(new Int32Array(count), (o) => view.getInt32(o, littleEndian), 4)
    case 'u4': return read(new Uint32Array(count), (o) => view.getUint32(o, littleEndian), 4)
    case 'i8': return read(new BigInt64Array(count), (o) => view.getBigInt64(o, littleEndian), 8)
    case 'f4': return read(new Float32Array(count), (o) => view.getFloat32(o, littleEndian), 4)
    case 'f8': return read(new Float64Array(count), (o) => view.getFloat64(o, littleEndian), 8)
  }
}

/** The descr of each typed array `encodeNpy` writes (little-endian, as NumPy on every common machine). */
const DESCRS = new Map<Function, string>([
  [Uint8Array, '|u1'],
  [Int16Array, '<i2'],
  [Uint16Array, '<u2'],
  [Int32Array, '<i4'],
  [Float32Array, '<f4'],
  [Float64Array, '<f8'],
])

/**
 * A `.npy` file (version 1.0) of `data` in C order with `shape`, as
 * `numpy.save` would write it: `numpy.load` reads it back unchanged.
 */
export function encodeNpy(data: Uint8Array | Int16Array | Uint16Array | Int32Array | Float32Array | Float64Array, shape: number[]): Buffer {
  const descr = DESCRS.get(data.constructor)
  if (!descr) throw new DataError(`encodeNpy: cannot write a ${data.constructor.name}`)
  const count = shape.reduce((a, b) => a * b, 1)
  if (count !== data.length) throw new DataError(`encodeNpy: shape (${shape.join(', ')}) holds ${count} elements, the data has ${data.length}`)
  // A 1-tuple needs its trailing comma in Python: (5,) not (5).
  const tuple = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(', ')})`
  let header = `{'descr': '${descr}', 'fortran_order': False, 'shape': ${tuple}, }`
  // Padded with spaces so that the data starts at a multiple of 64 bytes, then a newline.
  header += ' '.repeat(63 - ((10 + header.length) % 64)) + '\n'
  const prefix = Buffer.alloc(10)
  MAGIC.copy(prefix)
  prefix[6] = 1
  prefix[7] = 0
  prefix.writeUInt16LE(header.length, 8)
  const body = Buffer.alloc(data.byteLength)
  const view = new DataView(body.buffer, body.byteOffset, body.byteLength)
  const size = data.BYTES_PER_ELEMENT
  for (let i = 0; i < data.length; i++) {
    const v = data[i]
    if (data instanceof Uint8Array) view.setUint8(i, v)
    else if (data instanceof Int16Array) view.setInt16(i * size, v, true)
    else if (data instanceof Uint16Array) view.setUint16(i * size, v, true)
    else if (data instanceof Int32Array) view.setInt32(i * size, v, true)
    else if (data instanceof Float32Array) view.setFloat32(i * size, v, true)
    else view.setFloat64(i * size, v, true)
  }
  return Buffer.concat([prefix, Buffer.from(header, 'latin1'), body])
}
