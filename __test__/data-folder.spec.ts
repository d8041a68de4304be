import test from 'ava'
import { createCanvas } from '@napi-rs/canvas'
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { ConfigError, DataError, IoError } from '../src/errors'
import { loadImageFolder } from '../src/data/folder'
import { removeTempDirs, tempDir } from './helpers/temp'

test.after.always(removeTempDirs)

/**
 * A 56×56 picture: `ink` fills the top-left quadrant, `background` the rest
 * (`null`: transparent). Downscaled to 28×28, the quadrant is exactly the top
 * left 14×14 pixels.
 */
function picture(ink: string, background: string | null, type: 'image/png' | 'image/jpeg' = 'image/png'): Buffer {
  const canvas = createCanvas(56, 56)
  const context = canvas.getContext('2d')
  if (background !== null) {
    context.fillStyle = background
    context.fillRect(0, 0, 56, 56)
  }
  context.fillStyle = ink
  context.fillRect(0, 0, 28, 28)
  return type === 'image/png' ? canvas.toBuffer('image/png') : canvas.toBuffer('image/jpeg', 95)
}

/** The expected binary 28×28 image: ones in the top-left 14×14 quadrant. */
const QUADRANT = Uint8Array.from({ length: 28 * 28 }, (_, i) => (Math.floor(i / 28) < 14 && i % 28 < 14 ? 1 : 0))

function image(data: Uint8Array, index: number, pixels = 28 * 28): Uint8Array {
  return data.subarray(index * pixels, (index + 1) * pixels)
}

test('sub-folders are classes in sorted order; files at the top get the last class, ""', async (t) => {
  const dir = tempDir()
  mkdirSync(join(dir, 'b-square'))
  mkdirSync(join(dir, 'a-circle', 'nested'), { recursive: true })
  mkdirSync(join(dir, '.hidden'))
  writeFileSync(join(dir, 'b-square', '2.png'), picture('#fff', '#000'))
  writeFileSync(join(dir, 'b-square', '1.PNG'), picture('#fff', '#000'))
  writeFileSync(join(dir, 'a-circle', 'x.jpg'), picture('#fff', '#000', 'image/jpeg'))
  writeFileSync(join(dir, 'a-circle', 'nested', 'y.png'), picture('#fff', null))
  writeFileSync(join(dir, 'top.png'), picture('#fff', '#000'))
  writeFileSync(join(dir, 'notes.txt'), 'not an image')
  writeFileSync(join(dir, '.hidden', 'z.png'), 'not even decoded')
  writeFileSync(join(dir, '.DS_Store.png'), 'skipped too')

  const folder = await loadImageFolder(dir)
  t.deepEqual(folder.classNames, ['a-circle', 'b-square', ''])
  t.deepEqual(folder.files, [join('a-circle', 'nested', 'y.png'), join('a-circle', 'x.jpg'), join('b-square', '1.PNG'), join('b-square', '2.png'), 'top.png'])
  t.deepEqual([...folder.labels], [0, 0, 1, 1, 2])
  t.deepEqual([folder.images.count, folder.images.height, folder.images.width, folder.images.channels], [5, 28, 28, 1])
  for (let i = 0; i < 5; i++) t.deepEqual([...image(folder.images.data, i)], [...QUADRANT], folder.files[i])
})

test('invert turns dark ink on light (or transparent) backgrounds into MNIST-style images', async (t) => {
  const dir = tempDir()
  writeFileSync(join(dir, 'a.png'), picture('#000', '#fff'))
  writeFileSync(join(dir, 'b.png'), picture('#000', null))
  writeFileSync(join(dir, 'c.jpeg'), picture('#111', '#eee', 'image/jpeg'))
  const folder = await loadImageFolder(dir, { invert: true })
  t.deepEqual(folder.classNames, [''])
  for (let i = 0; i < 3; i++) t.deepEqual([...image(folder.images.data, i)], [...QUADRANT], folder.files[i])
  // Without invert the same pictures are the negative (a transparent background stays 0).
  const plain = await loadImageFolder(dir)
  t.deepEqual([...image(plain.images.data, 0)], [...QUADRANT].map((v) => 1 - v))
  t.deepEqual([...image(plain.images.data, 1)], new Array(28 * 28).fill(0))
})

test('size and threshold are applied', async (t) => {
  const dir = tempDir()
  // Gray 100 ink: above the default threshold 84.48, below 128.
  writeFileSync(join(dir, 'gray.png'), picture('rgb(100,100,100)', '#000'))
  const small = await loadImageFolder(dir, { size: [4, 8] })
  t.deepEqual([small.images.height, small.images.width], [4, 8])
  t.deepEqual([...small.images.data], [1, 1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0])
  const high = await loadImageFolder(dir, { size: 4, threshold: 128 })
  t.true(high.images.data.every((v) => v === 0))
  const stochastic = await loadImageFolder(dir, { size: 16, threshold: 'stochastic', seed: 1 })
  t.true(stochastic.images.data.every((v) => v === 0 || v === 1))
})

test('an undecodable file is a DataError naming it; an empty folder too', async (t) => {
  const dir = tempDir()
  writeFileSync(join(dir, 'a.png'), picture('#fff', '#000'))
  writeFileSync(join(dir, 'broken.png'), Buffer.from('this is not a PNG'))
  const error = await t.throwsAsync(loadImageFolder(dir), { instanceOf: DataError })
  t.true(error!.message.includes(join(dir, 'broken.png')), error!.message)

  const empty = tempDir()
  writeFileSync(join(empty, 'readme.txt'), 'no images')
  await t.throwsAsync(loadImageFolder(empty), { instanceOf: DataError, message: new RegExp(`no PNG or JPEG files in ${empty}`) })
  await t.throwsAsync(loadImageFolder(join(empty, 'missing')), { instanceOf: IoError, message: /missing/ })
})

test('bad options are ConfigErrors', async (t) => {
  const dir = tempDir()
  await t.throwsAsync(loadImageFolder(dir, { size: 0 }), { instanceOf: ConfigError, message: /size/ })
  await t.throwsAsync(loadImageFolder(dir, { size: [28] as never }), { instanceOf: ConfigError, message: /size.*\[28\]/ })
  await t.throwsAsync(loadImageFolder(dir, { threshold: -1 }), { instanceOf: ConfigError, message: /threshold/ })
  await t.throwsAsync(loadImageFolder(dir, { invert: 'yes' as never }), { instanceOf: ConfigError, message: /invert/ })
})
