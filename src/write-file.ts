/**
 * Atomic file replacement, the one implementation every TypeScript writer
 * uses (pictures, downloads into the dataset cache):
 * - the new content goes to a temporary file in the target's directory (so
 *   that the final rename stays within one file system and is atomic: a
 *   crash leaves the old file or the new one, never half of one);
 * - the temporary name is unpredictable (`.<name>.<24 random hex>.tmp`) and
 *   the file is created with O_CREAT|O_EXCL (`'wx'`), which fails on any
 *   existing name and never follows a symbolic link in the final component:
 *   someone who can write to the directory cannot plant a link at the
 *   temporary name to make us overwrite another file (a planted name only
 *   costs a retry with a fresh name);
 * - the content is fsynced before the rename, so the rename never publishes
 *   a file whose blocks are not on disk yet;
 * - a regular file being replaced keeps its permission bits (the temporary
 *   file is fchmod-ed to them; set-id bits and the owner are not carried
 *   over); a new file gets 0o666 minus the umask, as `fs.writeFile` would.
 *   A symbolic link at the target itself is replaced by the new file, not
 *   followed.
 */

import { randomBytes } from 'node:crypto'
import { open, lstat, rename, unlink, type FileHandle } from 'node:fs/promises'
import * as path from 'node:path'

import { IoError } from './errors'

/** Fresh names tried when one is already taken (by a leftover or a planted file). */
const ATTEMPTS = 8

/** A temporary file that becomes `target` on `commit()`, or disappears on `discard()`. */
export interface AtomicFile {
  readonly target: string
  /** The temporary file's path (unpredictable; see above). */
  readonly tempPath: string
  readonly handle: FileHandle
  /** Writes all of `bytes` at the current end. */
  write(bytes: Uint8Array): Promise<void>
  /** fsync, keep the old file's mode, close and rename over `target`. */
  commit(): Promise<void>
  /** Closes and removes the temporary file; never throws. */
  discard(): Promise<void>
}

/** A temporary name next to `target`, different on every call. */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${randomBytes(12).toString('hex')}.tmp`)
}

/**
 * Creates the temporary file for replacing `target`. Errors are raw system
 * errors: callers wrap them in their own `IoError` wording.
 */
export async function createAtomicFile(target: string): Promise<AtomicFile> {
  let handle: FileHandle | undefined
  let tempPath = ''
  for (let attempt = 0; handle === undefined; attempt++) {
    tempPath = tempPathFor(target)
    try {
      handle = await open(tempPath, 'wx', 0o666)
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST' || attempt + 1 >= ATTEMPTS) throw error
    }
  }
  const opened = handle
  let closed = false
  const close = async () => {
    if (closed) return
    closed = true
    await opened.close()
  }
  return {
    target,
    tempPath,
    handle: opened,
    async write(bytes) {
      let offset = 0
      while (offset < bytes.length) {
        const { bytesWritten } = await opened.write(bytes, offset, bytes.length - offset)
        offset += bytesWritten
      }
    },
    async commit() {
      await opened.sync()
      const mode = await existingMode(target)
      if (mode !== undefined) await opened.chmod(mode)
      await close()
      await rename(tempPath, target)
      await syncDirectory(path.dirname(target))
    },
    async discard() {
      await close().catch(() => {})
      await unlink(tempPath).catch(() => {})
    },
  }
}

/**
 * Writes `bytes` to `file` atomically (see the top of this file). `what`
 * names the content in the error (`the image`).
 */
export async function writeFileAtomic(file: string, bytes: Uint8Array, what: string): Promise<void> {
  let temp: AtomicFile | undefined
  try {
    temp = await createAtomicFile(file)
    await temp.write(bytes)
    await temp.commit()
  } catch (error) {
    await temp?.discard()
    throw new IoError(`${file}: could not write ${what} (${(error as Error).message})`, { cause: error })
  }
}

/** The permission bits of `file` when it is a regular file; `undefined` when absent or something else. */
async function existingMode(file: string): Promise<number | undefined> {
  try {
    const stats = await lstat(file)
    return stats.isFile() ? stats.mode & 0o777 : undefined
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw error
  }
}

/** Makes the rename itself durable where directories can be fsynced (not on Windows); best effort. */
async function syncDirectory(dir: string): Promise<void> {
  let handle: FileHandle | undefined
  try {
    handle = await open(dir, 'r')
    await handle.sync()
  } catch {
    // Not supported here: the rename is still atomic, only its durability is up to the OS.
  } finally {
    await handle?.close().catch(() => {})
  }
}
