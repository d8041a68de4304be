/**
 * `PixelCNN`: the model as users hold it. Validation of options happens in
 * the native core; this class shapes arguments, wires `AbortSignal` and
 * progress callbacks, and converts errors into typed classes.
 */

import { existsSync } from 'node:fs'
import { distributedFromEnv } from './distributed'
import { ConfigError, DataError, native, nativeSync } from './errors'
import { describe, type ImageBatch } from './images'
import { fromNative, isTokenGrid, toNativeBatch, valuesPerItem, type Grid, type NativeBatch } from './grids'
import { mapCount, packConditions } from './conditions'
import type { TokenGrid } from './data/tokens'
import { nativeBinding } from './native'
import { cancellable, Listener } from './progress'
import { TrainingLog } from './training-log'
import { checkSameNetwork, requestedConfig } from './same-network'
import { checkCallback, checkDevice, checkOptions, checkSignal, splitOptions, toConfigJson } from './options'
import type {
  CompleteOptions,
  CreateOptions,
  Device,
  EpochRecord,
  EvalOptions,
  Evaluation,
  FitOptions,
  ModelConfig,
  ModelOptions,
  SampleOptions,
  SampleProgress,
  TrainOptions,
  TrainProgress,
} from './types'
import type { NativeModel, SampleResult } from '../native/index'

/** Passed by the factories: `new PixelCNN()` from JavaScript has no native model to wrap. */
const FACTORY = Symbol('PixelCNN factory')

/**
 * `Data` is what the model reads and writes: `ImageBatch` for pixel models,
 * `TokenGrid` for models with a `vocabulary` (`create` with a vocabulary
 * gives `PixelCNN<TokenGrid>`; for a loaded one say `PixelCNN.load<TokenGrid>(…)`;
 * passing the other kind is a `DataError` either way).
 */
export class PixelCNN<Data extends Grid = ImageBatch> {
  #native: NativeModel
  #history: EpochRecord[]
  readonly config: ModelConfig

  /** Not for users: `PixelCNN.create`, `PixelCNN.load` and `PixelCNN.train` make models. */
  private constructor(token: typeof FACTORY, model: NativeModel, history: EpochRecord[]) {
    if (token !== FACTORY) {
      throw new ConfigError('`new PixelCNN()` is not supported: use PixelCNN.create(options) for a new model, PixelCNN.load(path) for a checkpoint, or PixelCNN.train(options)')
    }
    this.#native = model
    this.#history = history
    this.config = Object.freeze(JSON.parse(model.configJson)) as ModelConfig
  }

  /** An untrained model. `options` may be left out (every default). */
  static create(options: CreateOptions & { vocabulary: number }): PixelCNN<TokenGrid>
  static create(options?: CreateOptions): PixelCNN<ImageBatch>
  static create(options: CreateOptions = {}): PixelCNN<Grid> {
    const [model, { device, seed }] = splitOptions(options, ['device', 'seed'] as const, { fn: 'PixelCNN.create' })
    const s = seed ?? 0
    if (typeof s !== 'number') throw new ConfigError(`\`seed\` must be a non-negative integer, got ${describe(s)}`)
    const created = nativeSync(() => nativeBinding().NativeModel.create(toConfigJson(model, 'model'), checkDevice(device), s))
    return new PixelCNN(FACTORY, created, [])
  }

  /**
   * `create` then `fit`: `model` and `device` shape the network, the rest trains it.
   * With `resume: true` and an existing checkpoint, a `model` that resolves to another
   * network than the checkpoint's is a `ConfigError` (leave `model` out to resume).
   * Errors thrown by `onProgress` reject the call as they are (see `fit`).
   */
  static async train<D extends Grid = ImageBatch>(options: TrainOptions): Promise<PixelCNN<D>> {
    const [fit, { model, device, resume }] = splitOptions(options, ['model', 'device', 'resume'] as const, {
      fn: 'PixelCNN.train',
      optional: false,
      example: '{ data, epochs }',
    })
    checkOptions(model, { name: 'model', fn: 'PixelCNN.train', example: "{ preset: 'seed' }" })
    if (resume !== undefined && typeof resume !== 'boolean') throw new ConfigError(`\`resume\` must be true or false, got ${describe(resume)}`)
    const checkpoint = (fit.checkpoint as { path?: unknown } | undefined)?.path
    if (resume && typeof checkpoint !== 'string') throw new ConfigError('`resume: true` needs `checkpoint: { path }` to resume from')
    const shape = imageShapeOf((fit.data as { train?: unknown } | undefined)?.train)
    if (resume && existsSync(checkpoint as string)) {
      // The network asked for, resolved as `create` would make it, so that
      // `{ preset: 'gated-small' }` and the checkpoint's full config compare.
      const requested = model === undefined ? undefined : requestedConfig({ ...shape, ...(model as object) })
      // `epochs` is the run's total: a resumed run trains only what is left,
      // finishing an interrupted epoch with the batches it would have seen.
      const resumed = await PixelCNN.load<D>(checkpoint as string, { device: device as Device })
      if (requested) checkSameNetwork(requested, resumed.config, checkpoint as string, '`model`')
      const left = ((fit.epochs as number | undefined) ?? 1) - resumed.history.length
      if (left > 0) await resumed.fit({ ...(fit as unknown as FitOptions<D>), epochs: left })
      return resumed
    }
    const created = PixelCNN.create({ ...shape, ...(model as object), device: device as Device, seed: (fit.seed as number) ?? 0 }) as unknown as PixelCNN<D>
    await created.fit(fit as unknown as FitOptions<D>)
    return created
  }

  /** Loads a `.safetensors` checkpoint written by `save`. `options` may be left out (`device: 'auto'`). */
  static async load<D extends Grid = ImageBatch>(path: string, options: { device?: Device } = {}): Promise<PixelCNN<D>> {
    if (typeof path !== 'string' || path === '') throw new ConfigError(`\`path\` must be a file path, got ${describe(path)}`)
    const [rest, { device }] = splitOptions(options, ['device'] as const, { fn: 'PixelCNN.load' })
    const unknown = Object.keys(rest)[0]
    if (unknown !== undefined) throw new ConfigError(`\`${unknown}\` is not a known option of PixelCNN.load (known: device)`)
    const loaded = await native(() => nativeBinding().loadModel(path, checkDevice(device)))
    return new PixelCNN<D>(FACTORY, loaded, JSON.parse(nativeSync(() => loaded.historyJson())) as EpochRecord[])
  }

  /**
   * Imports a model trained with the PyTorch port of PixelCNN++
   * (pclucas14/pixel-cnn-pp): `path` is its `state_dict` as `torch.save`
   * wrote it (a `.pth` file; a `module.` prefix from `nn.DataParallel` is
   * dropped). The network's shape is read off its tensors; `height` and
   * `width` (multiples of 4; the port trains 32×32) are the images it models,
   * which a state dict does not record. The result is a `pixelcnn++` model
   * with a logistic-mixture output that samples, evaluates and saves like any other.
   */
  static async importPixelCnnPp(path: string, options: { height?: number; width?: number; device?: Device } = {}): Promise<PixelCNN<ImageBatch>> {
    if (typeof path !== 'string' || path === '') throw new ConfigError(`\`path\` must be a file path, got ${describe(path)}`)
    const [rest, { height = 32, width = 32, device }] = splitOptions(options, ['height', 'width', 'device'] as const, { fn: 'PixelCNN.importPixelCnnPp' })
    const unknown = Object.keys(rest)[0]
    if (unknown !== undefined) throw new ConfigError(`\`${unknown}\` is not a known option of PixelCNN.importPixelCnnPp (known: height, width, device)`)
    const size = (name: string, value: unknown): number => {
      if (typeof value !== 'number' || !Number.isInteger(value)) throw new ConfigError(`\`${name}\` must be an integer, got ${describe(value)}`)
      return value
    }
    const [h, w] = [size('height', height), size('width', width)]
    const imported = await native(() => nativeBinding().importPixelcnnPp(path, h, w, checkDevice(device)))
    return new PixelCNN<ImageBatch>(FACTORY, imported, [])
  }

  get parameterCount(): number {
    return this.#native.parameterCount
  }

  /** `'cpu'` or `'cuda:N'`: where the weights live. */
  get device(): string {
    return this.#native.device
  }

  /** One record per epoch trained, over every `fit`. */
  get history(): EpochRecord[] {
    return this.#history.map((r) => ({ ...r }))
  }

  /**
   * Continues training. Resolves with the full history. If `onProgress` throws
   * (or returns a promise that rejects while training runs), training stops
   * within one step, the steps taken are kept, and the call rejects with that
   * error as it is. Promises `onProgress` returns are not waited for.
   */
  async fit(options: FitOptions<Data>): Promise<EpochRecord[]> {
    const [config, { data, onProgress, signal, logDir }] = splitOptions(options, ['data', 'onProgress', 'signal', 'logDir'] as const, {
      fn: 'model.fit',
      optional: false,
      example: '{ data: { train }, epochs }',
    })
    const callback = checkCallback(onProgress, 'onProgress') as ((e: TrainProgress) => unknown) | undefined
    const abort = checkSignal(signal)
    if (typeof data !== 'object' || data === null) {
      throw new DataError(`\`data\` must be { train, test? } (image batches, or token grids for a model with a vocabulary), got ${describe(data)}`)
    }
    // The images (or tokens) go to the core as typed arrays; everything else
    // in `data` (the labels, or an unknown key) as JSON, which the core checks.
    const { train: trainData, test: testData, trainConditions, testConditions, trainMaps, testMaps, ...labels } = data as Record<string, unknown>
    const train = toNativeBatch(trainData, this.config, 'data.train')
    const test = testData === undefined ? undefined : toNativeBatch(testData, this.config, 'data.test')
    const conditions = [
      packConditions(this.config, train.count, { vectors: trainConditions, maps: trainMaps }, { vectors: 'data.trainConditions', maps: 'data.trainMaps' }),
      test ? packConditions(this.config, test.count, { vectors: testConditions, maps: testMaps }, { vectors: 'data.testConditions', maps: 'data.testMaps' }) : null,
    ] as const
    if ((config as { distributed?: unknown }).distributed === 'env') (config as { distributed?: unknown }).distributed = distributedFromEnv()
    const json = toConfigJson(config)
    const labelsJson = toConfigJson(labels, 'data')
    // Opened (and refused when unusable) before training starts; fed every event.
    const log = logDir === undefined ? undefined : TrainingLog.open(logDir, this.#history)
    const listener = new Listener<TrainProgress>(
      log
        ? (e) => {
            log.onEvent(e)
            return callback?.(e)
          }
        : callback,
    )

    // Native epoch events may arrive after the promise resolves; the history it
    // returns is authoritative, so missing epoch events are replayed from it.
    const before = this.#history.length
    const emitted = new Set<number>()
    let finished = false
    const onEvent = listener.active
      ? (text: string) => {
          if (finished) return
          const event = JSON.parse(text) as TrainProgress
          if (event.type === 'epoch') emitted.add(event.epoch)
          listener.emit(event)
        }
      : undefined
    let historyJson: string
    try {
      try {
        historyJson = await cancellable(abort, listener, 'training', (token) =>
          this.#native.fit(train, test ?? null, json, labelsJson, conditions[0], conditions[1], token, onEvent),
        )
      } catch (error) {
        finished = true
        // Steps already taken are kept; so is the record of completed epochs.
        try {
          this.#history = JSON.parse(this.#native.historyJson()) as EpochRecord[]
        } catch {
          /* the model is busy elsewhere: keep the last known history */
        }
        throw listener.reason(error) // the callback's error, if it failed, is why training stopped
      }
      finished = true
      this.#history = JSON.parse(historyJson) as EpochRecord[]
      for (const record of this.#history.slice(before)) if (!emitted.has(record.epoch)) listener.emit({ type: 'epoch', ...record })
      listener.emit({ type: 'done', history: this.history })
    } finally {
      // The listener calls the log synchronously: every event it will get has been written.
      log?.close()
    }
    await listener.settled()
    return this.history
  }

  /** p(x_i = 1 | x_<i) for every pixel of binary (`'bernoulli'`) models: N×H×W×C floats. Conditional models need `labels`. */
  async predict(images: Data, options: EvalOptions = {}): Promise<Float32Array> {
    const batch = toNativeBatch(images, this.config, 'images')
    const [json, conditions] = evalOptions(this.config, batch.count, options, 'model.predict')
    return native(() => this.#native.predict(batch, json, conditions))
  }

  /**
   * log p(x_i | x_<i) in nats of each sub-pixel's actual value, for every
   * output distribution: N×H×W×C floats, summing over an image to −(its nats).
   * For a binary model, `predict` gives p(x_i = 1) instead.
   */
  async logProbs(images: Data, options: EvalOptions = {}): Promise<Float32Array> {
    const batch = toNativeBatch(images, this.config, 'images')
    const [json, conditions] = evalOptions(this.config, batch.count, options, 'model.logProbs')
    return native(() => this.#native.logProbs(batch, json, conditions))
  }

  /**
   * Negative log-likelihoods: per image (or token grid) in nats, and bits per
   * dimension (for token grids also as `bitsPerToken`, the same number).
   * Conditional models need `labels`.
   */
  async evaluate(images: Data, options: EvalOptions = {}): Promise<Evaluation> {
    const batch = toNativeBatch(images, this.config, 'images')
    const [json, conditions] = evalOptions(this.config, batch.count, options, 'model.evaluate')
    const perImageNats = await native(() => this.#native.natsPerImage(batch, json, conditions))
    const natsPerImage = perImageNats.reduce((a, b) => a + b, 0) / perImageNats.length
    const bitsPerDim = natsPerImage / (valuesPerItem(this.config) * Math.LN2)
    return { natsPerImage, bitsPerDim, perImageNats, ...(this.config.vocabulary !== undefined ? { bitsPerToken: bitsPerDim } : {}) }
  }

  /**
   * New images in raster order. If `onProgress` throws (or its promise
   * rejects while sampling runs), sampling stops within one row and the call
   * rejects with that error as it is. Promises `onProgress` returns are not waited for.
   */
  async sample(options: SampleOptions = {}): Promise<Data> {
    const [config, { onProgress, signal, conditions, maps }] = splitOptions(options, ['onProgress', 'signal', 'conditions', 'maps'] as const, { fn: 'model.sample' })
    // With maps, one image per map unless `count` says otherwise (the core then names the mismatch).
    const fromMaps = config.count === undefined ? mapCount(this.config, maps) : undefined
    if (fromMaps !== undefined) config.count = fromMaps
    const count = typeof config.count === 'number' ? config.count : 1
    const packed = packConditions(this.config, count, { vectors: conditions, maps }, { vectors: 'conditions', maps: 'maps' })
    const result = await this.#sample(config, null, null, packed, onProgress, signal)
    return fromNative(this.config, result.probabilities.length / valuesPerItem(this.config), result) as Data
  }

  /** Keeps the known pixels of `images` and samples the rest in raster order. `onProgress` errors as for `sample`. */
  async complete(images: Data, options: CompleteOptions): Promise<Data> {
    const batch = toNativeBatch(images, this.config, 'images')
    const [config, { known, onProgress, signal, conditions, maps }] = splitOptions(options, ['known', 'onProgress', 'signal', 'conditions', 'maps'] as const, {
      fn: 'model.complete',
      optional: false,
      example: '{ known: { rows: k } }',
    })
    const mask = this.#knownMask(batch, known)
    const packed = packConditions(this.config, batch.count, { vectors: conditions, maps }, { vectors: 'conditions', maps: 'maps' })
    const result = await this.#sample(config, batch, mask, packed, onProgress, signal)
    return fromNative(this.config, batch.count, result) as Data
  }

  /** Writes a `.safetensors` checkpoint (weights, config, optimizer state, history) atomically. */
  async save(path: string): Promise<void> {
    if (typeof path !== 'string' || path === '') throw new ConfigError(`\`path\` must be a file path, got ${describe(path)}`)
    return native(() => this.#native.save(path))
  }

  async #sample(config: Record<string, unknown>, images: NativeBatch | null, known: Uint8Array | null, conditions: Float32Array | null, onProgress: unknown, signal: unknown): Promise<SampleResult> {
    const listener = new Listener(checkCallback(onProgress, 'onProgress') as ((e: SampleProgress) => unknown) | undefined)
    const abort = checkSignal(signal)
    const json = toConfigJson(config)
    const started = performance.now()
    let finished = false
    const onEvent = listener.active ? (text: string) => { if (!finished) listener.emit(JSON.parse(text) as SampleProgress) } : undefined
    let result: SampleResult
    try {
      result = await cancellable(abort, listener, 'sampling', (token) => this.#native.sample(json, images, known, conditions, token, onEvent))
    } catch (error) {
      finished = true
      throw listener.reason(error) // the callback's error, if it failed, is why sampling stopped
    }
    finished = true
    listener.emit({ type: 'done', seconds: (performance.now() - started) / 1000 })
    await listener.settled()
    return result
  }

  #knownMask(images: NativeBatch, known: unknown): Uint8Array {
    const { height, width, channels } = this.config
    const perImage = height * width * channels
    if (known instanceof Uint8Array) {
      if (known.length === images.count * perImage) return known
      if (known.length === perImage) {
        const mask = new Uint8Array(images.count * perImage)
        for (let n = 0; n < images.count; n++) mask.set(known, n * perImage)
        return mask
      }
      throw new DataError(`\`known\` has ${known.length} bytes; expected ${perImage} (one H×W×C mask) or ${images.count * perImage} (one per image)`)
    }
    if (typeof known === 'object' && known !== null && 'rows' in known) {
      const rows = (known as { rows: unknown }).rows
      if (typeof rows !== 'number' || !Number.isInteger(rows) || rows < 0 || rows > height) {
        throw new ConfigError(`\`known.rows\` must be an integer between 0 and ${height}, got ${describe(rows)}`)
      }
      const mask = new Uint8Array(images.count * perImage)
      for (let n = 0; n < images.count; n++) mask.fill(1, n * perImage, n * perImage + rows * width * channels)
      return mask
    }
    throw new ConfigError(`\`known\` must be { rows: k } or a Uint8Array mask, got ${describe(known)}`)
  }
}

/** `evaluate`'s, `logProbs`' and `predict`'s options: the JSON for the core and the conditioning beside it. */
function evalOptions(config: ModelConfig, count: number, options: EvalOptions, fn: string): [string, Float32Array | null] {
  // The options object itself goes to JSON when it holds no vectors or maps, so that errors name paths from it.
  const checked = checkOptions(options, { fn }) as Record<string, unknown>
  const { conditions, maps, ...rest } = checked
  const packed = packConditions(config, count, { vectors: conditions, maps }, { vectors: 'conditions', maps: 'maps' })
  return [toConfigJson('conditions' in checked || 'maps' in checked ? rest : checked), packed]
}

/**
 * `train` shapes a new network like its training images (`height`, `width`,
 * `channels`) unless `model` says otherwise: CIFAR-10 gives a 32×32×3 model.
 * Anything that is not an image batch is left for `fit` to report.
 */
function imageShapeOf(train: unknown): Partial<Pick<ModelOptions, 'height' | 'width' | 'channels'>> {
  if (typeof train !== 'object' || train === null) return {}
  if (isTokenGrid(train)) return Number.isInteger(train.height) && Number.isInteger(train.width) ? { height: train.height, width: train.width } : {}
  const { height, width, channels } = train as Record<string, unknown>
  const dims = [height, width, channels]
  return dims.every((d) => typeof d === 'number' && Number.isInteger(d) && d > 0) ? { height: height as number, width: width as number, channels: channels as number } : {}
}
