import test from 'ava'
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { ConfigError, PixelCNN, TrainingDivergedError, type TrainProgress } from '../src/index'
import { runCli } from './helpers/cli'
import { writeIdxPair } from './helpers/idx'
import { removeTempDirs, tempDir } from './helpers/temp'
import { stripedImages, TINY } from './support/images'
import { readTensorBoard } from './support/tensorboard'

test.after.always(removeTempDirs)

const dir = tempDir('recipes')
const data = { train: stripedImages(96, 8, 8, 1), test: stripedImages(32, 8, 8, 2) }
const base = { data, epochs: 2, batchSize: 16, learningRate: 5e-3, seed: 3, threads: 2 } as const
const create = () => PixelCNN.create({ ...TINY, device: 'cpu', seed: 3 })

test('schedules, the moving average, clipping and validation inside epochs, as the history records them', async (t) => {
  const model = create()
  const events: TrainProgress[] = []
  const best = path.join(dir, 'best.safetensors')
  const history = await model.fit({
    ...base,
    schedule: { type: 'exponential', decay: 0.9 },
    ema: 0.8,
    clipGradNorm: 0.05,
    weightDecay: 0.01,
    validateEvery: 4,
    checkpoint: { path: path.join(dir, 'run.safetensors'), best },
    onProgress: (e) => void events.push(e),
  })
  const rates = history.flatMap((r) => r.learningRates ?? [])
  const expected = Array.from({ length: 12 }, (_, i) => 5e-3 * 0.9 ** i)
  t.true(rates.length === 12 && rates.every((r, i) => Math.abs(r / expected[i] - 1) < 1e-12), `${rates}`)
  t.true(history.every((r) => r.gradNorms?.length === 6 && r.gradNorms.every((n) => n !== null && n > 0)))
  t.deepEqual(history.flatMap((r) => (r.validations ?? []).map((v) => v.step)), [4, 8])
  t.true(events.some((e) => e.type === 'validation' && e.step === 4))
  t.is(history[1].valWeights, 'averaged')
  t.like(history[1].training, { learningRate: 5e-3, ema: 0.8, clipGradNorm: 0.05, schedule: { type: 'exponential', decay: 0.9 } })

  // Evaluation uses the average unless asked for the raw weights.
  const averaged = await model.evaluate(data.test)
  const raw = await model.evaluate(data.test, { weights: 'raw' })
  t.not(averaged.natsPerImage, raw.natsPerImage)
  t.true(Math.abs(averaged.natsPerImage / 64 - history[1].valLoss!) < 1e-6, `${averaged.natsPerImage / 64} against ${history[1].valLoss}`)
  const a = await model.sample({ count: 16, seed: 1 })
  const b = await model.sample({ count: 16, seed: 1, weights: 'raw' })
  t.notDeepEqual(a.data, b.data, 'the raw weights draw other images from the same seed')

  // The best model so far is kept, with its average; it reloads and evaluates as saved.
  const losses = history.flatMap((r) => [...(r.validations ?? []).map((v) => v.valLoss), r.valLoss!])
  const kept = await PixelCNN.load(best, { device: 'cpu' })
  t.true(existsSync(best))
  t.true(losses.includes(Math.min(...losses)))
  const reloaded = await PixelCNN.load(path.join(dir, 'run.safetensors'), { device: 'cpu' })
  t.is((await reloaded.evaluate(data.test)).natsPerImage, averaged.natsPerImage)
  t.true(kept.history.length <= 2)
})

test('early stopping resolves normally and says why in the history', async (t) => {
  const model = create()
  const history = await model.fit({ ...base, epochs: 5, validateEvery: 2, earlyStopping: { patience: 2, minDelta: 1e9 } })
  t.is(history.length, 1)
  t.regex(history[0].stopReason ?? '', /early stopping: validation has not improved for 2 validations/)
})

test('a diverging run rejects with TrainingDivergedError naming the step, the checkpoint intact', async (t) => {
  const model = create()
  const file = path.join(dir, 'diverge.safetensors')
  await model.fit({ ...base, epochs: 1, checkpoint: { path: file } })
  const saved = readFileSync(file)
  const error = await t.throwsAsync(model.fit({ ...base, epochs: 3, learningRate: 1e6, maxNonFiniteSteps: 2, checkpoint: { path: file } }), { instanceOf: TrainingDivergedError })
  t.regex(error!.message, /2 steps in a row had a non-finite loss or gradient, the last at epoch 2, step \d+/)
  t.is(error!.code, 'Diverged')
  t.deepEqual(readFileSync(file), saved)
  // What the checkpoint holds is still a model: it loads and evaluates.
  t.true(Number.isFinite((await (await PixelCNN.load(file, { device: 'cpu' })).evaluate(data.test)).natsPerImage))
})

test('a recipe sets the published hyperparameters; explicit options win', async (t) => {
  const model = create()
  const history = await model.fit({ ...base, epochs: 1, recipe: 'pixelcnn++-cifar10', batchSize: 32, learningRate: 2e-3 })
  t.like(history[0].training, { recipe: 'pixelcnn++-cifar10', batchSize: 32, learningRate: 2e-3, ema: 0.9995, betas: [0.95, 0.9995], eps: 1e-8 })
  t.is(history[0].stepLosses?.length, 3)
  t.is(history[0].learningRates?.[1], 2e-3 * 0.999995)
})

test('bad recipe options are ConfigErrors naming the field and the value', async (t) => {
  const model = create()
  const file = path.join(dir, 'a-file')
  writeFileSync(file, 'not a folder')
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ schedule: { type: 'linear' } }, /schedule/],
    [{ schedule: { type: 'exponential', decay: 1.5 } }, /`schedule\.decay` must be in \(0, 1\], got 1\.5/],
    [{ schedule: { type: 'cosine', warmupSteps: 12 } }, /`schedule\.warmupSteps` must be shorter than the training it warms up \(12 steps\), got 12/],
    [{ ema: 1 }, /`ema` must be in \[0, 1\).*got 1/],
    [{ clipGradNorm: -1 }, /`clipGradNorm` must be a positive number, got -1/],
    [{ earlyStopping: { patience: 0 } }, /`earlyStopping\.patience` must be between 1 and .*got 0/],
    [{ recipe: 'sota' }, /`recipe` is not a known recipe: "sota"/],
    [{ logDir: file }, /logDir/],
  ]
  for (const [options, message] of cases) {
    const error = await t.throwsAsync(model.fit({ ...base, ...options } as never), { instanceOf: ConfigError })
    t.regex(error!.message, message, JSON.stringify(options))
  }
  const noTest = await t.throwsAsync(model.fit({ ...base, data: { train: data.train }, checkpoint: { path: path.join(dir, 'x.safetensors'), best: path.join(dir, 'y.safetensors') } }), { instanceOf: ConfigError })
  t.regex(noTest!.message, /checkpoint\.best.*data\.test/)
  t.is(model.history.length, 0, 'nothing was trained')
})

test('logDir writes TensorBoard event files that TensorBoard reads: every step and validation', async (t) => {
  const logDir = path.join(dir, 'logs', 'api')
  const model = create()
  const history = await model.fit({ ...base, validateEvery: 4, schedule: { type: 'exponential', decay: 0.9 }, logDir })
  const read = readTensorBoard(logDir)
  if (!read) return t.pass('no PyTorch environment configured (PIXELCNN_PYTHON)')
  const losses = history.flatMap((r) => r.stepLosses ?? [])
  t.deepEqual(read.scalars['train/loss'].map((s) => s.step), losses.map((_, i) => i + 1))
  t.deepEqual(read.scalars['train/loss'].map((s) => s.value), losses.map((l) => Math.fround(l!)))
  t.deepEqual(read.scalars['train/learning_rate'].map((s) => s.value), history.flatMap((r) => r.learningRates!).map((v) => Math.fround(v)))
  t.deepEqual(read.scalars['val/loss'].map((s) => s.value), [history[0].validations![0].valLoss, history[0].valLoss, history[1].validations![0].valLoss, history[1].valLoss].map((v) => Math.fround(v!)))
  t.is(read.scalars['train/grad_norm'].length, 12)
  t.true(read.scalars['train/images_per_second'].length >= 1)
})

test.serial('pixelcnn train --recipe --schedule --ema --logdir --best; info shows what was used', async (t) => {
  const files = tempDir('recipes-cli')
  const { train, test: testImages } = writeIdxPair(files, 64, 32)
  const out = path.join(files, 'm.safetensors')
  const logDir = path.join(files, 'tb')
  const config = path.join(files, 'config.json')
  writeFileSync(config, JSON.stringify({ model: { preset: 'small', filters: 8, residualBlocks: 1 } }))
  const run = await runCli([
    'train', '--data', `idx:${train},${testImages}`, '--config', config, '--epochs', '2', '--device', 'cpu', '--out', out,
    '--recipe', 'pixelcnn++-cifar10', '--batch-size', '32', '--schedule', 'cosine:1', '--ema', '0.9', '--clip-grad-norm', '1',
    '--logdir', logDir, '--best', path.join(files, 'best.safetensors'), '--samples-every', '2',
  ])
  t.is(run.code, 0, run.stderr)
  t.true(existsSync(path.join(files, 'best.safetensors')))
  const model = await PixelCNN.load(out, { device: 'cpu' })
  // One cosine schedule over the whole run (4 steps), although the CLI fits an epoch at a time.
  const rates = model.history.flatMap((r) => r.learningRates ?? [])
  t.is(rates.length, 4)
  t.is(rates[0], 1e-3)
  t.true(rates[1] > rates[2] && rates[2] > rates[3] && rates[3] === 0, `${rates}`)
  t.like(model.history[1].training, { recipe: 'pixelcnn++-cifar10', batchSize: 32, ema: 0.9, clipGradNorm: 1 })
  t.is(readdirSync(logDir).filter((f) => f.startsWith('events.out.tfevents.')).length, 1, 'one event file for the run')
  const read = readTensorBoard(logDir)
  if (read) {
    t.is(read.scalars['train/loss'].length, 4)
    t.is(read.images.samples?.length, 1)
  }
  const info = await runCli(['info', '--model', out])
  t.is(info.code, 0, info.stderr)
  t.regex(info.stdout, /trained with \(last epoch\): .*recipe pixelcnn\+\+-cifar10/)
  t.regex(info.stdout, /trained with \(last epoch\): .*ema 0\.9, .*schedule \{[^}]*"type":"cosine"/)
})
