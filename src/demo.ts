/**
 * `npm run demo`: trains the seed PixelCNN on the bundled MNIST digits, saves
 * demo-model.safetensors, then writes training-curve.png, samples.png (81
 * digits, like the seed's figure 2) and completions.png (test digits with the
 * bottom half hidden, completed 5 times).
 *
 * Environment:
 * - PIXELCNN_DEMO_EPOCHS: epochs to train (default 10).
 * - PIXELCNN_DEMO_OUT: the output folder (default .), created if missing.
 * - PIXELCNN_DEMO_LIMIT: train on only the first N training digits and
 *   validate on the first ⌈N / 10⌉ test digits (at least 8, for the
 *   completions); default all of them. For quick runs and the tests.
 *
 * The output folder and every file in it are checked before training, so a
 * bad PIXELCNN_DEMO_OUT is refused in a second rather than after the
 * training; the model is saved before any picture is drawn, so a picture
 * that cannot be written (reported, exit status 1) never costs the model.
 */

import * as path from 'node:path'
import { completionGrid } from './completion-grid'
import { DEMO_RECIPE } from './demo-recipe'
import { ConfigError, PixelCNNError } from './errors'
import { loadMnist, PixelCNN, sliceImages, writeImageGrid, writeTrainingCurve } from './index'
import { checkOutputFiles } from './output-paths'

/** A positive integer from the environment, or `fallback` when unset. */
function positiveInteger(name: string, fallback: number): number {
  const raw = process.env[name]
  if (raw === undefined || raw === '') return fallback
  const value = Number(raw)
  if (!Number.isInteger(value) || value < 1) throw new ConfigError(`${name} must be a positive integer, got ${JSON.stringify(raw)}`)
  return value
}

const MODEL = 'demo-model.safetensors'
const PICTURES = ['training-curve.png', 'samples.png', 'completions.png'] as const

async function main(): Promise<number> {
  const started = performance.now()
  const epochs = positiveInteger('PIXELCNN_DEMO_EPOCHS', 10)
  const limit = positiveInteger('PIXELCNN_DEMO_LIMIT', Number.POSITIVE_INFINITY)
  // Before anything slow: the folder exists (made if missing) and takes files, and no output is a folder.
  const outDir = path.resolve(process.env.PIXELCNN_DEMO_OUT || '.')
  const out = (file: string) => path.join(outDir, file)
  await checkOutputFiles([MODEL, ...PICTURES].map((file) => ({ file: out(file), what: 'PIXELCNN_DEMO_OUT: the demo output' })))

  const all = await loadMnist()
  const data = {
    train: sliceImages(all.train, 0, limit),
    test: sliceImages(all.test, 0, Math.max(8, Math.ceil(limit / 10))),
  }
  console.log(`MNIST (bundled): ${data.train.count} training and ${data.test.count} test digits, binarized at 0.33 × 256`)
  const model = await PixelCNN.train({
    // The seed network is unconditional: it takes the images without their labels.
    data,
    ...DEMO_RECIPE,
    epochs,
    onProgress: (e) => {
      if (e.type === 'step') {
        process.stdout.write(`\repoch ${e.epoch}/${epochs}  step ${e.step}/${e.stepsPerEpoch}  loss ${e.loss === null ? "not finite (skipped)" : e.loss.toFixed(4)}  ${e.imagesPerSecond.toFixed(1)} images/s   `)
      } else if (e.type === 'epoch') {
        process.stdout.write(`\repoch ${e.epoch}/${epochs}  train ${e.trainLoss.toFixed(4)}  val ${e.valLoss?.toFixed(4)}  ${e.seconds.toFixed(0)} s  ${e.imagesPerSecond.toFixed(1)} images/s\n`)
      }
    },
  })
  console.log(`model: seed preset, ${model.parameterCount.toLocaleString('en')} parameters, on ${model.device}`)
  // The training is the expensive part: keep it before anything optional can fail.
  await model.save(out(MODEL))
  // Printed once the file is on disk: the tests block a picture on this line.
  console.log(`saved the model to ${out(MODEL)}`)

  const { natsPerImage, bitsPerDim } = await model.evaluate(data.test)
  console.log(`test: ${natsPerImage.toFixed(2)} nats per image, ${bitsPerDim.toFixed(4)} bits per dimension`)

  // Each picture is tried even when an earlier one failed; the failures are reported at the end.
  const failed: string[] = []
  const picture = async (file: (typeof PICTURES)[number], draw: () => Promise<void>) => {
    try {
      await draw()
    } catch (error) {
      failed.push(file)
      console.error(`could not write ${file}: ${(error as Error).message}`)
    }
  }

  await picture('training-curve.png', () => writeTrainingCurve(model.history, out('training-curve.png'), { title: 'seed preset, bundled MNIST' }))

  await picture('samples.png', async () => {
    const t = performance.now()
    const samples = await model.sample({ count: 81, seed: 1, temperature: 1 })
    console.log(`sampled 81 digits in ${((performance.now() - t) / 1000).toFixed(2)} s (fast sampler)`)
    await writeImageGrid(samples, out('samples.png'), { columns: 9, scale: 4 })
  })

  await picture('completions.png', async () => {
    const digits = 8
    const repeats = 5
    const rows = 14
    const t = performance.now()
    const grid = await completionGrid(model, sliceImages(data.test, 0, digits), { rows, repeats, seed: 2 })
    console.log(`completed ${digits} test digits ${repeats} times each from their top ${rows} rows in ${((performance.now() - t) / 1000).toFixed(2)} s`)
    await writeImageGrid(grid, out('completions.png'), { columns: repeats + 2, scale: 4 })
  })

  const written = PICTURES.filter((file) => !failed.includes(file))
  console.log(`wrote ${[...written, MODEL].join(', ')} in ${outDir}`)
  console.log(`total ${((performance.now() - started) / 1000).toFixed(0)} s`)
  if (failed.length === 0) return 0
  console.error(`${MODEL} was saved in ${outDir}, but ${failed.join(', ')} could not be written (see above)`)
  return 1
}

main().then(
  (code) => process.exit(code),
  (error) => {
    // A typed error (a refused output folder, a bad setting) reads best as its one-line message.
    console.error(error instanceof PixelCNNError ? `demo: ${error.name}: ${error.message}` : error)
    process.exit(1)
  },
)
