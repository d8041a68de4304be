import test from 'ava'
import { createCanvas } from '@napi-rs/canvas'
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
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

test('channels: 3 keeps the RGB colours, pixel-interleaved, 8-bit unless a threshold is given', async (t) => {
  const dir = tempDir()
  mkdirSync(join(dir, 'warm'))
  mkdirSync(join(dir, 'cool'))
  writeFileSync(join(dir, 'warm', 'a.png'), picture('rgb(200,30,90)', 'rgb(10,120,250)'))
  writeFileSync(join(dir, 'cool', 'b.png'), picture('rgb(0,255,64)', null))
  const folder = await loadImageFolder(dir, { channels: 3 })
  t.deepEqual(folder.classNames, ['cool', 'warm'])
  t.deepEqual([folder.images.count, folder.images.height, folder.images.width, folder.images.channels], [2, 28, 28, 3])
  t.is(folder.images.data.length, 2 * 28 * 28 * 3)
  const rgb = (n: number, x: number, y: number) => [...folder.images.data.subarray(((n * 28 + y) * 28 + x) * 3, ((n * 28 + y) * 28 + x) * 3 + 3)]
  // Image 0 is cool/b.png: green ink, transparent elsewhere (composited onto black).
  t.deepEqual(rgb(0, 0, 0), [0, 255, 64])
  t.deepEqual(rgb(0, 13, 13), [0, 255, 64])
  t.deepEqual(rgb(0, 14, 0), [0, 0, 0])
  t.deepEqual(rgb(0, 27, 27), [0, 0, 0])
  // Image 1 is warm/a.png: the ink quadrant and the background keep their colours.
  t.deepEqual(rgb(1, 5, 9), [200, 30, 90])
  t.deepEqual(rgb(1, 20, 3), [10, 120, 250])
  t.deepEqual(rgb(1, 27, 27), [10, 120, 250])

  // invert: each channel inverted; transparency is composited onto white, so it still ends up 0.
  const inverted = await loadImageFolder(dir, { channels: 3, invert: true })
  t.deepEqual([...inverted.images.data.subarray(0, 3)], [255, 0, 191])
  t.deepEqual([...inverted.images.data.subarray(3 * (28 * 28 - 1), 3 * 28 * 28)], [0, 0, 0])
  t.deepEqual([...inverted.images.data.subarray(3 * 28 * 28, 3 * 28 * 28 + 3)], [55, 225, 165])

  // A threshold binarizes each channel.
  const binary = await loadImageFolder(dir, { channels: 3, size: 8, threshold: 128 })
  t.true(binary.images.data.every((v) => v === 0 || v === 1))
  const bit = (n: number, x: number, y: number) => [...binary.images.data.subarray(((n * 8 + y) * 8 + x) * 3, ((n * 8 + y) * 8 + x) * 3 + 3)]
  t.deepEqual([bit(0, 0, 0), bit(0, 7, 7), bit(1, 0, 0), bit(1, 7, 7)], [[0, 1, 0], [0, 0, 0], [1, 0, 0], [0, 0, 1]])

  // JPEG is lossy: the colours come back close.
  writeFileSync(join(dir, 'warm', 'c.jpg'), picture('rgb(200,30,90)', 'rgb(10,120,250)', 'image/jpeg'))
  const withJpeg = await loadImageFolder(dir, { channels: 3 })
  const c = withJpeg.files.indexOf(join('warm', 'c.jpg'))
  const pixel = [...withJpeg.images.data.subarray(((c * 28 + 5) * 28 + 5) * 3, ((c * 28 + 5) * 28 + 5) * 3 + 3)]
  pixel.forEach((v, k) => t.true(Math.abs(v - [200, 30, 90][k]) <= 8, `JPEG channel ${k}: ${v}`))
})

test('a bad channels value is a ConfigError naming it', async (t) => {
  const dir = tempDir()
  writeFileSync(join(dir, 'a.png'), picture('#fff', '#000'))
  for (const channels of [2, 4, 0, '3', 1.5]) {
    const error = await t.throwsAsync(loadImageFolder(dir, { channels: channels as never }), { instanceOf: ConfigError })
    t.regex(error!.message, /`channels` must be 1 \(grayscale\) or 3 \(RGB\), got /)
  }
  const gray = await loadImageFolder(dir, { channels: 1 })
  t.is(gray.images.channels, 1)
})

test('a symbolic link to an image is loaded under its own path; a link to a folder is read like a sub-folder', async (t) => {
  const elsewhere = tempDir('elsewhere')
  writeFileSync(join(elsewhere, 'real.png'), picture('#fff', '#000'))
  mkdirSync(join(elsewhere, 'shapes'))
  writeFileSync(join(elsewhere, 'shapes', 's.png'), picture('#fff', '#000'))
  const dir = tempDir()
  mkdirSync(join(dir, 'a'))
  symlinkSync(join(elsewhere, 'real.png'), join(dir, 'a', 'linked.png'))
  writeFileSync(join(dir, 'a', 'plain.png'), picture('#fff', '#000'))
  symlinkSync(join(elsewhere, 'shapes'), join(dir, 'b'))
  // A relative link, and a link to a link.
  symlinkSync('plain.png', join(dir, 'a', 'relative.png'))
  symlinkSync(join(dir, 'a', 'linked.png'), join(dir, 'a', 'twice.png'))

  const folder = await loadImageFolder(dir)
  t.deepEqual(folder.files, [join('a', 'linked.png'), join('a', 'plain.png'), join('a', 'relative.png'), join('a', 'twice.png'), join('b', 's.png')])
  t.deepEqual(folder.classNames, ['a', 'b'])
  t.deepEqual([...folder.labels], [0, 0, 0, 0, 1])
  for (let i = 0; i < 5; i++) t.deepEqual([...image(folder.images.data, i)], [...QUADRANT], folder.files[i])
  // Hidden links stay skipped.
  symlinkSync(join(elsewhere, 'real.png'), join(dir, '.hidden.png'))
  t.is((await loadImageFolder(dir)).images.count, 5)
})

test('an image-named loop of symbolic links and an image-named dangling link are IoErrors naming the link', async (t) => {
  const bytes = picture('#fff', '#000')
  const cases: Array<[string, (dir: string) => string, RegExp]> = [
    ['loop', (dir) => {
      symlinkSync(join(dir, 'y.png'), join(dir, 'x.png'))
      symlinkSync(join(dir, 'x.png'), join(dir, 'y.png'))
      return 'x.png'
    }, /x\.png in the image folder .*: it is a loop of symbolic links \(ELOOP\)/],
    ['dangling', (dir) => {
      symlinkSync(join(dir, 'gone.png'), join(dir, 'dangling.png'))
      return 'dangling.png'
    }, /dangling\.png in the image folder .*: it is a symbolic link to nothing \(ENOENT\)/],
    ['dangling, in a linked folder', (dir) => {
      const other = tempDir('other')
      symlinkSync(join(other, 'gone.jpg'), join(other, 'broken.jpg'))
      symlinkSync(other, join(dir, 'sub'))
      return join('sub', 'broken.jpg')
    }, /sub\/broken\.jpg in the image folder .*: it is a symbolic link to nothing \(ENOENT\)/],
  ]
  for (const [what, plant, reason] of cases) {
    const dir = tempDir()
    writeFileSync(join(dir, 'ok.png'), bytes)
    const link = plant(dir)
    const error = await t.throwsAsync(loadImageFolder(dir), { instanceOf: IoError }, what)
    t.is(error!.code, 'Io')
    t.true(error!.message.includes(link), `${what}: ${error!.message}`)
    t.regex(error!.message, reason, what)
    t.deepEqual(readFileSync(join(dir, 'ok.png')), bytes, 'nothing on disk changed')
  }
})

test('links that cannot be followed but have no image name are ignored, like any other non-image', async (t) => {
  const dir = tempDir()
  writeFileSync(join(dir, 'ok.png'), picture('#fff', '#000'))
  symlinkSync(join(dir, 'gone'), join(dir, 'notes.txt'))
  symlinkSync(join(dir, 'nowhere'), join(dir, 'a-folder-link'))
  symlinkSync(join(dir, 'loop-b'), join(dir, 'loop-a'))
  symlinkSync(join(dir, 'loop-a'), join(dir, 'loop-b'))
  const folder = await loadImageFolder(dir)
  t.deepEqual(folder.files, ['ok.png'])
})

test('a folder reached through several links (or a link back up) is read once, under the first path in sorted order', async (t) => {
  const shared = tempDir('shared')
  writeFileSync(join(shared, 's.png'), picture('#fff', '#000'))
  const dir = tempDir()
  mkdirSync(join(dir, 'real'))
  writeFileSync(join(dir, 'real', 'r.png'), picture('#fff', '#000'))
  symlinkSync(shared, join(dir, 'b-link'))
  symlinkSync(shared, join(dir, 'c-link'))
  // Links back to the top folder and to a sibling: already read (or about to be), so skipped.
  symlinkSync(dir, join(dir, 'real', 'up'))
  symlinkSync(join(dir, 'real'), join(dir, 'z-real-again'))
  const folder = await loadImageFolder(dir)
  t.deepEqual(folder.files, [join('b-link', 's.png'), join('real', 'r.png')])
  t.deepEqual(folder.classNames, ['b-link', 'real'])
})

test('a chain of folders each linking twice to the next is read once per folder, not 2^depth times', async (t) => {
  const dir = tempDir()
  const depth = 40
  const levels = Array.from({ length: depth + 1 }, (_, i) => join(dir, `level-${String(i).padStart(2, '0')}`))
  for (const level of levels) mkdirSync(level)
  for (let i = 0; i < depth; i++) {
    symlinkSync(levels[i + 1], join(levels[i], 'left'))
    symlinkSync(levels[i + 1], join(levels[i], 'right'))
  }
  writeFileSync(join(levels[depth], 'bottom.png'), picture('#fff', '#000'))
  // Without the global set this would list 2^40 paths; with it, the bottom image once.
  const folder = await loadImageFolder(levels[0])
  t.deepEqual(folder.files, [join(...Array<string>(depth).fill('left'), 'bottom.png')])
})
