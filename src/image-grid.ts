/**
 * Writes a batch of images as one PNG grid through @napi-rs/canvas (its
 * binary comes from the npm registry; node-canvas would need a compiler and
 * system libraries). Grayscale (`channels: 1`): binary images are drawn as
 * dark ink on white, like the seed's `cmap='gray_r'` figure; 0–255 images as
 * their grayscale. Colour (`channels: 3`, pixel-interleaved RGB): 0–255
 * images as their colours; binary ones (every value 0 or 1) with each
 * channel off or full, i.e. in the 8 colours of 3 bits (inverting them like
 * grayscale ink would turn red into cyan). Rows may be labelled in a left
 * margin (e.g. the class of each row of samples).
 */

import { createCanvas } from '@napi-rs/canvas'
import { ConfigError, DataError } from './errors'
import { checkImageBatch, describe, type ImageBatch } from './images'
import { drawText, textWidth, type TextStyle } from './text'
import { writeFileAtomic } from './write-file'

export interface GridOptions {
  /** Images per row. @default ceil(√count) */
  columns?: number
  /** Screen pixels per image pixel. @default 4 */
  scale?: number
  /** Screen pixels between images. @default 2 */
  gap?: number
  /** One label per grid row, drawn in a left margin (e.g. '0'…'9' for one row of samples per class). */
  rowLabels?: string[]
}

function positiveInteger(value: unknown, field: string, fallback: number, max: number): number {
  if (value === undefined) return fallback
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new ConfigError(`\`${field}\` must be an integer between 1 and ${max}, got ${describe(value)}`)
  }
  return value
}

function checkRowLabels(value: unknown, rows: number): string[] | undefined {
  if (value === undefined) return undefined
  if (!Array.isArray(value) || value.some((l) => typeof l !== 'string')) {
    throw new ConfigError(`\`rowLabels\` must be an array of strings, got ${describe(value)}`)
  }
  if (value.length !== rows) {
    throw new ConfigError(`\`rowLabels\` has ${value.length} labels but the grid has ${rows} rows (one label per row)`)
  }
  return value
}

/** The grid as PNG bytes. */
export function renderImageGrid(images: ImageBatch, options: GridOptions = {}): Buffer {
  checkImageBatch(images, 'images')
  if (images.count === 0) throw new ConfigError('`images` holds no images to draw')
  const columns = positiveInteger(options.columns, 'columns', Math.ceil(Math.sqrt(images.count)), 10_000)
  const scale = positiveInteger(options.scale, 'scale', 4, 64)
  const gap = options.gap === 0 ? 0 : positiveInteger(options.gap, 'gap', 2, 64)
  const rows = Math.ceil(images.count / columns)
  const labels = checkRowLabels(options.rowLabels, rows)
  const { height: h, width: w, channels: c } = images
  if (c !== 1 && c !== 3) throw new DataError(`images.channels must be 1 (grayscale) or 3 (RGB) to draw them, got ${describe(c)}`)
  const cellW = w * scale + gap
  const cellH = h * scale + gap
  // The label margin: the widest label plus padding, at a size that fits a row.
  const labelText: TextStyle = { size: Math.max(8, Math.min(16, Math.round(h * scale * 0.6))), color: '#000000', align: 'right', baseline: 'middle' }
  const pad = Math.max(4, gap)
  const measure = labels && createCanvas(1, 1).getContext('2d')
  const margin = labels && measure ? Math.ceil(Math.max(...labels.map((l) => textWidth(measure, l, labelText)))) + 2 * pad : 0
  const canvasW = margin + columns * cellW + gap
  const canvasH = rows * cellH + gap
  if (canvasW * canvasH > 1 << 28) throw new ConfigError(`the grid would be ${canvasW}×${canvasH} pixels; lower \`scale\` or draw fewer images`)
  const binary = images.data.every((v) => v <= 1)
  const canvas = createCanvas(canvasW, canvasH)
  const ctx = canvas.getContext('2d')
  const pixels = ctx.createImageData(canvasW, canvasH)
  pixels.data.fill(200) // gaps: light gray
  for (let n = 0; n < images.count; n++) {
    const x0 = margin + gap + (n % columns) * cellW
    const y0 = gap + Math.floor(n / columns) * cellH
    for (let y = 0; y < h * scale; y++) {
      for (let x = 0; x < w * scale; x++) {
        const src = ((n * h + Math.floor(y / scale)) * w + Math.floor(x / scale)) * c
        const dst = ((y0 + y) * canvasW + x0 + x) * 4
        if (c === 3) {
          for (let k = 0; k < 3; k++) pixels.data[dst + k] = binary ? images.data[src + k] * 255 : images.data[src + k]
        } else {
          const value = images.data[src]
          pixels.data[dst] = pixels.data[dst + 1] = pixels.data[dst + 2] = binary ? (value ? 0 : 255) : value
        }
        pixels.data[dst + 3] = 255
      }
    }
  }
  for (let i = 3; i < pixels.data.length; i += 4) pixels.data[i] = 255
  ctx.putImageData(pixels, 0, 0)
  labels?.forEach((label, row) => {
    drawText(ctx, label, margin - pad, gap + row * cellH + (h * scale) / 2, labelText)
  })
  return canvas.toBuffer('image/png')
}

/** Writes the grid to `file` (through a temporary file and a rename). */
export async function writeImageGrid(images: ImageBatch, file: string, options: GridOptions = {}): Promise<void> {
  await writeFileAtomic(file, renderImageGrid(images, options), 'the image')
}
