/**
 * The pictures of the command line: sample grids (one row per class for a
 * conditional model) and the training curve, written beside the model file,
 * and the record of those that could not be written.
 */

import { IoError, type PixelCNNError } from '../errors'
import { writeImageGrid } from '../image-grid'
import type { ImageBatch } from '../images'
import { writeTokens, type TokenGrid } from '../data/tokens'
import type { Grid } from '../grids'
import type { PixelCNN } from '../model'
import { writeTrainingCurve } from '../training-curve'
import type { Precision, SampleProgress } from '../types'

/** `model.safetensors` → `model<suffix>` in the same directory. */
export function besideModel(modelPath: string, suffix: string): string {
  return modelPath.replace(/\.safetensors$/i, '') + suffix
}

/** The samples `--samples-every` writes after epoch `epoch`: `model.samples-epoch-N.png`, or `.npy` for a token model. */
export function samplesFile(modelPath: string, epoch: number, tokens = false): string {
  return besideModel(modelPath, `.samples-epoch-${epoch}.${tokens ? 'npy' : 'png'}`)
}

/** Whether a grid is drawn after `done` of `epochs` epochs: every `every` epochs, and after the last. */
export function samplesDue(done: number, every: number | undefined, epochs: number): boolean {
  return every !== undefined && (done % every === 0 || done === epochs)
}

export interface GridRequest {
  /** Unconditional models: how many images. */
  count: number
  /** Conditional models: draw only this class (`count` images of it). */
  label?: number
  /** Conditional models without `label`: images per class, one grid row per class. */
  perClass: number
  seed?: number
  temperature?: number
  precision?: Precision
  classNames?: string[]
  onProgress?: (event: SampleProgress) => void
  signal?: AbortSignal
  /** Vector-conditional models: one condition vector per image (`count` of them). */
  conditions?: Float32Array
  /** Map-conditional models: one condition map per image. */
  maps?: Float32Array | Int32Array
}

/**
 * Samples and writes a grid; returns what it drew, for the log line. A token
 * model's samples are written as a `.npy` file of tokens (N, H, W) instead:
 * tokens are codes, not pixels.
 */
export async function writeSampleGrid(model: PixelCNN<Grid>, file: string, request: GridRequest, scale?: number): Promise<string> {
  const classes = model.config.classes
  const common = { seed: request.seed, temperature: request.temperature, precision: request.precision, onProgress: request.onProgress, signal: request.signal, conditions: request.conditions, maps: request.maps }
  const tokens = model.config.vocabulary !== undefined
  let images: Grid
  let columns: number | undefined
  let rowLabels: string[] | undefined
  let what: string
  if (classes === undefined || request.label !== undefined) {
    images = await model.sample({ ...common, count: request.count, labels: request.label })
    what = `${request.count} images${request.label !== undefined ? ` of class ${request.label}` : ''}`
  } else {
    const labels = Array.from({ length: classes * request.perClass }, (_, i) => Math.floor(i / request.perClass))
    images = await model.sample({ ...common, count: labels.length, labels })
    columns = request.perClass
    rowLabels = Array.from({ length: classes }, (_, k) => request.classNames?.[k] ?? String(k))
    what = `${request.perClass} images of each of ${classes} classes, one row per class`
  }
  if (tokens) {
    await writeTokens(file, images as TokenGrid)
    return what.replace(/images/g, 'token grids')
  }
  await writeImageGrid(images as ImageBatch, file, { columns, scale, rowLabels })
  return what
}

/**
 * Writes the training curve of `model.history` (nothing before the first
 * epoch): nats per pixel for binary models, bits per dimension (the unit of
 * published 8-bit results) for 8-bit ones.
 */
export async function writeCurve(model: PixelCNN<Grid>, file: string): Promise<boolean> {
  if (model.history.length === 0) return false
  const output = model.config.output ?? 'bernoulli'
  const bits = output !== 'bernoulli'
  const scale = bits ? 1 / Math.LN2 : 1
  const history = model.history.map((e) => ({
    ...e,
    trainLoss: e.trainLoss * scale,
    valLoss: e.valLoss === null ? null : e.valLoss * scale,
    stepLosses: e.stepLosses?.map((l) => (l === null ? null : l * scale)),
  }))
  const title = `training ${model.config.architecture}${bits ? `, ${output}` : ''}${model.config.classes ? `, ${model.config.classes} classes` : ''}`
  await writeTrainingCurve(history, file, { unit: bits ? 'bits per dimension' : 'nats per pixel', title })
  return true
}

/**
 * A picture drawn during training that could not be written: reported at
 * once and again at the end (exit status 1), but training goes on: the
 * model is saved after every epoch whatever happens to the pictures.
 */
export class PictureFailures {
  readonly #failed = new Map<string, string>()
  constructor(private readonly line: { done(text: string): void }) {}

  /** Runs `draw`; an abort (Ctrl-C) is rethrown, any other failure recorded. */
  async attempt<T>(file: string, draw: () => Promise<T>): Promise<T | undefined> {
    try {
      const result = await draw()
      // The curve is redrawn every epoch: a later success replaces a failed one.
      this.#failed.delete(file)
      return result
    } catch (error) {
      if ((error as PixelCNNError).code === 'Aborted') throw error
      const message = (error as Error).message
      if (!this.#failed.has(file)) this.line.done(`could not write ${file}: ${message}; the model is saved, training goes on`)
      this.#failed.set(file, message)
      return undefined
    }
  }

  has(file: string): boolean {
    return this.#failed.has(file)
  }

  /** IoError naming every picture that failed, or undefined when none did. */
  error(out: string): IoError | undefined {
    if (this.#failed.size === 0) return undefined
    const list = [...this.#failed].map(([file, message]) => `${file} (${message})`).join('; ')
    return new IoError(`${out} is saved, but ${this.#failed.size === 1 ? 'a picture' : `${this.#failed.size} pictures`} could not be written: ${list}`)
  }
}
