import test from 'ava'
import { existsSync, readFileSync } from 'node:fs'
import { ConfigError, DeviceError, libtorchInfo, matmulGflops, PixelCNN } from '../src/index'
import { levelImages, randomImages, stripedImages } from './support/images'

const TINY = { preset: 'small', height: 8, width: 8, filters: 8, residualBlocks: 1 } as const
const GATED_TINY = { architecture: 'gated', height: 8, width: 8, filters: 8, layers: 2, inputKernel: 3, kernel: 3, outputLayers: 1 } as const
const native = libtorchInfo().cpuBf16Native

// Serial, in this order: the error without native bf16 is checked before the
// tests below allow libtorch's emulated bf16 (PIXELCNN_EMULATED_BF16=1, same
// rounding, slow) to test the arithmetic on any CPU.
test.serial('bf16 on a CPU without bf16 instructions is a DeviceError that says what to do', async (t) => {
  if (native) return t.pass('this CPU computes bf16 natively')
  const model = PixelCNN.create({ ...TINY, device: 'cpu' })
  const images = randomImages(2, 8, 8, 1)
  const error = await t.throwsAsync(model.fit({ data: { train: images }, precision: 'bf16' }), { instanceOf: DeviceError })
  t.regex(error!.message, /`?precision`?.*"bf16" was requested but this CPU has no native bfloat16.*use "fp32"/)
  await t.throwsAsync(model.sample({ count: 1, precision: 'bf16' }), { instanceOf: DeviceError })
  await t.throwsAsync(model.predict(images, { precision: 'bf16' }), { instanceOf: DeviceError })
})

test.serial('libtorchInfo says whether the CPU computes bf16 natively, as /proc/cpuinfo does', (t) => {
  if (!existsSync('/proc/cpuinfo')) return t.is(typeof native, 'boolean')
  const flags = readFileSync('/proc/cpuinfo', 'utf8').split('\n').find((line) => line.startsWith('flags'))?.split(/\s+/) ?? []
  t.is(native, flags.includes('avx512_bf16') || flags.includes('amx_bf16'))
})

test.serial('matmulGflops measures the fp32 ceiling and names a bad precision', (t) => {
  t.true(matmulGflops(256, 2) > 0)
  t.throws(() => matmulGflops(64, 1, { precision: 'fp16' as never }), { instanceOf: ConfigError, message: /`precision`.*fp16/ })
})

test.serial('a precision other than fp32 or bf16 is a ConfigError naming the field', async (t) => {
  const model = PixelCNN.create({ ...TINY, device: 'cpu' })
  const images = randomImages(2, 8, 8, 1)
  const fit = await t.throwsAsync(model.fit({ data: { train: images }, precision: 'fp16' as never }), { instanceOf: ConfigError })
  t.regex(fit!.message, /`precision`.*fp16/)
  await t.throwsAsync(model.sample({ count: 1, precision: 'BF16' as never }), { instanceOf: ConfigError, message: /`precision`/ })
  await t.throwsAsync(model.predict(images, { precision: 16 as never }), { instanceOf: ConfigError, message: /`precision`/ })
  await t.throwsAsync(model.evaluate(images, { precision: null as never }), { instanceOf: ConfigError, message: /`precision`/ })
})

for (const [name, shape] of [['pixelcnn', TINY], ['gated', GATED_TINY]] as const) {
  test.serial(`${name} in bf16: trains, records the precision, predicts within 0.02 of fp32, samples and completes`, async (t) => {
    if (!native) process.env.PIXELCNN_EMULATED_BF16 = '1'
    const model = PixelCNN.create({ ...shape, device: 'cpu', seed: 1 })
    const data = { train: stripedImages(64, 8, 8, 1), test: stripedImages(32, 8, 8, 2) }
    const history = await model.fit({ data, epochs: 2, batchSize: 16, learningRate: 5e-3, precision: 'bf16' })
    t.deepEqual(history.map((e) => e.precision), ['bf16', 'bf16'])
    t.true(history[1].valLoss! < history[0].valLoss!, `validation loss did not fall: ${history.map((e) => e.valLoss)}`)
    const fp32 = await model.predict(data.test, { precision: 'fp32' })
    const bf16 = await model.predict(data.test, { precision: 'bf16' })
    let worst = 0
    for (let i = 0; i < fp32.length; i++) worst = Math.max(worst, Math.abs(fp32[i] - bf16[i]))
    t.true(worst <= 0.02 && worst > 0, `largest difference ${worst}`)
    const { natsPerImage } = await model.evaluate(data.test, { precision: 'bf16' })
    t.true(Math.abs(natsPerImage - (await model.evaluate(data.test)).natsPerImage) < 0.02 * natsPerImage)
    const samples = await model.sample({ count: 3, seed: 2, precision: 'bf16' })
    t.is(samples.data.length, 3 * 64)
    const done = await model.complete(data.test, { known: { rows: 4 }, precision: 'bf16' })
    t.deepEqual(done.data.subarray(0, 32), data.test.data.subarray(0, 32))
  })
}

/** Runs `body` with `auto`'s bf16 choice stubbed to `takes` (PIXELCNN_AUTO_BF16), restoring the suite's setting after. */
async function withAutoBf16<T>(takes: boolean, body: () => Promise<T>): Promise<T> {
  const before = process.env.PIXELCNN_AUTO_BF16
  process.env.PIXELCNN_AUTO_BF16 = takes ? '1' : '0'
  if (takes && !native) process.env.PIXELCNN_EMULATED_BF16 = '1'
  try {
    return await body()
  } finally {
    if (before === undefined) delete process.env.PIXELCNN_AUTO_BF16
    else process.env.PIXELCNN_AUTO_BF16 = before
  }
}

test.serial("precision 'auto' (the default): bf16 for training and predict where native, fp32 for likelihoods and sampling; libtorchInfo says so", async (t) => {
  const data = { train: stripedImages(32, 8, 8, 1), test: stripedImages(16, 8, 8, 2) }
  for (const takes of [false, true]) {
    await withAutoBf16(takes, async () => {
      const expected = takes ? 'bf16' : 'fp32'
      t.deepEqual(libtorchInfo().autoPrecision, { device: 'cpu', training: expected, likelihood: 'fp32', prediction: expected, sampling: 'fp32' })
      const auto = PixelCNN.create({ ...TINY, device: 'cpu', seed: 3 })
      const explicit = PixelCNN.create({ ...TINY, device: 'cpu', seed: 3 })
      // The default is 'auto': the same run as the precision it resolves to, bit for bit.
      const history = await auto.fit({ data, epochs: 1, batchSize: 16, learningRate: 5e-3 })
      const reference = await explicit.fit({ data, epochs: 1, batchSize: 16, learningRate: 5e-3, precision: expected })
      t.is(history[0].precision, expected)
      t.deepEqual(history[0].stepLosses, reference[0].stepLosses)
      // Validation under 'auto' is fp32 whatever trained: it equals an fp32 evaluation of the final weights.
      const fp32Loss = (await auto.evaluate(data.test, { precision: 'fp32' })).natsPerImage / 64
      t.true(Math.abs(history[0].valLoss! - fp32Loss) < 1e-6, `${history[0].valLoss} against ${fp32Loss}`)
      t.deepEqual(await auto.logProbs(data.test), await auto.logProbs(data.test, { precision: 'fp32' }))
      t.deepEqual(await auto.predict(data.test), await auto.predict(data.test, { precision: expected }))
      t.deepEqual((await auto.sample({ count: 2, seed: 4 })).data, (await auto.sample({ count: 2, seed: 4, precision: 'fp32' })).data)
    })
  }
})

// The 8-bit networks: per-image log-likelihoods in bf16 against fp32, after a
// little fp32 training so that the weights are not a random draw's. bf16 keeps
// 8 bits of mantissa (relative rounding 2^-9 per operation); through a few
// layers and a log-sum-exp over 256 levels or a mixture the per-image nats
// stay within 0.1% of fp32's, the bound stated in the README (measured on a
// Xeon with AMX: 4e-6 to 4e-5).
const COLOUR = { height: 8, width: 8, channels: 3 } as const
const EIGHT_BIT = [
  ['pixelcnn++, logistic mixture, RGB', { architecture: 'pixelcnn++', ...COLOUR, filters: 8, resnetBlocks: 1, mixtures: 2, dropout: 0 }],
  ['gated, categorical, RGB', { ...GATED_TINY, ...COLOUR, output: 'categorical' }],
  ['gated, logistic mixture, RGB', { ...GATED_TINY, ...COLOUR, output: 'logistic-mixture', mixtures: 3 }],
  ['pixelcnn, categorical, grayscale', { ...TINY, output: 'categorical' }],
] as const
for (const [name, shape] of EIGHT_BIT) {
  test.serial(`${name}: bf16 log-likelihoods per image within 0.1% of fp32`, async (t) => {
    if (!native) process.env.PIXELCNN_EMULATED_BF16 = '1'
    const model = PixelCNN.create({ ...shape, device: 'cpu', seed: 5 })
    const channels = 'channels' in shape ? shape.channels : 1
    const images = levelImages(12, 8, 8, channels, 7)
    await model.fit({ data: { train: images }, epochs: 2, batchSize: 4, learningRate: 2e-3, precision: 'fp32' })
    const perImage = async (precision: 'fp32' | 'bf16') => {
      const logProbs = await model.logProbs(images, { precision })
      const size = logProbs.length / images.count
      return Array.from({ length: images.count }, (_, n) => logProbs.subarray(n * size, (n + 1) * size).reduce((a, b) => a + b, 0))
    }
    const [fp32, bf16] = [await perImage('fp32'), await perImage('bf16')]
    const worst = Math.max(...fp32.map((v, n) => Math.abs(bf16[n] - v) / Math.abs(v)))
    t.log(`largest relative difference of an image's nats: ${worst.toExponential(2)}`)
    t.true(worst <= 1e-3 && worst > 0, `largest relative difference of an image's nats: ${worst}`)
  })
}
