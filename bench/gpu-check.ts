/**
 * The checks and measurements of scripts/gpu-check.sh, on one device:
 * - agreement, for the seed preset and a class-conditional gated preset: the
 *   same seeded model on the CPU and on `--device` gives per-pixel
 *   probabilities within 1e-4; the fast sampler agrees with the reference
 *   sampler on the device;
 * - speed, after warm-up (every timed call ends by copying results to the
 *   host, which waits for the device): training images/s of the seed preset at
 *   batch 128 and the implied 60,000-image epoch; fast sampling of 81 and of
 *   10,000 images;
 * - the same in bf16 mixed precision: probability difference from fp32,
 *   training images/s of both presets, sampling 10,000 images;
 * - PixelCNN++: CPU-vs-device log-probabilities, fast = reference sampling,
 *   training images/s (batch 16) and sampling 64 images of both presets at 32×32×3;
 * - data-parallel training over NCCL: the seed preset at global batch 128 in
 *   a group of 1 rank on the device, and of 2 ranks (cuda:0 and cuda:1, one
 *   process each) when the machine has 2 GPUs; each rank is a child process,
 *   so that a failure (or an NCCL abort) is a row of the table, not the end
 *   of the check. On `--device cpu` the 1-rank step records the DeviceError.
 * Prints JSON on the last line. `--quick` shrinks the work for a CPU dry run.
 */
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import { libtorchInfo } from '../src/info'
import { PixelCNN } from '../src/model'
import { randomImages } from '../__test__/support/images'
import { median, timeIt } from './timing'

const args = process.argv.slice(2)
const device = args[args.indexOf('--device') + 1] ?? 'cuda'
const quick = args.includes('--quick')

/** One rank of the NCCL step, run as a child process (`--nccl-rank <json>`). */
interface NcclRank { rank: number; worldSize: number; masterPort: number; device: string; steps: number }

async function ncclRank(job: NcclRank): Promise<{ seconds: number; loss: number }> {
  const model = PixelCNN.create({ preset: 'seed', device: job.device as never, seed: 1 })
  const distributed = { backend: 'nccl' as const, rank: job.rank, worldSize: job.worldSize, masterAddr: '127.0.0.1', masterPort: job.masterPort, timeoutSeconds: 120 }
  // Warm-up; it also joins the group, which the next fit with the same options reuses.
  await model.fit({ data: { train: randomImages(256, 28, 28, 8) }, epochs: 1, batchSize: 128, distributed })
  const train = { train: randomImages(128 * job.steps, 28, 28, 7) }
  const seconds = await timeIt(() => model.fit({ data: train, epochs: 1, batchSize: 128, distributed }))
  return { seconds, loss: model.history[model.history.length - 1].trainLoss }
}

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

/** Runs `jobs` as child processes at once; the ranks' results, or why the group failed. */
function ncclGroup(jobs: NcclRank[], limitSeconds: number): Promise<Record<string, unknown>> {
  return new Promise((resolve) => {
    const outcomes: { code: number | null; signal: string | null; out: string; err: string }[] = []
    const children = jobs.map((job) => {
      const child = spawn(process.execPath, [__filename, '--nccl-rank', JSON.stringify(job)], { stdio: ['ignore', 'pipe', 'pipe'] })
      const outcome = { code: null as number | null, signal: null as string | null, out: '', err: '' }
      child.stdout.on('data', (c: Buffer) => (outcome.out += c))
      child.stderr.on('data', (c: Buffer) => {
        outcome.err += c
        process.stderr.write(c)
      })
      child.on('close', (code, signal) => {
        Object.assign(outcome, { code, signal })
        outcomes.push(outcome)
        if (outcomes.length === jobs.length) finish()
      })
      return { child, outcome }
    })
    const timer = setTimeout(() => children.forEach(({ child }) => child.kill('SIGKILL')), limitSeconds * 1000)
    function finish() {
      clearTimeout(timer)
      const failed = children.map(({ outcome }, rank) => ({ rank, ...outcome })).filter((o) => o.code !== 0)
      if (failed.length > 0) {
        const why = (o: (typeof failed)[number]) => {
          const lines = o.err.trim().split('\n').filter((l) => /Error|error|failed|abort/i.test(l))
          return `rank ${o.rank}: ${o.signal ? `killed by ${o.signal}` : `exit ${o.code}`}${lines.length ? `: ${lines[0].slice(0, 300)}` : ''}`
        }
        return resolve({ error: failed.map(why).join('; ') })
      }
      const results = children.map(({ outcome }) => JSON.parse(outcome.out.trim().split('\n').pop()!) as { seconds: number; loss: number })
      const seconds = Math.max(...results.map((r) => r.seconds))
      resolve({ imagesPerSecond: (128 * jobs[0].steps) / seconds, seconds, losses: results.map((r) => r.loss) })
    }
  })
}

async function main() {
  const result: Record<string, unknown> = { device }
  // Agreement CPU vs device, for each architecture.
  for (const [name, options, labels] of [['', { preset: 'seed' }, undefined], ['gated', { preset: 'gated', classes: 10 }, [3, 1, 4, 1]]] as const) {
    const cpu = PixelCNN.create({ ...options, device: 'cpu', seed: 3 })
    const file = `${process.env.OUT ?? '/tmp'}/gpu-check-model${name}.safetensors`
    await cpu.save(file)
    const onDevice = await PixelCNN.load(file, { device: device as never })
    const images = randomImages(16, 28, 28, 5)
    const perImage = labels && Array.from({ length: 16 }, (_, i) => labels[i % 4])
    const [a, b] = [await cpu.predict(images, { labels: perImage }), await onDevice.predict(images, { labels: perImage })]
    result[`${name}predictMaxDiff`] = a.reduce((m, p, i) => Math.max(m, Math.abs(p - b[i])), 0)
    const fast = await onDevice.sample({ count: 4, seed: 9, labels })
    const reference = await onDevice.sample({ count: 4, seed: 9, method: 'reference', labels })
    result[`${name}fastEqualsReference`] = Buffer.compare(Buffer.from(fast.data), Buffer.from(reference.data)) === 0
  }

  // Training throughput.
  const model = PixelCNN.create({ preset: 'seed', device: device as never, seed: 1 })
  const steps = quick ? 2 : 20
  const train = { train: randomImages(128 * steps, 28, 28, 7) }
  await model.fit({ data: { train: randomImages(256, 28, 28, 8) }, epochs: 1, batchSize: 128 })
  const trainSeconds = median(await (async () => {
    const times: number[] = []
    for (let i = 0; i < (quick ? 1 : 3); i++) times.push(await timeIt(() => model.fit({ data: train, epochs: 1, batchSize: 128 })))
    return times
  })())
  result.trainImagesPerSecond = (128 * steps) / trainSeconds
  result.epochSeconds60k = 60_000 / (result.trainImagesPerSecond as number)
  const gated = PixelCNN.create({ preset: 'gated', device: device as never, seed: 1 })
  await gated.fit({ data: { train: randomImages(256, 28, 28, 8) }, epochs: 1, batchSize: 128 })
  result.gatedTrainImagesPerSecond = (128 * steps) / (await timeIt(() => gated.fit({ data: train, epochs: 1, batchSize: 128 })))

  // bf16 mixed precision on the device: agreement with fp32, training and sampling speed.
  try {
    const images = randomImages(16, 28, 28, 5)
    const [p32, p16] = [await model.predict(images), await model.predict(images, { precision: 'bf16' })]
    result.bf16PredictMaxDiff = p32.reduce((m, p, i) => Math.max(m, Math.abs(p - p16[i])), 0)
    const bf16 = PixelCNN.create({ preset: 'seed', device: device as never, seed: 1 })
    await bf16.fit({ data: { train: randomImages(256, 28, 28, 8) }, epochs: 1, batchSize: 128, precision: 'bf16' })
    result.bf16TrainImagesPerSecond = (128 * steps) / (await timeIt(() => bf16.fit({ data: train, epochs: 1, batchSize: 128, precision: 'bf16' })))
    const gatedBf16 = PixelCNN.create({ preset: 'gated', device: device as never, seed: 1 })
    await gatedBf16.fit({ data: { train: randomImages(256, 28, 28, 8) }, epochs: 1, batchSize: 128, precision: 'bf16' })
    result.bf16GatedTrainImagesPerSecond = (128 * steps) / (await timeIt(() => gatedBf16.fit({ data: train, epochs: 1, batchSize: 128, precision: 'bf16' })))
    const count = quick ? 256 : 10_000
    result.bf16SampleManySeconds = await timeIt(() => model.sample({ count, seed: 0, batchSize: count, precision: 'bf16' }))
  } catch (error) {
    result.bf16Error = (error as Error).message
  }

  for (const count of quick ? [81, 256] : [81, 10_000]) {
    await model.sample({ count: Math.min(count, 81), seed: 0, batchSize: count })
    const seconds = median(await (async () => {
      const times: number[] = []
      for (let i = 0; i < (quick || count > 81 ? 1 : 3); i++) times.push(await timeIt(() => model.sample({ count, seed: i, batchSize: count })))
      return times
    })())
    result[`sample${count}Seconds`] = seconds
    result[`sample${count}ImagesPerSecond`] = count / seconds
  }

  // PixelCNN++ (issue 22): agreement CPU vs device, fast = reference, training and sampling speed at 32×32×3.
  try {
    const colour = (count: number, seed: number) => {
      const images = randomImages(count, 32, 32 * 3, seed)
      return { ...images, width: 32, channels: 3, data: images.data.map((v, i) => (v * 199 + i * 7) % 256) }
    }
    const cpu = PixelCNN.create({ preset: 'pixelcnn++-small', device: 'cpu', seed: 3 })
    const file = `${process.env.OUT ?? '/tmp'}/gpu-check-pixelcnnpp.safetensors`
    await cpu.save(file)
    const onDevice = await PixelCNN.load(file, { device: device as never })
    const probe = colour(8, 5)
    const [a, b] = [await cpu.logProbs(probe, { precision: 'fp32' }), await onDevice.logProbs(probe, { precision: 'fp32' })]
    result.ppLogProbsMaxDiff = a.reduce((m, p, i) => Math.max(m, Math.abs(p - b[i])), 0)
    const small = PixelCNN.create({ preset: 'pixelcnn++-small', height: 8, width: 8, device: device as never, seed: 3 })
    const [fast, reference] = [await small.sample({ count: 4, seed: 9 }), await small.sample({ count: 4, seed: 9, method: 'reference' })]
    result.ppFastEqualsReference = Buffer.compare(Buffer.from(fast.data), Buffer.from(reference.data)) === 0
    for (const preset of ['pixelcnn++-small', 'pixelcnn++'] as const) {
      const key = preset === 'pixelcnn++' ? 'pp' : 'ppSmall'
      const net = PixelCNN.create({ preset, device: device as never, seed: 1 })
      const ppSteps = quick ? 2 : 10
      await net.fit({ data: { train: colour(32, 8) }, epochs: 1, batchSize: 16 })
      result[`${key}TrainImagesPerSecond`] = (16 * ppSteps) / (await timeIt(() => net.fit({ data: { train: colour(16 * ppSteps, 7) }, epochs: 1, batchSize: 16 })))
      result[`${key}Sample64Seconds`] = await timeIt(() => net.sample({ count: 64, seed: 0 }))
    }
  } catch (error) {
    result.ppError = (error as Error).message
  }

  // NCCL: 1 rank on the device, then 2 ranks on cuda:0 and cuda:1 where there are 2 GPUs.
  const gpus = device.startsWith('cuda') ? libtorchInfo().cudaDeviceCount : 0
  const limit = quick ? 120 : 300
  result.ncclWorld1 = await ncclGroup([{ rank: 0, worldSize: 1, masterPort: await freePort(), device, steps }], limit)
  if (gpus >= 2) {
    const masterPort = await freePort()
    // Each rank on its own GPU: the model's device is the rank's, and the NCCL shim makes it the process's current device.
    result.ncclWorld2 = await ncclGroup([0, 1].map((rank) => ({ rank, worldSize: 2, masterPort, device: `cuda:${rank}`, steps })), limit)
  } else {
    result.ncclWorld2 = { skipped: `${gpus} CUDA device(s) here; 2 ranks need 2 GPUs (NCCL refuses two ranks on one GPU)` }
  }
  console.log(JSON.stringify(result))
}

if (args[0] === '--nccl-rank') {
  ncclRank(JSON.parse(args[1]) as NcclRank)
    .then((r) => console.log(JSON.stringify(r)))
    .catch((error) => {
      console.error(`${(error as Error).name}: ${(error as Error).message}`)
      process.exit(1)
    })
} else {
  main().catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
