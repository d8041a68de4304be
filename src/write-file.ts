import { promises as fs } from 'node:fs'
import * as path from 'node:path'
import { IoError } from './errors'

/**
 * Writes `bytes` to `file` through a temporary file in the same directory and
 * a rename: a crash leaves the old file or the new one, never half of one.
 * `what` names the content in the error (`the image`).
 */
export async function writeFileAtomic(file: string, bytes: Uint8Array, what: string): Promise<void> {
  const tmp = path.join(path.dirname(file), `.${path.basename(file)}.${process.pid}.tmp`)
  try {
    await fs.writeFile(tmp, bytes)
    await fs.rename(tmp, file)
  } catch (error) {
    await fs.rm(tmp, { force: true })
    throw new IoError(`${file}: could not write ${what} (${(error as Error).message})`, { cause: error })
  }
}
