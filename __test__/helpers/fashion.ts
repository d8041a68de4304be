/**
 * The published Fashion-MNIST files, rebuilt from Debian's package
 * `dataset-fashion-mnist`. Debian ships the same deflate streams with a
 * rewritten gzip header (no file name, another mtime); putting the original
 * header back gives the published bytes, which the tests check against the
 * published MD5s before serving them.
 */

import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'

import { md5 } from './idx'

export const SYSTEM_DIR = '/usr/share/datasets/fashion-mnist'

/** Name → [gzip mtime of the published file, published MD5]. */
const PUBLISHED: Record<string, [number, string]> = {
  'train-images-idx3-ubyte.gz': [1504176606, '8d4fb7e6c68d591d4c3dfef9ec88bf0d'],
  'train-labels-idx1-ubyte.gz': [1504176606, '25c81989df183df01b3e8a0aad5dffbe'],
  't10k-images-idx3-ubyte.gz': [1504176627, 'bef4ecab320f06d8554ea6380940ec79'],
  't10k-labels-idx1-ubyte.gz': [1504176627, 'bb300cfdad3c16e7a12a480ee83cd310'],
}

/**
 * The four published files by name, or a reason why they cannot be had here
 * (package not installed, or its files are not the expected ones).
 */
export function publishedFashionMnist(): Map<string, Buffer> | string {
  if (!existsSync(SYSTEM_DIR)) return `${SYSTEM_DIR} is absent (apt-get install dataset-fashion-mnist)`
  const files = new Map<string, Buffer>()
  for (const [name, [mtime, published]] of Object.entries(PUBLISHED)) {
    const path = join(SYSTEM_DIR, name)
    if (!existsSync(path)) return `${path} is absent`
    const debian = readFileSync(path)
    // Debian's header: 1f 8b 08, no flags, mtime (4), xfl, os; then deflate data.
    if (debian[0] !== 0x1f || debian[1] !== 0x8b || debian[2] !== 8 || debian[3] !== 0) {
      return `${path} does not have the expected plain 10-byte gzip header`
    }
    const header = Buffer.alloc(10)
    header.set([0x1f, 0x8b, 8, 0x08]) // FNAME flag: the original file name follows
    header.writeUInt32LE(mtime, 4)
    header.set(debian.subarray(8, 10), 8)
    const rebuilt = Buffer.concat([header, Buffer.from(name.replace(/\.gz$/, '') + '\0', 'latin1'), debian.subarray(10)])
    if (md5(rebuilt) !== published) return `${path} rebuilt does not have the published MD5 ${published}`
    files.set(name, rebuilt)
  }
  return files
}
