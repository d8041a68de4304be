/**
 * Draws the training curve (loss against epoch) as a PNG through
 * @napi-rs/canvas, so that a run can be judged without a plotting stack.
 * Text goes through `./text` (system fonts, or a bitmap font where there are none).
 */

import { createCanvas, type SKRSContext2D } from '@napi-rs/canvas'
import { ConfigError } from './errors'
import { describe } from './images'
import { drawText, textWidth, type TextStyle } from './text'
import { writeFileAtomic } from './write-file'

export interface CurveEpoch {
  /** 1-based; may start above 1 (epochs count over every `fit` of a model). */
  epoch: number
  /** Mean training loss of the epoch. */
  trainLoss: number
  /** Validation loss after the epoch; `null` when there was none. */
  valLoss: number | null
  /** The training loss of every step of the epoch, in order; `null` (a step skipped as not finite) is left off the curve. */
  stepLosses?: (number | null)[]
}

export interface CurveOptions {
  /** The loss's unit, shown on the y axis. @default 'nats per pixel' */
  unit?: string
  /** Drawn above the plot; none by default. */
  title?: string
  /** Pixels. @default 800 */
  width?: number
  /** Pixels. @default 480 */
  height?: number
  /** Factor of the exponential moving average over step losses, in [0, 1); 0 draws them raw. @default 0.9 */
  smoothing?: number
}

/** The series' colours, exported so that tests and documentation agree with the picture. */
export const CURVE_COLORS = {
  steps: '#8fbce6',
  train: '#1f5fa8',
  validation: '#e8710a',
} as const

const OPTION_KEYS = ['unit', 'title', 'width', 'height', 'smoothing']

// ---------------------------------------------------------------------------
// Checks

function finite(value: unknown, field: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new ConfigError(`\`${field}\` must be a finite number, got ${describe(value)}`)
  }
  return value
}

function checkHistory(history: unknown): CurveEpoch[] {
  if (!Array.isArray(history)) throw new ConfigError(`\`history\` must be an array of epochs, got ${describe(history)}`)
  if (history.length === 0) throw new ConfigError('`history` holds no epochs to draw')
  return history.map((item: unknown, i) => {
    const at = `history[${i}]`
    if (typeof item !== 'object' || item === null) throw new ConfigError(`\`${at}\` must be an object { epoch, trainLoss, valLoss }, got ${describe(item)}`)
    const e = item as Record<string, unknown>
    const epoch = finite(e.epoch, `${at}.epoch`)
    const trainLoss = finite(e.trainLoss, `${at}.trainLoss`)
    // `undefined` is read as "no validation": a hand-built history may leave the key out.
    const valLoss = e.valLoss === null || e.valLoss === undefined ? null : finite(e.valLoss, `${at}.valLoss`)
    let stepLosses: number[] | undefined
    if (e.stepLosses !== undefined && e.stepLosses !== null) {
      if (!Array.isArray(e.stepLosses)) throw new ConfigError(`\`${at}.stepLosses\` must be an array of numbers, got ${describe(e.stepLosses)}`)
      stepLosses = e.stepLosses.filter((v: unknown) => v !== null).map((v: unknown, s) => finite(v, `${at}.stepLosses[${s}]`))
    }
    return { epoch, trainLoss, valLoss, stepLosses }
  })
}

function checkOptions(options: unknown) {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ConfigError(`options must be an object, got ${describe(options)}`)
  }
  const o = options as Record<string, unknown>
  for (const key of Object.keys(o)) {
    if (!OPTION_KEYS.includes(key)) throw new ConfigError(`unknown option \`${key}\` (known: ${OPTION_KEYS.join(', ')})`)
  }
  const text = (key: string, fallback: string | undefined) => {
    if (o[key] === undefined) return fallback
    if (typeof o[key] !== 'string') throw new ConfigError(`\`${key}\` must be a string, got ${describe(o[key])}`)
    return o[key] as string
  }
  const size = (key: string, fallback: number, min: number) => {
    const v = o[key]
    if (v === undefined) return fallback
    if (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > 8192) {
      throw new ConfigError(`\`${key}\` must be an integer between ${min} and 8192, got ${describe(v)}`)
    }
    return v
  }
  const smoothing = o.smoothing === undefined ? 0.9 : o.smoothing
  if (typeof smoothing !== 'number' || !(smoothing >= 0 && smoothing < 1)) {
    throw new ConfigError(`\`smoothing\` must be a number in [0, 1), got ${describe(smoothing)}`)
  }
  return {
    unit: text('unit', 'nats per pixel') as string,
    title: text('title', undefined),
    width: size('width', 800, 240),
    height: size('height', 480, 180),
    smoothing,
  }
}

// ---------------------------------------------------------------------------
// Scales

/** A round step (1, 2, 2.5 or 5 × 10^k; no 2.5 for integers) giving about `target` intervals over `span`. */
function niceStep(span: number, target: number, integer: boolean): number {
  const raw = span / target
  const magnitude = 10 ** Math.floor(Math.log10(raw))
  const norm = raw / magnitude
  const m = norm < 1.5 ? 1 : norm < 2.25 ? 2 : norm < 3.5 && !integer ? 2.5 : norm < 7.5 ? 5 : 10
  return integer ? Math.max(1, Math.round(m * magnitude)) : m * magnitude
}

/** The multiples of `step` in [lo, hi], with the decimals their labels need. */
function ticks(lo: number, hi: number, step: number): { values: number[]; decimals: number } {
  const first = Math.ceil(lo / step - 1e-9)
  const values: number[] = []
  for (let i = first; i * step <= hi + step * 1e-9; i++) values.push(i === 0 ? 0 : i * step)
  const k = Math.floor(Math.log10(step) + 1e-9)
  const mantissa = step / 10 ** k
  const decimals = Math.max(0, -k + (Math.abs(mantissa - 2.5) < 1e-9 ? 1 : 0))
  return { values, decimals }
}

function percentile(values: number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))]
}

/**
 * The y range. Early step losses are often many times the later ones and
 * would flatten everything that matters, so the range is set by the epoch
 * losses (means and validation) and the lower 98 % of the smoothed steps, and
 * the smoothed line may rise above the highest epoch loss by at most half the
 * range before it is clipped (drawn along the top edge).
 */
function yRange(core: number[], smoothed: number[]): [number, number] {
  let lo = Math.min(...core, ...(smoothed.length ? [percentile(smoothed, 0.02)] : []))
  const hiCore = Math.max(...core)
  let hi = Math.min(Math.max(hiCore, ...smoothed), hiCore + 0.5 * (hiCore - lo))
  if (hi - lo <= 1e-12 * Math.max(1, Math.abs(hi))) {
    const pad = Math.max(Math.abs(hi) * 0.05, 1e-3)
    lo -= pad
    hi += pad
  }
  const margin = 0.06 * (hi - lo)
  // Losses are not negative: do not let the margin show negative ticks.
  return [lo >= 0 ? Math.max(0, lo - margin) : lo - margin, hi + margin]
}

// ---------------------------------------------------------------------------
// Drawing

interface Point { x: number; y: number }

/** The PNG bytes of the training curve. */
export function renderTrainingCurve(history: CurveEpoch[], options: CurveOptions = {}): Buffer {
  const epochs = checkHistory(history)
  const { unit, title, width, height, smoothing } = checkOptions(options)

  const steps = smoothedSteps(epochs, smoothing)
  const smoothed = steps.flatMap((p) => (p ? [p.y] : []))
  const vals = epochs.filter((e) => e.valLoss !== null)
  const core = [...epochs.map((e) => e.trainLoss), ...vals.map((e) => e.valLoss as number)]
  const [yMin, yMax] = yRange(core, smoothed)

  const hasSteps = smoothed.length > 0
  const firstEpoch = Math.min(...epochs.map((e) => e.epoch))
  const lastEpoch = Math.max(...epochs.map((e) => e.epoch))
  let xMin = hasSteps ? firstEpoch - 1 : firstEpoch
  let xMax = lastEpoch
  if (xMax - xMin < 1) {
    // One epoch and no steps: centre the lone points.
    xMin = (xMin + xMax) / 2 - 0.5
    xMax = xMin + 1
  }

  const canvas = createCanvas(width, height)
  const ctx = canvas.getContext('2d')
  ctx.fillStyle = '#ffffff'
  ctx.fillRect(0, 0, width, height)

  const tickText: TextStyle = { size: 12, color: '#333333' }
  const labelText: TextStyle = { size: 13, color: '#111111' }
  const yTicks = ticks(yMin, yMax, niceStep(yMax - yMin, Math.max(3, Math.round(height / 80)), false))
  const yLabels = yTicks.values.map((v) => v.toFixed(yTicks.decimals))
  const tickWidth = Math.max(...yLabels.map((s) => textWidth(ctx, s, tickText)), 0)
  const plot = {
    left: Math.ceil(14 + labelText.size + 10 + tickWidth + 8),
    top: title ? 40 : 16,
    right: width - 18,
    bottom: height - (12 + tickText.size + 10 + labelText.size + 8),
  }
  const inset = 8 // data never touches the frame
  const px = (x: number) => plot.left + inset + ((x - xMin) / (xMax - xMin)) * (plot.right - plot.left - 2 * inset)
  const pyRaw = (y: number) => plot.bottom - inset - ((y - yMin) / (yMax - yMin)) * (plot.bottom - plot.top - 2 * inset)
  // Values beyond the range are drawn at the edge of the frame.
  const py = (y: number) => Math.min(plot.bottom, Math.max(plot.top, pyRaw(y)))

  drawAxes(ctx, { plot, px, pyRaw }, { yTicks, yLabels, xMin, xMax, width, height, unit, title, tickText, labelText })

  // Series.
  ctx.save()
  ctx.beginPath()
  ctx.rect(plot.left, plot.top, plot.right - plot.left, plot.bottom - plot.top)
  ctx.clip()
  ctx.lineJoin = 'round'
  if (hasSteps) {
    ctx.strokeStyle = CURVE_COLORS.steps
    ctx.lineWidth = 1.25
    ctx.beginPath()
    let pen = false
    for (const p of steps) {
      if (!p) { pen = false; continue }
      if (pen) ctx.lineTo(px(p.x), py(p.y))
      else ctx.moveTo(px(p.x), py(p.y))
      pen = true
    }
    ctx.stroke()
  }
  if (vals.length) {
    // Absent validation points are skipped: the line joins the present ones.
    ctx.strokeStyle = CURVE_COLORS.validation
    ctx.lineWidth = 2
    ctx.beginPath()
    vals.forEach((e, i) => (i ? ctx.lineTo(px(e.epoch), py(e.valLoss as number)) : ctx.moveTo(px(e.epoch), py(e.valLoss as number))))
    ctx.stroke()
    for (const e of vals) square(ctx, px(e.epoch), py(e.valLoss as number), CURVE_COLORS.validation)
  }
  for (const e of epochs) circle(ctx, px(e.epoch), py(e.trainLoss), CURVE_COLORS.train)
  ctx.restore()

  /** Where the series lie on the canvas, for placing the legend off them; lines are sampled between their points. */
  function inkPoints(): Point[] {
    const points: Point[] = []
    const line = (series: (Point | null)[]) => {
      let prev: Point | null = null
      for (const p of series) {
        const q = p && { x: px(p.x), y: py(p.y) }
        if (prev && q) for (let k = 1; k <= 8; k++) points.push({ x: prev.x + ((q.x - prev.x) * k) / 8, y: prev.y + ((q.y - prev.y) * k) / 8 })
        else if (q) points.push(q)
        prev = q
      }
    }
    line(steps)
    line(vals.map((e) => ({ x: e.epoch, y: e.valLoss as number })))
    for (const e of epochs) points.push({ x: px(e.epoch), y: py(e.trainLoss) })
    return points
  }

  drawLegend(ctx, plot, legendEntries(ctx, hasSteps, smoothing, vals.length > 0), inkPoints())

  return canvas.toBuffer('image/png')
}

/** Grid, ticks, frame, axis labels and title. */
function drawAxes(
  ctx: Ctx,
  { plot, px, pyRaw }: { plot: Plot; px: (x: number) => number; pyRaw: (y: number) => number },
  { yTicks, yLabels, xMin, xMax, width, height, unit, title, tickText, labelText }: {
    yTicks: { values: number[] }; yLabels: string[]; xMin: number; xMax: number; width: number; height: number
    unit: string; title: string | undefined; tickText: TextStyle; labelText: TextStyle
  },
): void {
  // Grid and ticks.
  ctx.lineWidth = 1
  ctx.strokeStyle = '#e6e6e6'
  yTicks.values.forEach((v, i) => {
    const y = Math.round(pyRaw(v)) + 0.5
    if (y < plot.top || y > plot.bottom) return
    ctx.beginPath()
    ctx.moveTo(plot.left, y)
    ctx.lineTo(plot.right, y)
    ctx.stroke()
    drawText(ctx, yLabels[i], plot.left - 6, y, { ...tickText, align: 'right', baseline: 'middle' })
  })
  // Whole epochs, unless the run spans less than two (then fractions of one).
  const xTicks = ticks(xMin, xMax, niceStep(xMax - xMin, Math.max(2, Math.round(width / 90)), xMax - xMin >= 2))
  for (const v of xTicks.values) {
    const x = Math.round(px(v)) + 0.5
    ctx.strokeStyle = '#e6e6e6'
    ctx.beginPath()
    ctx.moveTo(x, plot.top)
    ctx.lineTo(x, plot.bottom)
    ctx.stroke()
    drawText(ctx, v.toFixed(xTicks.decimals), x, plot.bottom + 6, { ...tickText, align: 'center', baseline: 'top' })
  }
  ctx.strokeStyle = '#888888'
  ctx.strokeRect(plot.left + 0.5, plot.top + 0.5, plot.right - plot.left, plot.bottom - plot.top)

  // Axis labels and title.
  drawText(ctx, 'epoch', (plot.left + plot.right) / 2, height - 8, { ...labelText, align: 'center', baseline: 'bottom' })
  ctx.save()
  ctx.translate(12 + labelText.size / 2, (plot.top + plot.bottom) / 2)
  ctx.rotate(-Math.PI / 2)
  drawText(ctx, `loss (${unit})`, 0, 0, { ...labelText, align: 'center', baseline: 'middle' })
  ctx.restore()
  if (title) drawText(ctx, title, width / 2, 20, { size: 15, color: '#111111', bold: true, align: 'center', baseline: 'middle' })

}

/**
 * The per-step losses as one EMA over every step in order, bias-corrected as
 * in Adam (divided by 1 − β^t) so that it does not start at 0, at x = epoch − 1
 * + the step's fraction of its epoch. An epoch without steps breaks the line
 * (`null`), it does not bridge the gap.
 */
function smoothedSteps(epochs: CurveEpoch[], smoothing: number): (Point | null)[] {
  const steps: (Point | null)[] = []
  let ema = 0
  let t = 0
  for (const e of epochs) {
    const losses = e.stepLosses ?? []
    if (losses.length === 0) {
      if (steps.length && steps[steps.length - 1] !== null) steps.push(null)
      continue
    }
    losses.forEach((loss, s) => {
      if (loss === null) return // parsed histories have none; a skipped step's loss is not on the curve
      ema = smoothing * ema + (1 - smoothing) * loss
      t++
      steps.push({ x: e.epoch - 1 + (s + 1) / losses.length, y: ema / (1 - smoothing ** t) })
    })
  }
  return steps
}

type Ctx = ReturnType<ReturnType<typeof createCanvas>['getContext']>
type LegendEntry = [string, (x: number, y: number) => void]
type Plot = { left: number; top: number; right: number; bottom: number }

/** The legend's rows: only the series drawn, each with its swatch. */
function legendEntries(ctx: Ctx, hasSteps: boolean, smoothing: number, validation: boolean): LegendEntry[] {
  const entries: LegendEntry[] = []
  if (hasSteps) {
    entries.push([smoothing > 0 ? `train, per step (EMA ${smoothing})` : 'train, per step', (x, y) => {
      ctx.strokeStyle = CURVE_COLORS.steps
      ctx.lineWidth = 2
      ctx.beginPath()
      ctx.moveTo(x - 10, y)
      ctx.lineTo(x + 10, y)
      ctx.stroke()
    }])
  }
  entries.push(['train, epoch mean', (x, y) => circle(ctx, x, y, CURVE_COLORS.train)])
  if (validation) {
    entries.push(['validation', (x, y) => {
      ctx.strokeStyle = CURVE_COLORS.validation
      ctx.lineWidth = 2
      ctx.beginPath()
      ctx.moveTo(x - 10, y)
      ctx.lineTo(x + 10, y)
      ctx.stroke()
      square(ctx, x, y, CURVE_COLORS.validation)
    }])
  }
  return entries
}

/** The legend, in the corner of the plot that hides least of the series' `points`. */
function drawLegend(ctx: Ctx, plot: Plot, entries: LegendEntry[], points: Point[]): void {
  const legendText: TextStyle = { size: 12, color: '#222222' }
  const rowHeight = 18
  const boxW = 8 + 24 + 6 + Math.max(...entries.map(([label]) => textWidth(ctx, label, legendText))) + 10
  const boxH = entries.length * rowHeight + 8
  const [boxX, boxY] = legendCorner(plot, boxW, boxH, points)
  ctx.fillStyle = 'rgba(255, 255, 255, 0.9)'
  ctx.fillRect(boxX, boxY, boxW, boxH)
  ctx.strokeStyle = '#cccccc'
  ctx.lineWidth = 1
  ctx.strokeRect(Math.round(boxX) + 0.5, Math.round(boxY) + 0.5, Math.round(boxW), Math.round(boxH))
  entries.forEach(([label, swatch], i) => {
    const y = boxY + 4 + rowHeight * (i + 0.5)
    swatch(boxX + 8 + 12, y)
    drawText(ctx, label, boxX + 8 + 24 + 6, y, { ...legendText, baseline: 'middle' })
  })

}

/** The top-left of a `w`×`h` legend: the corner of `plot` covering fewest `points` (top right on a tie, where falling curves rarely are). */
function legendCorner(plot: { left: number; top: number; right: number; bottom: number }, w: number, h: number, points: Point[]): [number, number] {
  const corners: [number, number][] = [
    [plot.right - 8 - w, plot.top + 8],
    [plot.left + 8, plot.top + 8],
    [plot.right - 8 - w, plot.bottom - 8 - h],
    [plot.left + 8, plot.bottom - 8 - h],
  ]
  let best = corners[0]
  let fewest = Infinity
  for (const [x, y] of corners) {
    const covered = points.filter((p) => p.x >= x - 4 && p.x <= x + w + 4 && p.y >= y - 4 && p.y <= y + h + 4).length
    if (covered < fewest) [best, fewest] = [[x, y], covered]
  }
  return best
}

function circle(ctx: SKRSContext2D, x: number, y: number, color: string): void {
  ctx.fillStyle = color
  ctx.beginPath()
  ctx.arc(x, y, 3.5, 0, 2 * Math.PI)
  ctx.fill()
}

function square(ctx: SKRSContext2D, x: number, y: number, color: string): void {
  ctx.fillStyle = color
  ctx.fillRect(x - 4, y - 4, 8, 8)
}

/** Writes the training curve to `file` (through a temporary file and a rename). */
export async function writeTrainingCurve(history: CurveEpoch[], file: string, options: CurveOptions = {}): Promise<void> {
  await writeFileAtomic(file, renderTrainingCurve(history, options), 'the image')
}
