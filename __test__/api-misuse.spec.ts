/**
 * Plain misuse of the API from JavaScript: each is a typed `ConfigError`
 * naming the argument or the field path, never a bare TypeError or an
 * `Internal` error, and the process and the model live on.
 */
import test from 'ava'
import { mkdtempSync, readFileSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { runInNewContext } from 'node:vm'
import { ConfigError, PixelCNN, PixelCNNError } from '../src/index'
import { randomImages, TINY } from './support/images'

const dir = mkdtempSync(path.join(tmpdir(), 'pixelcnn-misuse-'))
const escaped: unknown[] = []
process.on('uncaughtException', (error) => escaped.push(error))
process.on('unhandledRejection', (error) => escaped.push(error))

const model = PixelCNN.create({ ...TINY, device: 'cpu' })
const conditional = PixelCNN.create({ ...TINY, classes: 3, device: 'cpu' })
const images = randomImages(4, 8, 8)
const untyped = (f: () => unknown) => Promise.resolve().then(f)

/** Asserts a ConfigError (code InvalidConfig) whose message matches `message`. */
async function configError(t: any, run: () => unknown, message: RegExp, name: string): Promise<void> {
  const error = await t.throwsAsync(untyped(run), { instanceOf: ConfigError }, name)
  t.is(error?.code, 'InvalidConfig', `${name}: ${error?.message}`)
  t.regex(error?.message ?? '', message, name)
}

test('new PixelCNN() from JavaScript is a ConfigError pointing at create, load and train', async (t) => {
  const Ctor = PixelCNN as unknown as new (...args: unknown[]) => PixelCNN
  for (const args of [[], [{}], [Symbol('PixelCNN factory'), {}, []]]) {
    await configError(t, () => new Ctor(...args), /`new PixelCNN\(\)` is not supported: use PixelCNN\.create.*PixelCNN\.load.*PixelCNN\.train/, `new PixelCNN(${args.length} args)`)
  }
})

test('options with a circular reference: a ConfigError naming the path, for every method', async (t) => {
  const cyclic = () => {
    const o: Record<string, unknown> = {}
    o.self = o
    return o
  }
  const deep = () => {
    const inner: Record<string, unknown> = { every: 1 }
    inner.back = { to: inner }
    return inner
  }
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['create', () => PixelCNN.create({ ...TINY, device: 'cpu', ...cyclic() }), /`model\.self\.self` refers back to an object that contains it \(a circular reference\)/],
    ['create, nested', () => PixelCNN.create({ ...TINY, device: 'cpu', extra: deep() } as never), /`model\.extra\.back\.to` refers back/],
    ['train options', () => PixelCNN.train({ data: { train: images }, model: TINY, device: 'cpu', ...cyclic() } as never), /`self\.self` refers back/],
    ['train model', () => PixelCNN.train({ data: { train: images }, model: { ...TINY, ...cyclic() }, device: 'cpu' } as never), /`model\.self\.self` refers back/],
    ['train checkpoint', () => PixelCNN.train({ data: { train: images }, model: TINY, device: 'cpu', checkpoint: { path: path.join(dir, 'c.safetensors'), ...deep() } } as never), /`checkpoint\.back\.to\.back` refers back/],
    ['fit', () => model.fit({ data: { train: images }, ...cyclic() } as never), /`self\.self` refers back/],
    ['fit data', () => { const data: Record<string, unknown> = { train: images }; data.again = data; return model.fit({ data } as never) }, /`data\.again\.again` refers back/],
    ['sample', () => model.sample(cyclic() as never), /`self\.self` refers back/],
    ['sample labels', () => { const labels: unknown[] = [0]; labels.push(labels); return conditional.sample({ labels } as never) }, /`labels\[1\]` refers back/],
    ['complete', () => model.complete(images, { known: { rows: 2 }, ...cyclic() } as never), /`self\.self` refers back/],
    ['evaluate', () => model.evaluate(images, cyclic() as never), /`self` refers back/],
    ['predict', () => model.predict(images, cyclic() as never), /`self` refers back/],
    ['logProbs', () => model.logProbs(images, cyclic() as never), /`self` refers back/],
  ]
  for (const [name, run, message] of cases) await configError(t, run, message, name)
  // A shared (not circular) reference is ordinary JSON: it reaches the core, which names the unknown key.
  const shared = { x: 1 }
  await configError(t, () => model.sample({ a: shared, b: shared } as never), /`a` is not a known option/, 'shared reference')
  t.deepEqual(escaped, [])
})

test('NaN and BigInt labels name `labels[i]` and `data.trainLabels[i]`', async (t) => {
  const train = randomImages(4, 8, 8)
  const fit = (data: object) => conditional.fit({ data: { train, ...data }, batchSize: 4 } as never)
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['fit NaN', () => fit({ trainLabels: [0, 1, Number.NaN, 2] }), /^`data\.trainLabels\[2\]` must be a finite number, got NaN$/],
    ['fit NaN, Float64Array', () => fit({ trainLabels: Float64Array.from([0, 1, 2, Number.NaN]) }), /^`data\.trainLabels\[3\]` must be a finite number, got NaN$/],
    ['fit BigInt', () => fit({ trainLabels: [0, 1n, 2, 0] }), /^`data\.trainLabels\[1\]` must be a number, got the BigInt 1n$/],
    ['fit BigInt64Array', () => fit({ trainLabels: BigInt64Array.from([0n, 1n, 2n, 0n]) }), /^`data\.trainLabels\[0\]` must be a number, got the BigInt 0n$/],
    ['fit testLabels Infinity', () => fit({ test: train, trainLabels: [0, 1, 2, 0], testLabels: [0, Infinity, 2, 0] }), /^`data\.testLabels\[1\]` must be a finite number, got Infinity$/],
    ['sample NaN', () => conditional.sample({ count: 2, labels: [0, Number.NaN] }), /^`labels\[1\]` must be a finite number, got NaN$/],
    ['sample BigInt', () => conditional.sample({ count: 2, labels: [0n, 1] as never }), /^`labels\[0\]` must be a number, got the BigInt 0n$/],
    ['sample one BigInt', () => conditional.sample({ count: 2, labels: 1n as never }), /^`labels` must be a number, got the BigInt 1n$/],
    ['evaluate NaN', () => conditional.evaluate(train, { labels: new Float32Array([0, 1, 2, Number.NaN]) }), /^`labels\[3\]` must be a finite number, got NaN$/],
    ['predict BigInt', () => conditional.predict(train, { labels: [0, 1, 2, 3n] as never }), /^`labels\[3\]` must be a number, got the BigInt 3n$/],
    ['logProbs NaN', () => conditional.logProbs(train, { labels: [Number.NaN, 1, 2, 0] }), /^`labels\[0\]` must be a finite number, got NaN$/],
    ['complete NaN', () => conditional.complete(train, { known: { rows: 2 }, labels: [0, 1, Number.NaN, 0] }), /^`labels\[2\]` must be a finite number, got NaN$/],
  ]
  for (const [name, run, message] of cases) await configError(t, run, message, name)
  // The core names label paths the same way (an out-of-range class).
  await configError(t, () => fit({ trainLabels: [0, 1, 7, 0] }), /`data\.trainLabels\[2\]`/, 'core label path')
  t.deepEqual(conditional.history, [])
})

test('a Map, Set, array or class instance as options is refused, naming the argument', async (t) => {
  class Options {
    count = 3
  }
  const file = path.join(dir, 'tiny.safetensors')
  await model.save(file)
  const notPlain: Array<[string, unknown]> = [['a Map', new Map([['count', 3]])], ['a Set', new Set()], ['an array', []], ['an Options', new Options()]]
  for (const [what, value] of notPlain) {
    const v = value as never
    const cases: Array<[string, () => unknown, RegExp]> = [
      ['create', () => PixelCNN.create(v), /^`options` of PixelCNN\.create must be a plain object/],
      ['load', () => PixelCNN.load(file, v), /^`options` of PixelCNN\.load must be a plain object/],
      ['train', () => PixelCNN.train(v), /^`options` of PixelCNN\.train must be a plain object like \{ data, epochs \}/],
      ['train model', () => PixelCNN.train({ data: { train: images }, model: v, device: 'cpu' }), /^`model` of PixelCNN\.train must be a plain object like \{ preset: 'seed' \}/],
      ['fit', () => model.fit(v), /^`options` of model\.fit must be a plain object like \{ data: \{ train \}, epochs \}/],
      ['sample', () => model.sample(v), /^`options` of model\.sample must be a plain object/],
      ['complete', () => model.complete(images, v), /^`options` of model\.complete must be a plain object like \{ known: \{ rows: k \} \}/],
      ['evaluate', () => model.evaluate(images, v), /^`options` of model\.evaluate must be a plain object/],
      ['predict', () => model.predict(images, v), /^`options` of model\.predict must be a plain object/],
      ['logProbs', () => model.logProbs(images, v), /^`options` of model\.logProbs must be a plain object/],
    ]
    for (const [name, run, message] of cases) {
      // `describe` names what was given: "a Map", "an array of length 0", "a Options".
      await configError(t, run, new RegExp(message.source + `.*got an? ${what.split(' ')[1]}`), `${name} with ${what}`)
    }
  }
  // Nested too: a Map where an object belongs would reach the core as {}.
  await configError(t, () => PixelCNN.train({ data: { train: images }, model: TINY, device: 'cpu', checkpoint: new Map() as never }), /^`checkpoint` must be a plain object or an array, got a Map/, 'nested Map')
  // Object.create(null) and an object literal from another realm are plain objects.
  t.is((await model.sample(Object.assign(Object.create(null), { count: 2 }))).count, 2)
  t.is((await model.sample(runInNewContext('({ count: 3 })'))).count, 3)
})

test('null options: a ConfigError naming the argument and the function, for every method; undefined means the defaults', async (t) => {
  const file = path.join(dir, 'null.safetensors')
  await model.save(file)
  const cases: Array<[string, () => unknown, RegExp]> = [
    ['create', () => PixelCNN.create(null as never), /^`options` of PixelCNN\.create must be a plain object, got null$/],
    ['load', () => PixelCNN.load(file, null as never), /^`options` of PixelCNN\.load must be a plain object, got null$/],
    ['train', () => PixelCNN.train(null as never), /^`options` of PixelCNN\.train must be a plain object like \{ data, epochs \}, got null$/],
    ['train model', () => PixelCNN.train({ data: { train: images }, model: null as never }), /^`model` of PixelCNN\.train must be a plain object like \{ preset: 'seed' \}, got null$/],
    ['fit', () => model.fit(null as never), /^`options` of model\.fit must be a plain object like \{ data: \{ train \}, epochs \}, got null$/],
    ['sample', () => model.sample(null as never), /^`options` of model\.sample must be a plain object, got null$/],
    ['complete', () => model.complete(images, null as never), /^`options` of model\.complete must be a plain object like \{ known: \{ rows: k \} \}, got null$/],
    ['predict', () => model.predict(images, null as never), /^`options` of model\.predict must be a plain object, got null$/],
    ['logProbs', () => model.logProbs(images, null as never), /^`options` of model\.logProbs must be a plain object, got null$/],
    ['evaluate', () => model.evaluate(images, null as never), /^`options` of model\.evaluate must be a plain object, got null$/],
    // Required arguments cannot be left out either.
    ['train()', () => PixelCNN.train(undefined as never), /^`options` of PixelCNN\.train must be a plain object like \{ data, epochs \}, got undefined$/],
    ['fit()', () => model.fit(undefined as never), /^`options` of model\.fit must be a plain object like \{ data: \{ train \}, epochs \}, got undefined$/],
    ['complete(images)', () => model.complete(images, undefined as never), /^`options` of model\.complete must be a plain object like \{ known: \{ rows: k \} \}, got undefined$/],
    // load refuses an unknown option instead of ignoring it.
    ['load typo', () => PixelCNN.load(file, { devise: 'cpu' } as never), /^`devise` is not a known option of PixelCNN\.load \(known: device\)$/],
  ]
  for (const [name, run, message] of cases) await configError(t, run, message, name)
  // Left out: every default.
  t.is((await PixelCNN.load(file)).parameterCount, model.parameterCount)
  t.is(PixelCNN.create().config.architecture, 'pixelcnn')
  t.is((await model.sample()).count, 1)
  t.is((await model.predict(images)).length, 4 * 64)
  t.is((await model.logProbs(images)).length, 4 * 64)
  t.is((await model.evaluate(images)).perImageNats.length, 4)
})

test('resume with a model of another network: a ConfigError naming both configs, the checkpoint untouched', async (t) => {
  const train = randomImages(16, 8, 8, 3)
  const checkpoint = { path: path.join(dir, 'resume.safetensors') }
  const base = { data: { train }, device: 'cpu', epochs: 1, batchSize: 8, checkpoint } as const
  await PixelCNN.train({ ...base, model: TINY })
  const bytes = readFileSync(checkpoint.path)
  const mtime = statSync(checkpoint.path).mtimeMs
  const resume = (model: object | undefined) => PixelCNN.train({ ...base, epochs: 2, resume: true, ...(model ? { model } : {}) } as never)
  const cases: Array<[string, object, RegExp]> = [
    ['another architecture', { preset: 'gated-small' }, /the network asked for by `model` is \{"architecture":"gated".*\} but the checkpoint .*resume\.safetensors to resume holds \{"architecture":"pixelcnn".*architecture: "gated" vs "pixelcnn"/],
    ['another image shape', { ...TINY, height: 12, width: 12 }, /height: 12 vs 8, width: 12 vs 8/],
    ['another size', { ...TINY, filters: 32 }, /filters: 32 vs 16/],
    ['conditional', { ...TINY, classes: 3 }, /classes: 3 vs absent/],
    ['the default network', {}, /residualBlocks: 5 vs 1/],
  ]
  for (const [name, model, message] of cases) {
    const error = await t.throwsAsync(resume(model), { instanceOf: PixelCNNError }, name)
    t.true(error instanceof ConfigError, `${name}: ${error?.constructor.name} ${error?.message}`)
    t.regex(error?.message ?? '', message, name)
    t.regex(error?.message ?? '', /Leave `model` out/, name)
  }
  // The requested network is resolved, not built: one far too big to allocate is still only another network,
  // refused at once (no weight initialised, no ResourceError), and an invalid one is create's ConfigError.
  const started = performance.now()
  const huge = await t.throwsAsync(resume({ architecture: 'gated', filters: 4096, layers: 64, height: 8, width: 8 }))
  t.true(huge instanceof ConfigError, `${huge?.constructor.name}: ${huge?.message}`)
  t.regex(huge?.message ?? '', /filters: 4096 vs 16/)
  t.true(performance.now() - started < 10_000, `refused in ${(performance.now() - started).toFixed(0)} ms`)
  const invalid = await t.throwsAsync(resume({ ...TINY, filters: -2 }), { instanceOf: ConfigError })
  t.regex(invalid?.message ?? '', /`model\.filters`/)
  t.deepEqual(readFileSync(checkpoint.path), bytes, 'the checkpoint file is byte for byte the same')
  t.is(statSync(checkpoint.path).mtimeMs, mtime)
  // The same network resumes: given in full, given as the preset fields with the shape from the data, or left out.
  t.deepEqual((await resume({ ...TINY })).history.map((r) => r.epoch), [1, 2])
  const { height: _h, width: _w, ...withoutShape } = TINY
  t.deepEqual((await PixelCNN.train({ ...base, epochs: 3, resume: true, model: withoutShape })).history.map((r) => r.epoch), [1, 2, 3])
  t.deepEqual((await resume(undefined)).history.map((r) => r.epoch), [1, 2, 3])
})
