/**
 * Runs one case of the hostile-input matrix and prints its outcome as one
 * JSON line on stdout (see `ChildOutcome` in hostile-cases.ts), then exits.
 * usage: node --import tsx hostile-child.ts CASE_NAME
 *
 * An error that escapes as an uncaught exception or unhandled rejection (one
 * that would kill a user's process) is reported as `fatal`, and the child
 * exits with status 70.
 */

import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

import { PixelCNNError } from '../../src/index'
import { cases, type CaseContext, type ChildOutcome } from './hostile-cases'

const name = process.argv[2]
const hostile = cases.find((c) => c.name === name)
if (hostile === undefined) {
  process.stderr.write(`no hostile case named ${JSON.stringify(name)}\n`)
  process.exit(64)
}

// The parent (hostile-matrix.spec.ts) makes the folder and removes it once this process has ended,
// however it ended (a SIGKILL at the time limit included); run by hand, the child makes its own.
const dir = process.argv[3] ?? mkdtempSync(join(tmpdir(), 'pixelcnn-hostile-'))
process.env.PIXELCNN_CACHE_DIR = join(dir, 'default-cache')
const details: Record<string, unknown> = {}
const started = performance.now()
const elapsed = () => performance.now() - started
const ctx: CaseContext = { dir, report: (more) => Object.assign(details, more), elapsed }
let reported = false

function describeError(error: unknown): Omit<ChildOutcome, 'hostileCase' | 'ok' | 'elapsedMs' | 'details'> {
  if (!(error instanceof Error)) return { name: typeof error, message: String(error), instanceOfPixelCNNError: false }
  const cause = (error as { cause?: unknown }).cause
  const code = (error as { code?: unknown }).code
  return {
    name: error.name,
    code: typeof code === 'string' ? code : undefined,
    message: error.message,
    instanceOfPixelCNNError: error instanceof PixelCNNError,
    causeName: cause instanceof Error ? cause.name : undefined,
    causeMessage: cause instanceof Error ? cause.message : cause === undefined ? undefined : String(cause),
  }
}

function finish(outcome: Omit<ChildOutcome, 'hostileCase' | 'elapsedMs' | 'details'>, status: number): void {
  if (reported) return
  reported = true
  const line: ChildOutcome = { hostileCase: name, ...outcome, elapsedMs: Math.round(elapsed()), details }
  try {
    rmSync(dir, { recursive: true, force: true })
  } catch {
    /* a leftover temporary directory is not the case's outcome */
  }
  process.stdout.write(JSON.stringify(line) + '\n', () => process.exit(status))
}

process.on('uncaughtException', (error) => finish({ ok: false, fatal: 'uncaughtException', ...describeError(error) }, 70))
process.on('unhandledRejection', (error) => finish({ ok: false, fatal: 'unhandledRejection', ...describeError(error) }, 70))

Promise.resolve()
  .then(() => hostile!.run(ctx))
  .then(
    () => finish({ ok: true }, 0),
    (error) => finish({ ok: false, ...describeError(error) }, 0),
  )
