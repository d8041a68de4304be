/** Builds small, valid IDX files (and broken ones) for the data tests. */

import { createHash } from 'node:crypto'
import { writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { gzipSync } from 'node:zlib'

/** A seeded generator (mulberry32), so generated data is reproducible. */
export function seeded(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = Math.imul(a ^ (a >>> 15), a | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

/** An IDX header: magic 0x000008<ndims> then the dimensions, big-endian. */
export function idxHeader(dims: number[], type = 0x08): Buffer {
  const header = Buffer.alloc(4 + 4 * dims.length)
  header[2] = type
  header[3] = dims.length
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i))
  return header
}

/** A plain IDX images file (magic 0x00000803) of seeded 0–255 pixels. */
export function idxImages(count: number, height: number, width: number, seed = 1): { bytes: Buffer; pixels: Uint8Array } {
  const random = seeded(seed)
  const pixels = Uint8Array.from({ length: count * height * width }, () => Math.floor(random() * 256))
  return { bytes: Buffer.concat([idxHeader([count, height, width]), pixels]), pixels }
}

/** A plain IDX labels file (magic 0x00000801) of seeded labels 0–9. */
export function idxLabels(count: number, seed = 2): { bytes: Buffer; labels: Uint8Array } {
  const random = seeded(seed)
  const labels = Uint8Array.from({ length: count }, () => Math.floor(random() * 10))
  return { bytes: Buffer.concat([idxHeader([count]), labels]), labels }
}

export function gzip(bytes: Uint8Array): Buffer {
  return gzipSync(bytes)
}

export function sha256(bytes: Uint8Array): string {
  return createHash('sha256').update(bytes).digest('hex')
}

export function md5(bytes: Uint8Array): string {
  return createHash('md5').update(bytes).digest('hex')
}

/**
 * Writes a training and a test IDX images file (28×28, seeded) into `dir`
 * under MNIST's names, for `--data idx:TRAIN,TEST`; returns their paths.
 */
export function writeIdxPair(dir: string, trainCount: number, testCount: number): { train: string; test: string } {
  const train = path.join(dir, 'train-images-idx3-ubyte')
  const test = path.join(dir, 't10k-images-idx3-ubyte')
  writeFileSync(train, idxImages(trainCount, 28, 28, 1).bytes)
  writeFileSync(test, idxImages(testCount, 28, 28, 2).bytes)
  return { train, test }
}
