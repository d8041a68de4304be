/**
 * Quality of the two 8-bit outputs side by side: Gated PixelCNN (the `gated`
 * preset's network) with `output: 'categorical'` against
 * `output: 'logistic-mixture'` (10 logistics), trained with the same recipe
 * on the same subset of 8-bit Fashion-MNIST (Debian's dataset-fashion-mnist:
 * no network needed), the first TRAIN training images for EPOCHS epochs
 * (Adam 1e-3, batch 64, seed 7), validated and tested on the first 1,000
 * test images, in bits per dimension. Writes each model's training curve and
 * a 10×10 sample grid into OUT.
 *
 * usage: node --import tsx bench/quality-8bit.ts [TRAIN=3000] [EPOCHS=3] [OUT=quality-8bit]
 */

import { mkdirSync } from 'node:fs'
import { join } from 'node:path'

import { writeCurve } from '../src/cli/pictures'
import { loadFashionMnist, PixelCNN, sliceImages, writeImageGrid, type Output } from '../src/index'
import { describeMachine } from './machine'

async function main() {
  const trainCount = Number(process.argv[2] ?? 3000)
  const epochs = Number(process.argv[3] ?? 3)
  const out = process.argv[4] ?? 'quality-8bit'
  mkdirSync(out, { recursive: true })
  const data = await loadFashionMnist({ source: 'system', threshold: 'none' })
  const train = sliceImages(data.train, 0, trainCount)
  const test = sliceImages(data.test, 0, 1000)
  console.log(`${describeMachine()}`)
  console.log(`8-bit Fashion-MNIST: ${train.count} training / ${test.count} test images, ${epochs} epochs, gated preset network`)
  const rows: string[] = []
  for (const output of ['categorical', 'logistic-mixture'] as Output[]) {
    const model = await PixelCNN.train({
      data: { train, test },
      model: { preset: 'gated', output },
      epochs,
      batchSize: 64,
      learningRate: 1e-3,
      seed: 7,
      device: 'cpu',
      onProgress: (p) => {
        if (p.type === 'epoch') console.log(`  ${output} epoch ${p.epoch}: train ${(p.trainLoss / Math.LN2).toFixed(3)} val ${((p.valLoss ?? NaN) / Math.LN2).toFixed(3)} bits/dim`)
      },
    })
    const { bitsPerDim } = await model.evaluate(test)
    const bits = model.history.map((e) => ((e.valLoss ?? NaN) / Math.LN2).toFixed(3)).join(', ')
    const seconds = model.history.reduce((s, e) => s + e.seconds, 0)
    rows.push(`| ${output} | ${model.parameterCount.toLocaleString('en-US')} | ${bits} | **${bitsPerDim.toFixed(3)}** | ${seconds.toFixed(0)} |`)
    // The command line's curve: bits per dimension for 8-bit models.
    await writeCurve(model, join(out, `${output}.curve.png`))
    await writeImageGrid(await model.sample({ count: 100, seed: 1 }), join(out, `${output}-samples.png`), { columns: 10, scale: 2 })
    await model.save(join(out, `${output}.safetensors`))
  }
  console.log('\n| output | parameters | validation bits/dim per epoch | test bits/dim | training seconds |')
  console.log('|---|---:|---|---:|---:|')
  for (const row of rows) console.log(row)
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
