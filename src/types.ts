/** The public option and result types. */

import type { ImageBatch } from './images'

/** `'auto'` picks CUDA when libtorch sees a GPU, else the CPU. Asking for CUDA where there is none is a `DeviceError`. */
export type Device = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`

/** The network's shape. Explicit fields override the preset's. */
export interface ModelOptions {
  /** `'seed'`: the Keras example's network (532,673 parameters); `'small'`: 32 filters, 2 blocks. @default 'seed' */
  preset?: 'seed' | 'small'
  /** @default 28 */ height?: number
  /** @default 28 */ width?: number
  /** Only 1 (binary images). @default 1 */ channels?: number
  /** Feature maps of the residual stream. @default 128 */ filters?: number
  /** @default 5 */ residualBlocks?: number
  /** Side of the first, mask-A convolution (odd, ≥ 3). @default 7 */ inputKernel?: number
  /** Side of each block's mask-B convolution (odd). @default 3 */ residualKernel?: number
  /** 1×1 ReLU layers before the output. @default 2 */ outputLayers?: number
}

/** The resolved network shape, as stored in checkpoints. */
export interface ModelConfig {
  height: number
  width: number
  channels: number
  filters: number
  residualBlocks: number
  inputKernel: number
  residualKernel: number
  outputLayers: number
}

export interface CreateOptions extends ModelOptions {
  /** @default 'auto' */ device?: Device
  /** Seeds the initial weights. @default 0 */ seed?: number
}

export interface EpochRecord {
  /** 1-based, counted over every `fit` of the model. */
  epoch: number
  /** Mean binary cross-entropy per pixel, in nats. */
  trainLoss: number
  /** The same on `data.test` after the epoch; `null` without test data. */
  valLoss: number | null
  seconds: number
  imagesPerSecond: number
}

export type TrainProgress =
  | { type: 'step'; epoch: number; step: number; stepsPerEpoch: number; loss: number; imagesPerSecond: number }
  | ({ type: 'epoch' } & EpochRecord)
  | { type: 'done'; history: EpochRecord[] }

export interface FitOptions {
  data: { train: ImageBatch; test?: ImageBatch }
  /** @default 1 */ epochs?: number
  /** @default 128 */ batchSize?: number
  /** Adam's step size. @default 5e-4 */ learningRate?: number
  /** Seeds the data order (and, in `train`, the initial weights). @default 0 */ seed?: number
  /** libtorch threads. @default every core */ threads?: number
  /** Images per validation pass (memory only). @default 500 */ evalBatchSize?: number
  /**
   * Save a checkpoint to `path` every `every` steps (0: only after each epoch),
   * atomically (temporary file, fsync, rename). It includes the optimizer state
   * and where training stands inside the epoch.
   */
  checkpoint?: { path: string; every?: number }
  /** Called with `step` events a few times a second, every `epoch`, and `done`. */
  onProgress?: (event: TrainProgress) => void
  /** Stops training within one step; the promise rejects with `AbortError` and the model keeps the steps taken. */
  signal?: AbortSignal
}

export interface TrainOptions extends FitOptions {
  model?: ModelOptions
  /**
   * With `checkpoint.path` pointing at an existing checkpoint: load it and train
   * only what is left of `epochs` (the run's total), with the same batches an
   * uninterrupted run would have seen. @default false
   */
  resume?: boolean
  /** @default 'auto' */ device?: Device
}

export type SampleProgress = { type: 'rows'; rowsDone: number; rowsTotal: number } | { type: 'done'; seconds: number }

export interface SampleOptions {
  /** @default 1 */ count?: number
  /** The same seed gives the same images, whatever the batch size. @default 0 */ seed?: number
  /** Logits are divided by it: < 1 sharpens, > 1 flattens. @default 1 */ temperature?: number
  /** Images generated together. @default min(count, 256) */ batchSize?: number
  /** `'fast'`: incremental, one forward pass of work per image; `'reference'`: one full pass per pixel. @default 'fast' */
  method?: 'fast' | 'reference'
  /** @default every core */ threads?: number
  /** Called with `rows` events (rows of pixels done) a few times a second, then `done`. */
  onProgress?: (event: SampleProgress) => void
  signal?: AbortSignal
}

export interface CompleteOptions extends Omit<SampleOptions, 'count'> {
  /**
   * Which pixels are given: `{ rows: k }` for the top k rows, or a mask with a
   * 1 per known pixel, either H×W (same for every image) or N×H×W×C.
   */
  known: { rows: number } | Uint8Array
}

export interface Evaluation {
  /** Mean over images of −log p(x), in nats. */
  natsPerImage: number
  /** natsPerImage / (H·W·C · ln 2). */
  bitsPerDim: number
  /** −log p(x) of each image, in nats. */
  perImageNats: Float64Array
}
