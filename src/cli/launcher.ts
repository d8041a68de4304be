/**
 * `pixelcnn train --nproc N …`: data-parallel training on one machine. Spawns
 * N copies of this command line (without `--nproc`, with `--distributed env`)
 * as ranks 0 … N − 1 of a c10d group on 127.0.0.1, as `torchrun
 * --nproc-per-node N` would: RANK, WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE,
 * MASTER_ADDR=127.0.0.1 and a free MASTER_PORT in each one's environment, and
 * `--threads` ⌊cores / N⌋ unless `--threads` (or `threads` in `--config`) is set.
 *
 * Rank 0 writes straight to this process's stdout and stderr (its progress
 * bar included); the other ranks print only errors, forwarded line by line
 * as `[rank r] …`. Ctrl-C (SIGINT) and SIGTERM are forwarded to every rank
 * (the ranks run in process groups of their own, so a terminal's Ctrl-C
 * reaches each of them once, through here). If a rank fails, the others are
 * stopped (SIGTERM, then SIGKILL after `GRACE_MS`) and the launcher exits
 * with the failing rank's status. A rank that loses its launcher (the IPC
 * channel closes) stops as on Ctrl-C: see `watchLauncher`.
 */

import { type ChildProcess, spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { availableParallelism } from 'node:os'
import { ConfigError } from '../errors'
import type { Args } from './args'

/** How long a rank may take to exit after it was told to stop, before SIGKILL. */
const GRACE_MS = 10_000

const SIGNAL_NUMBERS: Partial<Record<NodeJS.Signals, number>> = { SIGINT: 2, SIGKILL: 9, SIGTERM: 15 }

/** `--nproc`: a positive integer, quoted back when it is not one. */
export function parseNproc(raw: string | boolean | undefined): number {
  if (typeof raw !== 'string' || !/^[1-9]\d*$/.test(raw.trim())) {
    throw new ConfigError(`\`--nproc\` must be a positive integer (the number of processes to train in), got ${JSON.stringify(raw)}`)
  }
  const n = Number(raw.trim())
  if (n > 1024) throw new ConfigError(`\`--nproc\` must be at most 1024, got ${JSON.stringify(raw)}`)
  return n
}

/** The command line without `--nproc N` / `--nproc=N`. */
export function withoutNproc(argv: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--nproc') i++
    else if (!argv[i].startsWith('--nproc=')) out.push(argv[i])
  }
  return out
}

/** A TCP port that was free on 127.0.0.1 a moment ago (as torchrun picks one). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer()
    server.once('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** Whether `--config FILE` sets `threads` (the children then keep it). */
function configSetsThreads(args: Args): boolean {
  if (typeof args.config !== 'string') return false
  try {
    return (JSON.parse(readFileSync(args.config, 'utf8')) as { threads?: unknown }).threads !== undefined
  } catch {
    return false // the ranks report the unreadable file themselves
  }
}

/** Forwards a stream's lines, each prefixed, as they complete. */
function forwardLines(stream: NodeJS.ReadableStream, prefix: string, write: (text: string) => void): void {
  let pending = ''
  stream.setEncoding('utf8')
  stream.on('data', (chunk: string) => {
    const lines = (pending + chunk).split('\n')
    pending = lines.pop() ?? ''
    for (const line of lines) write(`${prefix}${line.replace(/^.*\r/, '')}\n`)
  })
  stream.on('end', () => {
    if (pending) write(`${prefix}${pending}\n`)
  })
}

interface Rank {
  rank: number
  child: ChildProcess
  exited: Promise<void>
  code: number | null
  signal: NodeJS.Signals | null
  done: boolean
}

function describeExit(r: Rank): string {
  return r.signal ? `was killed by ${r.signal}` : `exited with status ${r.code}`
}

/**
 * Runs `pixelcnn train` as `--nproc` ranks; resolves with the exit status:
 * 0 when every rank succeeded, the first failing rank's status (1 when it was
 * killed by a signal) otherwise, or rank 0's status after Ctrl-C / SIGTERM.
 *
 * `script` is the command line's entry file (`cli.js`, or `cli.ts` under tsx);
 * `argv` the arguments after `train`.
 */
export async function launch(args: Args, argv: string[], script: string): Promise<number> {
  const nproc = parseNproc(args.nproc)
  if (args.distributed !== undefined) {
    throw new ConfigError(`\`--nproc\` starts its own group on 127.0.0.1; leave out \`--distributed\` (got ${JSON.stringify(args.distributed)})`)
  }
  const extra = ['--distributed', 'env']
  const threads = Math.max(1, Math.floor(availableParallelism() / nproc))
  const setThreads = args.threads === undefined && !configSetsThreads(args)
  if (setThreads) extra.push('--threads', String(threads))
  const childArgs = [...process.execArgv, script, 'train', ...withoutNproc(argv), ...extra]
  const port = await freePort()

  let stopping: NodeJS.Signals | undefined
  let failed: Rank | undefined
  const ranks: Rank[] = []
  const live = () => ranks.filter((r) => !r.done)
  const stopOthers = (signal: NodeJS.Signals) => {
    for (const r of live()) r.child.kill(signal)
    const timer = setTimeout(() => { for (const r of live()) r.child.kill('SIGKILL') }, GRACE_MS)
    timer.unref()
  }

  for (let rank = 0; rank < nproc; rank++) {
    const env = {
      ...process.env,
      RANK: String(rank), WORLD_SIZE: String(nproc), LOCAL_RANK: String(rank), LOCAL_WORLD_SIZE: String(nproc),
      MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port),
    }
    const child = spawn(process.execPath, childArgs, {
      env,
      // Rank 0 writes to our terminal directly; the others' stderr (errors only) comes through here.
      stdio: rank === 0 ? ['ignore', 'inherit', 'inherit', 'ipc'] : ['ignore', 'ignore', 'pipe', 'ipc'],
      // A process group of its own: a terminal's Ctrl-C reaches the rank once, forwarded by us.
      detached: true,
    })
    const r: Rank = { rank, child, code: null, signal: null, done: false, exited: Promise.resolve() }
    r.exited = new Promise((resolve) => {
      child.once('error', (error) => {
        process.stderr.write(`pixelcnn train: rank ${rank} could not start: ${error.message}\n`)
        r.code = 1
      })
      child.once('close', (code, signal) => {
        r.done = true
        r.code ??= code
        r.signal = signal
        const ok = r.code === 0 || (stopping !== undefined && (r.code === 130 || r.signal === stopping))
        if (!ok && !failed && !stopping) {
          failed = r
          const others = live().length
          process.stderr.write(`pixelcnn train: rank ${rank} of ${nproc} ${describeExit(r)}${others ? `; stopping the other ${others === 1 ? 'rank' : `${others} ranks`}` : ''}\n`)
          stopOthers('SIGTERM')
        } else if (rank === 0 && live().length > 0) {
          // Rank 0 is done (or stopped and saved): the others have nothing left to wait for.
          const timer = setTimeout(() => stopOthers('SIGTERM'), GRACE_MS)
          timer.unref()
        }
        resolve()
      })
    })
    if (rank !== 0 && child.stderr) forwardLines(child.stderr, `[rank ${rank}] `, (text) => process.stderr.write(text))
    ranks.push(r)
  }
  process.stderr.write(
    `pixelcnn train: ${nproc} ${nproc === 1 ? 'process' : 'processes'} on 127.0.0.1:${port} (pids ${ranks.map((r) => r.child.pid).join(' ')})` +
      `${setThreads ? `, ${threads} ${threads === 1 ? 'thread' : 'threads'} each` : ''}\n`,
  )

  const forward = (signal: NodeJS.Signals) => {
    stopping ??= signal
    for (const r of live()) r.child.kill(signal)
  }
  const onSigint = () => forward('SIGINT')
  const onSigterm = () => forward('SIGTERM')
  process.on('SIGINT', onSigint)
  process.on('SIGTERM', onSigterm)
  try {
    await Promise.all(ranks.map((r) => r.exited))
  } finally {
    process.off('SIGINT', onSigint)
    process.off('SIGTERM', onSigterm)
  }
  if (failed) return failed.code || 1
  if (stopping) {
    const first = ranks[0]
    return first.code ?? 128 + (SIGNAL_NUMBERS[first.signal ?? stopping] ?? 1)
  }
  const bad = ranks.find((r) => r.code !== 0)
  return bad ? bad.code || 1 : 0
}

/**
 * In a rank started by `launch`: calls `stop` when the launcher goes away
 * (its IPC channel closes), so that no rank outlives it. Does nothing in a
 * process that has no IPC channel.
 */
export function watchLauncher(stop: () => void): void {
  if (!process.send || !process.channel) return
  process.channel.unref()
  process.once('disconnect', stop)
}
