/**
 * The public option and result types.
 *
 * Options arguments are plain objects (`{ … }` or `Object.create(null)`): a
 * Map, Set, array or class instance is a `ConfigError` naming the argument,
 * since it would otherwise read as `{}`; so is a value JSON cannot carry
 * (NaN, a BigInt, a function, a circular reference), named by its path
 * (`data.trainLabels[3]`). `null` is not "no options": it is a `ConfigError`
 * naming the argument and the function, for every method (and the data
 * loaders); leave an optional argument out (`undefined`) for every default.
 *
 * A progress callback (`onProgress`) that throws, or returns a promise that
 * rejects, stops the work within one step (one row when sampling) through the
 * same path as an `AbortSignal`; no further events are delivered, and the call
 * rejects with the callback's own error, unchanged (not wrapped), once the
 * native work has stopped. The steps taken are kept and the model stays usable.
 * Promises the callback returns are not waited for: the call settles when the
 * native work ends (a promise that never settles does not hold it). A
 * rejection seen by then is the call's error; one that comes later is ignored
 * (handled: no unhandledRejection) and never replaces the call's own result
 * or error.
 */

import type { ImageBatch } from './images'
import type { TokenGrid } from './data/tokens'

/** `'auto'` picks CUDA when libtorch sees a GPU, else the CPU. Asking for CUDA where there is none is a `DeviceError`. */
export type Device = 'auto' | 'cpu' | 'cuda' | `cuda:${number}`

/**
 * `'pixelcnn'`: the seed's network (masked convolutions, residual blocks); it
 * has a blind spot up and to the right of each pixel. `'gated'`: Gated
 * PixelCNN (vertical and horizontal stacks, gated units), without one.
 * `'pixelcnn++'`: PixelCNN++ (Salimans et al. 2017): shifted convolutions,
 * gated ResNet blocks with dropout at three resolutions and U-Net skips;
 * height and width must be multiples of 4.
 */
export type Architecture = 'pixelcnn' | 'gated' | 'pixelcnn++'

/**
 * The distribution of each sub-pixel given the pixels before it.
 * `'bernoulli'`: binary images (bytes 0 and 1), one logit per sub-pixel.
 * `'categorical'`: 8-bit images (bytes 0–255), a 256-way softmax per sub-pixel.
 * `'logistic-mixture'`: 8-bit images, PixelCNN++'s discretized mixture of
 * `mixtures` logistics per pixel (far fewer outputs than 256 logits, and
 * nearby levels share probability).
 *
 * `temperature` T means the same for all three: each sub-pixel's level
 * probabilities become p^(1/T), renormalized (for Bernoulli and categorical,
 * the logits divided by T).
 */
export type Output = 'bernoulli' | 'categorical' | 'logistic-mixture'

/** The network's shape. Explicit fields override the preset's. */
export interface ModelOptions {
  /**
   * `'seed'`: the Keras example's network (532,673 parameters); `'small'`: 32 filters, 2 blocks;
   * `'gated'`: Gated PixelCNN, 64 filters, 6 layers (553,793 parameters); `'gated-small'`: 16 filters, 3 layers;
   * `'pixelcnn++'`: the paper's CIFAR-10 network, 32×32×3, 5 blocks per stage, 160 filters, 10 mixtures
   * (53,659,080 parameters with weight normalisation's gains); `'pixelcnn++-small'`: 1 block per stage,
   * 32 filters, 5 mixtures (577,060 parameters).
   * @default 'seed', or the architecture's full preset with `architecture` alone
   */
  preset?: 'seed' | 'small' | 'gated' | 'gated-small' | 'pixelcnn++' | 'pixelcnn++-small'
  /** @default the preset's */ architecture?: Architecture
  /** @default 28 */ height?: number
  /** @default 28 */ width?: number
  /** 1 (grayscale or binary) or 3 (RGB, sub-pixels ordered R → G → B). `train` takes it, `height` and `width` from the training images when not given. @default 1 */ channels?: number
  /** @default 'bernoulli' */ output?: Output
  /** `output: 'logistic-mixture'` only: logistic components per pixel (1–256). @default 10 */ mixtures?: number
  /** Class-conditional on this many classes (≥ 2): `fit`, `sample`, `predict`… then take labels. @default unconditional */
  classes?: number
  /** Feature maps of the residual stream (pixelcnn) or of each stack (gated). @default 128 (seed), 64 (gated) */ filters?: number
  /** pixelcnn, gated: side of the first layer's kernel, which excludes the centre pixel (odd, ≥ 3). @default 7 */ inputKernel?: number
  /** pixelcnn, gated: 1×1 ReLU layers before the output. @default 2 */ outputLayers?: number
  /** pixelcnn: residual blocks. @default 5 */ residualBlocks?: number
  /** pixelcnn: side of each block's mask-B convolution (odd). @default 3 */ residualKernel?: number
  /** gated: gated layers after the first. @default 6 */ layers?: number
  /** gated: kernel side of the stacks (odd, ≥ 3). @default 3 */ kernel?: number
  /** pixelcnn++: gated ResNet blocks per stage (the paper's nr_resnet, 1–32). @default 5 */ resnetBlocks?: number
  /** pixelcnn++: dropout probability in every block, in training only (0 ≤ p < 1). @default 0.5 */ dropout?: number
  /**
   * pixelcnn++: weight-normalised layers (`weight_g`, `weight_v`), as both published codes train it;
   * a state dict of the PyTorch port imports name for name. @default true
   */
  weightNorm?: boolean
  /**
   * A model of token grids (priors over discrete codes such as a VQ-VAE's): every position holds one of
   * `vocabulary` tokens (2–65,536), read through a learned embedding and predicted by a categorical over
   * the vocabulary. Data are `TokenGrid`s; `channels` is 1 and `output` `'categorical'` (both picked when
   * left out). @default pixels
   */
  vocabulary?: number
  /** Token grids: the width of each token's learned embedding (1–4096). @default filters */
  embedding?: number
  /**
   * Conditional on a real vector of this many values per image (an embedding, a code, a descriptor): a learned
   * (D, C) projection of it is added in every layer where a class bias is (classes are the one-hot case).
   * `fit` then takes `data.trainConditions` (and `testConditions`), the others `conditions`: Float32Array N×D.
   * Exclusive with `classes`. @default unconditional
   */
  conditionSize?: number
  /**
   * Conditional on a map per image (a low-resolution image, the coarser level's codes of VQ-VAE-2): resized to each
   * layer's resolution and added through a learned 1×1 convolution where a class bias is. `fit` then takes
   * `data.trainMaps` (and `testMaps`), the others `maps`: N×height×width×channels values, channels-last like images;
   * with `vocabulary` a token map (channels 1) read through an embedding (`embedding`, default `filters`). Combines
   * with `conditionSize`; not with `classes` (give a class as a one-hot vector). @default none
   */
  conditionMap?: ConditionMap
}

/** The shape of a model's condition maps. */
export interface ConditionMap {
  channels: number
  height: number
  width: number
  /** A token map: one token per position, 0 … vocabulary − 1. */
  vocabulary?: number
  /** A token map: the width of each token's learned embedding. @default the model's filters */
  embedding?: number
}

/** The resolved network shape, as stored in checkpoints; fields of the other architecture are absent. */
export interface ModelConfig {
  architecture: Architecture
  height: number
  width: number
  channels: number
  /** Absent for `'bernoulli'`. */
  output?: Output
  /** `'logistic-mixture'` only. */
  mixtures?: number
  classes?: number
  filters: number
  /** pixelcnn, gated. */
  inputKernel?: number
  /** pixelcnn, gated. */
  outputLayers?: number
  residualBlocks?: number
  residualKernel?: number
  layers?: number
  kernel?: number
  resnetBlocks?: number
  dropout?: number
  weightNorm?: boolean
  /** Token grids only. */
  vocabulary?: number
  /** Token grids only. */
  embedding?: number
  conditionSize?: number
  conditionMap?: ConditionMap
}

/** Condition maps' values: real values, or a token map's tokens. */
export type MapValues = Float32Array | Int32Array | Uint16Array

/** Class labels: one class for every image, or one per image. */
export type Labels = number | ArrayLike<number>

/**
 * `'fp32'`: fp32 throughout. `'bf16'`: mixed precision, as PyTorch's autocast:
 * convolutions and matrix products (and the pointwise ops between them) in
 * bfloat16; weights, Adam's state, the loss, probabilities and sampling draws
 * in fp32; checkpoints fp32. On a CPU, bf16 needs native bfloat16 instructions
 * (`libtorchInfo().cpuBf16Native`); without them it is a `DeviceError`.
 * `'auto'` (the default): `fit` and `predict` run bf16 where the device
 * computes it natively (AVX-512 BF16 or AMX; CUDA compute capability ≥ 8.0)
 * and fp32 elsewhere; `evaluate`, `logProbs`, validation, `sample` and
 * `complete` run fp32 (`libtorchInfo().autoPrecision` says what it resolves to).
 */
export type Precision = 'fp32' | 'bf16' | 'auto'

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
  /** The training loss of each step of the epoch, in order; `null` for a step skipped because it was not finite. */
  stepLosses?: (number | null)[]
  /** The arithmetic the epoch trained in (`'auto'` resolved; records from earlier versions: `'fp32'`). */
  precision?: 'fp32' | 'bf16'
  /** The learning rate of each step (the `schedule`'s), in order. */
  learningRates?: number[]
  /** The global L2 norm of the gradients of each step, before clipping; `null` where not finite. */
  gradNorms?: (number | null)[]
  /** Steps skipped because their loss or gradients were not finite (absent: none). */
  skippedSteps?: number
  /** Validations inside the epoch (`validateEvery`): the optimizer's step count and the loss; `valLoss` is the one after the epoch. */
  validations?: { step: number; valLoss: number }[]
  /** `'averaged'` when validation used the moving average of the weights (`ema`). */
  valWeights?: 'averaged' | 'raw'
  /** Why training ended after this epoch before `epochs` were done (early stopping); the epoch may be shorter. */
  stopReason?: string
  /** How the epoch was trained: `recipe` and the hyperparameters (`learningRate`, `batchSize`, `schedule`, `ema`, …). */
  training?: Record<string, unknown>
}

/**
 * The learning rate of each step t = 1, 2, … (the optimizer's step count over every `fit`), for base rate η
 * (`learningRate`): `constant`: η; `exponential`: η·decay^(t−1) (PixelCNN++: 0.999995); `step`:
 * η·factor^⌊(t−1)/every⌋; `cosine`: a linear warm-up to η over `warmupSteps`, then a half cosine down to
 * `minLearningRate` (default 0) at `totalSteps` (default: the last step of this `fit`).
 */
export type Schedule =
  | { type: 'constant' }
  | { type: 'exponential'; decay: number }
  | { type: 'step'; every: number; factor: number }
  | { type: 'cosine'; warmupSteps: number; totalSteps?: number; minLearningRate?: number }

/** The named recipes of `recipe` (`--recipe`). */
export type Recipe = 'seed' | 'pixelcnn++-cifar10'

/** Which weights evaluation and sampling use: the moving average when the model keeps one (`ema`), or the raw ones. */
export type Weights = 'averaged' | 'raw'

export type TrainProgress =
  | {
      type: 'step'
      epoch: number
      step: number
      stepsPerEpoch: number
      /** `null` when not finite (the step was then skipped). */
      loss: number | null
      imagesPerSecond: number
      learningRate: number
      /** The global gradient norm before clipping; `null` when not finite. */
      gradNorm: number | null
      /** The loss or the gradients were not finite: the step was not taken. */
      skipped: boolean
    }
  | { type: 'validation'; epoch: number; step: number; valLoss: number }
  | ({ type: 'epoch' } & EpochRecord)
  | { type: 'done'; history: EpochRecord[] }

/** One rank's place in a data-parallel group. */
export interface DistributedOptions {
  /** 0 … worldSize − 1; rank 0 serves the rendezvous. */
  rank: number
  worldSize: number
  /** Rank 0's address. @default '127.0.0.1' */
  masterAddr?: string
  /** @default 29500 */
  masterPort?: number
  /**
   * `'gloo'` (CPU tensors; PyTorch's c10d) or `'nccl'` (a CUDA model, one GPU per rank: the model's device;
   * Linux builds whose libtorch has CUDA; a `DeviceError` elsewhere). @default 'gloo'
   */
  backend?: 'gloo' | 'nccl'
  /** How long to wait for the other ranks at the rendezvous and in each collective. @default 60 */
  timeoutSeconds?: number
}

export interface FitOptions<Data extends ImageBatch | TokenGrid = ImageBatch> {
  /**
   * Labels are required for (and only for) a conditional model: a `Dataset` from the loaders fits a conditional
   * model as it is; for an unconditional one pass `{ train, test }` (labels given to it are a `ConfigError`).
   */
  data: { train: Data; test?: Data; trainLabels?: ArrayLike<number>; testLabels?: ArrayLike<number>; trainConditions?: Float32Array; testConditions?: Float32Array; trainMaps?: MapValues; testMaps?: MapValues }
  /** @default 1 */ epochs?: number
  /** @default 128 */ batchSize?: number
  /** Adam's step size. @default 5e-4 */ learningRate?: number
  /** Seeds the data order (and, in `train`, the initial weights). @default 0 */ seed?: number
  /** libtorch threads. @default every core */ threads?: number
  /** Images per validation pass (memory only). @default 500 */ evalBatchSize?: number
  /** Training and validation arithmetic; `'auto'` trains in bf16 where native and validates in fp32. @default 'auto' */ precision?: Precision
  /**
   * Train as one rank of a data-parallel group (one process per CPU machine): the options, or `'env'` to read
   * them from the variables `torchrun` sets (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT). Every rank calls `fit`
   * with the same data and options; each step every rank takes its share of the global batch (`batchSize` stays
   * the global batch) and the gradients are averaged across ranks, so the ranks train as one process would.
   * Only rank 0 writes checkpoints. @default one process
   */
  distributed?: DistributedOptions | 'env'
  /**
   * Save a checkpoint to `path` after each epoch, every `every` steps (0: only
   * after epochs), and when aborted, atomically (temporary file, fsync,
   * rename). It includes the optimizer state and where training stands inside the epoch.
   */
  checkpoint?: {
    path: string
    every?: number
    /**
     * Also keep the model with the lowest validation loss so far in this file (another path than `path`),
     * rewritten atomically whenever a validation improves on it. Needs `data.test`.
     */
    best?: string
  }
  /** The learning rate of each step. @default { type: 'constant' } */
  schedule?: Schedule
  /**
   * Keep an exponential moving average of the weights after every step (PixelCNN++: 0.9995), the weights of step
   * i weighted by ema^(age), debiased so that the initial random weights take no share (see the README), saved in checkpoints (`ema.<name>` tensors). `evaluate`, `logProbs`, `predict`, `sample`, `complete`
   * and validation then use it (`weights: 'raw'` picks the raw weights). A model that keeps one goes on updating
   * it in later `fit`s with its decay. In [0, 1). @default none
   */
  ema?: number
  /** Scale the gradients to at most this global L2 norm (the norm before clipping is in `history[].gradNorms`). */
  clipGradNorm?: number
  /**
   * A step whose loss or gradients are not finite is skipped (counted in `skippedSteps`); after this many in a
   * row `fit` rejects with `TrainingDivergedError`, naming the step, and checkpoints already saved are intact. @default 5
   */
  maxNonFiniteSteps?: number
  /** Adam's β1, β2. @default [0.9, 0.999] */
  betas?: [number, number]
  /** Adam's ε. @default 1e-7 (Keras's, as the seed; PyTorch's is 1e-8) */
  eps?: number
  /** Decoupled weight decay λ (AdamW): θ ← θ·(1 − lr·λ) each step. @default 0 */
  weightDecay?: number
  /** Also validate every this many optimizer steps (0: only after each epoch). Needs `data.test`. @default 0 */
  validateEvery?: number
  /**
   * End training when validation has not improved (by more than `minDelta` nats) for `patience` validations in
   * a row; `fit` resolves normally and the last record's `stopReason` says why. Needs `data.test`.
   */
  earlyStopping?: { patience: number; minDelta?: number }
  /**
   * Published hyperparameters in one word: `'seed'` (the Keras PixelCNN: Adam 5e-4, batch 128, 50 epochs) or
   * `'pixelcnn++-cifar10'` (Adam 1e-3 with β 0.95/0.9995 and ε 1e-8, ×0.999995 per step, EMA 0.9995, batch 16).
   * Options given explicitly override the recipe's.
   */
  recipe?: Recipe
  /**
   * Write TensorBoard event files into this folder (created if missing; refused before training when it is a
   * file or not writable): train loss, learning rate and gradient norm per step, validation loss, images/s.
   */
  logDir?: string
  /**
   * Called with `step` events a few times a second, every `epoch`, and `done`. A throw (or a rejected
   * promise) stops training within one step and the call rejects with that error as it is.
   */
  onProgress?: (event: TrainProgress) => void | PromiseLike<void>
  /** Stops training within one step; the promise rejects with `AbortError`, the model keeps the steps taken and, with `checkpoint`, saves them. */
  signal?: AbortSignal
}

export interface TrainOptions extends FitOptions<ImageBatch | TokenGrid> {
  /**
   * The network to create. When resuming (`resume: true` and an existing checkpoint), it must resolve to the
   * checkpoint's network (same resolved config, image shape included), else a `ConfigError` names both
   * configs; leave it out to resume whatever the checkpoint holds.
   */
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
  /** The same seed gives the same images, whatever the batch size (in fp32; in bf16 a batch of 256 or more images per sampler thread computes its per-pixel chain in bf16, so rarely a value differs). @default 0 */ seed?: number
  /** Logits are divided by it: < 1 sharpens, > 1 flattens. @default 1 */ temperature?: number
  /** Images generated together. @default min(count, 256) */ batchSize?: number
  /** `'fast'`: incremental, one forward pass of work per image; `'reference'`: one full pass per pixel. @default 'fast' */
  method?: 'fast' | 'reference'
  /** @default every core */ threads?: number
  /** In `'bf16'` probabilities differ from fp32's by rounding (see the README), so images may differ. `'auto'` samples in fp32. @default 'auto' */ precision?: Precision
  /** The moving average of the weights when the model keeps one (`fit`'s `ema`), or the raw ones. @default 'averaged' */ weights?: Weights
  /** Conditional models: the class of every image, or one per image. */
  labels?: Labels
  /** Models with `conditionSize: D`: one condition vector per image, N×D values. */
  conditions?: Float32Array
  /** Models with a `conditionMap`: one map per image, N×height×width×channels values (tokens for a token map). */
  maps?: MapValues
  /**
   * Called with `rows` events (rows of pixels done) a few times a second, then `done`. A throw (or a
   * rejected promise) stops sampling within one row and the call rejects with that error as it is.
   */
  onProgress?: (event: SampleProgress) => void | PromiseLike<void>
  signal?: AbortSignal
}

export interface CompleteOptions extends Omit<SampleOptions, 'count'> {
  /**
   * Which pixels are given: `{ rows: k }` for the top k rows, or a mask with a
   * 1 per known pixel, either H×W (same for every image) or N×H×W×C.
   */
  known: { rows: number } | Uint8Array
}

/** Options of `predict` and `evaluate`. */
export interface EvalOptions {
  /** `'auto'`: fp32 for `evaluate` and `logProbs`, bf16 for `predict` where native. @default 'auto' */ precision?: Precision
  /** @default every core */ threads?: number
  /** Images per forward pass (memory only). @default 256 */ batchSize?: number
  /** Conditional models: the class of every image, or one per image. */
  labels?: Labels
  /** Models with `conditionSize: D`: one condition vector per image, N×D values. */
  conditions?: Float32Array
  /** Models with a `conditionMap`: one map per image, N×height×width×channels values (tokens for a token map). */
  maps?: MapValues
  /** The moving average of the weights when the model keeps one (`fit`'s `ema`), or the raw ones. @default 'averaged' */ weights?: Weights
}

export interface Evaluation {
  /** Mean over images of −log p(x), in nats. */
  natsPerImage: number
  /** natsPerImage / (H·W·C · ln 2). */
  bitsPerDim: number
  /** Token grids: natsPerImage / (H·W · ln 2), bits per token (equal to `bitsPerDim`). */
  bitsPerToken?: number
  /** −log p(x) of each image, in nats. */
  perImageNats: Float64Array
}
