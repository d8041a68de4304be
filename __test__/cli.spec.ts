import test from 'ava'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { PixelCNN } from '../src/index'
import { type CliRun, runCli } from './helpers/cli'
import { idxImages, idxLabels } from './helpers/idx'
import { removeTempDirs, tempDir } from './helpers/temp'

test.after.always(removeTempDirs)

/** The CLI; `interruptAfter`: send SIGINT once stderr shows that text. */
function pixelcnn(args: string[], options: { interruptAfter?: string } = {}): Promise<CliRun> {
  let sent = false
  return runCli(args, {
    onStderr: (stderr, pid) => {
      if (options.interruptAfter && !sent && stderr.includes(options.interruptAfter)) {
        sent = true
        process.kill(pid, 'SIGINT')
      }
    },
  })
}

// Small 28×28 IDX files: train and test images.
const dir = tempDir('cli')
const train = path.join(dir, 'train-images-idx3-ubyte')
const testImages = path.join(dir, 't10k-images-idx3-ubyte')
writeFileSync(train, idxImages(96, 28, 28, 1).bytes)
writeFileSync(testImages, idxImages(32, 28, 28, 2).bytes)
const data = `idx:${train},${testImages}`
const small = path.join(dir, 'config.json')
writeFileSync(small, JSON.stringify({ model: { preset: 'small', filters: 8, residualBlocks: 1 }, batchSize: 32, learningRate: 2e-3 }))

test.serial('train, info, sample, complete and eval from the command line', async (t) => {
  const model = path.join(dir, 'm.safetensors')
  const trained = await pixelcnn(['train', '--data', data, '--config', small, '--epochs', '2', '--device', 'cpu', '--out', model])
  t.is(trained.code, 0, trained.stderr)
  t.regex(trained.stdout, /\| epoch \| train loss \| val loss \| seconds \| images\/s \|/)
  t.regex(trained.stdout, /\| 2 \| 0\.\d{4} \| 0\.\d{4} \|/)
  t.true(existsSync(model))

  const info = await pixelcnn(['info', '--model', model])
  t.is(info.code, 0, info.stderr)
  t.regex(info.stdout, /"filters":8/)
  t.regex(info.stdout, /parameters: [\d,]+/)

  const samples = path.join(dir, 'samples.png')
  const sampled = await pixelcnn(['sample', '--model', model, '--count', '9', '--out', samples])
  t.is(sampled.code, 0, sampled.stderr)
  t.is(readFileSync(samples).subarray(1, 4).toString(), 'PNG')

  const completions = path.join(dir, 'completions.png')
  const completed = await pixelcnn(['complete', '--model', model, '--data', data, '--rows', '14', '--count', '3', '--repeats', '2', '--out', completions])
  t.is(completed.code, 0, completed.stderr)
  t.true(existsSync(completions))

  const evaluated = await pixelcnn(['eval', '--model', model, '--data', data])
  t.is(evaluated.code, 0, evaluated.stderr)
  t.regex(evaluated.stdout, /[\d.]+ nats per image, [\d.]+ bits per dimension/)
})

test.serial('a categorical model from the command line reads 8-bit data and reports bits per dimension', async (t) => {
  const model = path.join(dir, 'categorical.safetensors')
  const trained = await pixelcnn(['train', '--data', data, '--config', small, '--output', 'categorical', '--epochs', '1', '--device', 'cpu', '--out', model])
  t.is(trained.code, 0, trained.stderr)
  t.regex(trained.stderr, /8-bit grayscale/)
  t.true(existsSync(model.replace(/\.safetensors$/, '.curve.png')))
  const loaded = await PixelCNN.load(model)
  t.is(loaded.config.output, 'categorical')
  // The IDX pixels are uniform bytes: nothing to learn beyond about 8 bits per dimension.
  const evaluated = await pixelcnn(['eval', '--model', model, '--data', data])
  t.is(evaluated.code, 0, evaluated.stderr)
  const bits = Number(/([\d.]+) bits per dimension/.exec(evaluated.stdout)?.[1])
  t.true(bits > 7.5 && bits < 9, evaluated.stdout)
  const samples = path.join(dir, 'categorical.png')
  t.is((await pixelcnn(['sample', '--model', model, '--count', '4', '--out', samples])).code, 0)
  t.true(existsSync(samples))
  const bad = await pixelcnn(['train', '--data', data, '--output', 'gaussian', '--epochs', '1', '--out', path.join(dir, 'y.safetensors')])
  t.is(bad.code, 1)
  t.regex(bad.stderr, /`model\.output`/)
})

test.serial('--output logistic-mixture --mixtures K trains a mixture model on 8-bit data', async (t) => {
  const model = path.join(dir, 'mixture.safetensors')
  const trained = await pixelcnn(['train', '--data', data, '--config', small, '--output', 'logistic-mixture', '--mixtures', '3', '--epochs', '1', '--device', 'cpu', '--out', model])
  t.is(trained.code, 0, trained.stderr)
  t.regex(trained.stderr, /8-bit grayscale/)
  const loaded = await PixelCNN.load(model)
  t.deepEqual([loaded.config.output, loaded.config.mixtures], ['logistic-mixture', 3])
  const evaluated = await pixelcnn(['eval', '--model', model, '--data', data])
  const bits = Number(/([\d.]+) bits per dimension/.exec(evaluated.stdout)?.[1])
  t.true(bits > 7.5 && bits < 9.5, evaluated.stdout)
  const bad = await pixelcnn(['train', '--data', data, '--output', 'logistic-mixture', '--mixtures', '0', '--epochs', '1', '--out', path.join(dir, 'z.safetensors')])
  t.is(bad.code, 1)
  t.regex(bad.stderr, /`model\.mixtures`/)
})

test.serial('Ctrl-C stops training after a step and leaves a checkpoint that --resume continues', async (t) => {
  const model = path.join(dir, 'interrupted.safetensors')
  const args = ['train', '--data', data, '--config', small, '--epochs', '3', '--batch-size', '8', '--checkpoint-every', '1', '--device', 'cpu', '--out', model]
  const stopped = await pixelcnn(args, { interruptAfter: 'epoch 1/3' })
  t.is(stopped.code, 130, stopped.stdout + stopped.stderr)
  t.regex(stopped.stdout, /continue with --resume/)
  const saved = await PixelCNN.load(model)
  t.true(saved.history.length < 3)
  const resumed = await pixelcnn([...args, '--resume'])
  t.is(resumed.code, 0, resumed.stderr)
  t.regex(resumed.stderr, /resuming from/)
  t.is((await PixelCNN.load(model)).history.length, 3)
  // Resuming with flags for another network is refused, and the checkpoint is left as it was.
  const before = readFileSync(model)
  const other = await pixelcnn([...args, '--epochs', '4', '--output', 'categorical', '--resume'])
  t.is(other.code, 1, other.stdout)
  t.regex(other.stderr, /the network asked for by the model flags .*"output":"categorical".* but the checkpoint .*interrupted\.safetensors/)
  t.regex(other.stderr, /output: "categorical" vs absent/)
  t.true(readFileSync(model).equals(before))
})

test.serial('bad command lines fail with a message naming the option', async (t) => {
  const unknown = await pixelcnn(['fly'])
  t.is(unknown.code, 2)
  t.regex(unknown.stderr, /unknown command "fly"/)
  const missing = await pixelcnn(['sample', '--count', '3'])
  t.is(missing.code, 1)
  t.regex(missing.stderr, /`--model` is required/)
  const notNumber = await pixelcnn(['train', '--data', data, '--epochs', 'many', '--out', path.join(dir, 'x.safetensors')])
  t.regex(notNumber.stderr, /`--epochs` must be a number, got "many"/)
  const badSource = await pixelcnn(['eval', '--model', 'x', '--data', 'imagenet'])
  t.is(badSource.code, 1)
  const badPrecision = await pixelcnn(['train', '--data', data, '--precision', 'fp16', '--out', path.join(dir, 'x.safetensors')])
  t.is(badPrecision.code, 1)
  t.regex(badPrecision.stderr, /`--precision` must be fp32, bf16 or auto, got "fp16"/)
})

/** Width and height of a PNG, from its IHDR chunk. */
function pngSize(file: string): [number, number] {
  const bytes = readFileSync(file)
  return [bytes.readUInt32BE(16), bytes.readUInt32BE(20)]
}

test.serial('a conditional gated model from the command line: training curve, samples every epoch, one row per class', async (t) => {
  const trainLabels = path.join(dir, 'train-labels-idx1-ubyte')
  const testLabels = path.join(dir, 't10k-labels-idx1-ubyte')
  writeFileSync(trainLabels, idxLabels(96, 3).bytes.map((v, i) => (i < 8 ? v : v % 3)))
  writeFileSync(testLabels, idxLabels(32, 4).bytes.map((v, i) => (i < 8 ? v : v % 3)))
  const gated = path.join(dir, 'gated.json')
  writeFileSync(gated, JSON.stringify({ model: { filters: 8, layers: 2 }, batchSize: 32, learningRate: 2e-3 }))
  const model = path.join(dir, 'gated.safetensors')
  const labelled = `idx:${train},${testImages},${trainLabels},${testLabels}`
  const trained = await pixelcnn(['train', '--data', labelled, '--architecture', 'gated', '--conditional', '--config', gated, '--epochs', '2', '--samples-every', '1', '--device', 'cpu', '--out', model])
  t.is(trained.code, 0, trained.stderr)
  t.regex(trained.stderr, /model: gated, conditional on 3 classes/)
  const loaded = await PixelCNN.load(model)
  t.is(loaded.config.classes, 3)
  t.is(loaded.config.architecture, 'gated')
  const curve = path.join(dir, 'gated.curve.png')
  t.true(existsSync(curve), 'the training curve is written beside the model')
  const [curveWidth, curveHeight] = pngSize(curve)
  t.true(curveWidth >= 240 && curveHeight >= 180)
  for (const epoch of [1, 2]) t.true(existsSync(path.join(dir, `gated.samples-epoch-${epoch}.png`)), `samples after epoch ${epoch}`)

  // One row per class, `--per-class` images in each.
  const perClass = path.join(dir, 'per-class.png')
  const sampled = await pixelcnn(['sample', '--model', model, '--per-class', '4', '--scale', '2', '--out', perClass])
  t.is(sampled.code, 0, sampled.stderr)
  const [width, height] = pngSize(perClass)
  t.is(height, 2 + 3 * (28 * 2 + 2), 'three rows of 28×28 images at scale 2 with 2-pixel gaps')
  t.true(width > 2 + 4 * (28 * 2 + 2), 'four columns plus the margin with the class labels')

  const sevens = path.join(dir, 'label.png')
  const one = await pixelcnn(['sample', '--model', model, '--label', '2', '--count', '4', '--out', sevens])
  t.is(one.code, 0, one.stderr)
  t.regex(one.stderr, /4 images of class 2/)
  const outOfRange = await pixelcnn(['sample', '--model', model, '--label', '3', '--out', sevens])
  t.is(outOfRange.code, 1)
  t.regex(outOfRange.stderr, /ConfigError: invalid config: `labels` is 3 but the model has 3 classes/)

  const evaluated = await pixelcnn(['eval', '--model', model, '--data', labelled])
  t.is(evaluated.code, 0, evaluated.stderr)
  const completed = await pixelcnn(['complete', '--model', model, '--data', labelled, '--count', '2', '--repeats', '2', '--out', path.join(dir, 'c.png')])
  t.is(completed.code, 0, completed.stderr)
  const noLabels = await pixelcnn(['eval', '--model', model, '--data', data])
  t.is(noLabels.code, 1)
  t.regex(noLabels.stderr, /conditional on 3 classes but `--data idx:.*` has no labels/)

  const unconditional = await pixelcnn(['sample', '--model', path.join(dir, 'm.safetensors'), '--label', '1', '--out', sevens])
  t.is(unconditional.code, 1)
  t.regex(unconditional.stderr, /`--label` and `--per-class` need a conditional model/)
})
