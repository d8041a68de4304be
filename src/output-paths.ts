/**
 * Output locations, checked before long work starts. Training for half an
 * hour and then failing on `ENOENT` when writing the first picture throws the
 * work away; these helpers make the folder (as `mkdir -p` does) and prove it
 * writable up front, so that a bad path is refused in a second, naming it.
 *
 * Writability is proved by creating (exclusively, under an unpredictable name)
 * and removing a probe file, not by `access()`: `access()` answers for the
 * real uid and knows nothing of read-only mounts, ACLs or a full quota's
 * refusal to create, while a real create answers exactly the question asked.
 */

import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import * as path from 'node:path'
import { ConfigError, IoError } from './errors'
import { createExclusive, errno } from './write-file'

/** The nearest existing ancestor of `dir` (or `dir` itself), with what it is. */
async function nearestExisting(dir: string): Promise<{ at: string; isDirectory: boolean } | undefined> {
  for (let at = dir; ; at = path.dirname(at)) {
    try {
      return { at, isDirectory: (await fs.stat(at)).isDirectory() }
    } catch {
      if (path.dirname(at) === at) return undefined
    }
  }
}

function checkPath(value: string, what: string): void {
  if (typeof value !== 'string' || value === '') throw new ConfigError(`${what} must be a path, got ${JSON.stringify(value)}`)
}

/**
 * Creates `dir` and its missing parents (as `mkdir -p`), then proves it
 * writable with a probe file. `what` names the setting in the error
 * (`PIXELCNN_DEMO_OUT`, `the folder of --out`). Returns the absolute path.
 * Throws `IoError` naming the folder when it cannot be made or written.
 */
export async function prepareOutputDir(dir: string, what: string): Promise<string> {
  checkPath(dir, what)
  const absolute = path.resolve(dir)
  try {
    await fs.mkdir(absolute, { recursive: true })
  } catch (error) {
    // ENOTDIR / EEXIST: a component (or the folder itself) is a regular file; say which.
    const existing = await nearestExisting(absolute)
    const reason = existing && !existing.isDirectory ? `${existing.at} is a file, not a folder` : message(error)
    throw new IoError(`${what} ${absolute}: cannot create the output folder (${reason})`, { cause: error })
  }
  // mkdir -p succeeds on an existing folder; on an existing file it fails above, except on some
  // platforms: look again rather than trust it.
  let stat
  try {
    stat = await fs.stat(absolute)
  } catch (error) {
    throw new IoError(`${what} ${absolute}: cannot use the output folder (${message(error)})`, { cause: error })
  }
  if (!stat.isDirectory()) throw new IoError(`${what} ${absolute}: is a file, not a folder`)
  await probeWritable(absolute, what)
  return absolute
}

/**
 * Creates (exclusively, under an unpredictable name: write-file.ts's
 * `createExclusive`) and removes a file in `dir`. Every failure, the close and
 * the removal included, is an `IoError` naming the folder, and the probe file
 * is removed whatever failed after it was made.
 */
export async function probeWritable(dir: string, what: string): Promise<void> {
  const fail = (error: unknown, doing: string) =>
    new IoError(`${what} ${dir}: the output folder is not writable (${doing}: ${message(error)})`, { cause: error })
  let probe: { path: string; handle: fs.FileHandle }
  try {
    probe = await createExclusive(dir, probeName)
  } catch (error) {
    throw fail(error, 'cannot create a file')
  }
  let failure: IoError | undefined
  try {
    await probe.handle.close()
  } catch (error) {
    failure = fail(error, 'cannot close a new file')
  }
  try {
    await fs.unlink(probe.path)
  } catch (error) {
    // ENOENT: someone removed it already, which proves nothing wrong here.
    if (errno(error) !== 'ENOENT') failure ??= fail(error, `cannot remove the probe file ${probe.path}`)
  }
  if (failure) throw failure
}

/** The probe file's name in `dir`: hidden, 64 random bits. */
function probeName(dir: string): string {
  return path.join(dir, `.pixelcnn-write-probe-${randomBytes(8).toString('hex')}`)
}

function message(error: unknown): string {
  return error instanceof Error ? error.message : String(error)
}

/**
 * Checks that `file` can be written later: its folder is made when missing
 * and proved writable, and `file` itself is not a folder (the atomic write's
 * rename onto a folder would fail). An existing regular file is fine: it is
 * replaced. `what` names the file in the error. Returns the absolute path.
 */
export async function checkOutputFile(file: string, what: string): Promise<string> {
  await checkOutputFiles([{ file, what }])
  return path.resolve(file)
}

/**
 * `checkOutputFile` for many files at once, each folder made and probed only
 * once (a training run's sample grids: one file per scheduled epoch, all in
 * the folder of the model). `what` names each file in its error.
 */
export async function checkOutputFiles(files: Array<{ file: string; what: string }>): Promise<void> {
  const folders = new Set<string>()
  for (const { file, what } of files) {
    checkPath(file, what)
    const absolute = path.resolve(file)
    const dir = path.dirname(absolute)
    if (!folders.has(dir)) {
      await prepareOutputDir(dir, `${what} ${absolute}: its folder`)
      folders.add(dir)
    }
    // lstat: a link at `file` is replaced by the writer's rename, not followed, so only a real folder is in the way.
    let stat
    try {
      stat = await fs.lstat(absolute)
    } catch (error) {
      // Absent is the usual case: the file is made later. Anything else (ENAMETOOLONG, EACCES) is worth saying now.
      if (errno(error) !== 'ENOENT') throw new IoError(`${what} ${absolute}: cannot be checked (${message(error)})`, { cause: error })
    }
    if (stat?.isDirectory()) throw new IoError(`${what} ${absolute}: is a folder, so the file cannot be written there`)
  }
}
