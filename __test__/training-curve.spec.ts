/**
 * The training-curve PNG: it decodes at the requested size, each series shows
 * up in its colour only when it has data, an early outlier does not squash
 * the scale, text is drawn, and bad input fails with a typed error that names
 * the field.
 */
import test from 'ava'
import { createCanvas, loadImage } from '@napi-rs/canvas'
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { ConfigError, IoError } from '../src/errors'
import { CURVE_COLORS, renderTrainingCurve, writeTrainingCurve, type CurveEpoch } from '../src/training-curve'
import { drawText } from '../src/text'

const dir = mkdtempSync(path.join(tmpdir(), 'pixelcnn-curve-'))
test.after.always(() => rmSync(dir, { recursive: true, force: true }))

/** A run of `epochs` epochs that learns: step losses falling from 0.7 towards 0.09. */
function history(epochs: number, options: { steps?: number; validation?: boolean } = {}): CurveEpoch[] {
  const steps = options.steps ?? 50
  return Array.from({ length: epochs }, (_, i) => {
    const stepLosses = Array.from({ length: steps }, (_, s) => 0.09 + 0.6 * Math.exp(-(i * steps + s) / 10) + 0.002 * Math.sin(s))
    return {
      epoch: i + 1,
      trainLoss: stepLosses.reduce((a, b) => a + b, 0) / Math.max(1, steps),
      valLoss: options.validation === false ? null : 0.095 + 0.02 / (i + 1),
      ...(steps ? { stepLosses } : {}),
    }
  })
}

async function decode(png: Buffer) {
  const image = await loadImage(png)
  const canvas = createCanvas(image.width, image.height)
  const ctx = canvas.getContext('2d')
  ctx.drawImage(image, 0, 0)
  return { width: image.width, height: image.height, data: ctx.getImageData(0, 0, image.width, image.height).data }
}

type Decoded = Awaited<ReturnType<typeof decode>>

function rgb(hex: string): [number, number, number] {
  const n = parseInt(hex.slice(1), 16)
  return [n >> 16, (n >> 8) & 255, n & 255]
}

/** The coordinates of the pixels of exactly `hex`. */
function pixelsOf(image: Decoded, hex: string): string[] {
  const [r, g, b] = rgb(hex)
  const found: string[] = []
  for (let i = 0; i < image.data.length; i += 4) {
    if (image.data[i] === r && image.data[i + 1] === g && image.data[i + 2] === b) found.push(`${(i / 4) % image.width},${Math.floor(i / 4 / image.width)}`)
  }
  return found
}

test('the PNG decodes at the requested size, and at 800×480 by default', async (t) => {
  const sized = await decode(renderTrainingCurve(history(5), { width: 640, height: 360, title: 'a run' }))
  t.is(sized.width, 640)
  t.is(sized.height, 360)
  const plain = await decode(renderTrainingCurve(history(5)))
  t.deepEqual([plain.width, plain.height], [800, 480])
})

test('each series is drawn in its colour, and validation only when there is some', async (t) => {
  const withVal = await decode(renderTrainingCurve(history(6)))
  t.true(pixelsOf(withVal, CURVE_COLORS.validation).length > 100, 'validation line and markers')
  t.true(pixelsOf(withVal, CURVE_COLORS.train).length > 50, 'train markers')
  t.true(pixelsOf(withVal, CURVE_COLORS.steps).length > 100, 'smoothed step line')

  const noVal = await decode(renderTrainingCurve(history(6, { validation: false })))
  t.is(pixelsOf(noVal, CURVE_COLORS.validation).length, 0, 'no validation series, no legend entry')
  t.true(pixelsOf(noVal, CURVE_COLORS.train).length > 50)

  const noSteps = await decode(renderTrainingCurve(history(6, { steps: 0 })))
  t.is(pixelsOf(noSteps, CURVE_COLORS.steps).length, 0, 'no step losses, no step line')
  t.true(pixelsOf(noSteps, CURVE_COLORS.validation).length > 100)
})

test('validation points that are absent are skipped, the present ones still drawn', async (t) => {
  const run = history(6).map((e, i) => (i % 2 ? { ...e, valLoss: null } : e))
  const image = await decode(renderTrainingCurve(run))
  t.true(pixelsOf(image, CURVE_COLORS.validation).length > 100)
})

test('one epoch, without step losses and without validation, still draws', async (t) => {
  const image = await decode(renderTrainingCurve([{ epoch: 1, trainLoss: 0.13, valLoss: null }]))
  t.deepEqual([image.width, image.height], [800, 480])
  t.true(pixelsOf(image, CURVE_COLORS.train).length > 20)
  const oneWithSteps = await decode(renderTrainingCurve(history(1)))
  t.true(pixelsOf(oneWithSteps, CURVE_COLORS.steps).length > 100)
  // A history that starts after a resume (epoch 11) is drawn too.
  const resumed = history(3).map((e) => ({ ...e, epoch: e.epoch + 10 }))
  t.true(pixelsOf(await decode(renderTrainingCurve(resumed)), CURVE_COLORS.validation).length > 100)
})

test('a huge first step loss is clipped at the edge instead of squashing the scale', async (t) => {
  // Steps sit at their epoch's mean except the first; 0.4 is within the range
  // the epoch losses set, 1000 would squash everything into one row if it
  // set the scale. The markers must land on the same pixels either way.
  const run = (first: number): CurveEpoch[] =>
    [0.3, 0.2, 0.1].map((mean, i) => ({
      epoch: i + 1,
      trainLoss: mean,
      valLoss: null,
      stepLosses: Array.from({ length: 100 }, (_, s) => (i === 0 && s === 0 ? first : mean)),
    }))
  const modest = await decode(renderTrainingCurve(run(0.4), { smoothing: 0 }))
  const outlier = await decode(renderTrainingCurve(run(1000), { smoothing: 0 }))
  const markers = pixelsOf(modest, CURVE_COLORS.train)
  t.true(markers.length > 50)
  t.deepEqual(pixelsOf(outlier, CURVE_COLORS.train), markers)
})

test('text is drawn: tick and axis labels leave dark pixels left of the plot', async (t) => {
  const image = await decode(renderTrainingCurve(history(4)))
  let dark = 0
  for (let y = 0; y < image.height; y++) {
    for (let x = 0; x < 40; x++) {
      const i = (y * image.width + x) * 4
      if (image.data[i] < 120 && image.data[i + 1] < 120 && image.data[i + 2] < 120) dark++
    }
  }
  t.true(dark > 50, `only ${dark} dark pixels where the y labels are`)
})

test('the built-in bitmap font (for machines without fonts) draws every glyph it knows', (t) => {
  const canvas = createCanvas(400, 40)
  const ctx = canvas.getContext('2d')
  const inked = (text: string) => {
    ctx.fillStyle = '#ffffff'
    ctx.fillRect(0, 0, 400, 40)
    drawText(ctx, text, 4, 20, { size: 12, color: '#000000', font: 'bitmap' })
    const data = ctx.getImageData(0, 0, 400, 40).data
    let n = 0
    for (let i = 0; i < data.length; i += 4) if (data[i] === 0) n++
    return n
  }
  for (const char of 'loss (nats per pixel) 0123456789.-+e') {
    if (char !== ' ') t.true(inked(char) > 0, `glyph ${JSON.stringify(char)}`)
  }
  t.is(inked(' '), 0)
  t.true(inked('epoch') > inked('e'))
})

test('bad history and options fail with a ConfigError naming the field', (t) => {
  const good = history(3)
  const cases: [unknown, unknown, RegExp][] = [
    [[], {}, /`history` holds no epochs/],
    ['epochs', {}, /`history` must be an array/],
    [[...good.slice(0, 2), { ...good[2], trainLoss: NaN }], {}, /`history\[2\]\.trainLoss` must be a finite number, got NaN/],
    [[{ ...good[0], valLoss: Infinity }], {}, /`history\[0\]\.valLoss` must be a finite number, got Infinity/],
    [[{ ...good[0], epoch: '1' }], {}, /`history\[0\]\.epoch`/],
    [[{ ...good[0], stepLosses: [0.5, 0.4, 0.3, NaN] }], {}, /`history\[0\]\.stepLosses\[3\]` must be a finite number/],
    [[{ ...good[0], stepLosses: 'many' }], {}, /`history\[0\]\.stepLosses` must be an array/],
    [[null], {}, /`history\[0\]` must be an object/],
    [good, { smoothing: 1 }, /`smoothing` must be a number in \[0, 1\)/],
    [good, { smoothing: -0.1 }, /`smoothing`/],
    [good, { width: 10 }, /`width` must be an integer between 240 and 8192/],
    [good, { height: 1.5 }, /`height`/],
    [good, { unit: 3 }, /`unit` must be a string/],
    [good, { colour: 'red' }, /unknown option `colour`/],
  ]
  for (const [h, options, message] of cases) {
    const error = t.throws(() => renderTrainingCurve(h as CurveEpoch[], options as object), { instanceOf: ConfigError })
    t.regex(error!.message, message)
    t.is((error as ConfigError).code, 'InvalidConfig')
  }
})

test('writeTrainingCurve writes the PNG through a temporary file', async (t) => {
  const file = path.join(dir, 'curve.png')
  await writeTrainingCurve(history(3), file, { width: 400, height: 300 })
  const image = await decode(readFileSync(file))
  t.deepEqual([image.width, image.height], [400, 300])
  t.deepEqual(readdirSync(dir), ['curve.png'], 'no temporary file left behind')
})

test('writeTrainingCurve fails with an IoError naming the file', async (t) => {
  const file = path.join(dir, 'missing', 'curve.png')
  const error = await t.throwsAsync(writeTrainingCurve(history(2), file), { instanceOf: IoError })
  t.true(error!.message.includes(file))
  t.false(existsSync(path.dirname(file)))
  // Bad input is still a ConfigError, before any file is touched.
  await t.throwsAsync(writeTrainingCurve([], path.join(dir, 'empty.png')), { instanceOf: ConfigError })
  t.false(existsSync(path.join(dir, 'empty.png')))
})
