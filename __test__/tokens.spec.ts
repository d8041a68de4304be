import test from 'ava'
import { execFileSync } from 'node:child_process'
import * as path from 'node:path'
import { ConfigError, DataError, loadTokens, PixelCNN, writeTokens, type ImageBatch, type TokenGrid } from '../src/index'
import { removeTempDirs, tempDir } from './helpers/temp'
import { logProbGapToPytorch } from './support/pytorch'
import { runCli } from './helpers/cli'

test.after.always(removeTempDirs)
const dir = tempDir('token-models')

/**
 * Grids from a Markov chain along each row: token t is followed by t + 1,
 * t + 3 or t + 7 (mod V) with probabilities 0.6, 0.3, 0.1; each row starts
 * from the start of the row above, the very first token uniform.
 */
function markovGrids(count: number, height: number, width: number, vocabulary: number, seed: number): TokenGrid {
  let state = seed
  const uniform = () => {
    state = (state * 1103515245 + 12345) % 2 ** 31
    return state / 2 ** 31
  }
  const next = (t: number) => {
    const u = uniform()
    return (t + (u < 0.6 ? 1 : u < 0.9 ? 3 : 7)) % vocabulary
  }
  const data = new Uint16Array(count * height * width)
  for (let n = 0; n < count; n++) {
    for (let r = 0; r < height; r++) {
      for (let c = 0; c < width; c++) {
        const i = (n * height + r) * width + c
        data[i] = r === 0 && c === 0 ? Math.floor(uniform() * vocabulary) : c === 0 ? next(data[i - width]) : next(data[i - 1])
      }
    }
  }
  return { count, height, width, data }
}

const TOKENS = { preset: 'gated-small', height: 6, width: 6, vocabulary: 32, filters: 32, layers: 2 } as const

test('a token model trains, evaluates in bits per token, samples and completes token grids', async (t) => {
  const model = PixelCNN.create({ ...TOKENS, seed: 1 })
  t.is(model.config.vocabulary, 32)
  t.is(model.config.embedding, 32, 'the embedding defaults to filters')
  t.is(model.config.output, 'categorical')
  const train = markovGrids(2000, 6, 6, 32, 1)
  const test_ = markovGrids(100, 6, 6, 32, 2)
  const before = await model.evaluate(test_)
  const history = await model.fit({ data: { train, test: test_ }, epochs: 3, batchSize: 64, learningRate: 3e-3, threads: 2 })
  const after = await model.evaluate(test_)
  t.is(history.length, 3)
  t.is(after.bitsPerToken, after.bitsPerDim)
  t.true(Math.abs(after.natsPerImage / (36 * Math.LN2) - after.bitsPerToken!) < 1e-9)
  // The chain's entropy: ln 32 for the first token, 0.898 nats for each of the other 35.
  const entropy = Math.log(32) + 35 * -(0.6 * Math.log(0.6) + 0.3 * Math.log(0.3) + 0.1 * Math.log(0.1))
  t.log(`held-out nats per grid ${before.natsPerImage.toFixed(2)} -> ${after.natsPerImage.toFixed(2)}; the chain's entropy ${entropy.toFixed(2)}`)
  t.true(after.natsPerImage < 1.25 * entropy, `held-out nats per grid ${before.natsPerImage} -> ${after.natsPerImage}, entropy ${entropy}`)

  const samples = await model.sample({ count: 3, seed: 4 })
  t.true(samples.data instanceof Int32Array)
  t.deepEqual([samples.count, samples.height, samples.width, samples.data.length], [3, 6, 6, 108])
  t.true(samples.data.every((v) => v >= 0 && v < 32))
  t.deepEqual(await model.sample({ count: 3, seed: 4, method: 'reference' }), samples, 'fast == reference')

  const completed = await model.complete(test_, { known: { rows: 2 }, seed: 5 })
  for (let n = 0; n < test_.count; n++) {
    for (let i = 0; i < 12; i++) t.is(completed.data[n * 36 + i], test_.data[n * 36 + i])
  }
  const logProbs = await model.logProbs(test_)
  t.is(logProbs.length, 3600)
  t.true(logProbs.every((v) => v <= 0))
})

test('token data are checked against the model: kind, shape and vocabulary', async (t) => {
  const model = PixelCNN.create({ ...TOKENS, vocabulary: 16 })
  const grid: TokenGrid = { count: 2, height: 6, width: 6, data: new Int32Array(72) }
  grid.data[40] = 16
  const tooLarge = await t.throwsAsync(model.logProbs(grid), { instanceOf: DataError })
  t.regex(tooLarge!.message, /token 40 is 16.*vocabulary has 16/)
  const images: ImageBatch = { count: 2, height: 6, width: 6, channels: 1, data: new Uint8Array(72) }
  const wrongKind = await t.throwsAsync(model.logProbs(images as unknown as TokenGrid), { instanceOf: DataError })
  t.regex(wrongKind!.message, /TokenGrid/)
  const pixels = PixelCNN.create({ preset: 'small', height: 6, width: 6 })
  const notTokens = await t.throwsAsync(pixels.logProbs({ count: 2, height: 6, width: 6, data: new Int32Array(72) } as unknown as ImageBatch), { instanceOf: DataError })
  t.regex(notTokens!.message, /not a token grid/)
  const short = await t.throwsAsync(model.evaluate({ count: 2, height: 6, width: 6, data: new Int32Array(70) }), { instanceOf: DataError })
  t.regex(short!.message, /70 tokens/)
  t.throws(() => PixelCNN.create({ preset: 'gated-small', vocabulary: 70000 }), { instanceOf: ConfigError, message: /model\.vocabulary/ })
  t.throws(() => PixelCNN.create({ preset: 'gated-small', vocabulary: 16, output: 'bernoulli' }), { instanceOf: ConfigError, message: /model\.output/ })
})

test('token checkpoints keep the vocabulary and load by name into the PyTorch modules within 1e-5', async (t) => {
  const probe = markovGrids(3, 8, 8, 300, 7)
  for (const shape of [
    { preset: 'gated-small', height: 8, width: 8, filters: 8, layers: 2, vocabulary: 300, embedding: 5 },
    { preset: 'small', height: 8, width: 8, filters: 8, residualBlocks: 1, vocabulary: 300 },
    { preset: 'pixelcnn++-small', height: 8, width: 8, filters: 4, resnetBlocks: 1, vocabulary: 300, embedding: 3 },
    { preset: 'gated-small', height: 8, width: 8, filters: 8, layers: 2, vocabulary: 300, classes: 3 },
  ] as const) {
    const model = PixelCNN.create({ ...shape, seed: 2 })
    const labels = 'classes' in shape ? Uint8Array.from([0, 2, 1]) : undefined
    if (labels) await model.fit({ data: { train: probe, trainLabels: labels }, epochs: 1, batchSize: 3, threads: 2 }) // moves the class biases off zero
    const name = `${shape.preset}-${'classes' in shape ? 'conditional' : 'tokens'}`
    const file = path.join(dir, `${name}.safetensors`)
    await model.save(file)
    const loaded = await PixelCNN.load<TokenGrid>(file)
    t.deepEqual(loaded.config, model.config)
    t.deepEqual(await loaded.logProbs(probe, { labels }), await model.logProbs(probe, { labels }))
    const worst = await logProbGapToPytorch(model, name, probe, dir, labels)
    if (worst === undefined) {
      t.log('PIXELCNN_PYTHON is not set (npm test sets it): skipped')
      continue
    }
    t.log(`${name}: largest log-probability difference to PyTorch ${worst.toExponential(2)}`)
    t.true(worst < 1e-5, `${name}: largest log-probability difference to PyTorch ${worst}`)
  }
})

test('NumPy codes in, a trained prior, sampled codes back out to NumPy (the README example)', async (t) => {
  const python = process.env.PIXELCNN_PYTHON
  if (!python) {
    if (process.env.CI) t.fail('PIXELCNN_PYTHON is not set: npm test sets it (scripts/env.sh)')
    return t.pass('no Python configured')
  }
  const codes = path.join(dir, 'codes.npy')
  const sampled = path.join(dir, 'sampled.npy')
  execFileSync(python, ['-c', `
import numpy as np
rng = np.random.default_rng(0)
codes = np.zeros((2000, 6, 6), dtype=np.int64)
codes[:, 0, 0] = rng.integers(32, size=2000)
steps = rng.choice([1, 3, 7], p=[0.6, 0.3, 0.1], size=(2000, 6, 6))
for r in range(6):
    for c in range(6):
        if r or c:
            prev = codes[:, r - 1, 0] if c == 0 else codes[:, r, c - 1]
            codes[:, r, c] = (prev + steps[:, r, c]) % 32
np.save(${JSON.stringify(codes)}, codes)`])
  const train = await loadTokens(codes, { vocabulary: 32 })
  const prior = await PixelCNN.train<TokenGrid>({ model: { preset: 'gated-small', vocabulary: 32, filters: 32, layers: 2 }, data: { train }, epochs: 3, batchSize: 64, learningRate: 3e-3, threads: 2 })
  t.deepEqual([prior.config.height, prior.config.width], [6, 6], 'train shapes the model like the grids')
  await writeTokens(sampled, await prior.sample({ count: 8, seed: 1 }))
  const report = JSON.parse(execFileSync(python, ['-c', `
import json
import numpy as np
s = np.load(${JSON.stringify(sampled)})
steps = (s[:, :, 1:] - s[:, :, :-1]) % 32
print(json.dumps({"shape": list(s.shape), "dtype": str(s.dtype), "min": int(s.min()), "max": int(s.max()), "lawful": float(np.isin(steps, [1, 3, 7]).mean())}))`], { encoding: 'utf8' })) as { shape: number[]; dtype: string; min: number; max: number; lawful: number }
  t.log('NumPy read back', report)
  t.deepEqual(report.shape, [8, 6, 6])
  t.is(report.dtype, 'int32')
  t.true(report.min >= 0 && report.max < 32)
  t.true(report.lawful > 0.8, `share of steps the chain allows: ${report.lawful}`)
})

test('the CLI trains a prior on .npy token grids, evaluates it in bits per token and samples tokens to .npy', async (t) => {
  const train = path.join(dir, 'cli-train.npy')
  const held = path.join(dir, 'cli-test.npy')
  await writeTokens(train, markovGrids(200, 6, 6, 32, 3))
  await writeTokens(held, markovGrids(40, 6, 6, 32, 4))
  const out = path.join(dir, 'cli-prior.safetensors')
  const data = `tokens:${train},${held}`
  const missing = await runCli(['train', '--data', data, '--out', out, '--preset', 'gated-small', '--epochs', '1'])
  t.is(missing.code, 1)
  t.regex(missing.stderr, /--vocabulary/)
  const trained = await runCli(['train', '--data', data, '--out', out, '--preset', 'gated-small', '--vocabulary', '32', '--embedding', '8', '--epochs', '2', '--batch-size', '32', '--samples-every', '2', '--threads', '2'])
  t.is(trained.code, 0, trained.stderr)
  t.regex(trained.stderr, /token grids of 32 tokens \(embedding 8\)/)
  const perEpoch = await loadTokens(out.replace(/\.safetensors$/, '.samples-epoch-2.npy'), { vocabulary: 32 })
  t.deepEqual([perEpoch.count, perEpoch.height, perEpoch.width], [64, 6, 6])
  const evaluated = await runCli(['eval', '--model', out, '--data', data])
  t.is(evaluated.code, 0, evaluated.stderr)
  t.regex(evaluated.stdout, /40 grids\n[\d.]+ nats per grid, [\d.]+ bits per token/)
  const samples = path.join(dir, 'cli-samples.npy')
  const sampled = await runCli(['sample', '--model', out, '--out', samples, '--count', '5'])
  t.is(sampled.code, 0, sampled.stderr)
  const grid = await loadTokens(samples, { vocabulary: 32 })
  t.deepEqual([grid.count, grid.height, grid.width], [5, 6, 6])
  const picture = await runCli(['sample', '--model', out, '--out', path.join(dir, 'cli-samples.png')])
  t.is(picture.code, 1)
  t.regex(picture.stderr, /\.npy/)
})
