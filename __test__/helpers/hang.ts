/**
 * Hangs made into test failures: `within` bounds a promise, `makeFifo` makes
 * a FIFO (a file whose open or read can block forever) and remembers it so
 * that `releaseFifos` can unblock any reader left waiting on one.
 */

import { execFileSync } from 'node:child_process'
import { closeSync, constants, openSync } from 'node:fs'

const fifos: string[] = []

/** Makes a FIFO at `path` (mkfifo) and returns the path. */
export function makeFifo(path: string): string {
  execFileSync('mkfifo', [path])
  fifos.push(path)
  return path
}

/**
 * Releases any reader blocked on a FIFO made here (opening the write end
 * unblocks it), so that the process can exit; call from `test.after.always`
 * before removing the folders.
 */
export function releaseFifos(): void {
  for (const fifo of fifos.splice(0)) {
    try {
      closeSync(openSync(fifo, constants.O_WRONLY | constants.O_NONBLOCK))
    } catch {
      // No reader waiting (ENXIO), or already removed: nothing to release.
    }
  }
}

/** `promise`, or a rejection naming `what` after `ms` (a hang is then a test failure, not a stuck runner). */
export function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HANG: ${what} did not settle within ${ms} ms`)), ms)
  })
  return Promise.race([promise, hang]).finally(() => clearTimeout(timer))
}
