/**
 * Resource stability: 1,000 predict and sample calls in a loop on one model,
 * printing the resident set size every 100 calls. Memory must stay flat
 * (within 10% after warm-up). A benchmark-style script, not a timed test:
 * `node --import tsx bench/rss.ts`.
 */
import { PixelCNN } from '../src/index'
import { randomImages } from '../__test__/support/images'

async function main() {
  const model = PixelCNN.create({ preset: 'small', device: 'cpu' })
  const images = randomImages(16, 28, 28, 1)
  const rss = () => process.memoryUsage().rss / 2 ** 20
  const curve: number[] = []
  for (let i = 1; i <= 1000; i++) {
    if (i % 2) await model.predict(images)
    else await model.sample({ count: 2, seed: i })
    if (i % 100 === 0) {
      curve.push(rss())
      console.log(`${String(i).padStart(5)} calls  RSS ${curve.at(-1)!.toFixed(1)} MiB`)
    }
  }
  const warm = curve[1]
  const drift = (curve.at(-1)! - warm) / warm
  console.log(`RSS after warm-up (200 calls) ${warm.toFixed(1)} MiB, after 1000 calls ${curve.at(-1)!.toFixed(1)} MiB: drift ${(drift * 100).toFixed(1)}%`)
  if (Math.abs(drift) > 0.1) process.exitCode = 1
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
