/**
 * `npm run bench:distributed`: data-parallel training on one machine through
 * the Node API (`fit({ distributed })`, c10d Gloo on 127.0.0.1), the same
 * global batch throughout:
 *
 * 1. one process, every core's worth of threads (2 on a 2-core machine);
 * 2. two processes in a Gloo group, threads split between them (1 each);
 * 3. the same two processes without a group, each on half the batch: the
 *    compute of (2) under the same contention, without the all-reduce; (2)
 *    minus (3) is what the group costs per step (the all-reduce and the wait
 *    for the slower rank);
 * 4. an all-reduce-only path: the same network (its parameters do not depend
 *    on the image size) on 8×8 images with one image per rank, in a group of
 *    two and alone; the difference per step is the all-reduce of the whole
 *    gradient (plus flattening it into one buffer and back).
 *
 * The core does not time its collectives itself; (3) and (4) measure them
 * from outside. Each process runs in its own Node process, spawned from this
 * file (`… bench/distributed.ts worker JSON`), and prints a JSON line.
 *
 * PIXELCNN_BENCH_PRESETS (comma-separated, default `seed,gated`: 532,673 and
 * 553,793 parameters, 2.1 and 2.2 MB of fp32 gradients), PIXELCNN_BENCH_BATCH
 * (global batch, default 64), PIXELCNN_BENCH_TRAIN_STEPS (steps per timed
 * `fit`, default 3), PIXELCNN_BENCH_REPEATS (timed `fit` calls, default 3).
 */

import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { availableParallelism } from 'node:os'
import { type DistributedOptions, type ModelOptions, PixelCNN } from '../src/index'
import { randomImages } from '../__test__/support/images'
import { describeMachine } from './machine'
import { median, timeIt } from './timing'

type Preset = NonNullable<ModelOptions['preset']>
const PRESETS = (process.env.PIXELCNN_BENCH_PRESETS ?? 'seed,gated').split(',').filter(Boolean) as Preset[]
const BATCH = Number(process.env.PIXELCNN_BENCH_BATCH ?? 64)
const STEPS = Number(process.env.PIXELCNN_BENCH_TRAIN_STEPS ?? 3)
const REPEATS = Number(process.env.PIXELCNN_BENCH_REPEATS ?? 3)
/** Steps per timed `fit` on the all-reduce-only path (cheap steps, so more of them). */
const PROBE_STEPS = 50

interface Job {
  preset: Preset
  size: number
  batch: number
  steps: number
  threads: number
  distributed?: DistributedOptions
}

interface Result {
  secondsPerStep: number
  parameterCount: number
}

/** One process: a warm-up `fit` (which also joins the group), then REPEATS timed ones. */
async function worker(job: Job): Promise<Result> {
  const model = PixelCNN.create({ preset: job.preset, height: job.size, width: job.size, device: 'cpu', seed: 0 })
  const data = { train: randomImages(job.batch * job.steps, job.size, job.size, 1) }
  const fit = { data, epochs: 1, batchSize: job.batch, threads: job.threads, distributed: job.distributed, seed: 0 }
  await model.fit({ ...fit, data: { train: randomImages(job.batch * 2, job.size, job.size, 2) } })
  const times: number[] = []
  for (let i = 0; i < REPEATS; i++) times.push(await timeIt(() => model.fit(fit)))
  return { secondsPerStep: median(times) / job.steps, parameterCount: model.parameterCount }
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

function spawnWorker(job: Job): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [...process.execArgv, __filename, 'worker', JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    child.stdout.on('data', (c: Buffer) => (out += c))
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`a worker (${JSON.stringify(job)}) exited with status ${code}`))
      resolve(JSON.parse(out.trim().split('\n').pop()!) as Result)
    })
  })
}

/** `jobs` at once; the slowest process's time per step. */
async function together(name: string, jobs: Job[]): Promise<Result> {
  process.stderr.write(`running ${name}…\n`)
  const started = Date.now()
  const results = await Promise.all(jobs.map(spawnWorker))
  process.stderr.write(`  ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
  return { secondsPerStep: Math.max(...results.map((r) => r.secondsPerStep)), parameterCount: results[0].parameterCount }
}

async function group(jobs: Omit<Job, 'distributed'>[]): Promise<Job[]> {
  const masterPort = await freePort()
  return jobs.map((job, rank) => ({ ...job, distributed: { rank, worldSize: jobs.length, masterAddr: '127.0.0.1', masterPort } }))
}

const ms = (seconds: number) => `${(seconds * 1000).toFixed(1)} ms`

async function main() {
  console.log(`machine: ${describeMachine()}`)
  for (const preset of PRESETS) await compare(preset)
}

/** The four runs for one network, and what they say. */
async function compare(preset: Preset) {
  const cores = availableParallelism()
  const half = Math.max(1, Math.floor(cores / 2))
  console.log('')
  console.log(`network: ${preset} preset, 28×28 random binary images, global batch ${BATCH}, ${STEPS} steps per timed fit, median of ${REPEATS} fits`)
  const job = (size: number, batch: number, steps: number, threads: number): Job => ({ preset, size, batch, steps, threads })
  const one = await together(`${preset}: 1 process, ${cores} threads`, [job(28, BATCH, STEPS, cores)])
  const two = await together(`${preset}: 2 processes in a Gloo group, ${half} thread(s) each`, await group([0, 1].map(() => job(28, BATCH, STEPS, half))))
  const apart = await together(`${preset}: 2 processes without a group, ${BATCH / 2} images each`, [0, 1].map(() => job(28, BATCH / 2, STEPS, half)))
  const probeGroup = await together(`${preset}: all-reduce probe, 2 processes in a group, 8×8, 1 image each`, await group([0, 1].map(() => job(8, 2, PROBE_STEPS, half))))
  const probeAlone = await together(`${preset}: all-reduce probe, 1 process, 8×8, 1 image`, [job(8, 1, PROBE_STEPS, half)])

  const parameters = one.parameterCount
  if (probeGroup.parameterCount !== parameters) throw new Error(`the probe's network has ${probeGroup.parameterCount} parameters, not ${parameters}`)
  // One flattened fp32 buffer per step: the gradients and the weighted loss.
  const bytes = (parameters + 1) * 4
  const rate = (r: Result) => BATCH / r.secondsPerStep
  const allReduce = probeGroup.secondsPerStep - probeAlone.secondsPerStep
  const rows = [
    ['1 process', `${cores} threads`, rate(one), one.secondsPerStep],
    ['2 processes, Gloo group', `${half} each`, rate(two), two.secondsPerStep],
    ['2 processes, no group (compute only)', `${half} each`, rate(apart), apart.secondsPerStep],
  ] as const
  console.log('')
  console.log('| run | threads | images/s | seconds per step |')
  console.log('|---|---|---:|---:|')
  for (const [name, threads, imagesPerSecond, seconds] of rows) console.log(`| ${name} | ${threads} | ${imagesPerSecond.toFixed(2)} | ${seconds.toFixed(3)} |`)
  console.log('')
  console.log(`ratio, 2 processes in a group / 1 process: ${(rate(two) / rate(one)).toFixed(3)}`)
  console.log(`what the group costs per step (group − no group, same batch shares): ${ms(two.secondsPerStep - apart.secondsPerStep)}`)
  console.log(`all-reduce per step, probe (8×8, 1 image per rank; group − alone): ${ms(allReduce)} (group ${ms(probeGroup.secondsPerStep)}, alone ${ms(probeAlone.secondsPerStep)} per step)`)
  console.log(`all-reduced per step: at most ${bytes.toLocaleString('en')} bytes (${(bytes / 2 ** 20).toFixed(2)} MiB: ${parameters.toLocaleString('en')} fp32 gradients + the loss; parameters without a gradient stay out) against a model of ${(parameters * 4).toLocaleString('en')} bytes of fp32 weights; plus one broadcast of the weights per fit call`)
  console.log(`effective all-reduce throughput on 127.0.0.1: ${allReduce > 0 ? `${((bytes / allReduce) / 1e9 * 8).toFixed(2)} Gbit/s of buffer` : '–'}`)
}

if (process.argv[2] === 'worker') {
  worker(JSON.parse(process.argv[3]) as Job)
    .then((result) => console.log(JSON.stringify(result)))
    .catch((error) => {
      console.error(error)
      process.exit(1)
    })
} else {
  main().catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
