/**
 * The time of every training step as the demo's progress shows it (issue 24,
 * item 4: "the first step after each validation is slow"): a 3-epoch fit of
 * the seed preset on the first 2,560 bundled digits, validated on the 997
 * held-out ones after each epoch, printing the seconds between consecutive
 * step events and the epoch's running images/s.
 *
 * usage: node --import tsx bench/first-step.ts [precision=fp32]
 */

import { loadMnist, PixelCNN, sliceImages, type Precision } from '../src/index'
import { DEMO_RECIPE } from '../src/demo-recipe'
import { describeMachine } from './machine'

async function main() {
  const precision = (process.argv[2] ?? 'fp32') as Precision
  const all = await loadMnist()
  const data = { train: sliceImages(all.train, 0, 2560), test: all.test }
  console.log(`${describeMachine()}; precision ${precision}`)
  let last = performance.now()
  await PixelCNN.train({
    data, ...DEMO_RECIPE, epochs: 3, precision, device: 'cpu',
    onProgress: (e) => {
      const now = performance.now()
      const seconds = ((now - last) / 1000).toFixed(2)
      last = now
      if (e.type === 'step') console.log(`epoch ${e.epoch} step ${e.step}: ${seconds} s since the last event, ${e.imagesPerSecond.toFixed(1)} images/s so far`)
      else if (e.type === 'epoch') console.log(`epoch ${e.epoch} ended (validation included): ${seconds} s since the last step`)
    },
  })
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
