/**
 * The libtorch core through the Node API, measured like bench/pytorch/bench.py
 * measures PyTorch: seed network, random binary inputs, warm-up, medians.
 * Prints a JSON object on its last line. Run by bench/run.ts in its own process
 * (so that its peak RSS is its own).
 *
 * PIXELCNN_BENCH_REFERENCE_ROWS: rows of the reference sampler to measure before
 * extrapolating to 28 (default 2; 28 runs it fully).
 * PIXELCNN_BENCH_PRESET: the network (default `seed`; `gated` for Gated PixelCNN).
 * PIXELCNN_BENCH_PRECISION: `fp32` (default) or `bf16`, for training, forward and fast sampling.
 * PIXELCNN_BENCH_REFERENCE_ROWS=0 skips the reference sampler.
 * PIXELCNN_BENCH_TRAIN_STEPS: training steps per timed `fit` (default 3).
 */

import { libtorchInfo, matmulGflops, PixelCNN } from '../src/index'
import { median, timeIt } from './timing'
import { randomImages } from '../__test__/support/images'

const REPEATS = Number(process.env.PIXELCNN_BENCH_REPEATS ?? 3)
const REFERENCE_ROWS = Number(process.env.PIXELCNN_BENCH_REFERENCE_ROWS ?? 2)
const PRESET = (process.env.PIXELCNN_BENCH_PRESET ?? 'seed') as 'seed' | 'gated'
const PRECISION = (process.env.PIXELCNN_BENCH_PRECISION ?? 'fp32') as 'fp32' | 'bf16'
const TRAIN_STEPS = Number(process.env.PIXELCNN_BENCH_TRAIN_STEPS ?? 3)

async function main() {
  const threads = process.env.PIXELCNN_BENCH_THREADS ? Number(process.env.PIXELCNN_BENCH_THREADS) : undefined
  const ceiling = matmulGflops(2048, 5, { threads })
  const ceilingBf16 = libtorchInfo().cpuBf16Native ? matmulGflops(2048, 5, { threads, precision: 'bf16' }) : null
  const precision = PRECISION
  const model = PixelCNN.create({ preset: PRESET, device: 'cpu', seed: 0 })

  // Training: each repetition is one `fit` of STEPS batches of 128 (full steps: forward, backward, Adam),
  // as training runs: several steps per call (a call ends by handing free memory back, allocator.rs).
  const train = { train: randomImages(128 * TRAIN_STEPS, 28, 28, 1) }
  await model.fit({ data: { train: randomImages(128, 28, 28, 1) }, epochs: 1, batchSize: 128, threads, precision })
  const trainTimes: number[] = []
  for (let i = 0; i < REPEATS; i++) trainTimes.push(await timeIt(() => model.fit({ data: train, epochs: 1, batchSize: 128, threads, precision })))
  const trainImagesPerSecond = (128 * TRAIN_STEPS) / median(trainTimes)

  const images81 = randomImages(81, 28, 28, 2)
  await model.predict(images81, { threads, precision })
  const forwardTimes: number[] = []
  for (let i = 0; i < Math.max(REPEATS, 5); i++) forwardTimes.push(await timeIt(() => model.predict(images81, { threads, precision })))
  const forwardSeconds81 = median(forwardTimes)

  await model.sample({ count: 81, threads, precision })
  const fastTimes: number[] = []
  for (let i = 0; i < REPEATS; i++) fastTimes.push(await timeIt(() => model.sample({ count: 81, seed: i, threads, precision })))
  const sampleFast81Seconds = median(fastTimes)

  // The reference loop: measured over REFERENCE_ROWS rows, then extrapolated.
  const controller = new AbortController()
  const started = performance.now()
  let rowSeconds = 0
  if (REFERENCE_ROWS > 0) await model
    .sample({
      count: 81, method: 'reference', threads, signal: controller.signal,
      onProgress: (e) => {
        if (e.type === 'rows' && e.rowsDone >= REFERENCE_ROWS) {
          rowSeconds = (performance.now() - started) / 1000 / e.rowsDone
          controller.abort()
        }
      },
    })
    .catch((error) => { if (error.code !== 'Aborted') throw error })
  if (rowSeconds === 0 && REFERENCE_ROWS > 0) rowSeconds = (performance.now() - started) / 1000 / 28

  console.log(JSON.stringify({
    ceilingGflops: ceiling,
    trainImagesPerSecond,
    forwardSeconds81,
    sampleFast81Seconds,
    sampleReference81Seconds: REFERENCE_ROWS > 0 ? rowSeconds * 28 : null,
    ceilingBf16Gflops: ceilingBf16,
    precision,
    referenceExtrapolatedFromRows: REFERENCE_ROWS < 28 ? REFERENCE_ROWS : null,
    preset: PRESET,
    parameterCount: model.parameterCount,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  }))
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
