/**
 * Opening the files the loaders read (IDX files, the CIFAR tarball, image
 * files, cached downloads) so that a path naming something other than a
 * regular file fails at once instead of hanging or reading forever:
 * - the path is opened with O_NONBLOCK, so opening a FIFO returns at once
 *   (a blocking open waits for a writer that may never come); the flag has no
 *   effect on regular files;
 * - the opened descriptor is then `fstat`ed, so the check applies to the very
 *   file that will be read (checking the path with `stat` first and opening
 *   it afterwards would leave a window in which it could be swapped);
 * - the caller's own symbolic links are followed (the path is the user's
 *   choice); a link loop fails with ELOOP, reported as an `IoError`.
 * Devices (`/dev/zero`), FIFOs, sockets and directories are refused with an
 * `IoError` naming the file and what it is. Reads are then bounded by the
 * size `fstat` reported, never "until EOF", so a file that grows while it is
 * read cannot make a loader read without end.
 */

import { constants, type Stats } from 'node:fs'
import { open, stat, type FileHandle } from 'node:fs/promises'

import { IoError } from '../errors'
import { errno } from '../write-file'

/** O_NONBLOCK where the platform has it (not on Windows, which has no FIFOs in the file system). */
const NONBLOCK = constants.O_NONBLOCK ?? 0

export interface RegularFile {
  handle: FileHandle
  /** The size `fstat` reported when the file was opened. */
  size: number
}

/**
 * Opens `path` for reading and checks that it is a regular file. `what`
 * names it in errors (`IDX file`, `image`). Errors are `IoError`s carrying
 * the system error's `code` in `cause`; the caller closes the handle.
 */
export async function openRegularFile(path: string, what: string): Promise<RegularFile> {
  let handle: FileHandle
  try {
    handle = await open(path, constants.O_RDONLY | NONBLOCK)
  } catch (error) {
    const code = errno(error)
    // ENXIO: opening a socket (or a FIFO without a reader, for writing); what it is says more than the code.
    const reason =
      code === 'ELOOP'
        ? 'ELOOP (a loop of symbolic links)'
        : code === 'ENXIO'
          ? await openFailure(path)
          : (code ?? (error as Error).message)
    throw new IoError(`cannot read ${what} ${path}: ${reason}`, { cause: error })
  }
  let stats: Stats
  try {
    stats = await handle.stat()
  } catch (error) {
    await handle.close().catch(() => {})
    throw new IoError(`cannot read ${what} ${path}: ${(error as Error).message}`, { cause: error })
  }
  if (!stats.isFile()) {
    await handle.close().catch(() => {})
    throw new IoError(`cannot read ${what} ${path}: it is ${kindOf(stats)}, not a regular file`)
  }
  return { handle, size: stats.size }
}

/**
 * Reads `length` bytes from `position` (fewer only if the file is shorter
 * now than when it was opened). `path` and `what` name the file in errors.
 */
export async function readRange(file: RegularFile, position: number, length: number, path: string, what: string): Promise<Buffer> {
  // Never from the shared pool: callers may hand `.buffer` on (e.g. to the native core) expecting it to be just this file.
  const buffer = Buffer.allocUnsafeSlow(length)
  let filled = 0
  try {
    while (filled < length) {
      const { bytesRead } = await file.handle.read(buffer, filled, length - filled, position + filled)
      if (bytesRead === 0) break
      filled += bytesRead
    }
  } catch (error) {
    throw new IoError(`cannot read ${what} ${path}: ${errno(error) ?? (error as Error).message}`, { cause: error })
  }
  return filled === length ? buffer : buffer.subarray(0, filled)
}

/** Opens, checks and reads a whole regular file of at most `maxBytes` (else an `IoError`), then closes it. */
export async function readRegularFile(path: string, what: string, maxBytes: number): Promise<Buffer> {
  const file = await openRegularFile(path, what)
  try {
    if (file.size > maxBytes) {
      throw new IoError(`cannot read ${what} ${path}: it has ${file.size} bytes, more than the ${maxBytes} accepted`)
    }
    return await readRange(file, 0, file.size, path, what)
  } finally {
    await file.handle.close().catch(() => {})
  }
}

/** Why opening `path` failed with ENXIO: it is a socket (or a device with nothing behind it); never the bare code. */
async function openFailure(path: string): Promise<string> {
  const stats = await stat(path).catch(() => undefined)
  return stats && !stats.isFile() ? `it is ${kindOf(stats)}, not a regular file` : 'it is a socket or a device with nothing behind it (ENXIO), not a regular file'
}

function kindOf(stats: Stats): string {
  if (stats.isDirectory()) return 'a directory'
  if (stats.isFIFO()) return 'a FIFO (named pipe)'
  if (stats.isCharacterDevice()) return 'a character device'
  if (stats.isBlockDevice()) return 'a block device'
  if (stats.isSocket()) return 'a socket'
  return 'not a regular file'
}
