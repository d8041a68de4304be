/**
 * A CIFAR-shaped model (32×32×3, Gated PixelCNN, 10-component logistic
 * mixture) through the Node API, measured like bench/pytorch/bench_cifar.py
 * measures the same network in PyTorch eager: random 8-bit RGB images,
 * warm-up, medians. With PIXELCNN_BENCH_SHAPE=prior, the prior-shaped model
 * instead (a 32×32 grid of 512 tokens, gated: `PRIOR_BENCH_MODEL`), on random tokens. Prints a JSON object on its last line; bench/run.ts runs
 * it in its own process.
 *
 * Training: each repetition is one `fit` of PIXELCNN_BENCH_TRAIN_STEPS
 * batches of 32. Sampling: 64 images with the fast sampler, and the reference
 * loop (one full forward pass per pixel) over PIXELCNN_BENCH_REFERENCE_ROWS
 * rows (default 1), extrapolated to 32.
 */

import { mulberry32 } from '../src/data/binarize'
import { type Grid, type ImageBatch, PixelCNN, type TokenGrid } from '../src/index'
import { median, timeIt } from './timing'
import { CIFAR_BENCH_MODEL, PRIOR_BENCH_MODEL } from './cifar-model'

const PRIOR = process.env.PIXELCNN_BENCH_SHAPE === 'prior'
/** Every call's precision (PIXELCNN_BENCH_PRECISION): the prior table runs fp32 and bf16 side by side; unset, `'auto'`. */
const precision = (process.env.PIXELCNN_BENCH_PRECISION ?? 'auto') as 'auto' | 'fp32' | 'bf16'

const BATCH = 32
const SAMPLES = 64
const REPEATS = Number(process.env.PIXELCNN_BENCH_REPEATS ?? 3)
// Long enough that a `fit` call's own start and end (data to tensors, the memory it hands back) are
// a small part of its time, as in real training: PyTorch's side times steady-state steps.
const TRAIN_STEPS = Number(process.env.PIXELCNN_BENCH_TRAIN_STEPS ?? 12)
const REFERENCE_ROWS = Number(process.env.PIXELCNN_BENCH_REFERENCE_ROWS ?? 1)

function randomRgb(count: number, seed: number): ImageBatch {
  const random = mulberry32(seed)
  const data = new Uint8Array(count * 32 * 32 * 3)
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(random() * 256)
  return { count, height: 32, width: 32, channels: 3, data }
}

function randomTokens(count: number, seed: number): TokenGrid {
  const random = mulberry32(seed)
  return { count, height: 32, width: 32, data: Int32Array.from({ length: count * 32 * 32 }, () => Math.floor(random() * 512)) }
}

const randomData: (count: number, seed: number) => Grid = PRIOR ? randomTokens : randomRgb

async function main() {
  const threads = process.env.PIXELCNN_BENCH_THREADS ? Number(process.env.PIXELCNN_BENCH_THREADS) : undefined
  const model = PixelCNN.create({ ...(PRIOR ? PRIOR_BENCH_MODEL : CIFAR_BENCH_MODEL), device: 'cpu', seed: 0 }) as PixelCNN<Grid>
  const train = { train: randomData(BATCH * TRAIN_STEPS, 1) }
  await model.fit({ data: { train: randomData(BATCH, 2) }, epochs: 1, batchSize: BATCH, threads, precision })
  const trainTimes: number[] = []
  for (let i = 0; i < REPEATS; i++) trainTimes.push(await timeIt(() => model.fit({ data: train, epochs: 1, batchSize: BATCH, threads, precision })))

  const images = randomData(SAMPLES, 3)
  await model.logProbs(images, { threads, precision })
  const forwardTimes: number[] = []
  for (let i = 0; i < REPEATS; i++) forwardTimes.push(await timeIt(() => model.logProbs(images, { threads, precision })))

  await model.sample({ count: SAMPLES, seed: 0, threads, precision })
  const fastTimes: number[] = []
  for (let i = 0; i < REPEATS; i++) fastTimes.push(await timeIt(() => model.sample({ count: SAMPLES, seed: i, threads, precision })))

  const controller = new AbortController()
  const started = performance.now()
  let rowSeconds = 0
  await model
    .sample({
      count: SAMPLES, method: 'reference', threads, precision, signal: controller.signal,
      onProgress: (e) => {
        if (e.type === 'rows' && e.rowsDone >= REFERENCE_ROWS) {
          rowSeconds = (performance.now() - started) / 1000 / e.rowsDone
          controller.abort()
        }
      },
    })
    .catch((error) => { if (error.code !== 'Aborted') throw error })

  console.log(JSON.stringify({
    parameterCount: model.parameterCount,
    precision: model.history[model.history.length - 1]?.precision,
    batchSize: BATCH,
    trainImagesPerSecond: (BATCH * TRAIN_STEPS) / median(trainTimes),
    forwardSeconds64: median(forwardTimes),
    sampleFast64Seconds: median(fastTimes),
    sampleReference64Seconds: rowSeconds * 32,
    referenceExtrapolatedFromRows: REFERENCE_ROWS,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  }))
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
