/**
 * Small CIFAR-10 tarballs in the real format, for the data tests: a ustar
 * archive (written here by hand, independently of the `tar` package the
 * loader reads it with) holding `cifar-10-batches-bin/` with batch files of
 * 3,073-byte records: a label byte, then the red, green and blue 32×32 planes.
 */

import { gzipSync } from 'node:zlib'

import { seeded } from './idx'

export const PLANE = 32 * 32
export const RECORD = 1 + 3 * PLANE

/** A batch of seeded records: labels 0–9, and planes of seeded bytes (so R, G and B differ). */
export function cifarBatch(count: number, seed: number): { bytes: Buffer; labels: number[]; planes: Uint8Array[] } {
  const random = seeded(seed)
  const labels: number[] = []
  const planes: Uint8Array[] = []
  const bytes = Buffer.alloc(count * RECORD)
  for (let n = 0; n < count; n++) {
    const label = Math.floor(random() * 10)
    const image = Uint8Array.from({ length: 3 * PLANE }, () => Math.floor(random() * 256))
    labels.push(label)
    planes.push(image)
    bytes[n * RECORD] = label
    bytes.set(image, n * RECORD + 1)
  }
  return { bytes, labels, planes }
}

export interface TarEntry {
  name: string
  /** File content; a directory when absent. */
  data?: Buffer
  /** Overrides the size written in the header. */
  size?: number
  /** Overrides the type flag ('0' file, '5' directory, '2' symbolic link…). */
  type?: string
}

/** A ustar archive (uncompressed) of the entries, ended by two zero blocks. */
export function tar(entries: TarEntry[]): Buffer {
  const blocks: Buffer[] = []
  for (const entry of entries) {
    const data = entry.data ?? Buffer.alloc(0)
    blocks.push(tarHeader(entry.name, entry.size ?? data.length, entry.type ?? (entry.data ? '0' : '5')))
    blocks.push(data, Buffer.alloc((512 - (data.length % 512)) % 512))
  }
  blocks.push(Buffer.alloc(1024))
  return Buffer.concat(blocks)
}

function tarHeader(name: string, size: number, type: string): Buffer {
  const header = Buffer.alloc(512)
  const field = (value: string, offset: number, length: number) => header.write(value, offset, length, 'latin1')
  const octal = (value: number, offset: number, length: number) => field(value.toString(8).padStart(length - 1, '0') + '\0', offset, length)
  field(name, 0, 100)
  octal(0o644, 100, 8)
  octal(0, 108, 8)
  octal(0, 116, 8)
  octal(size, 124, 12)
  octal(1234567890, 136, 12)
  field(' '.repeat(8), 148, 8) // the checksum is computed with its own field as spaces
  field(type, 156, 1)
  field('ustar\0' + '00', 257, 8)
  let sum = 0
  for (const byte of header) sum += byte
  field(sum.toString(8).padStart(6, '0') + '\0 ', 148, 8)
  return header
}

/** Batch files by name (inside `cifar-10-batches-bin/`), in this order, plus the folder and the two text files of the real tarball. */
export function cifarTarball(batches: Array<[name: string, bytes: Buffer]>): Buffer {
  return gzipSync(
    tar([
      { name: 'cifar-10-batches-bin/' },
      { name: 'cifar-10-batches-bin/batches.meta.txt', data: Buffer.from('airplane\nautomobile\nbird\ncat\ndeer\ndog\nfrog\nhorse\nship\ntruck\n') },
      ...batches.map(([name, data]) => ({ name: `cifar-10-batches-bin/${name}`, data })),
      { name: 'cifar-10-batches-bin/readme.html', data: Buffer.from('<meta HTTP-EQUIV="REFRESH" content="0; url=https://www.cs.toronto.edu/~kriz/cifar.html">\n') },
    ]),
  )
}
