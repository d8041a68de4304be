/** Checkpoints made invalid on purpose, for the bad-input tests and the hostile matrix. */

import { readFileSync, writeFileSync } from 'node:fs'

/**
 * Writes to `out` the bytes of the valid checkpoint `source` with its JSON
 * header (safetensors: an 8-byte little-endian length, then the JSON)
 * replaced by `edit(header)`; returns `out`.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function checkpointWith(source: string, out: string, edit: (header: Record<string, any>) => void): string {
  const bytes = readFileSync(source)
  const n = Number(bytes.readBigUInt64LE(0))
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString())
  edit(header)
  const json = Buffer.from(JSON.stringify(header))
  const length = Buffer.alloc(8)
  length.writeBigUInt64LE(BigInt(json.length))
  writeFileSync(out, Buffer.concat([length, json, bytes.subarray(8 + n)]))
  return out
}
