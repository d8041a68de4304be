/**
 * `npm run bench:sample`: the reference sampler (one full forward pass per
 * pixel, the seed's loop) against the fast incremental sampler, on one
 * trained seed-preset model, in one process, plus the time of one forward
 * pass at the same batch so that the fast sampler's cost reads as "N passes".
 *
 * PIXELCNN_BENCH_MODEL: a checkpoint to use (e.g. demo-model.safetensors from
 * `npm run demo`); without it a seed-preset model is trained for 30 steps on
 * the bundled digits first (sampling cost does not depend on the weights'
 * values, but samples from a trained model are what users run).
 * PIXELCNN_BENCH_PRESET: the preset to train when no checkpoint is given (`seed` or `gated`).
 */

import { existsSync } from 'node:fs'
import { loadMnist, PixelCNN, sliceImages } from '../src/index'
import { describeMachine } from './machine'
import { median, timeIt } from './timing'

const COUNT = 81
const REPEATS = 3

async function trainedModel(): Promise<[PixelCNN, string]> {
  const file = process.env.PIXELCNN_BENCH_MODEL ?? (process.env.PIXELCNN_BENCH_PRESET ? '' : 'demo-model.safetensors')
  if (existsSync(file)) return [await PixelCNN.load(file, { device: 'cpu' }), file]
  const data = await loadMnist()
  const preset = (process.env.PIXELCNN_BENCH_PRESET ?? 'seed') as 'seed' | 'gated'
  const model = await PixelCNN.train({ data: { train: sliceImages(data.train, 0, 30 * 128) }, model: { preset }, epochs: 1, learningRate: 1e-3, seed: 7, device: 'cpu' })
  return [model, `${preset} preset trained 30 steps on bundled MNIST`]
}

async function main() {
  console.log(`machine: ${describeMachine()}`)
  const [model, source] = await trainedModel()
  console.log(`model: ${source} (${model.parameterCount.toLocaleString('en')} parameters)`)
  const images = sliceImages((await loadMnist()).test, 0, COUNT)

  await model.predict(images) // warm-up
  await model.sample({ count: COUNT, seed: 0 })
  const forwardTimes: number[] = []
  for (let i = 0; i < 5; i++) forwardTimes.push(await timeIt(() => model.predict(images)))
  const forward = median(forwardTimes)
  const fastTimes: number[] = []
  for (let i = 0; i < REPEATS; i++) fastTimes.push(await timeIt(() => model.sample({ count: COUNT, seed: i })))
  const fast = median(fastTimes)
  // One image: the same 784 steps with almost no arithmetic, i.e. the per-step overhead.
  const oneTimes: number[] = []
  for (let i = 0; i < REPEATS; i++) oneTimes.push(await timeIt(() => model.sample({ count: 1, seed: i })))
  const one = median(oneTimes)
  console.log(`fast sampler: ${fastTimes.map((s) => s.toFixed(2)).join(', ')} s; running the reference loop once (${model.config.height * model.config.width} forward passes)…`)
  const reference = await timeIt(() => model.sample({ count: COUNT, seed: 0, method: 'reference' }))

  const rows = [
    ['one forward pass (predict)', forward, '1'],
    ['reference sampler', reference, (reference / forward).toFixed(0)],
    ['fast sampler', fast, (fast / forward).toFixed(2)],
  ] as const
  const overhead = `fast sampler, 1 image (per-step overhead): ${one.toFixed(3)} s = ${((one / fast) * 100).toFixed(0)}% of the 81-image time, ${((one / 784) * 1e6).toFixed(0)} µs per pixel step`
  console.log(`\n${COUNT} images, batch ${COUNT}, CPU`)
  console.log('| what | seconds | images/s | forward passes of work |')
  console.log('|---|---:|---:|---:|')
  for (const [what, seconds, passes] of rows) {
    console.log(`| ${what} | ${seconds.toFixed(3)} | ${what.startsWith('one') ? '–' : (COUNT / seconds).toFixed(1)} | ${passes} |`)
  }
  console.log(`\n${overhead}`)
  console.log(`fast sampler vs reference loop: ${(reference / fast).toFixed(0)}× faster`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
