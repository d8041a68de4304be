/**
 * Atomic file replacement, the one implementation every TypeScript writer
 * uses (pictures, downloads into the dataset cache):
 * - the new content goes to a temporary file in the target's directory (so
 *   that the final rename stays within one file system and is atomic: a
 *   crash leaves the old file or the new one, never half of one);
 * - the temporary name is unpredictable (`.<name>.<pid>.<24 random hex>.tmp`) and
 *   the file is created with O_CREAT|O_EXCL (`'wx'`), which fails on any
 *   existing name and never follows a symbolic link in the final component:
 *   someone who can write to the directory cannot plant a link at the
 *   temporary name to make us overwrite another file (a planted name only
 *   costs a retry with a fresh name);
 * - the pid in the name is the writer's: a writer killed mid-write (SIGKILL,
 *   a power cut) cannot remove its temporary file, so after each successful
 *   rename the temporaries of the same target whose pid is no longer alive
 *   are removed (never the current pid's, whose writers may still be
 *   running; `unlink` removes a planted link itself, never what it points
 *   to; errors are ignored). A pid reused by an unrelated live process only
 *   delays the clean-up to a later write;
 * - the content is fsynced before the rename, so the rename never publishes
 *   a file whose blocks are not on disk yet;
 * - a regular file being replaced keeps its permission bits (the temporary
 *   file is fchmod-ed to them right after it is created, before any content
 *   is written, so the content is never readable under wider permissions
 *   than the old file's; set-id bits and the owner are not carried over); a
 *   new file gets 0o666 minus the umask, as `fs.writeFile` would.
 *   A symbolic link at the target itself is replaced by the new file, not
 *   followed.
 */

import { randomBytes } from 'node:crypto'
import { existsSync } from 'node:fs'
import { open, lstat, readdir, rename, unlink, type FileHandle } from 'node:fs/promises'
import * as path from 'node:path'

import { IoError } from './errors'

/** The errno code (`ENOENT`) of a Node.js system error, or undefined for anything else. */
export function errno(error: unknown): string | undefined {
  const code = (error as NodeJS.ErrnoException | undefined)?.code
  return typeof code === 'string' ? code : undefined
}

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
  /** fsync, close and rename over `target` (the old file's mode was set when the file was made). */
  commit(): Promise<void>
  /** Closes and removes the temporary file; never throws. */
  discard(): Promise<void>
}

/** Where the random part of every name comes from: `crypto.randomBytes`, except in tests. */
let randomSource: (size: number) => Buffer = randomBytes

/**
 * For tests only: replaces the random source of the temporary names (so that
 * a test can plant files at the exact names a writer will try); `undefined`
 * restores `crypto.randomBytes`.
 */
export function setRandomSourceForTests(source: ((size: number) => Buffer) | undefined): void {
  randomSource = source ?? randomBytes
}

/** A temporary name next to `target`, different on every call: `.<name>.<pid>.<24 random hex>.tmp`. */
export function tempPathFor(target: string): string {
  return path.join(path.dirname(target), `.${path.basename(target)}.${process.pid}.${randomSource(12).toString('hex')}.tmp`)
}

/**
 * Creates a new file next to `target` under a fresh unpredictable name
 * (`name(target)`, `tempPathFor` by default), exclusively (`'wx'`: O_EXCL,
 * never following a link); a name already taken costs a retry with another
 * one, up to 8. Returns the path and the open handle. Errors are raw system
 * errors (EEXIST when every name was taken).
 */
export async function createExclusive(
  target: string,
  name: (target: string) => string = tempPathFor,
  mode = 0o666,
): Promise<{ path: string; handle: FileHandle }> {
  for (let attempt = 0; ; attempt++) {
    const candidate = name(target)
    try {
      return { path: candidate, handle: await open(candidate, 'wx', mode) }
    } catch (error) {
      if (errno(error) !== 'EEXIST' || attempt + 1 >= ATTEMPTS) throw error
    }
  }
}

/**
 * Creates the temporary file for replacing `target`, already carrying the
 * mode of the regular file it will replace. Errors are raw system errors:
 * callers wrap them in their own `IoError` wording.
 */
export async function createAtomicFile(target: string): Promise<AtomicFile> {
  const { path: tempPath, handle: opened } = await createExclusive(target)
  try {
    const mode = await existingMode(target)
    if (mode !== undefined) await opened.chmod(mode)
  } catch (error) {
    await opened.close().catch(() => {})
    await unlink(tempPath).catch(() => {})
    throw error
  }
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
      await close()
      await rename(tempPath, target)
      await syncDirectory(path.dirname(target))
      await removeStaleTemporaries(target)
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
    if (errno(error) === 'ENOENT') return undefined
    throw error
  }
}

/**
 * Removes the temporary files of `target` (`.<name>.<pid>.<hex>.tmp`) left by
 * writers that are no longer alive (see the top of this file); never the
 * current process's. Best effort: errors are ignored.
 */
export async function removeStaleTemporaries(target: string): Promise<void> {
  const dir = path.dirname(target)
  const prefix = `.${path.basename(target)}.`
  let names: string[]
  try {
    names = await readdir(dir)
  } catch {
    return
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue
    const match = /^(\d+)\.[0-9a-f]+\.tmp$/.exec(name.slice(prefix.length))
    if (match === null) continue
    const pid = Number(match[1])
    if (pid === process.pid || !Number.isSafeInteger(pid) || pid <= 0 || isAlive(pid)) continue
    await unlink(path.join(dir, name)).catch(() => {})
  }
}

/** Whether a process with this pid exists (on this machine's pid namespace). */
export function isAlive(pid: number): boolean {
  if (process.platform === 'linux') return existsSync(`/proc/${pid}`)
  try {
    process.kill(pid, 0)
    return true
  } catch (error) {
    // EPERM: it exists, owned by someone else.
    return errno(error) !== 'ESRCH'
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
