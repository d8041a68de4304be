/**
 * What the moving average (`ema`) and gradient clipping (`clipGradNorm`)
 * cost per training step (issue 23), measured side by side in one process:
 * four models of one preset, created alike, train in turn — plain, ema,
 * clip, both — for ROUNDS rounds of STEPS steps of batch 128 each, and each
 * configuration's median seconds per step (training time only, from the
 * epoch records) is compared with the plain one's. Every configuration
 * computes the global gradient norm (the non-finite guard reads it every
 * step), so "plain" includes it; clipping adds only the scaling.
 *
 * usage: node --import tsx bench/recipe-cost.ts [preset=gated] [rounds=5] [steps=4] [precision=fp32]
 */

import { PixelCNN, type FitOptions } from '../src/index'
import { randomImages } from '../__test__/support/images'
import { describeMachine } from './machine'

const median = (v: number[]) => [...v].sort((a, b) => a - b)[Math.floor(v.length / 2)]

async function main() {
  const preset = (process.argv[2] ?? 'gated') as 'seed' | 'gated'
  const rounds = Number(process.argv[3] ?? 5)
  const steps = Number(process.argv[4] ?? 4)
  const precision = (process.argv[5] ?? 'fp32') as 'fp32' | 'bf16'
  const train = randomImages(128 * steps, 28, 28, 1)
  const configs: [string, Partial<FitOptions>][] = [
    ['plain', {}],
    ['ema 0.999', { ema: 0.999 }],
    ['clipGradNorm 1', { clipGradNorm: 1 }],
    ['ema + clip', { ema: 0.999, clipGradNorm: 1 }],
  ]
  const models = configs.map(() => PixelCNN.create({ preset, device: 'cpu', seed: 0 }))
  const perStep: number[][] = configs.map(() => [])
  console.log(describeMachine())
  console.log(`${preset} preset, ${models[0].parameterCount.toLocaleString('en')} parameters; ${rounds} rounds of ${steps} steps of 128 per configuration, alternating; precision ${precision}`)
  // One warm-up fit each: the first step faults the allocator's memory in.
  for (const [i, model] of models.entries()) await model.fit({ data: { train }, epochs: 1, batchSize: 128, precision, ...configs[i][1] })
  for (let round = 0; round < rounds; round++) {
    for (const [i, model] of models.entries()) {
      const [record] = (await model.fit({ data: { train }, epochs: 1, batchSize: 128, precision, ...configs[i][1] })).slice(-1)
      perStep[i].push(128 * steps / record.imagesPerSecond / steps)
    }
  }
  const base = median(perStep[0])
  console.log('| configuration | seconds per step (median) | cost over plain |')
  console.log('|---|---:|---:|')
  configs.forEach(([name], i) => {
    const m = median(perStep[i])
    console.log(`| ${name} | ${m.toFixed(4)} | ${i === 0 ? '–' : `${((m / base - 1) * 100).toFixed(2)}%`} |`)
  })
  console.log(`all rounds (s per step): ${JSON.stringify(perStep.map((v) => v.map((s) => Number(s.toFixed(4)))))}`)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
