/**
 * Quick correctness checks of the tfjs baseline model (about half a minute):
 *
 *   node --import tsx bench/tfjs-baseline/check.ts [--backend wasm|cpu]
 *
 * 1. masks and parameter count (532,673, as in the seed's summary);
 * 2. the workaround (customGrad) gradients equal tfjs's stock gradients for
 *    every variable, and masked kernel taps get a zero gradient (cpu backend,
 *    the only one with stock filter gradients; small 8×8 images, since the
 *    network is fully convolutional);
 * 3. causality, on --backend (default wasm): the prediction at pixel i does
 *    not change when any pixel j ≥ i changes, does change when the pixel to
 *    its left changes, and d(logit_i)/dx is zero at every j ≥ i;
 * 4. the naive sampler draws 0/1 values and leaves undrawn pixels at 0, and a
 *    few workaround training steps on one batch lower the loss.
 * Exits non-zero if any check fails.
 */

import * as tf from '@tensorflow/tfjs'
import '@tensorflow/tfjs-backend-wasm'
import {
  buildModel, causalMask, disposeModel, forward, HEIGHT, loss, makeOptimizer, mulberry32, parameterCount,
  sampleNaive, SEED_PARAMETER_COUNT, trainStep, WIDTH,
} from './model'

let failures = 0
function check(ok: boolean, what: string): void {
  console.log(`${ok ? 'ok  ' : 'FAIL'} ${what}`)
  if (!ok) failures++
}

function binaryImages(n: number, h: number, w: number, seed: number): Float32Array {
  const u = mulberry32(seed)
  return Float32Array.from({ length: n * h * w }, () => (u() < 0.5 ? 1 : 0))
}

function checkMasks(): void {
  const ones = (k: number, t: 'A' | 'B') => { const m = causalMask(k, t); const s = m.sum().dataSync()[0]; m.dispose(); return s }
  const a7 = causalMask(7, 'A').reshape([7, 7]).arraySync() as number[][]
  console.log(`mask A 7×7:\n${a7.map((r) => `  ${r.join(' ')}`).join('\n')}`)
  check(ones(7, 'A') === 24 && ones(3, 'B') === 5 && ones(1, 'B') === 1 && ones(3, 'A') === 4,
    'mask sizes: 7×7 A keeps 24 taps, 3×3 B keeps 5, 3×3 A keeps 4, 1×1 B keeps 1')
}

async function checkGradients(): Promise<void> {
  const model = buildModel(3)
  check(parameterCount(model) === SEED_PARAMETER_COUNT, `parameter count ${parameterCount(model)} === ${SEED_PARAMETER_COUNT}`)
  const x = tf.tensor4d(binaryImages(2, 8, 8, 11), [2, 8, 8, 1])
  const grads = (mode: 'stock' | 'workaround') => tf.variableGrads(() => loss(model, x, mode), model.variables)
  const t0 = performance.now()
  const stock = grads('stock')
  const work = grads('workaround')
  let worst = 0
  let worstName = ''
  for (const v of model.variables) {
    const a = stock.grads[v.name]
    const b = work.grads[v.name]
    const rel = tf.tidy(() => tf.max(tf.abs(tf.sub(a, b))).dataSync()[0] / (tf.max(tf.abs(a)).dataSync()[0] || 1))
    if (rel > worst) { worst = rel; worstName = v.name }
  }
  check(worst < 1e-4, `workaround gradients equal stock gradients for all ${model.variables.length} variables (worst relative error ${worst.toExponential(1)} in ${worstName}; ${((performance.now() - t0) / 1000).toFixed(1)} s)`)
  let maskedMax = 0
  for (const c of model.convs) {
    if (!c.mask) continue
    for (const g of [stock.grads[c.kernel.name], work.grads[c.kernel.name]]) {
      maskedMax = Math.max(maskedMax, tf.tidy(() => tf.max(tf.abs(tf.mul(g, tf.sub(1, c.mask!)))).dataSync()[0]))
    }
  }
  check(maskedMax === 0, `masked kernel taps get exactly zero gradient (max |grad| there ${maskedMax})`)
  tf.dispose([x, stock.value, work.value, ...Object.values(stock.grads), ...Object.values(work.grads)])
  disposeModel(model)
}

async function checkCausality(backend: string): Promise<void> {
  await tf.setBackend(backend)
  await tf.ready()
  const model = buildModel(5)
  const P = HEIGHT * WIDTH
  const base = binaryImages(1, HEIGHT, WIDTH, 21)
  const pixels = [0, 1, 27, 28, 29, 200, 405, 406, 783]
  // Batch: the base image; per tested pixel i, every pixel j ≥ i flipped;
  // and the pixel left of i flipped (above it in column 0: the far end of the
  // previous row lies outside this network's receptive field).
  const neighbour = (i: number) => (i % WIDTH > 0 ? i - 1 : i - WIDTH)
  const batch: Float32Array[] = [base]
  for (const i of pixels) {
    const later = base.slice()
    for (let j = i; j < P; j++) later[j] = 1 - later[j]
    const before = base.slice()
    if (i > 0) before[neighbour(i)] = 1 - before[neighbour(i)]
    batch.push(later, before)
  }
  const flat = new Float32Array(batch.length * P)
  batch.forEach((img, n) => flat.set(img, n * P))
  const x = tf.tensor4d(flat, [batch.length, HEIGHT, WIDTH, 1])
  const logits = forward(model, x)
  const y = logits.dataSync()
  let worstLater = 0
  let unchangedBefore = 0
  pixels.forEach((i, k) => {
    worstLater = Math.max(worstLater, Math.abs(y[(1 + 2 * k) * P + i] - y[i]))
    if (i > 0 && y[(2 + 2 * k) * P + i] === y[i]) unchangedBefore++
  })
  check(worstLater === 0, `${backend}: prediction at pixel i unchanged when all pixels j ≥ i flip (${pixels.length} pixels, max |Δlogit| ${worstLater})`)
  check(unchangedBefore === 0, `${backend}: prediction at pixel i changes when the pixel left of it (or above, in column 0) flips (${pixels.length - 1 - unchangedBefore}/${pixels.length - 1})`)
  tf.dispose([x, logits])

  // The input gradient of one output pixel must vanish at it and after it.
  const x1 = tf.tensor4d(base, [1, HEIGHT, WIDTH, 1])
  let leaks = 0
  let blind = 0
  for (const i of [0, 29, 405, 783]) {
    const g = tf.grad((xx: tf.Tensor) => tf.tidy(() => forward(model, xx as tf.Tensor4D).slice([0, Math.floor(i / WIDTH), i % WIDTH, 0], [1, 1, 1, 1]).sum()))(x1)
    const gv = g.dataSync()
    for (let j = i; j < P; j++) if (gv[j] !== 0) leaks++
    if (i > 0 && !gv.subarray(0, i).some((v) => v !== 0)) blind++
    g.dispose()
  }
  check(leaks === 0 && blind === 0, `${backend}: d(logit_i)/dx is zero at every j ≥ i and nonzero somewhere before i (pixels 0, 29, 405, 783; ${leaks} leaks)`)
  x1.dispose()

  const s = sampleNaive(model, 2, 7, 10)
  const drawn = [0, 1].flatMap((n) => Array.from(s.images.subarray(n * P, n * P + 10)))
  const rest = [0, 1].flatMap((n) => Array.from(s.images.subarray(n * P + 10, (n + 1) * P)))
  check(s.pixels === 10 && drawn.every((v) => v === 0 || v === 1) && rest.every((v) => v === 0),
    `${backend}: sampleNaive(maxPixels 10) draws 0/1 values and leaves later pixels 0 (${s.secondsPerPixel.toFixed(3)} s per pixel at batch 2)`)

  const opt = makeOptimizer()
  const xb = tf.tensor4d(binaryImages(2, HEIGHT, WIDTH, 31), [2, HEIGHT, WIDTH, 1])
  const losses = Array.from({ length: 4 }, () => trainStep(model, opt, xb, 'workaround'))
  check(losses[3] < losses[0], `${backend}: 4 workaround training steps on one batch lower the loss (${losses.map((l) => l.toFixed(4)).join(' → ')})`)
  xb.dispose()
  disposeModel(model)
}

async function main(): Promise<void> {
  const i = process.argv.indexOf('--backend')
  const backend = i >= 0 ? process.argv[i + 1] : 'wasm'
  if (backend !== 'wasm' && backend !== 'cpu') throw new Error(`--backend must be wasm or cpu, got ${JSON.stringify(backend)}`)
  await tf.setBackend('cpu')
  await tf.ready()
  checkMasks()
  await checkGradients()
  await checkCausality(backend)
  console.log(failures ? `${failures} check(s) failed` : 'all checks passed')
  process.exitCode = failures ? 1 : 0
}

main().catch((error) => {
  console.error(error)
  process.exit(1)
})
