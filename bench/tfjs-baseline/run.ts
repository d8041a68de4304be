/**
 * The seed PixelCNN in pure TensorFlow.js, timed on one backend:
 *
 *   node --import tsx bench/tfjs-baseline/run.ts --backend cpu|wasm [--json]
 *
 * (a) one forward pass at batch 81; (b) training images/s, with tfjs's stock
 * conv gradients ("stock") and with the customGrad conv gradients of model.ts
 * ("workaround"); (c) the seed's naive sampler for 81 images, a few pixels
 * timed and extrapolated to 784; (d) peak RSS. Inputs are seeded random
 * binary images (each pixel 1 with probability 1/2, never an all-zero image).
 *
 * Every measurement runs under a time budget (TFJS_BENCH_BUDGET_S, default
 * 90 s): it repeats while the next repetition is expected to end within the
 * budget, always at least once, and reports how many it managed. Training
 * uses a smaller batch than the seed's 128 when a batch-128 step is predicted
 * to exceed the budget (or, on wasm, its 4 GiB heap); the row says so.
 *
 * Progress goes to stderr; a summary goes to stdout; with --json, one JSON
 * object is the last line of stdout.
 */

import { spawnSync } from 'node:child_process'
import * as os from 'node:os'
import * as tf from '@tensorflow/tfjs'
import * as tfwasm from '@tensorflow/tfjs-backend-wasm'
import {
  buildModel, forward, GradMode, HEIGHT, makeOptimizer, mulberry32, parameterCount, PixelCNNModel,
  sampleNaive, SEED_PARAMETER_COUNT, trainStep, WIDTH,
} from './model'

const SEED_BATCH = 128
const SAMPLE_COUNT = 81
const MIB = 2 ** 20
/** The wasm backend is wasm32 with a 4 GiB heap; leave room for fragmentation and non-tensor memory. */
const WASM_TENSOR_BYTES_CAP = 3.75 * 2 ** 30

interface Args { backend: 'cpu' | 'wasm'; json: boolean; probeTrain: number | null; mode: GradMode }

function parseArgs(argv: string[]): Args {
  const args: Args = { backend: 'cpu', json: false, probeTrain: null, mode: 'workaround' }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    if (a === '--json') args.json = true
    else if (a === '--backend') {
      const v = argv[++i]
      if (v !== 'cpu' && v !== 'wasm') throw new Error(`--backend must be cpu or wasm, got ${JSON.stringify(v)}`)
      args.backend = v
    } else if (a === '--probe-train') args.probeTrain = Number(argv[++i]) // internal: one training step in a child process
    else if (a === '--mode') args.mode = argv[++i] as GradMode
    else throw new Error(`unknown argument ${JSON.stringify(a)} (usage: run.ts --backend cpu|wasm [--json])`)
  }
  return args
}

function budgetSeconds(): number {
  const raw = process.env.TFJS_BENCH_BUDGET_S
  const value = raw === undefined ? 90 : Number(raw)
  if (!(value > 0)) throw new Error(`TFJS_BENCH_BUDGET_S must be a positive number of seconds, got ${JSON.stringify(raw)}`)
  return value
}

const log = (line: string) => process.stderr.write(`${line}\n`)
const now = () => performance.now() / 1000
const mib = (bytes: number) => bytes / MIB
const rssMiB = () => process.resourceUsage().maxRSS / 1024 // maxRSS is in KiB

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

function timeSync(run: () => void): number {
  const t0 = now()
  run()
  return now() - t0
}

/** Seeded random binary images [n, 28, 28, 1]: each pixel 1 with probability 1/2, no image all zeros. */
function randomImages(n: number, seed: number): tf.Tensor4D {
  const uniform = mulberry32(seed)
  const values = new Float32Array(n * HEIGHT * WIDTH)
  for (let i = 0; i < values.length; i++) values[i] = uniform() < 0.5 ? 1 : 0
  for (let b = 0; b < n; b++) {
    if (!values.subarray(b * HEIGHT * WIDTH, (b + 1) * HEIGHT * WIDTH).some((v) => v === 1)) values[b * HEIGHT * WIDTH] = 1
  }
  return tf.tensor4d(values, [n, HEIGHT, WIDTH, 1])
}

/**
 * Repeats `run` while the next repetition is expected (from the last one) to
 * end within `budget` seconds of `started`; at least once, at most maxReps.
 */
function repeat(run: () => void, budget: number, started: number, maxReps: number, first: number[] = []): number[] {
  const times = [...first]
  while (times.length < maxReps) {
    if (times.length > 0 && now() - started + times[times.length - 1] > budget) break
    times.push(timeSync(run))
  }
  return times
}

function forwardSync(model: PixelCNNModel, x: tf.Tensor4D): void {
  const y = forward(model, x)
  y.dataSync()
  y.dispose()
}

interface ForwardResult { seconds: number; reps: number[]; warmup: string }

function measureForward(model: PixelCNNModel, budget: number): ForwardResult {
  const started = now()
  const x1 = randomImages(1, 1)
  const x81 = randomImages(SAMPLE_COUNT, 2)
  const pilot = timeSync(() => forwardSync(model, x1)) // warms every kernel and the JIT
  let warmup = 'one pass at batch 1'
  if (pilot * SAMPLE_COUNT <= budget / 6) {
    forwardSync(model, x81)
    warmup += ` and one at batch ${SAMPLE_COUNT}`
  }
  const reps = repeat(() => forwardSync(model, x81), budget, started, 7)
  x1.dispose()
  x81.dispose()
  return { seconds: median(reps), reps, warmup }
}

interface TrainRow {
  value: number | null
  batch: number
  note: string
  stepSeconds: number[]
  /** The exact message of the error that stopped this row, if one did. */
  error?: string
}

interface StepProbe { seconds: number; peakBytes: number }

async function profiledStep(model: PixelCNNModel, optimizer: tf.Optimizer, batch: number, mode: GradMode): Promise<StepProbe> {
  const x = randomImages(batch, 100 + batch)
  try {
    const t0 = now()
    const info = await tf.profile(() => { trainStep(model, optimizer, x, mode) })
    return { seconds: now() - t0, peakBytes: info.peakBytes }
  } finally {
    x.dispose()
  }
}

/** One training step at `batch` in a child process, so that running out of wasm memory cannot poison this process's backend. */
function probeInChild(backend: string, batch: number, mode: GradMode): { ok: boolean; seconds?: number; error?: string } {
  const child = spawnSync(process.execPath, [...process.execArgv, __filename, '--backend', backend, '--probe-train', String(batch), '--mode', mode], {
    encoding: 'utf8', timeout: 300_000, maxBuffer: 16 * MIB,
  })
  const last = child.stdout.trim().split('\n').pop() ?? ''
  try {
    return JSON.parse(last)
  } catch {
    const stderrTail = child.stderr.trim().split('\n').slice(-3).join(' | ')
    return { ok: false, error: `child exited (status ${child.status}, signal ${child.signal}): ${stderrTail}` }
  }
}

function errorMessage(error: unknown): string {
  if (error instanceof Error) return error.message
  if (typeof error === 'object' && error !== null && 'message' in error) return String((error as { message: unknown }).message)
  return String(error)
}

async function measureTrain(model: PixelCNNModel, backend: 'cpu' | 'wasm', mode: GradMode, budget: number): Promise<TrainRow> {
  const started = now()
  const optimizer = makeOptimizer()
  // Pilot at batch 1: warms up, and predicts time and tensor memory per image.
  let p1: StepProbe
  try {
    p1 = await profiledStep(model, optimizer, 1, mode)
  } catch (error) {
    const message = errorMessage(error)
    return {
      value: null, batch: 1, stepSeconds: [], error: message,
      note: `failed: ${message}${/not registered/.test(message) ? ' (a missing kernel: fails the same at any batch size, batch 128 included)' : ''}`,
    }
  }
  let secondsPerImage = p1.seconds
  let bytesPerImage = p1.peakBytes
  let fixedBytes = 0
  if (2 * p1.seconds <= budget / 6) {
    const p2 = await profiledStep(model, optimizer, 2, mode)
    secondsPerImage = p2.seconds / 2
    bytesPerImage = Math.max(p2.peakBytes - p1.peakBytes, 1)
    fixedBytes = Math.max(p1.peakBytes - bytesPerImage, 0)
  }
  const memoryCap = backend === 'wasm' ? WASM_TENSOR_BYTES_CAP : os.totalmem() / 2
  const fitsTime = (b: number) => b * secondsPerImage <= budget / 3
  const fitsMemory = (b: number) => fixedBytes + b * bytesPerImage <= memoryCap
  let batch = 1
  for (let b = SEED_BATCH; b >= 1; b >>= 1) {
    if (b === 1 || (fitsTime(b) && fitsMemory(b))) { batch = b; break }
  }

  const notes: string[] = []
  if (batch < SEED_BATCH) {
    const why: string[] = []
    if (!fitsTime(SEED_BATCH)) why.push(`a batch-${SEED_BATCH} step is predicted to take ${(SEED_BATCH * secondsPerImage).toFixed(0)} s (${secondsPerImage.toFixed(2)} s per image), over a third of the ${budget} s budget`)
    if (!fitsMemory(SEED_BATCH)) {
      why.push(`a batch-${SEED_BATCH} step is predicted to need ${((fixedBytes + SEED_BATCH * bytesPerImage) / 2 ** 30).toFixed(1)} GiB of tensors` +
        (backend === 'wasm' ? ', more than the wasm backend\'s 4 GiB heap' : ''))
      if (backend === 'wasm') {
        log(`  ${mode}: trying one step at batch ${SEED_BATCH} in a child process…`)
        const probe = probeInChild(backend, SEED_BATCH, mode)
        why.push(probe.ok
          ? `yet a batch-${SEED_BATCH} step ran in a child process (${probe.seconds?.toFixed(1)} s)`
          : `a batch-${SEED_BATCH} step run in a child process failed: ${JSON.stringify(probe.error)}`)
      }
    }
    notes.push(`batch ${batch}, not ${SEED_BATCH}: ${why.join('; ')}`)
  }

  const x = randomImages(batch, 200 + batch)
  const step = () => { trainStep(model, optimizer, x, mode) }
  let first: number[] = []
  if (batch === 1 && p1.seconds > budget / 6) {
    first = [p1.seconds] // the pilot step is the first repetition: one more would not fit
    notes.push('the pilot step (profiled, the first at this batch) counts as a repetition')
  } else if (batch * secondsPerImage <= budget / 6) {
    step() // warm-up at the measured batch
  } else {
    notes.push(`no warm-up step at batch ${batch} (the batch-1 and batch-2 pilot steps warmed up the kernels)`)
  }
  const reps = repeat(step, budget, started, 5, first)
  x.dispose()
  const seconds = median(reps)
  return { value: batch / seconds, batch, note: notes.join('; '), stepSeconds: reps }
}

async function setUpBackend(backend: 'cpu' | 'wasm'): Promise<{ threads: number; threadsNote: string }> {
  if (backend === 'wasm') tfwasm.setThreadsCount(os.cpus().length) // must precede setBackend
  if (!(await tf.setBackend(backend))) throw new Error(`tf.setBackend(${JSON.stringify(backend)}) failed`)
  await tf.ready()
  if (backend === 'wasm') {
    const threads = tfwasm.getThreadsCount()
    return {
      threads,
      threadsNote: `setThreadsCount(${os.cpus().length}) requested; tf.wasm getThreadsCount() = ${threads}: in Node the wasm backend loads its single-threaded SIMD build (WASM_HAS_MULTITHREAD_SUPPORT is false under IS_NODE)`,
    }
  }
  return { threads: 1, threadsNote: 'the cpu backend runs plain JavaScript kernels on the main thread' }
}

/** --probe-train: one training step, outcome as JSON on the last stdout line. */
async function probeMain(args: Args): Promise<void> {
  let result: { ok: boolean; seconds?: number; error?: string }
  try {
    await setUpBackend(args.backend)
    const model = buildModel(0)
    const x = randomImages(args.probeTrain!, 300)
    const seconds = timeSync(() => { trainStep(model, makeOptimizer(), x, args.mode) })
    result = { ok: true, seconds }
  } catch (error) {
    result = { ok: false, error: errorMessage(error) }
  }
  process.stdout.write(`${JSON.stringify(result)}\n`)
  process.exit(0) // an aborted wasm module may keep the event loop alive
}

async function main(): Promise<void> {
  const args = parseArgs(process.argv.slice(2))
  if (args.probeTrain !== null) return probeMain(args)
  const budget = budgetSeconds()
  const runStarted = now()
  const cpus = os.cpus()
  const machine = `${cpus[0]?.model ?? 'unknown CPU'}, ${cpus.length} cores, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB; Node ${process.version}`
  const { threads, threadsNote } = await setUpBackend(args.backend)
  log(`tfjs ${tf.version.tfjs}, backend ${tf.getBackend()} (${threadsNote}); budget ${budget} s per measurement; ${machine}`)

  const model = buildModel(0)
  const count = parameterCount(model)
  if (count !== SEED_PARAMETER_COUNT) throw new Error(`parameter count ${count} != ${SEED_PARAMETER_COUNT}`)
  log(`model: the seed PixelCNN, ${count.toLocaleString('en')} parameters (asserted)`)

  log('(a) forward pass, batch 81…')
  const fwd = measureForward(model, budget)
  const rssAfterForward = rssMiB()
  log(`    ${fwd.seconds.toFixed(3)} s (median of ${fwd.reps.length})`)

  log('(c) naive sampling, batch 81…')
  const pixels = Math.max(1, Math.min(10, Math.floor(budget / fwd.seconds)))
  const sample = sampleNaive(model, SAMPLE_COUNT, 0, pixels)
  const perPixel = median(sample.pixelSeconds)
  const sampleSeconds = perPixel * HEIGHT * WIDTH
  const rssAfterSample = rssMiB()
  log(`    ${perPixel.toFixed(3)} s per pixel over ${sample.pixels} pixel(s) → ${sampleSeconds.toFixed(0)} s for 784 (extrapolated)`)

  log('(b) training, workaround gradients…')
  const workaround = await measureTrain(model, args.backend, 'workaround', budget)
  log(`    ${workaround.value?.toFixed(3)} images/s at batch ${workaround.batch} (${workaround.stepSeconds.length} step(s))`)
  log('(b) training, stock gradients…')
  const stock = await measureTrain(model, args.backend, 'stock', budget)
  log(`    ${stock.value === null ? stock.note : `${stock.value.toFixed(4)} images/s at batch ${stock.batch} (${stock.stepSeconds.length} step(s))`}`)
  const peakRss = rssMiB()
  const elapsed = now() - runStarted

  const fmt = (s: number[]) => s.map((v) => v.toFixed(2)).join(', ')
  const lines = [
    `tfjs ${tf.version.tfjs} baseline, backend ${args.backend}, threads ${threads} — ${machine}`,
    `seed PixelCNN, ${count.toLocaleString('en')} parameters; budget ${budget} s per measurement; total ${elapsed.toFixed(0)} s`,
    '',
    '| measurement | value | repetitions | notes |',
    '|---|---:|---:|---|',
    `| forward pass, batch 81 | ${fwd.seconds.toFixed(3)} s | ${fwd.reps.length} | s: ${fmt(fwd.reps)}; warm-up: ${fwd.warmup} |`,
    `| train, stock tfjs gradients | ${stock.value === null ? 'fails' : `${stock.value.toFixed(4)} images/s`} | ${stock.stepSeconds.length} | batch ${stock.batch}${stock.stepSeconds.length ? `; step s: ${fmt(stock.stepSeconds)}` : ''}${stock.note ? `; ${stock.note}` : ''} |`,
    `| train, workaround (customGrad conv gradients) | ${workaround.value === null ? 'fails' : `${workaround.value.toFixed(3)} images/s`} | ${workaround.stepSeconds.length} | batch ${workaround.batch}; step s: ${fmt(workaround.stepSeconds)}${workaround.note ? `; ${workaround.note}` : ''} |`,
    `| naive sampling, 81 images (extrapolated) | ${sampleSeconds.toFixed(0)} s | ${sample.pixels} pixel(s) | 784 × median ${perPixel.toFixed(3)} s per pixel (one full forward pass each) |`,
    `| peak RSS | ${peakRss.toFixed(0)} MiB | | after forward ${rssAfterForward.toFixed(0)} MiB, after sampling ${rssAfterSample.toFixed(0)} MiB |`,
    '',
    `threads: ${threadsNote}`,
  ]
  console.log(lines.join('\n'))

  if (args.json) {
    const result = {
      backend: args.backend,
      threads,
      forwardSeconds81: fwd.seconds,
      trainImagesPerSecond: {
        stock: { value: stock.value, batch: stock.batch, note: stock.note, steps: stock.stepSeconds.length, error: stock.error },
        workaround: { value: workaround.value, batch: workaround.batch, note: workaround.note, steps: workaround.stepSeconds.length, error: workaround.error },
      },
      sample81Seconds: { value: sampleSeconds, extrapolatedFromPixels: sample.pixels },
      peakRssMiB: peakRss,
      parameterCount: count,
      tfjsVersion: tf.version.tfjs,
      forwardRepetitions: fwd.reps.length,
      budgetSeconds: budget,
      totalSeconds: elapsed,
      machine,
      threadsNote,
    }
    console.log(JSON.stringify(result))
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
