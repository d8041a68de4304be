import test from 'ava'
import { writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { ConfigError, DataError, loadConditions, loadTokens, PixelCNN, writeTokens, type ImageBatch, type TokenGrid } from '../src/index'
import { encodeNpy } from '../src/data/npy'
import { runCli } from './helpers/cli'
import { removeTempDirs, tempDir } from './helpers/temp'
import { largestDifference, logProbGapToPytorch, pytorchProbabilities } from './support/pytorch'
import { packConditions } from '../src/conditions'

test.after.always(removeTempDirs)
const dir = tempDir('conditions')

/** Pattern k of an 8×8 binary image at (r, c): all zeros, all ones, vertical stripes, a checkerboard. */
const PATTERNS = [() => 0, () => 1, (_r: number, c: number) => c % 2, (r: number, c: number) => (r + c) % 2]

/** `count` binary 8×8 images of the patterns in turn, each with the one-hot of its pattern as its condition (D = 4). */
function patterns(count: number, shift = 0): { images: ImageBatch; conditions: Float32Array } {
  const data = new Uint8Array(count * 64)
  const conditions = new Float32Array(count * 4)
  for (let n = 0; n < count; n++) {
    const k = n % 4
    for (let i = 0; i < 64; i++) data[n * 64 + i] = PATTERNS[k](Math.floor(i / 8), i % 8)
    conditions[n * 4 + ((k + shift) % 4)] = 1
  }
  return { images: { count, height: 8, width: 8, channels: 1, data }, conditions }
}

test('a model conditional on vectors trains with trainConditions, evaluates and samples with conditions', async (t) => {
  const model = PixelCNN.create({ preset: 'gated-small', height: 8, width: 8, conditionSize: 4, seed: 1 })
  t.is(model.config.conditionSize, 4)
  const { images, conditions } = patterns(256)
  await model.fit({ data: { train: images, trainConditions: conditions }, epochs: 8, batchSize: 32, learningRate: 5e-3, threads: 2 })
  const probe = patterns(16)
  const informed = await model.evaluate(probe.images, { conditions: probe.conditions })
  const misled = await model.evaluate(probe.images, { conditions: patterns(16, 1).conditions }) // each image with the next pattern's vector
  t.log(`nats per image: with its own pattern's condition ${informed.natsPerImage.toFixed(2)}, with the next pattern's ${misled.natsPerImage.toFixed(2)}`)
  t.true(informed.natsPerImage < 1 && misled.natsPerImage > informed.natsPerImage + 5)
  // Asked for the checkerboard, the model draws it.
  const want = new Float32Array(8 * 4)
  for (let n = 0; n < 8; n++) want[n * 4 + 3] = 1
  const samples = await model.sample({ count: 8, seed: 3, conditions: want })
  const matching = samples.data.filter((v, i) => v === PATTERNS[3](Math.floor((i % 64) / 8), i % 8)).length
  t.log(`sampled with the checkerboard's vector: ${matching} of ${samples.data.length} pixels on the checkerboard`)
  t.true(matching > 0.9 * samples.data.length)
  t.deepEqual(await model.sample({ count: 8, seed: 3, conditions: want, method: 'reference' }), samples, 'fast == reference')
  const completed = await model.complete(probe.images, { known: { rows: 2 }, conditions: probe.conditions, seed: 4 })
  t.deepEqual(completed.data.subarray(0, 16), probe.images.data.subarray(0, 16))
})

test('condition vectors are checked: required, sized N×D, finite, and only for models that take them', async (t) => {
  const model = PixelCNN.create({ preset: 'gated-small', height: 8, width: 8, conditionSize: 3 })
  const { images } = patterns(2)
  await t.throwsAsync(model.logProbs(images), { instanceOf: ConfigError, message: /conditions.*required/ })
  await t.throwsAsync(model.logProbs(images, { conditions: new Float32Array(5) }), { instanceOf: ConfigError, message: /5 values but 2 images × conditionSize 3/ })
  await t.throwsAsync(model.sample({ count: 2, conditions: Float32Array.from([0, 0, 0, 0, Infinity, 0]) }), { instanceOf: ConfigError, message: /conditions\[4\].*finite/ })
  await t.throwsAsync(model.fit({ data: { train: images, trainConditions: new Float32Array(6), trainLabels: [0, 1] } }), { instanceOf: ConfigError, message: /exclude each other/ })
  await t.throwsAsync(model.evaluate(images, { conditions: 'no' as unknown as Float32Array }), { instanceOf: DataError, message: /Float32Array/ })
  const plain = PixelCNN.create({ preset: 'gated-small', height: 8, width: 8 })
  await t.throwsAsync(plain.logProbs(images, { conditions: new Float32Array(6) }), { instanceOf: ConfigError, message: /takes no condition vectors/ })
  t.throws(() => PixelCNN.create({ preset: 'gated-small', classes: 3, conditionSize: 3 }), { instanceOf: ConfigError, message: /model\.conditionSize/ })
})

test('vector-conditional checkpoints load by name into the PyTorch modules within 1e-5, pixels and tokens', async (t) => {
  const { images, conditions } = patterns(8)
  const tokens: TokenGrid = { count: 8, height: 8, width: 8, data: Int32Array.from(images.data, (v, i) => (v * 37 + i) % 100) }
  const cases = [
    ['gated pixels', { preset: 'gated-small', height: 8, width: 8, conditionSize: 4 }, images],
    ['seed-family tokens', { preset: 'small', height: 8, width: 8, filters: 8, residualBlocks: 1, vocabulary: 100, conditionSize: 4 }, tokens],
    ['pixelcnn++ pixels', { preset: 'pixelcnn++-small', height: 8, width: 8, channels: 1, filters: 4, resnetBlocks: 1, conditionSize: 4 }, images],
  ] as const
  for (const [name, shape, probe] of cases) {
    const model = PixelCNN.create({ ...shape, seed: 2 }) as PixelCNN<ImageBatch | TokenGrid>
    await model.fit({ data: { train: probe, trainConditions: conditions }, epochs: 1, batchSize: 4, threads: 2 }) // moves the projections off zero
    const worst = await logProbGapToPytorch(model, name.replace(/ /g, '-'), probe, dir, conditions)
    if (worst === undefined) {
      t.log('PIXELCNN_PYTHON is not set (npm test sets it): skipped')
      continue
    }
    t.log(`${name}: largest log-probability difference to PyTorch ${worst.toExponential(2)}`)
    t.true(worst < 1e-5, `${name}: ${worst}`)
  }
})

test('the CLI trains with --conditions from .npy files, evaluates and samples one image per vector', async (t) => {
  const { images, conditions } = patterns(64)
  const grids: TokenGrid = { count: 64, height: 8, width: 8, data: Int32Array.from(images.data) }
  const files = { train: path.join(dir, 'cli-grids.npy'), conditions: path.join(dir, 'cli-conditions.npy'), out: path.join(dir, 'cli-conditional.safetensors') }
  await writeTokens(files.train, grids)
  writeFileSync(files.conditions, encodeNpy(conditions, [64, 4]))
  const data = `tokens:${files.train}`
  const trained = await runCli(['train', '--data', data, '--vocabulary', '2', '--conditions', files.conditions, '--out', files.out, '--preset', 'gated-small', '--epochs', '2', '--batch-size', '16', '--threads', '2'])
  t.is(trained.code, 0, trained.stderr)
  const model = await PixelCNN.load<TokenGrid>(files.out)
  t.is(model.config.conditionSize, 4, 'conditionSize from the file')
  const evaluated = await runCli(['eval', '--model', files.out, '--data', data, '--conditions', files.conditions])
  t.is(evaluated.code, 0, evaluated.stderr)
  t.regex(evaluated.stdout, /bits per token/)
  const missing = await runCli(['eval', '--model', files.out, '--data', data])
  t.is(missing.code, 1)
  t.regex(missing.stderr, /--conditions FILE\.npy/)
  const four = path.join(dir, 'cli-four.npy')
  writeFileSync(four, encodeNpy(conditions.subarray(0, 16), [4, 4]))
  const samples = path.join(dir, 'cli-conditional-samples.npy')
  const sampled = await runCli(['sample', '--model', files.out, '--conditions', four, '--out', samples])
  t.is(sampled.code, 0, sampled.stderr)
  t.is((await loadTokens(samples, { vocabulary: 2 })).count, 4, 'one grid per vector')
  const wrongSize = path.join(dir, 'cli-wrong.npy')
  writeFileSync(wrongSize, encodeNpy(new Float32Array(6), [2, 3]))
  const refused = await runCli(['sample', '--model', files.out, '--conditions', wrongSize, '--out', samples])
  t.is(refused.code, 1)
  t.regex(refused.stderr, /vectors of 3, the model takes 4/)
  const loaded = await loadConditions(four)
  t.deepEqual([loaded.count, loaded.size], [4, 4])
  writeFileSync(wrongSize, encodeNpy(Float32Array.from([0, NaN]), [1, 2]))
  await t.throwsAsync(loadConditions(wrongSize), { instanceOf: DataError, message: /vector 0, component 1 is NaN/ })
})

/** 8×8 grids of 16 tokens made of constant 2×2 blocks, with the 4×4 grid of the blocks' tokens as a token map. */
function blockyGrids(count: number, seed: number): { grids: TokenGrid; maps: Int32Array } {
  let state = seed
  const next = () => (state = (state * 1103515245 + 12345) % 2 ** 31) >> 16
  const data = new Int32Array(count * 64)
  const maps = new Int32Array(count * 16)
  for (let n = 0; n < count; n++) {
    for (let b = 0; b < 16; b++) maps[n * 16 + b] = next() % 16
    for (let i = 0; i < 64; i++) data[n * 64 + i] = maps[n * 16 + Math.floor(i / 16) * 4 + Math.floor((i % 8) / 2)]
  }
  return { grids: { count, height: 8, width: 8, data }, maps }
}

test('a model conditional on a token map (the coarser codes) trains with trainMaps, evaluates and samples with maps', async (t) => {
  const model = PixelCNN.create({ preset: 'gated-small', height: 8, width: 8, vocabulary: 16, filters: 32, layers: 2, conditionMap: { channels: 1, height: 4, width: 4, vocabulary: 16 }, seed: 1 })
  t.deepEqual(model.config.conditionMap, { channels: 1, height: 4, width: 4, vocabulary: 16, embedding: 32 })
  const train = blockyGrids(600, 1)
  await model.fit({ data: { train: train.grids, trainMaps: train.maps }, epochs: 4, batchSize: 32, learningRate: 3e-3, threads: 2 })
  const probe = blockyGrids(32, 2)
  const informed = await model.evaluate(probe.grids, { maps: probe.maps })
  const other = await model.evaluate(probe.grids, { maps: blockyGrids(32, 3).maps })
  t.log(`nats per grid: with its own coarse map ${informed.natsPerImage.toFixed(2)}, with another grid's ${other.natsPerImage.toFixed(2)}`)
  t.true(informed.natsPerImage < 5 && other.natsPerImage > informed.natsPerImage + 20)
  // Sampled from a map, the grid is that map upsampled.
  const samples = await model.sample({ maps: probe.maps.subarray(0, 4 * 16), seed: 2 })
  t.is(samples.count, 4, 'one grid per map')
  const agree = samples.data.filter((v, i) => v === probe.grids.data[i]).length
  t.log(`sampled from 4 coarse maps: ${agree} of 256 tokens are the map's`)
  t.true(agree > 0.9 * 256)
  t.deepEqual(await model.sample({ maps: probe.maps.subarray(0, 64), seed: 2, method: 'reference' }), samples, 'fast == reference')
  await t.throwsAsync(model.evaluate(probe.grids), { instanceOf: DataError, message: /`maps` is required/ })
  await t.throwsAsync(model.evaluate(probe.grids, { maps: probe.maps.subarray(0, 40) }), { instanceOf: DataError, message: /40 values but 32 images/ })
  const bad = probe.maps.slice()
  bad[5] = 16
  await t.throwsAsync(model.evaluate(probe.grids, { maps: bad }), { instanceOf: ConfigError, message: /conditions\[5\].*whole tokens 0 … 15/ })
  t.throws(() => PixelCNN.create({ preset: 'gated-small', classes: 3, conditionMap: { channels: 1, height: 4, width: 4 } }), { instanceOf: ConfigError, message: /model\.conditionMap/ })
})

test('map-conditional checkpoints load by name into the PyTorch modules within 1e-5: real and token maps, every architecture', async (t) => {
  const { grids, maps } = blockyGrids(4, 5)
  const real = Float32Array.from({ length: 4 * 4 * 4 * 2 }, (_, i) => Math.sin(i))
  const cases = [
    ['gated, token map', { preset: 'gated-small', height: 8, width: 8, vocabulary: 16, filters: 8, layers: 2, conditionMap: { channels: 1, height: 4, width: 4, vocabulary: 16, embedding: 3 } }, { maps }],
    ['seed family, real map and vector', { preset: 'small', height: 8, width: 8, vocabulary: 16, filters: 8, residualBlocks: 1, conditionSize: 2, conditionMap: { channels: 2, height: 4, width: 4 } }, { maps: real, conditions: Float32Array.from([1, 0, 0, 1, 1, 1, 0, 0]) }],
    ['pixelcnn++, real map', { preset: 'pixelcnn++-small', height: 8, width: 8, vocabulary: 16, filters: 4, resnetBlocks: 1, conditionMap: { channels: 2, height: 4, width: 4 } }, { maps: real }],
  ] as const
  for (const [name, shape, given] of cases) {
    const model = PixelCNN.create({ ...shape, seed: 3 })
    await model.fit({ data: { train: grids, trainMaps: given.maps, trainConditions: 'conditions' in given ? given.conditions : undefined }, epochs: 1, batchSize: 2, threads: 2 }) // moves the projections off zero
    const file = path.join(dir, `${name.replace(/[ ,]+/g, '-')}.safetensors`)
    await model.save(file)
    const packed = packConditions(model.config, 4, { vectors: 'conditions' in given ? given.conditions : undefined, maps: given.maps }, { vectors: 'conditions', maps: 'maps' })!
    const theirs = pytorchProbabilities(file, grids, dir, packed, 'logProbs')
    if (!theirs) {
      t.log('PIXELCNN_PYTHON is not set (npm test sets it): skipped')
      continue
    }
    const worst = largestDifference(await model.logProbs(grids, given), theirs)
    t.log(`${name}: largest log-probability difference to PyTorch ${worst.toExponential(2)}`)
    t.true(worst < 1e-5, `${name}: ${worst}`)
  }
})

test('the CLI trains on token maps from .npy files (--maps, --map-vocabulary), evaluates and samples one grid per map', async (t) => {
  const { grids, maps } = blockyGrids(96, 7)
  const files = { train: path.join(dir, 'cli-blocky.npy'), maps: path.join(dir, 'cli-maps.npy'), out: path.join(dir, 'cli-map.safetensors') }
  await writeTokens(files.train, grids)
  writeFileSync(files.maps, encodeNpy(maps, [96, 4, 4]))
  const data = `tokens:${files.train}`
  const trained = await runCli(['train', '--data', data, '--vocabulary', '16', '--maps', files.maps, '--map-vocabulary', '16', '--out', files.out, '--preset', 'gated-small', '--epochs', '1', '--batch-size', '16', '--threads', '2', '--samples-every', '1'])
  t.is(trained.code, 0, trained.stderr)
  const model = await PixelCNN.load<TokenGrid>(files.out)
  t.like(model.config.conditionMap, { channels: 1, height: 4, width: 4, vocabulary: 16 })
  t.is((await loadTokens(files.out.replace(/\.safetensors$/, '.samples-epoch-1.npy'))).count, 64, 'samples for the first 64 maps')
  const evaluated = await runCli(['eval', '--model', files.out, '--data', data, '--maps', files.maps])
  t.is(evaluated.code, 0, evaluated.stderr)
  const few = path.join(dir, 'cli-few-maps.npy')
  writeFileSync(few, encodeNpy(maps.subarray(0, 3 * 16), [3, 4, 4]))
  const samples = path.join(dir, 'cli-map-samples.npy')
  const sampled = await runCli(['sample', '--model', files.out, '--maps', few, '--out', samples])
  t.is(sampled.code, 0, sampled.stderr)
  t.is((await loadTokens(samples)).count, 3)
  const bad = path.join(dir, 'cli-bad-maps.npy')
  writeFileSync(bad, encodeNpy(Int32Array.from({ length: 16 }, () => 16), [1, 4, 4]))
  const refused = await runCli(['sample', '--model', files.out, '--maps', bad, '--out', samples])
  t.is(refused.code, 1)
  t.regex(refused.stderr, /tokens must be in 0 … 15/)
})
