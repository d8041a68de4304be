/**
 * The inference batch split (crates/pixelcnn-core/src/training/batch_split.rs,
 * `map_in_parts`) against the whole batch on every thread, alternating in one
 * process so that the machine's drift hits both alike: `predict` of 81 images
 * (seed and gated presets) and `logProbs` of 64 CIFAR-shaped images, fp32
 * and, where the CPU has native bf16, bf16. Prints medians and ratios.
 *
 * usage: node --import tsx bench/inference-split.ts [pairs]
 */
import { libtorchInfo, PixelCNN } from '../src/index'
import { randomImages } from '../__test__/support/images'
import { CIFAR_BENCH_MODEL } from './cifar-model'
import { describeMachine } from './machine'
import { median, timeIt } from './timing'

const pairs = Number(process.argv[2] ?? 6)

function rgb(count: number): { count: number; height: number; width: number; channels: number; data: Uint8Array } {
  let state = 7
  const data = new Uint8Array(count * 32 * 32 * 3).map(() => (state = (state * 1103515245 + 12345) >>> 0) >>> 24)
  return { count, height: 32, width: 32, channels: 3, data }
}

async function main() {
  console.log(`machine: ${describeMachine()}`)
  const precisions = libtorchInfo().cpuBf16Native ? (['fp32', 'bf16'] as const) : (['fp32'] as const)
  const cases = [
    { name: 'seed, predict 81', model: PixelCNN.create({ preset: 'seed', device: 'cpu' }), run: (m: PixelCNN, precision: 'fp32' | 'bf16') => m.predict(randomImages(81, 28, 28, 1), { precision }) },
    { name: 'gated, predict 81', model: PixelCNN.create({ preset: 'gated', device: 'cpu' }), run: (m: PixelCNN, precision: 'fp32' | 'bf16') => m.predict(randomImages(81, 28, 28, 1), { precision }) },
    { name: 'CIFAR-shaped, logProbs 64', model: PixelCNN.create({ ...CIFAR_BENCH_MODEL, device: 'cpu' }), run: (m: PixelCNN, precision: 'fp32' | 'bf16') => m.logProbs(rgb(64), { precision }) },
  ]
  console.log('| network, call | precision | whole batch (s) | split (s) | whole ÷ split |')
  console.log('|---|---|---:|---:|---:|')
  for (const c of cases) {
    for (const precision of precisions) {
      const times: Record<'off' | 'on', number[]> = { off: [], on: [] }
      for (let i = 0; i <= pairs; i++) {
        for (const mode of i % 2 ? (['on', 'off'] as const) : (['off', 'on'] as const)) {
          process.env.PIXELCNN_INFERENCE_SPLIT = mode
          const t = await timeIt(() => c.run(c.model, precision))
          if (i > 0) times[mode].push(t) // the first pair warms both up
        }
      }
      const [off, on] = [median(times.off), median(times.on)]
      console.log(`| ${c.name} | ${precision} | ${off.toFixed(3)} | ${on.toFixed(3)} | ${(off / on).toFixed(2)}× |`)
    }
  }
}

main()
