#!/usr/bin/env node
/**
 * `npx pixelcnn <command>`: train, sample, complete, eval, info.
 * Run `npx pixelcnn help` for the options.
 */

import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import * as path from 'node:path'
import { parseArgs } from 'node:util'
import { loadDataSource } from './cli/data-source'
import { bar, formatSeconds, Line } from './cli/progress-bar'
import { completionGrid } from './completion-grid'
import { ConfigError, PixelCNNError } from './errors'
import { writeImageGrid } from './image-grid'
import { sliceImages } from './images'
import { LIBTORCH_VERSION } from './libtorch'
import { PixelCNN } from './model'
import type { Device, EpochRecord, TrainOptions } from './types'

const HELP = `usage: pixelcnn <command> [options]

commands:
  train     --data SOURCE [--preset seed|small] [--epochs 50] [--batch-size 128]
            [--learning-rate 5e-4] [--seed 0] [--threads N] [--device auto|cpu|cuda[:N]]
            [--config file.json] --out model.safetensors [--resume] [--checkpoint-every 50]
  sample    --model m.safetensors [--count 81] [--seed 0] [--temperature 1] --out samples.png
  complete  --model m.safetensors [--data SOURCE] [--rows 14] [--count 8] [--repeats 5] --out completions.png
  eval      --model m.safetensors --data SOURCE
  info      --model m.safetensors
  setup     installs torch==2.11.0 (the libtorch this addon needs) into ~/.cache/pixelcnn, once

SOURCE: mnist | mnist-bundled | fashion-mnist | fashion-mnist:system | idx:IMAGES[,TEST_IMAGES] | folder:DIR
Ctrl-C during train stops after the current step and leaves a checkpoint that --resume continues.`

const OPTIONS = {
  data: { type: 'string' },
  preset: { type: 'string' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  'learning-rate': { type: 'string' },
  seed: { type: 'string' },
  threads: { type: 'string' },
  device: { type: 'string' },
  config: { type: 'string' },
  out: { type: 'string' },
  resume: { type: 'boolean' },
  'checkpoint-every': { type: 'string' },
  model: { type: 'string' },
  count: { type: 'string' },
  temperature: { type: 'string' },
  rows: { type: 'string' },
  repeats: { type: 'string' },
  columns: { type: 'string' },
  scale: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

type Args = Partial<Record<keyof typeof OPTIONS, string | boolean>>

function number(args: Args, name: keyof typeof OPTIONS): number | undefined {
  const raw = args[name]
  if (raw === undefined) return undefined
  const value = Number(raw)
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(value)) throw new ConfigError(`\`--${name}\` must be a number, got ${JSON.stringify(raw)}`)
  return value
}

function required(args: Args, name: keyof typeof OPTIONS): string {
  const value = args[name]
  if (typeof value !== 'string' || value === '') throw new ConfigError(`\`--${name}\` is required (see \`pixelcnn help\`)`)
  return value
}

function historyTable(history: EpochRecord[]): string {
  const rows = history.map((r) => `| ${r.epoch} | ${r.trainLoss.toFixed(4)} | ${r.valLoss === null ? '–' : r.valLoss.toFixed(4)} | ${r.seconds.toFixed(1)} | ${r.imagesPerSecond.toFixed(1)} |`)
  return ['| epoch | train loss | val loss | seconds | images/s |', '|---:|---:|---:|---:|---:|', ...rows].join('\n')
}

async function train(args: Args): Promise<void> {
  const out = required(args, 'out')
  const fromFile = args.config ? (JSON.parse(readFileSync(required(args, 'config'), 'utf8')) as Partial<TrainOptions>) : {}
  const line = new Line()
  const controller = new AbortController()
  let interrupted = false
  process.once('SIGINT', () => {
    interrupted = true
    line.done('stopping after the current step (Ctrl-C again to quit at once)…')
    controller.abort()
    process.once('SIGINT', () => process.exit(130))
  })
  const data = await loadDataSource(required(args, 'data'), (p) => line.update(`downloading ${p.file} ${bar(p.totalBytes ? p.bytes / p.totalBytes : 0)} ${(p.bytes / 2 ** 20).toFixed(1)} MiB`), controller.signal)
  line.done(`data: ${data.description}: ${data.train.count} training${data.test ? ` and ${data.test.count} validation` : ''} images`)
  const epochs = number(args, 'epochs') ?? fromFile.epochs ?? 50
  const options: TrainOptions = {
    ...fromFile,
    model: { ...fromFile.model, ...(args.preset ? { preset: args.preset as 'seed' | 'small' } : {}) },
    data: { train: data.train, test: data.test },
    epochs,
    batchSize: number(args, 'batch-size') ?? fromFile.batchSize,
    learningRate: number(args, 'learning-rate') ?? fromFile.learningRate,
    seed: number(args, 'seed') ?? fromFile.seed,
    threads: number(args, 'threads') ?? fromFile.threads,
    device: (args.device as Device | undefined) ?? fromFile.device,
    checkpoint: { path: out, every: number(args, 'checkpoint-every') ?? 50 },
    resume: Boolean(args.resume),
    signal: controller.signal,
    onProgress: (e) => {
      if (e.type === 'step') {
        const left = ((e.stepsPerEpoch - e.step) * (data.train.count / e.stepsPerEpoch)) / e.imagesPerSecond
        line.update(`epoch ${e.epoch}/${epochs} ${bar(e.step / e.stepsPerEpoch)} ${e.step}/${e.stepsPerEpoch}  loss ${e.loss.toFixed(4)}  ${e.imagesPerSecond.toFixed(1)} images/s  ETA ${formatSeconds(left)}`)
      } else if (e.type === 'epoch') {
        line.done(`epoch ${e.epoch}/${epochs}  train ${e.trainLoss.toFixed(4)}  val ${e.valLoss === null ? '–' : e.valLoss.toFixed(4)}  ${formatSeconds(e.seconds)}  ${e.imagesPerSecond.toFixed(1)} images/s`)
      }
    },
  }
  if (args.resume && existsSync(out)) line.done(`resuming from ${out}`)
  try {
    const model = await PixelCNN.train(options)
    console.log(historyTable(model.history))
    console.log(`saved ${out} (${model.parameterCount.toLocaleString('en')} parameters)`)
  } catch (error) {
    if (interrupted && (error as PixelCNNError).code === 'Aborted') {
      console.log(`stopped; the checkpoint in ${out} holds the last completed epoch or checkpointed step: continue with --resume`)
      process.exitCode = 130
      return
    }
    throw error
  }
}

async function sample(args: Args): Promise<void> {
  const model = await PixelCNN.load(required(args, 'model'), { device: args.device as Device | undefined })
  const count = number(args, 'count') ?? 81
  const line = new Line()
  const images = await model.sample({
    count, seed: number(args, 'seed'), temperature: number(args, 'temperature'),
    onProgress: (e) => {
      if (e.type === 'rows') line.update(`sampling ${bar(e.rowsDone / e.rowsTotal)} ${e.rowsDone}/${e.rowsTotal} rows`)
      else line.done(`sampled ${count} images in ${e.seconds.toFixed(2)} s`)
    },
  })
  const out = required(args, 'out')
  await writeImageGrid(images, out, { columns: number(args, 'columns'), scale: number(args, 'scale') })
  console.log(`wrote ${out}`)
}

async function complete(args: Args): Promise<void> {
  const model = await PixelCNN.load(required(args, 'model'), { device: args.device as Device | undefined })
  const data = await loadDataSource((args.data as string | undefined) ?? 'mnist-bundled')
  const source = data.test ?? data.train
  const count = Math.min(number(args, 'count') ?? 8, source.count)
  const repeats = number(args, 'repeats') ?? 5
  const rows = number(args, 'rows') ?? Math.floor(model.config.height / 2)
  const grid = await completionGrid(model, sliceImages(source, 0, count), { rows, repeats, seed: number(args, 'seed'), temperature: number(args, 'temperature') })
  const out = required(args, 'out')
  await writeImageGrid(grid, out, { columns: repeats + 2, scale: number(args, 'scale') })
  console.log(`wrote ${out}: ${count} images, top ${rows} rows given, ${repeats} completions each`)
}

async function evaluate(args: Args): Promise<void> {
  const model = await PixelCNN.load(required(args, 'model'), { device: args.device as Device | undefined })
  const data = await loadDataSource(required(args, 'data'))
  const images = data.test ?? data.train
  const { natsPerImage, bitsPerDim } = await model.evaluate(images)
  console.log(`${data.description}, ${data.test ? 'test' : 'training'} split, ${images.count} images`)
  console.log(`${natsPerImage.toFixed(3)} nats per image, ${bitsPerDim.toFixed(5)} bits per dimension`)
}

async function info(args: Args): Promise<void> {
  const file = required(args, 'model')
  const model = await PixelCNN.load(file, { device: 'cpu' })
  console.log(`${file}`)
  console.log(`architecture: ${JSON.stringify(model.config)}`)
  console.log(`parameters: ${model.parameterCount.toLocaleString('en')}`)
  console.log(model.history.length ? historyTable(model.history) : 'not trained')
}

async function setup(): Promise<void> {
  const script = path.join(__dirname, '..', 'scripts', 'setup-libtorch.sh')
  const python = execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim().split('\n').pop()
  console.log(`libtorch ${LIBTORCH_VERSION} is installed (${python}); pixelcnn finds it from now on`)
}

const COMMANDS: Record<string, (args: Args) => Promise<void>> = { train, sample, complete, eval: evaluate, info, setup }

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
