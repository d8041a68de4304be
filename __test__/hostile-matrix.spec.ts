/**
 * The hostile-input matrix (issue 21): every risky call of
 * support/hostile-cases.ts runs in a child process of its own with a time
 * limit, so that a crash (a signal death, an exit without an outcome) or a
 * hang (killed at the limit) is a failed test naming the case, not a dead
 * test runner. One test per case; a last test logs a table of every case
 * with its outcome and time.
 *
 * The children run two at a time (HOSTILE_PARALLEL) and under a limit on
 * their writable memory (HOSTILE_MEMORY_LIMIT_MB, `ulimit -d`: RLIMIT_DATA,
 * which counts heap and private writable mappings but not the address space
 * WebAssembly reserves, which `ulimit -v` would), so that a case that tries to
 * allocate more than the machine has fails inside its child instead of
 * summoning the OOM killer on a machine others share. HOSTILE_CASES (names
 * separated by `|`) runs only some cases.
 */
import test from 'ava'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'

import { cases, type ChildOutcome, type HostileCase } from './support/hostile-cases'

const CHILD = path.join(__dirname, 'support', 'hostile-child.ts')
const PARALLEL = Math.max(1, Number(process.env.HOSTILE_PARALLEL) || 2)
const MEMORY_LIMIT_MB = Number(process.env.HOSTILE_MEMORY_LIMIT_MB) || 8192
/** How long a child may take to exit after printing its outcome. */
const EXIT_GRACE_MS = 5000
const only = process.env.HOSTILE_CASES ? new Set(process.env.HOSTILE_CASES.split('|')) : undefined
const selected = cases.filter((c) => only === undefined || only.has(c.name))

interface Run {
  outcome?: ChildOutcome
  /** The child's exit status and signal; both null when it had to be killed. */
  status: number | null
  signal: NodeJS.Signals | null
  /** Killed at its time limit without an outcome. */
  timedOut: boolean
  /** Printed its outcome but did not exit within EXIT_GRACE_MS. */
  exitHung: boolean
  wallMs: number
  /** The child's temporary folder, when it could not be removed after the child ended. */
  leftover?: string
  stderr: string
  stdout: string
}

function runChild(hostile: HostileCase): Promise<Run> {
  const started = performance.now()
  // The child's folder is made and removed here, not by the child: a child killed at its limit
  // cannot clean up, and a FIFO left in /tmp can hang a later tool that reads it.
  const dir = mkdtempSync(path.join(tmpdir(), 'pixelcnn-hostile-'))
  // `exec` keeps the pid: a signal death is the child's own.
  const child = spawn(
    '/bin/sh',
    ['-c', `ulimit -d ${MEMORY_LIMIT_MB * 1024} && exec "$0" "$@"`, process.execPath, '--import', 'tsx', CHILD, hostile.name, dir],
    { cwd: path.join(__dirname, '..'), stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stdout = ''
  let stderr = ''
  let outcome: ChildOutcome | undefined
  let timedOut = false
  let exitHung = false
  let grace: NodeJS.Timeout | undefined
  const limit = setTimeout(() => {
    if (outcome) return
    timedOut = true
    child.kill('SIGKILL')
  }, hostile.limitMs)
  child.stdout.on('data', (chunk: Buffer) => {
    stdout += chunk
    if (outcome) return
    for (const line of stdout.split('\n')) {
      if (!line.startsWith('{')) continue
      try {
        const parsed = JSON.parse(line) as ChildOutcome
        if (parsed.hostileCase === hostile.name) outcome = parsed
      } catch {
        /* not the outcome line (yet) */
      }
    }
    if (outcome && !grace) {
      grace = setTimeout(() => {
        exitHung = true
        child.kill('SIGKILL')
      }, EXIT_GRACE_MS)
    }
  })
  child.stderr.on('data', (chunk: Buffer) => {
    stderr += chunk
    if (stderr.length > 100_000) stderr = stderr.slice(-50_000)
  })
  return new Promise((resolve) => {
    child.on('close', (status, signal) => {
      clearTimeout(limit)
      clearTimeout(grace)
      try {
        rmSync(dir, { recursive: true, force: true })
      } catch {
        /* reported below as a leftover */
      }
      const killed = timedOut || exitHung
      resolve({
        outcome,
        status: killed ? null : status,
        signal: killed ? null : signal,
        timedOut,
        exitHung,
        wallMs: performance.now() - started,
        leftover: existsSync(dir) ? dir : undefined,
        stderr,
        stdout,
      })
    })
  })
}

// ---- a pool running the children PARALLEL at a time, in the order of the list

const runs = new Map<string, Promise<Run>>()
function startAll(): void {
  if (runs.size > 0) return
  const waiting: Array<{ hostile: HostileCase; resolve: (run: Run) => void }> = []
  for (const hostile of selected) runs.set(hostile.name, new Promise<Run>((resolve) => waiting.push({ hostile, resolve })))
  const next = async (): Promise<void> => {
    const job = waiting.shift()
    if (!job) return
    job.resolve(await runChild(job.hostile))
    return next()
  }
  for (let i = 0; i < PARALLEL; i++) void next()
}
function runOf(name: string): Promise<Run> {
  startAll()
  return runs.get(name)!
}

// ---- judging an outcome ---------------------------------------------------

function tail(text: string, chars = 2000): string {
  const t = text.trim()
  return t.length > chars ? '…' + t.slice(-chars) : t
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`
}

/** One line saying what happened, for the table. */
function observed(run: Run): string {
  const { outcome } = run
  if (run.timedOut) return `HANG: killed after ${seconds(run.wallMs)} without an outcome`
  if (!outcome) {
    return run.signal
      ? `CRASH: killed by ${run.signal} without an outcome`
      : `CRASH: exited with status ${run.status} without an outcome`
  }
  let what: string
  if (outcome.fatal) what = `FATAL ${outcome.fatal}: ${outcome.name}: ${outcome.message}`
  else if (outcome.ok) what = 'resolved'
  else what = `${outcome.name}${outcome.code ? ` (${outcome.code})` : ''}: ${outcome.message}`
  if (outcome.causeMessage && !outcome.ok) what += ` [cause ${outcome.causeName ?? ''}: ${outcome.causeMessage}]`
  if (Object.keys(outcome.details).length > 0) what += ` ${JSON.stringify(outcome.details)}`
  if (run.exitHung) what += ` — then HUNG at exit`
  else if (run.signal) what += ` — then CRASHED at exit (${run.signal})`
  return what
}

/** What is wrong with a run, given its case's expectation; empty when it passed. */
function problems(hostile: HostileCase, run: Run): string[] {
  const { outcome } = run
  const stderr = `\nchild stderr (tail):\n${tail(run.stderr) || '(empty)'}`
  if (run.timedOut) return [`hang: no outcome within the ${seconds(hostile.limitMs)} limit; the child was killed${stderr}`]
  if (!outcome) {
    const how = run.signal ? `killed by ${run.signal}` : `exited with status ${run.status}`
    return [`crash: the child ${how} without printing an outcome${stderr}\nchild stdout (tail):\n${tail(run.stdout, 500) || '(empty)'}`]
  }
  const found: string[] = []
  if (run.leftover) found.push(`its temporary folder ${run.leftover} was left behind`)
  if (outcome.fatal) found.push(`the error escaped as an ${outcome.fatal} (it would kill the process): ${outcome.name}: ${outcome.message}`)
  if (run.exitHung) found.push(`hang at exit: the child printed its outcome but did not exit within ${seconds(EXIT_GRACE_MS)}${stderr}`)
  else if (run.signal) found.push(`crash at exit: the child printed its outcome, then was killed by ${run.signal}${stderr}`)
  const expect = hostile.expect
  if (expect.ok) {
    if (!outcome.ok) found.push(`expected success, got ${outcome.name}${outcome.code ? ` (${outcome.code})` : ''}: ${outcome.message}`)
  } else if (outcome.ok) {
    found.push(`expected a rejection${expect.names ? ` (${expect.names.join(' or ')})` : ''}, but the call resolved`)
  } else {
    if (expect.names && !expect.names.includes(outcome.name ?? '')) found.push(`expected ${expect.names.join(' or ')}, got ${outcome.name}: ${outcome.message}`)
    if (expect.codes && !expect.codes.includes(outcome.code ?? '')) found.push(`expected code ${expect.codes.join(' or ')}, got ${outcome.code ?? 'no code'}`)
    if ((expect.names || expect.codes) && !outcome.instanceOfPixelCNNError) found.push(`the error is not a PixelCNNError`)
    for (const pattern of expect.message ?? []) {
      const texts = [outcome.message ?? '', ...(expect.orCause ? [outcome.causeMessage ?? ''] : [])]
      if (!texts.some((text) => pattern.test(text))) found.push(`the message does not match ${pattern}: ${JSON.stringify(outcome.message)}`)
    }
  }
  if (expect.maxMs !== undefined && outcome.elapsedMs > expect.maxMs) {
    found.push(`too slow: the outcome came after ${seconds(outcome.elapsedMs)}, expected within ${seconds(expect.maxMs)}`)
  }
  for (const [key, value] of Object.entries(expect.details ?? {})) {
    if (outcome.details[key] !== value) found.push(`expected ${key} = ${JSON.stringify(value)}, got ${JSON.stringify(outcome.details[key])}`)
  }
  const extra = expect.check?.(outcome)
  if (extra) found.push(extra)
  return found
}

// ---- one test per case, then the table ------------------------------------

const verdicts = new Map<string, { pass: boolean; observed: string; wallMs: number }>()
const wallStarted = performance.now()

for (const hostile of selected) {
  test(hostile.name, async (t) => {
    const run = await runOf(hostile.name)
    const found = problems(hostile, run)
    verdicts.set(hostile.name, { pass: found.length === 0, observed: observed(run), wallMs: run.wallMs })
    t.log(`${observed(run)} (${seconds(run.wallMs)})`)
    if (found.length === 0) t.pass()
    else t.fail(`${hostile.name}:\n- ${found.join('\n- ')}`)
  })
}

test('summary: every case with its outcome and time', async (t) => {
  await Promise.all(selected.map((c) => runOf(c.name)))
  const width = Math.max(...selected.map((c) => c.name.length))
  const rows = selected.map((c) => {
    const v = verdicts.get(c.name)
    if (!v) return `${c.name.padEnd(width)}  ?     (not judged)`
    const what = v.observed.length > 220 ? v.observed.slice(0, 220) + '…' : v.observed
    return `${c.name.padEnd(width)}  ${v.pass ? 'pass' : 'FAIL'}  ${seconds(v.wallMs).padStart(7)}  ${what}`
  })
  const passed = [...verdicts.values()].filter((v) => v.pass).length
  t.log(
    `\n${rows.join('\n')}\n` +
      `${passed} of ${selected.length} cases passed; ${PARALLEL} at a time; wall ${seconds(performance.now() - wallStarted)}`,
  )
  t.pass()
})
