/**
 * Seconds per training step at batch 128 through the Node API, per `fit` of
 * `steps` steps (with the call's overhead), repeated: how the allocator
 * settings of crates/pixelcnn-core/src/runtime/allocator.rs show. Run it under
 * /usr/bin/time -v for peak RSS and system time, with and without
 * PIXELCNN_CPU_CACHE=off and PIXELCNN_MALLOC=default.
 *
 * usage: node --import tsx bench/fit-steps.ts [preset=gated] [fits=4] [steps=1]
 */

import { PixelCNN } from '../src/index'
import { randomImages } from '../__test__/support/images'

async function main() {
  const preset = (process.argv[2] ?? 'gated') as 'seed' | 'gated'
  const fits = Number(process.argv[3] ?? 4)
  const model = PixelCNN.create({ preset, device: 'cpu', seed: 0 })
  const steps = Number(process.argv[4] ?? 1)
  const train = { train: randomImages(128 * steps, 28, 28, 1) }
  for (let i = 0; i < fits; i++) {
    const started = performance.now()
    await model.fit({ data: train, epochs: 1, batchSize: 128 })
    console.log(`fit ${i + 1}: ${((performance.now() - started) / 1000 / steps).toFixed(3)} s per step`)
  }
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
