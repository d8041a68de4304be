/**
 * `fit`'s `logDir`: training as TensorBoard sees it. Step events (a few a
 * second) are written as they come; each epoch's record then fills in the
 * steps between them, so every step's loss, learning rate and gradient norm
 * is in the file even though progress events are throttled. The x axis is
 * the step count over every `fit` of the model, skipped steps included.
 *
 * Tags: `train/loss`, `train/learning_rate`, `train/grad_norm`,
 * `train/images_per_second` (per step), `val/loss` (per validation),
 * `train/epoch_loss` (per epoch), and the images given to `image`.
 */

import { ConfigError } from './errors'
import { checkLogDir, EventWriter } from './tensorboard/event-writer'
import type { EpochRecord, TrainProgress } from './types'

export class TrainingLog {
  readonly #writer: EventWriter
  /** Steps of the epochs before this `fit`, and the first epoch it trains. */
  readonly #stepsBefore: number
  readonly #firstEpoch: number
  readonly #written = new Set<number>()
  #stepsPerEpoch = 0
  #lastStep = 0

  private constructor(writer: EventWriter, history: EpochRecord[]) {
    this.#writer = writer
    this.#stepsBefore = history.reduce((n, r) => n + (r.stepLosses?.length ?? 0), 0)
    this.#firstEpoch = history.length + 1
  }

  /** Opens a new event file in `logDir`; refuses a folder that is a file or not writable, naming `logDir`. */
  static open(logDir: unknown, history: EpochRecord[]): TrainingLog {
    if (typeof logDir !== 'string' || logDir === '') throw new ConfigError(`\`logDir\` must be a folder path, got ${JSON.stringify(logDir)}`)
    const problem = checkLogDir(logDir)
    if (problem !== null) throw new ConfigError(problem)
    return new TrainingLog(new EventWriter(logDir), history)
  }

  /** The step count over every `fit` of step `step` (1-based) of `epoch`. */
  #globalStep(epoch: number, step: number): number {
    return this.#stepsBefore + (epoch - this.#firstEpoch) * this.#stepsPerEpoch + step
  }

  #scalar(tag: string, value: number | null | undefined, step: number): void {
    if (typeof value === 'number' && Number.isFinite(value)) this.#writer.scalar(tag, value, step)
  }

  #step(step: number, loss: number | null, learningRate: number | undefined, gradNorm: number | null | undefined): void {
    if (this.#written.has(step)) return
    this.#written.add(step)
    this.#scalar('train/loss', loss, step)
    this.#scalar('train/learning_rate', learningRate, step)
    this.#scalar('train/grad_norm', gradNorm, step)
  }

  onEvent(event: TrainProgress): void {
    if (event.type === 'step') {
      this.#stepsPerEpoch = event.stepsPerEpoch
      const step = this.#globalStep(event.epoch, event.step)
      this.#lastStep = step
      this.#step(step, event.loss, event.learningRate, event.gradNorm)
      this.#scalar('train/images_per_second', event.imagesPerSecond, step)
    } else if (event.type === 'validation') {
      this.#scalar('val/loss', event.valLoss, this.#lastStep)
    } else if (event.type === 'epoch') {
      const losses = event.stepLosses ?? []
      if (this.#stepsPerEpoch === 0) this.#stepsPerEpoch = losses.length
      losses.forEach((loss, s) => this.#step(this.#globalStep(event.epoch, s + 1), loss, event.learningRates?.[s], event.gradNorms?.[s]))
      const end = this.#globalStep(event.epoch, losses.length)
      this.#lastStep = Math.max(this.#lastStep, end)
      this.#scalar('train/epoch_loss', event.trainLoss, end)
      this.#scalar('val/loss', event.valLoss, end)
    }
    this.#writer.flush()
  }

  /** A PNG (a sample grid) at the last step written; its size is read from its header (IHDR). */
  image(tag: string, png: Buffer): void {
    const isPng = png.length >= 24 && png.readUInt32BE(0) === 0x89504e47 && png.toString('latin1', 12, 16) === 'IHDR'
    if (!isPng) throw new ConfigError(`TensorBoard image \`${tag}\` is not a PNG`)
    this.#writer.image(tag, png, png.readUInt32BE(16), png.readUInt32BE(20), this.#lastStep)
    this.#writer.flush()
  }

  close(): void {
    this.#writer.close()
  }
}
