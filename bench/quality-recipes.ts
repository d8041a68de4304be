/**
 * What the training recipes do to quality (issue 23): the demo's recipe (seed
 * preset, the bundled MNIST digits binarized, Adam 1e-3, batch 128, seed 7,
 * EPOCHS epochs, fp32 so the figures compare with the other quality tables)
 * three ways — as it is, with a moving average of the weights (EMA_DECAY,
 * suited to the run's ~710 steps), and with an exponential per-step decay of
 * the learning rate (LR_DECAY per step: ×0.24 over 710 steps). Prints each
 * run's validation loss per epoch (with the weights evaluation uses) and the
 * held-out nats per image; the moving-average run is evaluated with both its
 * averaged and its raw weights. The moving average does not change the
 * training trajectory, so its raw weights should give the plain run's figure:
 * the table shows it. Held-out figures are fp32 evaluations.
 *
 * usage: node --import tsx bench/quality-recipes.ts [EPOCHS=10] [EMA_DECAY=0.999] [LR_DECAY=0.998] [PRECISION=auto] [RUNS=constant,ema,exponential]
 */

import { loadMnist, PixelCNN, type FitOptions } from '../src/index'
import { describeMachine } from './machine'
import { DEMO_RECIPE } from '../src/demo-recipe'

async function main() {
  const epochs = Number(process.argv[2] ?? 10)
  const emaDecay = Number(process.argv[3] ?? 0.999)
  const lrDecay = Number(process.argv[4] ?? 0.998)
  const precision = (process.argv[5] ?? 'auto') as 'auto' | 'fp32' | 'bf16'
  const all = await loadMnist()
  // The seed network is unconditional: the images without their labels, as the demo trains it.
  const data = { train: all.train, test: all.test }
  console.log(describeMachine())
  console.log(`bundled MNIST: ${data.train.count} training / ${data.test.count} test digits; seed preset, Adam 1e-3, batch 128, seed 7, ${epochs} epochs, precision ${precision}`)
  const chosen = (process.argv[6] ?? 'constant,ema,exponential').split(',')
  const runs = ([
    ['constant', 'constant learning rate (the demo)', {}],
    ['ema', `ema ${emaDecay}`, { ema: emaDecay }],
    ['exponential', `exponential decay ${lrDecay} per step`, { schedule: { type: 'exponential', decay: lrDecay } }],
  ] as [string, string, Partial<FitOptions>][]).filter(([key]) => chosen.includes(key)).map(([, name, options]) => [name, options] as const)
  const rows: string[] = []
  for (const [name, options] of runs) {
    const started = performance.now()
    const model = await PixelCNN.train({
      data,
      ...DEMO_RECIPE,
      epochs,
      device: 'cpu',
      precision,
      ...options,
      onProgress: (p) => {
        if (p.type === 'epoch') console.log(`  ${name}, epoch ${p.epoch}: train ${p.trainLoss.toFixed(4)} val ${p.valLoss?.toFixed(4)} nats/pixel`)
      },
    })
    const used = await model.evaluate(data.test, { precision: 'fp32' })
    const raw = options.ema === undefined ? used : await model.evaluate(data.test, { precision: 'fp32', weights: 'raw' })
    const ran = model.history[0]?.precision
    const perEpoch = model.history.map((e) => e.valLoss?.toFixed(4)).join(', ')
    const best = Math.min(...model.history.map((e) => e.valLoss ?? Infinity))
    const seconds = (performance.now() - started) / 1000
    rows.push(`| ${name} (${ran}) | ${perEpoch} | ${best.toFixed(4)} | **${used.natsPerImage.toFixed(2)}** | ${raw.natsPerImage.toFixed(2)} | ${seconds.toFixed(0)} |`)
    console.log(`  ${name}: test ${used.natsPerImage.toFixed(3)} nats/image (${model.history.at(-1)?.valWeights ?? 'raw'} weights), raw weights ${raw.natsPerImage.toFixed(3)}`)
  }
  console.log('\n| run | validation nats/pixel per epoch | best | test nats/image | with the raw weights | seconds |')
  console.log('|---|---|---:|---:|---:|---:|')
  for (const row of rows) console.log(row)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
