/**
 * The TensorBoard event writer: CRC-32C against its published check values,
 * files that the real `tensorboard` package reads back exactly (scalars as
 * float32, images byte for byte, out-of-order steps kept, a torn last record
 * dropped and nothing else), and log folders that are refused or never
 * overwritten.
 */
import test from 'ava'
import { createCanvas } from '@napi-rs/canvas'
import { execFileSync } from 'node:child_process'
import { chmodSync, existsSync, readdirSync, readFileSync, statSync, truncateSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { crc32c, maskedCrc32c } from '../src/tensorboard/crc32c'
import { checkLogDir, EventWriter, pngColorspace } from '../src/tensorboard/event-writer'
import { removeTempDirs, tempDir } from './helpers/temp'

test.after.always(removeTempDirs)

interface Read {
  fileVersions: string[]
  scalars: Record<string, { step: number; value: number; wallTime: number }[]>
  images: Record<string, { step: number; wallTime: number; width: number; height: number; png: string }[]>
  colorspaces: Record<string, number[]>
}

/** What TensorBoard's reader sees in `file` (or a folder), or undefined where no PyTorch environment is configured. */
function readBack(file: string): Read | undefined {
  const python = process.env.PIXELCNN_PYTHON
  if (!python) return undefined
  return JSON.parse(execFileSync(python, [path.join(__dirname, 'support', 'read_tensorboard.py'), file], { encoding: 'utf8' })) as Read
}

const NO_PYTHON = 'PIXELCNN_PYTHON is not set (npm test sets it): skipped'

test('CRC-32C gives the standard check value and the RFC 3720 vectors; the mask is TensorFlow\'s', (t) => {
  t.is(crc32c(Buffer.from('123456789')), 0xe3069283)
  t.is(crc32c(new Uint8Array(32)), 0x8a9136aa)
  t.is(crc32c(Uint8Array.from({ length: 32 }, (_, i) => i)), 0x46dd794e)
  t.is(crc32c(new Uint8Array(0)), 0)
  // masked_crc32c of tensorboard/compat/tensorflow_stub/pywrap_tensorflow.py.
  t.is(maskedCrc32c(Buffer.from('123456789')), 0xc78ab0e5)
  t.is(maskedCrc32c(new Uint8Array(0)), 0xa282ead8)
})

test('scalars and a PNG image read back through TensorBoard\'s EventAccumulator exactly', (t) => {
  const logDir = path.join(tempDir('tb'), 'nested', 'run')
  const canvas = createCanvas(5, 3)
  const ctx = canvas.getContext('2d')
  ctx.fillStyle = '#ff0000'
  ctx.fillRect(0, 0, 2, 3)
  ctx.fillStyle = 'rgba(0, 0, 255, 0.5)'
  ctx.fillRect(2, 1, 3, 2)
  const png = canvas.toBuffer('image/png')

  const writer = new EventWriter(logDir)
  t.regex(path.basename(writer.file), /^events\.out\.tfevents\.\d{10}\.[^/]+\.\d+\.\d+$/)
  // A step that goes backwards (4 after 5) as the training log writes them; a step beyond 2^32.
  const written = [
    { step: 1, value: 0.1 },
    { step: 2, value: -2.5 },
    { step: 3, value: 1e-7 },
    { step: 5, value: 12345.678 },
    { step: 4, value: 0 },
    { step: 2 ** 40, value: Math.PI },
  ]
  for (const { step, value } of written) writer.scalar('train/loss', value, step)
  writer.scalar('val/loss', 0.75, 3, 1700000000.125)
  writer.image('samples', png, 5, 3, 5, 1700000001.5)
  writer.flush()
  writer.close()
  writer.close()
  t.throws(() => writer.scalar('train/loss', 1, 6), { message: /is closed/ })

  const read = readBack(logDir)
  if (!read) return t.pass(NO_PYTHON)
  t.deepEqual(read.fileVersions, ['brain.Event:2'])
  t.deepEqual(Object.keys(read.scalars).sort(), ['train/loss', 'val/loss'])
  t.deepEqual(
    read.scalars['train/loss'].map(({ step, value }) => ({ step, value })),
    written.map(({ step, value }) => ({ step, value: Math.fround(value) })),
  )
  t.deepEqual(read.scalars['val/loss'], [{ step: 3, value: 0.75, wallTime: 1700000000.125 }])
  const now = Date.now() / 1000
  t.true(read.scalars['train/loss'].every((s) => Math.abs(s.wallTime - now) < 60), 'wall time defaults to now')
  t.deepEqual(Object.keys(read.images), ['samples'])
  const [image] = read.images.samples
  t.like(image, { step: 5, wallTime: 1700000001.5, width: 5, height: 3 })
  t.true(Buffer.from(image.png, 'base64').equals(png), 'the PNG comes back byte for byte')
  t.deepEqual(read.colorspaces, { samples: [4] }, 'a canvas PNG is RGBA')
})

test('the colorspace follows the PNG\'s colour type', (t) => {
  const ihdr = (colourType: number) => {
    const png = Buffer.alloc(33)
    Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]).copy(png)
    png.write('IHDR', 12, 'latin1')
    png[25] = colourType
    return png
  }
  t.deepEqual([0, 2, 3, 4, 6].map((c) => pngColorspace(ihdr(c))), [1, 3, 3, 2, 4])
  t.is(pngColorspace(Buffer.from('not a png')), 4)
})

test('a crash mid-record loses that record only', (t) => {
  const writer = new EventWriter(tempDir('tb-torn'))
  for (let step = 1; step <= 3; step++) writer.scalar('x', step / 2, step)
  writer.close()
  truncateSync(writer.file, statSync(writer.file).size - 3)
  const read = readBack(writer.file)
  if (!read) return t.pass(NO_PYTHON)
  t.deepEqual(read.scalars.x.map((s) => [s.step, s.value]), [[1, 0.5], [2, 1]])
})

test('checkLogDir refuses a file (or a path below one), naming logDir; the writer refuses it too', (t) => {
  const dir = tempDir('tb-check')
  const file = path.join(dir, 'plain-file')
  writeFileSync(file, 'not a folder')
  t.is(checkLogDir(file), `\`logDir\` ${JSON.stringify(file)}: is a file, not a folder`)
  t.is(checkLogDir(path.join(file, 'below')), `\`logDir\` ${JSON.stringify(path.join(file, 'below'))}: ${JSON.stringify(file)} is a file, not a folder`)
  t.throws(() => new EventWriter(file), { message: /^`logDir` .* is a file, not a folder$/ })
  t.is(readFileSync(file, 'utf8'), 'not a folder')
  t.is(checkLogDir(dir), null)
  t.is(checkLogDir(path.join(dir, 'not', 'yet', 'there')), null)
  t.false(existsSync(path.join(dir, 'not')), 'checking creates nothing')
  if (process.getuid?.() === 0) return t.log('running as root: every folder is writable, the read-only case is skipped')
  const readOnly = path.join(dir, 'read-only')
  writeFileSync(path.join(dir, 'unused'), '')
  chmodSync(dir, 0o555)
  try {
    t.regex(checkLogDir(readOnly) ?? '', /^`logDir` .* is not writable$/)
  } finally {
    chmodSync(dir, 0o755)
  }
})

test('a second writer in the same folder and second gets its own file, and no file is ever overwritten', (t) => {
  const logDir = tempDir('tb-unique')
  const a = new EventWriter(logDir)
  a.scalar('x', 1.5, 1)
  // Plants the names the next writer of this process would take next, this second and the next.
  const [, seconds, counter] = /tfevents\.(\d+)\..*\.(\d+)$/.exec(a.file)!
  const planted = [0, 1].map((ds) => path.join(logDir, path.basename(a.file).replace(/\.\d{10}\.(.*)\.\d+$/, `.${Number(seconds) + ds}.$1.${Number(counter) + 1}`)))
  for (const file of planted) writeFileSync(file, 'planted')
  const before = readFileSync(a.file)
  const b = new EventWriter(logDir)
  b.scalar('x', 2.5, 1)
  a.close()
  b.close()
  t.not(a.file, b.file)
  t.false(planted.includes(b.file))
  for (const file of planted) t.is(readFileSync(file, 'utf8'), 'planted')
  t.true(readFileSync(a.file).subarray(0, before.length).equals(before), "the first writer's file is untouched")
  t.is(readdirSync(logDir).length, 4)
  const [readA, readB] = [readBack(a.file), readBack(b.file)]
  if (!readA || !readB) return t.pass(NO_PYTHON)
  t.deepEqual(readA.scalars.x.map((s) => s.value), [1.5])
  t.deepEqual(readB.scalars.x.map((s) => s.value), [2.5])
})
