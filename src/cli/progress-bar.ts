/** A one-line progress bar for a terminal, and a plain log line otherwise. */

export function formatSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return '?'
  const s = Math.round(seconds)
  return s >= 3600 ? `${Math.floor(s / 3600)}h${String(Math.floor((s % 3600) / 60)).padStart(2, '0')}m` : s >= 60 ? `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s` : `${s}s`
}

export function bar(fraction: number, width = 24): string {
  const filled = Math.max(0, Math.min(width, Math.round(fraction * width)))
  return '█'.repeat(filled) + '░'.repeat(width - filled)
}

export class Line {
  readonly tty = Boolean(process.stderr.isTTY)
  #last = 0

  /** Redraws the line at most 10 times a second on a terminal; silent otherwise. */
  update(text: string): void {
    if (!this.tty) return
    const now = Date.now()
    if (now - this.#last < 100) return
    this.#last = now
    process.stderr.write(`\r\x1b[2K${text}`)
  }

  /** Ends the line with `text` (always printed). */
  done(text: string): void {
    process.stderr.write(this.tty ? `\r\x1b[2K${text}\n` : `${text}\n`)
  }
}
