/**
 * `pixelcnn train`: trains epoch by epoch, saving the model after each one
 * (and every `--checkpoint-every` steps, and on Ctrl-C), redrawing the
 * training curve beside it, and writing a sample grid every
 * `--samples-every` epochs. Fitting one epoch at a time gives exactly the
 * run of one long `fit`: the batch order depends only on the seed and the epoch.
 *
 * With `--distributed env` the process is one rank of a data-parallel group
 * (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT, as torchrun or `--nproc` set
 * them). Every rank runs the same command line; only rank 0 writes the
 * checkpoint (the core), the training curve, the sample grids and the
 * progress output; the other ranks print nothing but errors.
 */

import { existsSync, readFileSync } from 'node:fs'
import { distributedFromEnv } from '../distributed'
import { ConfigError, type PixelCNNError } from '../errors'
import { PixelCNN } from '../model'
import { checkSameNetwork, requestedConfig } from '../same-network'
import type { Architecture, Device, DistributedOptions, EpochRecord, ModelOptions, Output, TrainOptions } from '../types'
import { type Args, number, precision, required } from './args'
import { loadDataSource } from './data-source'
import { libtorchInfo } from '../info'
import type { ImageBatch } from '../images'
import { isTokenGrid, type Grid } from '../grids'
import { loadConditions, loadMaps, type ConditionMaps, type ConditionVectors } from '../data/conditions'
import { watchLauncher } from './launcher'
import { checkOutputFiles } from '../output-paths'
import { besideModel, PictureFailures, samplesDue, samplesFile, writeCurve, writeSampleGrid } from './pictures'
import { bar, formatSeconds, Line } from './progress-bar'
import { recipeOptions, wholeRunSchedule } from './recipe-flags'
import { TrainingLog } from '../training-log'

export function historyTable(history: EpochRecord[]): string {
  const rows = history.map((r) => `| ${r.epoch} | ${r.trainLoss.toFixed(4)} | ${r.valLoss === null ? '–' : r.valLoss.toFixed(4)} | ${r.seconds.toFixed(1)} | ${r.imagesPerSecond.toFixed(1)} |`)
  return ['| epoch | train loss | val loss | seconds | images/s |', '|---:|---:|---:|---:|---:|', ...rows].join('\n')
}

/** The model options of the command line over those of `--config`. */
function modelOptions(args: Args, fromFile: Partial<TrainOptions>, images: Grid, labels: Uint8Array | undefined, conditions?: ConditionVectors, maps?: ConditionMaps): ModelOptions {
  // Shaped like the training images (CIFAR-10: 32×32×3) or token grids unless the config file says otherwise.
  const shape = isTokenGrid(images) ? { height: images.height, width: images.width } : { height: images.height, width: images.width, channels: (images as ImageBatch).channels }
  const options: ModelOptions = { ...shape, ...fromFile.model }
  const vocabulary = number(args, 'vocabulary')
  if (vocabulary !== undefined) options.vocabulary = vocabulary
  const embedding = number(args, 'embedding')
  if (embedding !== undefined) options.embedding = embedding
  if (isTokenGrid(images) && options.vocabulary === undefined) {
    throw new ConfigError('`--data tokens:` needs `--vocabulary V` (the number of codes, e.g. the VQ-VAE codebook size: tokens are 0 … V − 1)')
  }
  if (args.preset) options.preset = args.preset as ModelOptions['preset']
  if (args.architecture) options.architecture = args.architecture as Architecture
  if (args.output) options.output = args.output as Output
  const mixtures = number(args, 'mixtures')
  if (mixtures !== undefined) options.mixtures = mixtures
  const dropout = number(args, 'dropout')
  if (dropout !== undefined) options.dropout = dropout
  // `--conditions`: conditional on vectors of the file's size.
  if (conditions) options.conditionSize = conditions.size
  // `--maps`: conditional on maps of the file's shape (`--map-vocabulary`: token maps).
  if (maps) options.conditionMap = { channels: maps.channels, height: maps.height, width: maps.width, vocabulary: number(args, 'map-vocabulary') }
  const classes = number(args, 'classes')
  if (classes !== undefined) options.classes = classes
  else if (args.conditional) {
    if (!labels) throw new ConfigError('`--conditional` needs a data source with labels (mnist, fashion-mnist, folder:DIR, or idx with label files)')
    // The dataset's classes: 0 … the largest label.
    options.classes = labels.reduce((max, k) => Math.max(max, k), 0) + 1
  }
  return options
}

/** Whether the command line or config file says anything about the network (a resumed run must then match it). */
function modelFlagsGiven(args: Args, fromFile: Partial<TrainOptions>): boolean {
  return (['preset', 'architecture', 'output', 'mixtures', 'dropout', 'classes', 'conditional', 'vocabulary', 'embedding', 'conditions', 'maps'] as const).some((k) => args[k] !== undefined) || fromFile.model !== undefined
}

/**
 * One GPU per rank, as torchrun means it: under `--distributed env` a device
 * without an index (`cuda`, or `auto` where CUDA is available) becomes
 * `cuda:LOCAL_RANK`, so that the ranks on one machine (`--nproc`, or torchrun's
 * `--nproc-per-node`) do not all land on `cuda:0`, which NCCL refuses. An
 * explicit `cuda:N` is kept.
 */
export function rankDevice(device: Device | undefined, distributed: DistributedOptions | 'env' | undefined, env: NodeJS.ProcessEnv = process.env, cuda = () => libtorchInfo().cudaAvailable): Device | undefined {
  const local = env.LOCAL_RANK
  if (distributed !== 'env' || local === undefined || local === '') return device
  if (!/^\d+$/.test(local)) throw new ConfigError(`\`--distributed env\`: LOCAL_RANK must be a non-negative integer, got ${JSON.stringify(local)}`)
  if (device === 'cuda' || (device === 'auto' && cuda())) return `cuda:${Number(local)}`
  return device
}

/** `--channels 1|3`: how to read a source that has a choice (`folder:DIR`); a resumed model's own by default. */
function channelsFlag(args: Args, resumed: number | undefined): 1 | 3 | undefined {
  const channels = number(args, 'channels') ?? resumed
  if (channels !== undefined && channels !== 1 && channels !== 3) throw new ConfigError(`\`--channels\` must be 1 (grayscale) or 3 (RGB), got ${channels}`)
  return channels
}

/**
 * `--distributed env`: this rank's place from the environment, over the
 * `distributed` object of `--config` (which may set `timeoutSeconds`, `backend`).
 */
function distributedOptions(args: Args, fromFile: Partial<TrainOptions>): DistributedOptions | 'env' | undefined {
  const raw = args.distributed
  if (raw === undefined) return fromFile.distributed
  if (raw !== 'env') throw new ConfigError(`\`--distributed\` must be env (RANK, WORLD_SIZE, MASTER_ADDR, MASTER_PORT from the environment, as torchrun sets them), got ${JSON.stringify(raw)}`)
  const base = typeof fromFile.distributed === 'object' && fromFile.distributed !== null ? fromFile.distributed : {}
  return { ...base, ...distributedFromEnv() }
}

/**
 * Before any data is read or any step taken: the folder of `--out` is made
 * when missing (`mkdir -p`: the training curve and the sample grids go beside
 * the model, so it is the run's output folder) and proved writable, and
 * neither the model nor a picture the run will write is a folder. Only rank 0
 * writes, so only rank 0 checks.
 */
async function checkTrainOutputs(out: string, curve: string, epochs: number, samplesEvery: number | undefined, tokens: boolean): Promise<void> {
  const files = [{ file: out, what: '`--out`' }, { file: curve, what: 'the training curve' }]
  for (let done = 1; done <= epochs; done++) {
    if (samplesDue(done, samplesEvery, epochs)) files.push({ file: samplesFile(out, done, tokens), what: '`--samples-every`: the samples' })
  }
  await checkOutputFiles(files)
}

/**
 * `--conditions` or `--maps` TRAIN.npy[,TEST.npy]: one condition vector or
 * map per training (and validation) image, as `numpy.save` writes them, as
 * many as the data source's splits have images (the model then checks their shape).
 */
async function perSplit<T extends { count: number }>(spec: string | undefined, flag: string, load: (file: string) => Promise<T>, trainCount: number, testCount: number | undefined): Promise<[T, T | undefined] | undefined> {
  if (spec === undefined) return undefined
  const [trainPath, testPath, extra] = spec.split(',')
  if (!trainPath || extra !== undefined) throw new ConfigError(`\`${flag}\` takes TRAIN.npy[,TEST.npy], got ${JSON.stringify(spec)}`)
  const train = await load(trainPath)
  if (train.count !== trainCount) throw new ConfigError(`\`${flag}\`: ${trainPath} holds ${train.count} but the training split has ${trainCount} images`)
  if (testCount !== undefined && !testPath) throw new ConfigError(`\`${flag}\`: the data source has a validation split: give its file too (TRAIN.npy,TEST.npy)`)
  const test = testPath ? await load(testPath) : undefined
  if (test && test.count !== testCount) throw new ConfigError(`\`${flag}\`: ${testPath} holds ${test.count} but the validation split has ${testCount ?? 0} images`)
  return [train, test]
}

/** Prints nothing: the progress output of ranks other than 0. */
const SILENT = { update(): void {}, done(): void {} }

export async function train(args: Args): Promise<void> {
  const out = required(args, 'out')
  const fromFile = args.config ? (JSON.parse(readFileSync(required(args, 'config'), 'utf8')) as Partial<TrainOptions>) : {}
  const distributed = distributedOptions(args, fromFile)
  const rank = typeof distributed === 'object' ? distributed.rank : distributed === 'env' ? distributedFromEnv().rank : 0
  const primary = rank === 0
  const line = primary ? new Line() : SILENT
  const epochs = number(args, 'epochs') ?? fromFile.epochs ?? 50
  const samplesEvery = number(args, 'samples-every')
  if (samplesEvery !== undefined && !(Number.isInteger(samplesEvery) && samplesEvery >= 1)) throw new ConfigError(`\`--samples-every\` must be a positive integer, got ${samplesEvery}`)
  const curve = besideModel(out, '.curve.png')
  // Token models' samples are `.npy` files of tokens, not pictures.
  const tokenRun = String(args.data ?? '').startsWith('tokens:')
  if (primary) await checkTrainOutputs(out, curve, epochs, samplesEvery, tokenRun)
  const pictures = new PictureFailures(line)
  const controller = new AbortController()
  let interrupted = false
  // Rank 0 stops after its current step and saves; its leaving then fails the
  // other ranks' next collective, which they report as stopped. Were the other
  // ranks to stop on their own, rank 0 could be one step further, inside an
  // all-reduce, and would fail without saving that step.
  const stop = () => {
    if (interrupted) return
    interrupted = true
    line.done('stopping after the current step and saving it (Ctrl-C again to quit at once)…')
    if (primary) controller.abort()
    process.once('SIGINT', () => process.exit(130))
  }
  process.once('SIGINT', stop)
  watchLauncher(stop)
  const device = rankDevice((args.device as Device | undefined) ?? fromFile.device, distributed)
  const resuming = Boolean(args.resume) && existsSync(out)
  const resumed = resuming ? await PixelCNN.load(out, { device }) : undefined
  // Categorical models read the 8-bit grayscale; binary ones the seed's binarization.
  // PixelCNN++'s presets model 8-bit images (a logistic mixture); the others binary ones.
  const family = String(args.preset ?? args.architecture ?? fromFile.model?.preset ?? fromFile.model?.architecture ?? '')
  const presetOutput: Output = family.startsWith('pixelcnn++') ? 'logistic-mixture' : 'bernoulli'
  const output = resumed?.config.output ?? (args.output as Output | undefined) ?? fromFile.model?.output ?? presetOutput
  const vocabulary = resumed?.config.vocabulary ?? number(args, 'vocabulary') ?? fromFile.model?.vocabulary
  const data = await loadDataSource(required(args, 'data'), (p) => line.update(`downloading ${p.file} ${bar(p.totalBytes ? p.bytes / p.totalBytes : 0)} ${(p.bytes / 2 ** 20).toFixed(1)} MiB`), controller.signal, output !== 'bernoulli' ? 'none' : undefined, channelsFlag(args, resumed?.config.channels), vocabulary)
  const noun = isTokenGrid(data.train) ? 'grids' : 'images'
  line.done(`data: ${data.description}: ${data.train.count} training${data.test ? ` and ${data.test.count} validation` : ''} ${noun}`)
  const seed = number(args, 'seed') ?? fromFile.seed
  const conditions = await perSplit(args.conditions as string | undefined, '--conditions', loadConditions, data.train.count, data.test?.count)
  const maps = await perSplit(args.maps as string | undefined, '--maps', (f) => loadMaps(f, { vocabulary: number(args, 'map-vocabulary') }), data.train.count, data.test?.count)

  if (resumed && modelFlagsGiven(args, fromFile)) {
    const requested = requestedConfig(modelOptions(args, fromFile, data.train, data.trainLabels, conditions?.[0], maps?.[0]))
    checkSameNetwork(requested, resumed.config, out, 'the model flags (--preset, --architecture, --output, --mixtures, --dropout, --classes, --conditional, --vocabulary, --embedding, the config file\'s `model`)')
  }
  const model: PixelCNN<Grid> = resumed
    ? (resumed as PixelCNN<Grid>)
    : (PixelCNN.create({ ...modelOptions(args, fromFile, data.train, data.trainLabels, conditions?.[0], maps?.[0]), device, seed: seed ?? 0 }) as PixelCNN<Grid>)
  if (resuming) line.done(`resuming from ${out} (${model.history.length} epochs done)`)
  const conditional = model.config.classes !== undefined
  if (conditional && !data.trainLabels) throw new ConfigError(`the model is conditional on ${model.config.classes} classes but \`--data ${args.data}\` has no labels`)
  if (model.config.conditionSize !== undefined && !conditions) throw new ConfigError(`the model is conditional on vectors of ${model.config.conditionSize}: give them with \`--conditions TRAIN.npy[,TEST.npy]\``)
  if (model.config.conditionMap !== undefined && !maps) throw new ConfigError('the model is conditional on maps: give them with `--maps TRAIN.npy[,TEST.npy]`')
  const tokens = model.config.vocabulary !== undefined ? `, token grids of ${model.config.vocabulary} tokens (embedding ${model.config.embedding})` : ''
  line.done(`model: ${model.config.architecture}${tokens}${conditional ? `, conditional on ${model.config.classes} classes` : ''}, ${model.parameterCount.toLocaleString('en')} parameters, on ${model.device}`)

  const { model: _model, device: _device, resume: _resume, epochs: _epochs, logDir: fileLogDir, ...fitFromFile } = fromFile
  // One event file for the whole run (the fits below are one epoch each), written by rank 0.
  const logDir = (args.logdir as string | undefined) ?? fileLogDir
  const log = primary && logDir !== undefined ? TrainingLog.open(logDir, model.history) : undefined
  const fit = {
    ...fitFromFile,
    ...recipeOptions(args, fromFile),
    data: {
      train: data.train,
      test: data.test,
      ...(conditional ? { trainLabels: data.trainLabels, testLabels: data.testLabels } : {}),
      ...(conditions ? { trainConditions: conditions[0].data, testConditions: conditions[1]?.data } : {}),
      ...(maps ? { trainMaps: maps[0].data, testMaps: maps[1]?.data } : {}),
    },
    batchSize: number(args, 'batch-size') ?? fromFile.batchSize,
    learningRate: number(args, 'learning-rate') ?? fromFile.learningRate,
    seed,
    threads: number(args, 'threads') ?? fromFile.threads,
    precision: precision(args) ?? fromFile.precision,
    distributed,
    checkpoint: { path: out, every: number(args, 'checkpoint-every') ?? 50, best: (args.best as string | undefined) ?? fromFile.checkpoint?.best },
    signal: controller.signal,
    epochs: 1,
    onProgress: (e: Parameters<NonNullable<TrainOptions['onProgress']>>[0]) => {
      log?.onEvent(e)
      if (e.type === 'step') {
        const left = ((e.stepsPerEpoch - e.step) * (data.train.count / e.stepsPerEpoch)) / e.imagesPerSecond
        line.update(`epoch ${e.epoch}/${epochs} ${bar(e.step / e.stepsPerEpoch)} ${e.step}/${e.stepsPerEpoch}  loss ${e.loss === null ? "not finite (skipped)" : e.loss.toFixed(4)}  ${e.imagesPerSecond.toFixed(1)} images/s  ETA ${formatSeconds(left)}`)
      } else if (e.type === 'validation') {
        line.done(`epoch ${e.epoch}/${epochs}  step ${e.step}  val ${e.valLoss.toFixed(4)}`)
      } else if (e.type === 'epoch') {
        line.done(`epoch ${e.epoch}/${epochs}  train ${e.trainLoss.toFixed(4)}  val ${e.valLoss === null ? '–' : e.valLoss.toFixed(4)}  ${formatSeconds(e.seconds)}  ${e.imagesPerSecond.toFixed(1)} images/s${e.skippedSteps ? `  ${e.skippedSteps} steps skipped (not finite)` : ''}`)
        if (e.stopReason) line.done(e.stopReason)
      }
    },
  }
  fit.schedule = wholeRunSchedule(fit, epochs, data.train.count)
  // Redrawn after every epoch; drawn once below only when no epoch was left to run (a finished run resumed).
  let curveDrawn = false
  try {
    while (model.history.length < epochs && !model.history[model.history.length - 1]?.stopReason) {
      await model.fit(fit)
      if (!primary) continue
      // The core saved the model (the checkpoint) at the end of the epoch: the pictures come after it.
      curveDrawn = (await pictures.attempt(curve, () => writeCurve(model, curve))) ?? false
      const done = model.history.length
      if (samplesDue(done, samplesEvery, epochs)) {
        const file = samplesFile(out, done, model.config.vocabulary !== undefined)
        // A model conditional on vectors or maps draws one sample for each of the first 64 training images' conditions.
        const count = conditions || maps ? Math.min(64, data.train.count) : 64
        const sampleConditions = conditions?.[0].data.subarray(0, count * conditions[0].size)
        const sampleMaps = maps?.[0].data.subarray(0, count * maps[0].height * maps[0].width * maps[0].channels)
        const what = await pictures.attempt(file, () => writeSampleGrid(model, file, { count, perClass: 8, seed: 0, classNames: data.classNames, precision: fit.precision, signal: controller.signal, conditions: sampleConditions, maps: sampleMaps }))
        if (what !== undefined) {
          line.done(`wrote ${file}: ${what}`)
          log?.image('samples', readFileSync(file))
        }
      }
    }
  } catch (error) {
    const code = (error as PixelCNNError).code
    if (interrupted && primary && code === 'Aborted') {
      await pictures.attempt(curve, () => writeCurve(model, curve))
      console.log(`stopped; ${out} holds every step taken: continue with --resume`)
      const failed = pictures.error(out)
      if (failed) console.error(`pixelcnn train: ${failed.message}`)
      process.exitCode = 130
      return
    }
    if (interrupted && !primary && code === 'Distributed') {
      // Rank 0 stopped and saved; nothing to report.
      process.exitCode = 130
      return
    }
    throw error
  } finally {
    log?.close()
  }
  if (!primary) return
  if (!curveDrawn && !pictures.has(curve)) await pictures.attempt(curve, () => writeCurve(model, curve))
  console.log(historyTable(model.history))
  console.log(`saved ${out} (${model.parameterCount.toLocaleString('en')} parameters)${pictures.has(curve) ? '' : ` and the training curve ${curve}`}`)
  const failed = pictures.error(out)
  if (failed) throw failed
}
