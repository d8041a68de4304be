/**
 * Temporary directories for the data tests, all under one root per test file
 * that is removed when the file's tests are done. Loading this module also
 * points `$PIXELCNN_CACHE_DIR` into that root, so that a test that forgets a
 * `cacheDir` can never touch the user's real cache.
 */

import { mkdirSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const root = mkdtempSync(join(tmpdir(), 'pixelcnn-data-test-'))
process.env.PIXELCNN_CACHE_DIR = join(root, 'default-cache')
let counter = 0

/** A fresh empty directory. */
export function tempDir(prefix = 'dir'): string {
  const dir = join(root, `${prefix}-${counter++}`)
  mkdirSync(dir)
  return dir
}

/** Removes every directory made by `tempDir`; call from `test.after.always`. */
export function removeTempDirs(): void {
  rmSync(root, { recursive: true, force: true })
}
