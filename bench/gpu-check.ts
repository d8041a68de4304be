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
 *   training images/s of both presets, sampling 10,000 images.
 * Prints JSON on the last line. `--quick` shrinks the work for a CPU dry run.
 */
import { PixelCNN } from '../src/model'
import { randomImages } from '../__test__/support/images'
import { median, timeIt } from './timing'

const args = process.argv.slice(2)
const device = args[args.indexOf('--device') + 1] ?? 'cuda'
const quick = args.includes('--quick')

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
  console.log(JSON.stringify(result))
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
