/**
 * PixelCNN++ against Gated PixelCNN at an equal wall-clock budget on 8-bit
 * Fashion-MNIST (Debian's dataset-fashion-mnist, the full 60,000 training
 * images, no network needed): each model trains (Adam 1e-3, batch 64,
 * seed 7, logistic-mixture output) until BUDGET seconds have passed (the
 * run is aborted there, keeping every step taken), then is tested on the
 * full 10,000 test images in bits per dimension. `pixelcnn++-small`'s
 * network at 28×28×1 (1 block per stage, 32 filters, 5 logistics, dropout
 * 0.5 as published) against the `gated` preset's (64 filters, 6 layers, 10
 * logistics). Writes a 10×10 sample grid of each into OUT.
 *
 * usage: node --import tsx bench/quality-pixelcnn-pp.ts [BUDGET=300] [OUT=quality-pixelcnn-pp]
 */

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

import { loadFashionMnist, PixelCNN, writeImageGrid, type ModelOptions } from '../src/index'
import { describeMachine } from './machine'

async function main() {
  const budget = Number(process.argv[2] ?? 300)
  const out = process.argv[3] ?? 'quality-pixelcnn-pp'
  mkdirSync(out, { recursive: true })
  const data = await loadFashionMnist({ source: 'system', threshold: 'none' })
  console.log(describeMachine())
  console.log(`8-bit Fashion-MNIST: ${data.train.count} training / ${data.test.count} test images, ${budget} s of training each`)
  const shape = { height: 28, width: 28, channels: 1, output: 'logistic-mixture' } as const
  const models: [string, ModelOptions][] = [
    ['pixelcnn++-small', { preset: 'pixelcnn++-small', ...shape }],
    ['gated', { preset: 'gated', ...shape }],
  ]
  const rows: string[] = []
  for (const [name, options] of models) {
    const model = PixelCNN.create({ ...options, device: 'cpu', seed: 7 })
    const controller = new AbortController()
    const timer = setTimeout(() => controller.abort(), budget * 1000)
    let steps = 0
    const started = Date.now()
    await model
      .fit({ data: { train: data.train }, epochs: 100, batchSize: 64, learningRate: 1e-3, seed: 7, precision: 'fp32', signal: controller.signal, onProgress: (p) => { if (p.type === 'step') steps = Math.max(steps, p.step) } })
      .catch((error: Error & { code?: string }) => { if (error.code !== 'Aborted') throw error })
    clearTimeout(timer)
    const trained = (Date.now() - started) / 1000
    const { bitsPerDim } = await model.evaluate(data.test, { precision: 'fp32' })
    const sampleStarted = Date.now()
    await writeImageGrid(await model.sample({ count: 100, seed: 1 }), join(out, `${name}-samples.png`), { columns: 10, scale: 2 })
    const sampleSeconds = (Date.now() - sampleStarted) / 1000
    console.log(`${name}: ${steps} steps (${((steps * 64) / data.train.count).toFixed(2)} epochs) in ${trained.toFixed(0)} s, test ${bitsPerDim.toFixed(3)} bits/dim`)
    rows.push(`| ${name} | ${model.parameterCount.toLocaleString('en-US')} | ${steps} (${((steps * 64) / data.train.count).toFixed(2)} epochs) | ${trained.toFixed(0)} | **${bitsPerDim.toFixed(3)}** | ${sampleSeconds.toFixed(1)} |`)
  }
  console.log('\n| network | parameters | steps of 64 in the budget | training seconds | test bits/dim (10,000 images) | sampling 100 images (s) |')
  console.log('|---|---:|---:|---:|---:|---:|')
  for (const row of rows) console.log(row)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
