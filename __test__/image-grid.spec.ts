/**
 * Row labels on the image grid: a left margin is added, each row's label is
 * drawn in it, the images themselves are unchanged (only shifted right), and
 * a label count that does not match the rows is refused. Colour batches
 * (`channels: 3`) are drawn in colour.
 */
import test from 'ava'
import { createCanvas, loadImage } from '@napi-rs/canvas'
import { ConfigError, DataError } from '../src/errors'
import { renderImageGrid } from '../src/image-grid'
import type { ImageBatch } from '../src/images'

/** `count` binary h×w images of a fixed random pattern. */
function batch(count: number, h = 8, w = 8): ImageBatch {
  let seed = 7
  const data = new Uint8Array(count * h * w).map(() => ((seed = (seed * 16807) % 2147483647) % 5 === 0 ? 1 : 0))
  return { count, height: h, width: w, channels: 1, data }
}

async function decode(png: Buffer) {
  const image = await loadImage(png)
  const canvas = createCanvas(image.width, image.height)
  const ctx = canvas.getContext('2d')
  ctx.drawImage(image, 0, 0)
  const data = ctx.getImageData(0, 0, image.width, image.height).data
  return {
    width: image.width,
    height: image.height,
    gray: (x: number, y: number) => data[(y * image.width + x) * 4],
    rgb: (x: number, y: number) => [...data.subarray((y * image.width + x) * 4, (y * image.width + x) * 4 + 3)],
  }
}

const digits = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']
const options = { columns: 3, scale: 3, gap: 2 }

test('without labels the grid keeps its size', async (t) => {
  const plain = await decode(renderImageGrid(batch(30), options))
  // 3 columns of 8·3 + 2 pixels plus the last gap; 10 rows likewise.
  t.deepEqual([plain.width, plain.height], [3 * 26 + 2, 10 * 26 + 2])
})

test('rowLabels widen the grid by a margin and leave the images as they were, shifted right', async (t) => {
  const images = batch(30)
  const plain = await decode(renderImageGrid(images, options))
  const labelled = await decode(renderImageGrid(images, { ...options, rowLabels: digits }))
  t.is(labelled.height, plain.height)
  t.true(labelled.width > plain.width, 'a margin is added')
  const margin = labelled.width - plain.width
  let differing = 0
  for (let y = 0; y < plain.height; y++) {
    for (let x = 0; x < plain.width; x++) if (labelled.gray(x + margin, y) !== plain.gray(x, y)) differing++
  }
  t.is(differing, 0)
})

test('each row label leaves ink in the margin beside its row', async (t) => {
  const plain = await decode(renderImageGrid(batch(30), options))
  const labelled = await decode(renderImageGrid(batch(30), { ...options, rowLabels: digits }))
  const margin = labelled.width - plain.width
  const cell = 8 * 3 + 2
  for (let row = 0; row < 10; row++) {
    let ink = 0
    for (let y = 2 + row * cell; y < 2 + row * cell + 24; y++) {
      for (let x = 0; x < margin; x++) if (labelled.gray(x, y) < 150) ink++ // background is 200
    }
    t.true(ink > 5, `label ${digits[row]}: ${ink} dark pixels`)
  }
  // Longer labels need a wider margin.
  const long = await decode(renderImageGrid(batch(30), { ...options, rowLabels: digits.map((d) => `class ${d}`) }))
  t.true(long.width > labelled.width)
})

test('rowLabels must match the number of rows', (t) => {
  const images = batch(30)
  const error = t.throws(() => renderImageGrid(images, { ...options, rowLabels: digits.slice(0, 9) }), { instanceOf: ConfigError })
  t.regex(error!.message, /`rowLabels` has 9 labels but the grid has 10 rows/)
  t.throws(() => renderImageGrid(images, { ...options, rowLabels: [...digits, '10'] }), { instanceOf: ConfigError })
  // 30 images in 4 columns make 8 rows.
  t.notThrows(() => renderImageGrid(images, { columns: 4, rowLabels: digits.slice(0, 8) }))
  const typed = t.throws(() => renderImageGrid(images, { ...options, rowLabels: [...digits.slice(0, 9), 9] as unknown as string[] }), { instanceOf: ConfigError })
  t.regex(typed!.message, /`rowLabels` must be an array of strings/)
})

test('colour images (channels: 3) are drawn in colour', async (t) => {
  // Two 2×2 RGB images, pixel-interleaved: image 0 red, green / blue, a mix; image 1 gray levels.
  const data = Uint8Array.from([255, 0, 0, 0, 255, 0, 0, 0, 255, 200, 30, 90, 10, 10, 10, 50, 50, 50, 100, 100, 100, 250, 250, 250])
  const grid = await decode(renderImageGrid({ count: 2, height: 2, width: 2, channels: 3, data }, { columns: 2, scale: 3, gap: 1 }))
  t.deepEqual([grid.width, grid.height], [2 * 7 + 1, 7 + 1])
  // Image n's pixel (x, y) covers screen pixels from (1 + 7n + 3x, 1 + 3y).
  const at = (n: number, x: number, y: number) => grid.rgb(1 + 7 * n + 3 * x + 1, 1 + 3 * y + 1)
  t.deepEqual(at(0, 0, 0), [255, 0, 0])
  t.deepEqual(at(0, 1, 0), [0, 255, 0])
  t.deepEqual(at(0, 0, 1), [0, 0, 255])
  t.deepEqual(at(0, 1, 1), [200, 30, 90])
  t.deepEqual(at(1, 1, 1), [250, 250, 250])
  t.deepEqual(grid.rgb(0, 0), [200, 200, 200]) // the gap

  // Binary colour images: each channel off or full.
  const binary = await decode(renderImageGrid({ count: 1, height: 1, width: 2, channels: 3, data: Uint8Array.from([1, 0, 1, 0, 1, 1]) }, { scale: 2, gap: 0 }))
  t.deepEqual(binary.rgb(0, 0), [255, 0, 255])
  t.deepEqual(binary.rgb(3, 1), [0, 255, 255])

  t.throws(() => renderImageGrid({ count: 1, height: 1, width: 1, channels: 2, data: Uint8Array.from([1, 2]) }), {
    instanceOf: DataError,
    message: /channels must be 1 \(grayscale\) or 3 \(RGB\) to draw them, got 2/,
  })
})
