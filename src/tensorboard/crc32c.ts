/**
 * CRC-32C (Castagnoli; reflected polynomial 0x82F63B78), the checksum of
 * TFRecord framing, and TensorBoard's masked form of it. The mask (rotate
 * right by 15, add a constant) exists because a CRC computed over data that
 * itself holds CRCs is weak; TensorFlow's readers undo it before comparing.
 */

const TABLE = (() => {
  const table = new Uint32Array(256)
  for (let n = 0; n < 256; n++) {
    let c = n
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1
    table[n] = c >>> 0
  }
  return table
})()

export function crc32c(bytes: Uint8Array): number {
  let crc = 0xffffffff
  for (const b of bytes) crc = TABLE[(crc ^ b) & 0xff] ^ (crc >>> 8)
  return (crc ^ 0xffffffff) >>> 0
}

/** ((crc >>> 15) | (crc << 17)) + 0xa282ead8, modulo 2^32. */
export function maskedCrc32c(bytes: Uint8Array): number {
  const crc = crc32c(bytes)
  return ((((crc >>> 15) | (crc << 17)) >>> 0) + 0xa282ead8) >>> 0
}
