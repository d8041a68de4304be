/**
 * PixelCNN++ (architecture 'pixelcnn++', issue 22) through the Node API,
 * measured as bench/pytorch/bench_pixelcnn_pp.py measures the same network
 * in PyTorch: 32×32×3, random 8-bit RGB images (mulberry32, the same seeds,
 * so the very same batch on both sides), training batch 16 (the paper's per
 * GPU) with dropout 0.5 (the presets'), Adam at 5e-4 (PIXELCNN_BENCH_LR;
 * 1e-4 for the full preset, which diverges at 5e-4 here). Prints a JSON object on
 * its last line; bench/run.ts runs it in its own process (its peak RSS is its own).
 *
 * Training: a warm-up `fit` of one step, then PIXELCNN_BENCH_REPEATS fits of
 * PIXELCNN_BENCH_TRAIN_STEPS steps each (steady state: the first step's
 * allocations and the optimizer's creation are behind), the median per step.
 * Forward: `logProbs` of 64 images (network and mixture likelihood), after
 * PIXELCNN_BENCH_FORWARD_WARMUP warm-up calls, the median of
 * PIXELCNN_BENCH_FORWARD_REPEATS.
 *
 * Sampling 64 images at 32×32, fp32 (`sample`'s default), after a warm-up
 * of one row, in batches of PIXELCNN_BENCH_SAMPLE_BATCH (64: one batch; the
 * full preset's takes about 2 GiB). The
 * incremental sampler (`method: 'fast'`) over PIXELCNN_BENCH_FAST_ROWS rows
 * (default: all of them; fewer are extrapolated to every row of every batch
 * from the rate between the first and the last progress event: every 4 rows repeat the same work, the half- and
 * quarter-resolution layers running every 2nd and 4th row),
 * PIXELCNN_BENCH_FAST_REPEATS times (median). The reference loop (one full
 * forward pass of the batch per pixel, 1024 of them) over
 * PIXELCNN_BENCH_REFERENCE_ROWS rows, extrapolated to 32 (default 1 for the
 * small preset). For the full preset one row is 32 passes of ~15 s each on a
 * small CPU, so by default (REFERENCE_ROWS 0) the loop is timed instead on a
 * model of the same preset PIXELCNN_BENCH_SAMPLE_HEIGHT (4, the least the
 * architecture allows) × PIXELCNN_BENCH_SAMPLE_WIDTH (8) pixels, all its
 * pixels: its seconds per pixel over its own `logProbs` of 64 images is the
 * loop's cost in forward passes per pixel, times 1024 × the 32×32 forward
 * pass above is the extrapolation. PIXELCNN_BENCH_SAMPLE=0 skips sampling.
 *
 * PIXELCNN_BENCH_PRESET: pixelcnn++-small (default) or pixelcnn++.
 * PIXELCNN_BENCH_PRECISION: fp32 (default) or bf16 (training and forward).
 */

import { mulberry32 } from '../src/data/binarize'
import { type ImageBatch, PixelCNN } from '../src/index'
import { median, timeIt } from './timing'

type Preset = 'pixelcnn++-small' | 'pixelcnn++'
const PRESET = (process.env.PIXELCNN_BENCH_PRESET ?? 'pixelcnn++-small') as Preset
const FULL = PRESET === 'pixelcnn++'
const env = (name: string, fallback: number) => Number(process.env[name] ?? fallback)
const PRECISION = (process.env.PIXELCNN_BENCH_PRECISION ?? 'fp32') as 'fp32' | 'bf16'
const BATCH = 16
const SAMPLES = 64
// The full preset (53.7M parameters) takes seconds a step on a small CPU: a few steps only.
const TRAIN_STEPS = env('PIXELCNN_BENCH_TRAIN_STEPS', FULL ? 2 : 8)
const REPEATS = env('PIXELCNN_BENCH_REPEATS', FULL ? 2 : 3)
const FORWARD_WARMUP = env('PIXELCNN_BENCH_FORWARD_WARMUP', FULL ? 0 : 1)
const FORWARD_REPEATS = env('PIXELCNN_BENCH_FORWARD_REPEATS', FULL ? 1 : 3)
// The full preset diverges at 5e-4 on these random images (loss NaN at its 4th step; the small one does not): its
// Glorot-uniform initialisation starts at 15 nats per sub-pixel here. Speed does not depend on the step size.
const LEARNING_RATE = env('PIXELCNN_BENCH_LR', FULL ? 1e-4 : 5e-4)
const SAMPLE = process.env.PIXELCNN_BENCH_SAMPLE !== '0'
const FAST_ROWS = env('PIXELCNN_BENCH_FAST_ROWS', 32)
const FAST_REPEATS = env('PIXELCNN_BENCH_FAST_REPEATS', FULL ? 1 : 2)
const REFERENCE_ROWS = Math.min(env('PIXELCNN_BENCH_REFERENCE_ROWS', FULL ? 0 : 1), 32)
const SAMPLE_BATCH = env('PIXELCNN_BENCH_SAMPLE_BATCH', SAMPLES)
const SAMPLE_HEIGHT = env('PIXELCNN_BENCH_SAMPLE_HEIGHT', 4)
const SAMPLE_WIDTH = env('PIXELCNN_BENCH_SAMPLE_WIDTH', 8)

/** count × height × width × 3 random bytes; bench_pixelcnn_pp.py's random_rgb draws the same. */
export function randomRgb(count: number, seed: number, height = 32, width = 32): ImageBatch {
  const random = mulberry32(seed)
  const data = new Uint8Array(count * height * width * 3)
  for (let i = 0; i < data.length; i++) data[i] = Math.floor(random() * 256)
  return { count, height, width, channels: 3, data }
}

/** CPU seconds (user + system, every thread) of this process. */
const cpuSeconds = () => {
  const u = process.cpuUsage()
  return (u.user + u.system) / 1e6
}

/**
 * Seconds for all rows of `method` sampling 64 images of `model` (in batches of `batchSize`: rows count over the
 * batches, one after the other), stopped once `rows` rows are done and then extrapolated: the time to the first
 * progress event (setup and the first rows, as they are) plus the rate between the first and the last event over
 * the rows left (with one event only: its rate per row).
 */
async function allRows(model: PixelCNN, method: 'fast' | 'reference', rows: number, threads?: number, batchSize = SAMPLES): Promise<{ seconds: number; rows: number; rowsTotal: number }> {
  const controller = new AbortController()
  const events: { t: number; rows: number; total: number }[] = []
  const started = performance.now()
  let completed = false
  await model
    .sample({
      count: SAMPLES, batchSize, method, threads, seed: 0, signal: controller.signal,
      onProgress: (e) => {
        if (e.type !== 'rows' || controller.signal.aborted) return
        events.push({ t: (performance.now() - started) / 1000, rows: e.rowsDone, total: e.rowsTotal })
        if (e.rowsDone >= rows && e.rowsDone < e.rowsTotal) controller.abort()
      },
    })
    .then(() => { completed = true })
    .catch((error) => { if (error.code !== 'Aborted') throw error })
  const total = events.at(-1)?.total ?? model.config.height
  if (completed) return { seconds: (performance.now() - started) / 1000, rows: total, rowsTotal: total }
  const first = events[0]
  const last = events[events.length - 1]
  const rate = events.length > 1 && last.rows > first.rows ? (last.t - first.t) / (last.rows - first.rows) : first.t / first.rows
  return { seconds: first.t + rate * (total - first.rows), rows: last.rows, rowsTotal: total }
}

async function main() {
  const startedAll = performance.now()
  const threads = process.env.PIXELCNN_BENCH_THREADS ? Number(process.env.PIXELCNN_BENCH_THREADS) : undefined
  const precision = PRECISION
  const model = PixelCNN.create({ preset: PRESET, device: 'cpu', seed: 0 })

  const batch = randomRgb(BATCH, 1) // bench_pixelcnn_pp.py trains on random_rgb(16, 1): the same images
  const train = { train: randomRgb(BATCH * TRAIN_STEPS, 1) } // its first 16 images are that batch
  const warmup = await timeIt(() => model.fit({ data: { train: batch }, epochs: 1, batchSize: BATCH, threads, precision, learningRate: LEARNING_RATE }))
  const fitTimes: number[] = []
  const cpuBefore = cpuSeconds()
  const wallBefore = performance.now()
  for (let i = 0; i < REPEATS; i++) fitTimes.push(await timeIt(() => model.fit({ data: train, epochs: 1, batchSize: BATCH, threads, precision, learningRate: LEARNING_RATE })))
  const trainCpuPerWall = (cpuSeconds() - cpuBefore) / ((performance.now() - wallBefore) / 1000)
  const stepSeconds = fitTimes.map((s) => s / TRAIN_STEPS)

  const images = randomRgb(SAMPLES, 3)
  for (let i = 0; i < FORWARD_WARMUP; i++) await model.logProbs(images, { threads, precision })
  const forwardTimes: number[] = []
  for (let i = 0; i < FORWARD_REPEATS; i++) forwardTimes.push(await timeIt(() => model.logProbs(images, { threads, precision })))
  const forwardSeconds64 = median(forwardTimes)

  let sampling: Record<string, unknown> = {}
  if (SAMPLE) {
    await allRows(model, 'fast', 1, threads, SAMPLE_BATCH) // warm-up
    const fastRuns: { seconds: number; rows: number; rowsTotal: number }[] = []
    for (let i = 0; i < FAST_REPEATS; i++) fastRuns.push(await allRows(model, 'fast', FAST_ROWS, threads, SAMPLE_BATCH))
    const fast64 = median(fastRuns.map((r) => r.seconds))
    sampling = { sampleBatch: SAMPLE_BATCH, sampleFast64Seconds: fast64, fastRowsTimed: fastRuns[0].rows, fastRowsTotal: fastRuns[0].rowsTotal, fastInForwardPasses: precision === 'fp32' ? fast64 / forwardSeconds64 : null }
    if (REFERENCE_ROWS > 0) {
      const reference = await allRows(model, 'reference', REFERENCE_ROWS, threads, SAMPLE_BATCH)
      sampling = { ...sampling, sampleReference64Seconds: reference.seconds, referenceRowsTimed: reference.rows, referenceRowsTotal: reference.rowsTotal, referenceOn: '32×32' }
    } else {
      // The same preset at SAMPLE_HEIGHT × SAMPLE_WIDTH: there too the loop is one full forward pass per pixel.
      const small = PixelCNN.create({ preset: PRESET, height: SAMPLE_HEIGHT, width: SAMPLE_WIDTH, device: 'cpu', seed: 0 })
      const smallImages = randomRgb(SAMPLES, 3, SAMPLE_HEIGHT, SAMPLE_WIDTH)
      await small.logProbs(smallImages, { threads, precision: 'fp32' })
      const smallForward: number[] = []
      for (let i = 0; i < 3; i++) smallForward.push(await timeIt(() => small.logProbs(smallImages, { threads, precision: 'fp32' })))
      const reference = await allRows(small, 'reference', SAMPLE_HEIGHT, threads)
      const passesPerPixel = reference.seconds / (SAMPLE_HEIGHT * SAMPLE_WIDTH) / median(smallForward)
      sampling = {
        ...sampling,
        referenceOn: `${SAMPLE_HEIGHT}×${SAMPLE_WIDTH}`,
        referenceSecondsPerPixelSmall: reference.seconds / (SAMPLE_HEIGHT * SAMPLE_WIDTH),
        referenceSmallForwardSeconds64: median(smallForward),
        referenceForwardPassesPerPixel: passesPerPixel,
        sampleReference64Seconds: precision === 'fp32' ? 1024 * passesPerPixel * forwardSeconds64 : null,
      }
    }
  }

  console.log(JSON.stringify({
    preset: PRESET,
    precision,
    parameterCount: model.parameterCount,
    batchSize: BATCH,
    dropout: model.config.dropout ?? null,
    trainSteps: TRAIN_STEPS,
    learningRate: LEARNING_RATE,
    warmupFitSeconds: warmup,
    stepSeconds,
    trainImagesPerSecond: BATCH / median(stepSeconds),
    trainCpuPerWall,
    forwardSeconds64,
    forwardTimes,
    ...sampling,
    wallSeconds: (performance.now() - startedAll) / 1000,
    peakRssMiB: process.resourceUsage().maxRSS / 1024,
  }))
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
