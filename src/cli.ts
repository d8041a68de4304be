#!/usr/bin/env node
/**
 * `npx pixelcnn <command>`: train, sample, complete, eval, info.
 * Run `npx pixelcnn help` for the options.
 */

import { execFileSync } from 'node:child_process'
import * as path from 'node:path'
import { parseArgs } from 'node:util'
import { type Args, number, OPTIONS, precision, required } from './cli/args'
import { loadDataSource } from './cli/data-source'
import { launch } from './cli/launcher'
import { writeSampleGrid } from './cli/pictures'
import { bar, Line } from './cli/progress-bar'
import { historyTable, train } from './cli/train'
import { completionGrid } from './completion-grid'
import { ConfigError, PixelCNNError } from './errors'
import { writeImageGrid } from './image-grid'
import { sliceImages } from './images'
import { LIBTORCH_VERSION } from './libtorch'
import { PixelCNN } from './model'
import { checkOutputFile } from './output-paths'
import type { Device } from './types'
import type { Grid } from './grids'
import { loadConditions, loadMaps, type ConditionMaps, type ConditionVectors } from './data/conditions'
import type { ImageBatch } from './images'

const HELP = `usage: pixelcnn <command> [options]

commands:
  train     --data SOURCE --out model.safetensors [--preset seed|small|gated|gated-small|pixelcnn++|pixelcnn++-small]
            [--architecture pixelcnn|gated|pixelcnn++] [--output bernoulli|categorical|logistic-mixture [--mixtures 10]]
            [--dropout 0.5 (pixelcnn++)] [--conditional | --classes K] [--epochs 50]
            [--vocabulary V [--embedding E]] (with --data tokens:…: a prior over V discrete codes)
            [--conditions TRAIN.npy[,TEST.npy]] (one condition vector per image, (N, D) float: conditionSize D)
            [--maps TRAIN.npy[,TEST.npy] [--map-vocabulary V]] (one condition map per image, (N, H, W[, C]))
            [--channels 1|3 (folder:DIR read as grayscale or RGB; the model takes its shape from the data)]
            [--batch-size 128] [--learning-rate 5e-4] [--seed 0] [--threads N]
            [--device auto|cpu|cuda[:N]] [--precision auto|fp32|bf16] [--config file.json] [--resume]
            [--checkpoint-every 50] [--samples-every N] [--distributed env | --nproc N]
            [--recipe seed|pixelcnn++-cifar10] [--schedule constant|exponential:DECAY|step:EVERY:FACTOR|
            cosine:WARMUP[:TOTAL[:MIN]]] [--ema 0.9995] [--clip-grad-norm N] [--weight-decay L]
            [--validate-every STEPS] [--early-stopping PATIENCE] [--best best.safetensors] [--logdir DIR]
            --recipe sets the published hyperparameters (flags override it); --logdir writes TensorBoard
            event files (losses, learning rate, gradient norm, images/s, the --samples-every grids);
            --best keeps the model with the lowest validation loss
            writes model.curve.png (the training curve) beside the model after every epoch, and
            model.samples-epoch-N.png every N epochs with --samples-every; the folder of --out is
            created if missing and checked (writable, no output path a folder) before training; a
            picture that cannot be written is reported (exit status 1) but training goes on and the
            model is saved after every epoch regardless
            --distributed env: one rank of a data-parallel group (RANK, WORLD_SIZE, MASTER_ADDR,
            MASTER_PORT as torchrun sets them); --nproc N: N such ranks on this machine (127.0.0.1),
            --threads cores/N each; --batch-size stays the global batch; only rank 0 writes and prints
  sample    --model m.safetensors --out samples.png [--count 81] [--seed 0] [--temperature 1]
            a token model writes its token grids to --out samples.npy (numpy.load reads them)
            a conditional model: --conditions FILE.npy and/or --maps FILE.npy, one image each (eval takes them too)
            conditional models: [--label K (count images of class K) | --per-class 8 (one row per class)]
  complete  --model m.safetensors [--data SOURCE] [--rows 14] [--count 8] [--repeats 5] --out completions.png
  eval      --model m.safetensors --data SOURCE
  info      --model m.safetensors
  import    --from state_dict.pth --out model.safetensors [--height 32 --width 32]
            a model trained with the PyTorch port of PixelCNN++ (pclucas14/pixel-cnn-pp), from its
            torch.save'd state_dict, as a pixelcnn++ model (height and width: the images it models)
  sample, complete and eval also take [--device auto|cpu|cuda[:N]] [--precision auto|fp32|bf16]
  setup     installs torch==2.11.0 (the libtorch this addon needs) into ~/.cache/pixelcnn, once

SOURCE: mnist | mnist-bundled | fashion-mnist | fashion-mnist:system | idx:IMAGES[,TEST_IMAGES[,LABELS,TEST_LABELS]] | folder:DIR | cifar10
        | tokens:TRAIN.npy[,TEST.npy] (token grids (N, H, W) of int16/int32/int64, as numpy.save writes them)
Conditional models take their labels from the data source (--conditional: as many classes as it has).
8-bit models (--output categorical or logistic-mixture) read it as 8 bits per channel (grayscale, or RGB for cifar10 and
folder:DIR with --channels 3); binary ones binarized as the seed does (per channel for colour).
Ctrl-C during train saves every step taken to --out and stops; --resume continues exactly.`

/** Categorical models read data sources as 8-bit grayscale, binary ones binarized. */
function thresholdFor(model: PixelCNN<Grid>): 'none' | undefined {
  return (model.config.output ?? 'bernoulli') !== 'bernoulli' ? 'none' : undefined
}

/** A folder source is read with the model's channels: RGB for a colour model. */
function channelsOf(model: PixelCNN<Grid>): 1 | 3 {
  return model.config.channels === 3 ? 3 : 1
}

/** Labels for a conditional model's data, and nothing for an unconditional one. */
function labelsFor(model: PixelCNN<Grid>, labels: Uint8Array | undefined, what: string): { labels?: Uint8Array } {
  if (model.config.classes === undefined) return {}
  if (!labels) throw new ConfigError(`the model is conditional on ${model.config.classes} classes but ${what} has no labels`)
  return { labels }
}

/** `--conditions FILE.npy` for a vector-conditional model (required there, refused elsewhere). */
async function conditionsFor(model: PixelCNN<Grid>, file: string | undefined): Promise<ConditionVectors | undefined> {
  const size = model.config.conditionSize
  if (size === undefined) {
    if (file !== undefined) throw new ConfigError('`--conditions` needs a model conditional on vectors (trained with --conditions)')
    return undefined
  }
  if (file === undefined) throw new ConfigError(`the model is conditional on vectors of ${size}: give them with \`--conditions FILE.npy\` (N, ${size})`)
  const vectors = await loadConditions(file)
  if (vectors.size !== size) throw new ConfigError(`\`--conditions\`: ${file} has vectors of ${vectors.size}, the model takes ${size}`)
  return vectors
}

/** `--maps FILE.npy` for a map-conditional model (required there, refused elsewhere). */
async function mapsFor(model: PixelCNN<Grid>, file: string | undefined): Promise<ConditionMaps | undefined> {
  const map = model.config.conditionMap
  if (map === undefined) {
    if (file !== undefined) throw new ConfigError('`--maps` needs a model conditional on maps (trained with --maps)')
    return undefined
  }
  if (file === undefined) throw new ConfigError(`the model is conditional on ${map.height}×${map.width}×${map.channels} maps: give them with \`--maps FILE.npy\``)
  return loadMaps(file, { vocabulary: map.vocabulary })
}

async function sample(args: Args): Promise<void> {
  const file = required(args, 'model')
  // Checked (its folder made if missing) before the sampling, not after it.
  const out = required(args, 'out')
  await checkOutputFile(out, '`--out`')
  const model = await PixelCNN.load<Grid>(file, { device: args.device as Device | undefined })
  if (model.config.vocabulary !== undefined && !/\.npy$/i.test(out)) {
    throw new ConfigError(`\`--out\`: a token model's samples are token grids, written as .npy (numpy.load reads them), not pictures: got ${JSON.stringify(out)}`)
  }
  const label = number(args, 'label')
  const vectors = await conditionsFor(model, args.conditions as string | undefined)
  const maps = await mapsFor(model, args.maps as string | undefined)
  const given = maps?.count ?? vectors?.count
  const count = given ?? number(args, 'count') ?? 81
  if (given !== undefined && number(args, 'count') !== undefined && number(args, 'count') !== given) {
    throw new ConfigError(`\`--count\` is ${number(args, 'count')} but \`--conditions\`/\`--maps\` hold ${given}: one image is drawn per condition`)
  }
  if (model.config.classes === undefined && (label !== undefined || args['per-class'] !== undefined)) {
    throw new ConfigError('`--label` and `--per-class` need a conditional model (trained with --conditional or --classes)')
  }
  const line = new Line()
  const started = performance.now()
  const what = await writeSampleGrid(model, out, {
    count,
    conditions: vectors?.data,
    maps: maps?.data,
    label,
    perClass: number(args, 'per-class') ?? 8,
    seed: number(args, 'seed'),
    temperature: number(args, 'temperature'),
    precision: precision(args),
    onProgress: (e) => { if (e.type === 'rows') line.update(`sampling ${bar(e.rowsDone / e.rowsTotal)} ${e.rowsDone}/${e.rowsTotal} rows`) },
  }, number(args, 'scale'))
  line.done(`sampled ${what} in ${((performance.now() - started) / 1000).toFixed(2)} s`)
  console.log(`wrote ${out}`)
}

async function complete(args: Args): Promise<void> {
  const file = required(args, 'model')
  const out = required(args, 'out')
  await checkOutputFile(out, '`--out`')
  const model = await PixelCNN.load(file, { device: args.device as Device | undefined })
  if (model.config.vocabulary !== undefined) throw new ConfigError('`complete` draws a picture of completed images; for a token model use model.complete() from the API')
  const data = await loadDataSource((args.data as string | undefined) ?? 'mnist-bundled', undefined, undefined, thresholdFor(model), channelsOf(model))
  const source = data.test ?? data.train
  const sourceLabels = data.test ? data.testLabels : data.trainLabels
  const count = Math.min(number(args, 'count') ?? 8, source.count)
  const repeats = number(args, 'repeats') ?? 5
  const rows = number(args, 'rows') ?? Math.floor(model.config.height / 2)
  const { labels } = labelsFor(model, sourceLabels, `\`--data ${args.data ?? 'mnist-bundled'}\``)
  const grid = await completionGrid(model, sliceImages(source as ImageBatch, 0, count), {
    rows, repeats, seed: number(args, 'seed'), temperature: number(args, 'temperature'), labels: labels?.slice(0, count), precision: precision(args),
  })
  await writeImageGrid(grid, out, { columns: repeats + 2, scale: number(args, 'scale') })
  console.log(`wrote ${out}: ${count} images, top ${rows} rows given, ${repeats} completions each`)
}

async function evaluate(args: Args): Promise<void> {
  const model = await PixelCNN.load<Grid>(required(args, 'model'), { device: args.device as Device | undefined })
  const data = await loadDataSource(required(args, 'data'), undefined, undefined, thresholdFor(model), channelsOf(model), model.config.vocabulary)
  const images = data.test ?? data.train
  const options = labelsFor(model, data.test ? data.testLabels : data.trainLabels, `\`--data ${args.data}\``)
  const vectors = await conditionsFor(model, args.conditions as string | undefined)
  const maps = await mapsFor(model, args.maps as string | undefined)
  const { natsPerImage, bitsPerDim } = await model.evaluate(images, { ...options, conditions: vectors?.data, maps: maps?.data, precision: precision(args), threads: number(args, 'threads') })
  const tokens = model.config.vocabulary !== undefined
  console.log(`${data.description}, ${data.test ? 'test' : 'training'} split, ${images.count} ${tokens ? 'grids' : 'images'}`)
  console.log(tokens ? `${natsPerImage.toFixed(3)} nats per grid, ${bitsPerDim.toFixed(5)} bits per token` : `${natsPerImage.toFixed(3)} nats per image, ${bitsPerDim.toFixed(5)} bits per dimension`)
}

async function info(args: Args): Promise<void> {
  const file = required(args, 'model')
  const model = await PixelCNN.load(file, { device: 'cpu' })
  console.log(`${file}`)
  console.log(`architecture: ${JSON.stringify(model.config)}`)
  console.log(`parameters: ${model.parameterCount.toLocaleString('en')}`)
  console.log(model.history.length ? historyTable(model.history) : 'not trained')
  const training = model.history[model.history.length - 1]?.training
  if (training) console.log(`trained with (last epoch): ${Object.entries(training).map(([k, v]) => `${k} ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(', ')}`)
}

async function importModel(args: Args): Promise<void> {
  const from = required(args, 'from')
  const out = required(args, 'out')
  await checkOutputFile(out, '`--out`')
  const model = await PixelCNN.importPixelCnnPp(from, { height: number(args, 'height'), width: number(args, 'width'), device: 'cpu' })
  await model.save(out)
  const { height, width, channels, filters, resnetBlocks, mixtures, weightNorm } = model.config
  console.log(`imported ${from}: pixelcnn++ for ${height}×${width}×${channels} images, ${filters} filters, ${resnetBlocks} blocks, ${mixtures} mixtures${weightNorm ? '' : ', no weight normalisation'}, ${model.parameterCount.toLocaleString('en')} parameters`)
  console.log(`saved the model to ${out}`)
}

async function setup(): Promise<void> {
  const script = path.join(__dirname, '..', 'scripts', 'setup-libtorch.sh')
  const python = execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()
  console.log(`libtorch ${LIBTORCH_VERSION} is installed (${python}); pixelcnn finds it from now on`)
}

const COMMANDS: Record<string, (args: Args) => Promise<void>> = { train, sample, complete, eval: evaluate, info, import: importModel, setup }

export async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
  if (!command || command === 'help' || command === '--help' || command === '-h') {
    console.log(HELP)
    return 0
  }
  const run = COMMANDS[command]
  if (!run) {
    console.error(`pixelcnn: unknown command ${JSON.stringify(command)}\n\n${HELP}`)
    return 2
  }
  try {
    const { values } = parseArgs({ args: rest, options: OPTIONS, strict: true, allowPositionals: false })
    if (values.help) {
      console.log(HELP)
      return 0
    }
    if (command === 'train' && values.nproc !== undefined) return await launch(values, rest, __filename)
    await run(values)
    return typeof process.exitCode === 'number' ? process.exitCode : 0
  } catch (error) {
    const e = error as Error & { code?: string }
    console.error(`pixelcnn ${command}: ${e instanceof PixelCNNError ? `${e.name}: ` : ''}${e.message}`)
    return e instanceof PixelCNNError ? 1 : 2
  }
}

if (require.main === module) {
  main(process.argv.slice(2)).then((code) => process.exit(code))
}
