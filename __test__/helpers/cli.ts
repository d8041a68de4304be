import { spawn } from 'node:child_process'
import * as path from 'node:path'

const cli = path.join(__dirname, '..', '..', 'src', 'cli.ts')

export interface CliRun { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string; pid: number }

export interface CliOptions {
  env?: NodeJS.ProcessEnv
  /** Sees the stderr so far after each chunk (and the child's pid), and may signal it. */
  onStderr?: (stderr: string, pid: number) => void
  /** Sees the stdout so far after each chunk (and the child's pid). */
  onStdout?: (stdout: string, pid: number) => void
  /** A run still going after this long is killed. @default 240 s */
  limitMs?: number
}

/** Runs `pixelcnn …` from the sources in a child process and collects its output. */
export function runCli(args: string[], options: CliOptions = {}): Promise<CliRun> {
  return runScript(cli, args, options)
}

/** Runs a TypeScript entry point of src/ (`src/demo.ts`) in a child process through tsx and collects its output. */
export function runScript(script: string, args: string[], options: CliOptions = {}): Promise<CliRun> {
  return new Promise((resolve) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...options.env } })
    let stdout = ''
    let stderr = ''
    const limit = setTimeout(() => proc.kill('SIGKILL'), options.limitMs ?? 240_000)
    proc.stdout.on('data', (c: Buffer) => {
      stdout += c
      options.onStdout?.(stdout, proc.pid!)
    })
    proc.stderr.on('data', (c: Buffer) => {
      stderr += c
      options.onStderr?.(stderr, proc.pid!)
    })
    proc.on('close', (code, signal) => {
      clearTimeout(limit)
      resolve({ code, signal, stdout, stderr, pid: proc.pid! })
    })
  })
}
