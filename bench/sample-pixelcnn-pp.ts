/**
 * PixelCNN++'s incremental sampler against its reference loop: `pixelcnn++-small`, COUNT (64) images of
 * 32×32×3, fp32, one process. The reference loop costs the same for every row (32 full forward passes of
 * the batch), so it is timed on its first rows (aborted after 2) and extrapolated to 32. Also one forward
 * pass of the batch (`logProbs`), to state the sampler's time in forward passes.
 *
 * usage: node --import tsx bench/sample-pixelcnn-pp.ts   (COUNT=64)
 */
import { PixelCNN } from '../src/index'
import { describeMachine } from './machine'

async function main() {
  console.log(describeMachine())
  const count = Number(process.env.COUNT ?? 64)
  const model = PixelCNN.create({ preset: 'pixelcnn++-small', device: 'cpu', seed: 1 })
  const images = { data: new Uint8Array(count * 32 * 32 * 3).map((_, i) => (i * 37) % 256), count, height: 32, width: 32, channels: 3 }
  let t = Date.now(); await model.logProbs(images, { precision: 'fp32' }); t = Date.now()
  await model.logProbs(images, { precision: 'fp32' }); const forward = (Date.now() - t) / 1000
  t = Date.now(); await model.sample({ count, seed: 1, precision: 'fp32' }); const fast = (Date.now() - t) / 1000
  // The reference loop: rows abort after 2 of 32 rows (each row costs the same: 32 full forward passes).
  const controller = new AbortController(); let rows = 0
  t = Date.now()
  await model.sample({ count, seed: 1, method: 'reference', precision: 'fp32', signal: controller.signal, onProgress: (e) => { rows = e.rowsDone; if (rows >= 2) controller.abort() } }).catch(() => {})
  const referencePerRow = (Date.now() - t) / 1000 / rows
  const reference = referencePerRow * 32
  console.log(JSON.stringify({ count, forward, fast, referenceExtrapolated: reference, speedup: reference / fast, fastInForwardPasses: fast / forward, rowsTimed: rows }))
}
main()
