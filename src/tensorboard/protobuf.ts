/**
 * The few protobuf encodings an `Event` needs, encoder only. A field is its
 * key, the varint (number << 3) | wire type, then its value by wire type:
 * 0 a varint (7 bits a byte, low group first, high bit set on all but the
 * last byte), 1 eight little-endian bytes (double), 2 a varint length then
 * that many bytes (strings, bytes and nested messages alike), 5 four
 * little-endian bytes (float). A message is its fields concatenated, so
 * nesting is a length-delimited field holding an encoded message.
 */

const WIRE_VARINT = 0
const WIRE_FIXED64 = 1
const WIRE_LENGTH_DELIMITED = 2
const WIRE_FIXED32 = 5

function varint(value: number | bigint): Buffer {
  if (typeof value === 'number' && !Number.isSafeInteger(value)) throw new RangeError(`protobuf varint: ${value} is not a safe integer`)
  let v = BigInt(value)
  // int32/int64 fields carry negative values as their 64-bit two's complement (ten bytes).
  if (v < 0n) v += 1n << 64n
  const out: number[] = []
  do {
    const low = Number(v & 0x7fn)
    v >>= 7n
    out.push(v > 0n ? low | 0x80 : low)
  } while (v > 0n)
  return Buffer.from(out)
}

const key = (field: number, wireType: number) => varint((field << 3) | wireType)

/** An int32/int64/uint field. */
export function varintField(field: number, value: number | bigint): Buffer {
  return Buffer.concat([key(field, WIRE_VARINT), varint(value)])
}

export function doubleField(field: number, value: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeDoubleLE(value)
  return Buffer.concat([key(field, WIRE_FIXED64), b])
}

/** A float field: `value` rounded to float32, as readers will see it. */
export function floatField(field: number, value: number): Buffer {
  const b = Buffer.alloc(4)
  b.writeFloatLE(value)
  return Buffer.concat([key(field, WIRE_FIXED32), b])
}

/** A string (UTF-8), bytes or nested-message field. */
export function bytesField(field: number, value: Uint8Array | string): Buffer {
  const bytes = typeof value === 'string' ? Buffer.from(value, 'utf8') : value
  return Buffer.concat([key(field, WIRE_LENGTH_DELIMITED), varint(bytes.length), bytes])
}
