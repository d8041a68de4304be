/**
 * Text on a canvas. @napi-rs/canvas bundles no fonts: it draws text with the
 * system's fonts. A bare container may have none, and then `fillText` draws
 * nothing, so text falls back to a small built-in bitmap font (capitals,
 * digits and the usual punctuation); a chart whose ticks cannot be read is
 * worse than a plain one.
 */

import { GlobalFonts, type SKRSContext2D } from '@napi-rs/canvas'

/**
 * A 3×5 bitmap font: five rows per glyph, top to bottom, `#` is ink. Lower
 * case is drawn as upper case; anything else as `?`.
 */
const GLYPH_ROWS: Record<string, string> = {
  ' ': '... ... ... ... ...',
  '0': '### #.# #.# #.# ###', '1': '.#. ##. .#. .#. ###', '2': '### ..# ### #.. ###', '3': '### ..# .## ..# ###',
  '4': '#.# #.# ### ..# ..#', '5': '### #.. ### ..# ###', '6': '### #.. ### #.# ###', '7': '### ..# .#. .#. .#.',
  '8': '### #.# ### #.# ###', '9': '### #.# ### ..# ###',
  A: '.#. #.# ### #.# #.#', B: '##. #.# ##. #.# ##.', C: '.## #.. #.. #.. .##', D: '##. #.# #.# #.# ##.',
  E: '### #.. ##. #.. ###', F: '### #.. ##. #.. #..', G: '.## #.. #.# #.# .##', H: '#.# #.# ### #.# #.#',
  I: '### .#. .#. .#. ###', J: '..# ..# ..# #.# .#.', K: '#.# #.# ##. #.# #.#', L: '#.. #.. #.. #.. ###',
  M: '#.# ### ### #.# #.#', N: '##. #.# #.# #.# #.#', O: '.#. #.# #.# #.# .#.', P: '##. #.# ##. #.. #..',
  Q: '.#. #.# #.# ##. .##', R: '##. #.# ##. #.# #.#', S: '.## #.. .#. ..# ##.', T: '### .#. .#. .#. .#.',
  U: '#.# #.# #.# #.# ###', V: '#.# #.# #.# #.# .#.', W: '#.# #.# ### ### #.#', X: '#.# #.# .#. #.# #.#',
  Y: '#.# #.# .#. .#. .#.', Z: '### ..# .#. #.. ###',
  '.': '... ... ... ... .#.', ',': '... ... ... .#. #..', '-': '... ... ### ... ...', '+': '... .#. ### .#. ...',
  '(': '..# .#. .#. .#. ..#', ')': '#.. .#. .#. .#. #..', '/': '..# ..# .#. #.. #..', ':': '... .#. ... .#. ...',
  '=': '... ### ... ### ...', '%': '#.# ..# .#. #.. #.#', '_': '... ... ... ... ###', '×': '... #.# .#. #.# ...',
  "'": '.#. .#. ... ... ...', '!': '.#. .#. .#. ... .#.', '?': '### ..# .#. ... .#.', '<': '..# .#. #.. .#. ..#',
  '>': '#.. .#. ..# .#. #..', '[': '##. #.. #.. #.. ##.', ']': '.## ..# ..# ..# .##', '#': '#.# ### #.# ### #.#',
  '*': '... #.# .#. #.# ...', '·': '... ... .#. ... ...', '−': '... ... ### ... ...', '–': '... ... ### ... ...',
}
const GLYPHS: Record<string, string> = Object.fromEntries(Object.entries(GLYPH_ROWS).map(([k, rows]) => [k, rows.replace(/ /g, '')]))

let systemFonts: boolean | undefined
function hasSystemFonts(): boolean {
  systemFonts ??= GlobalFonts.families.length > 0
  return systemFonts
}

/** @internal How text is drawn: with the system's fonts, or the built-in bitmap font ('auto': the bitmap only when there are no fonts). */
export type TextFont = 'auto' | 'system' | 'bitmap'

/** @internal */
export interface TextStyle {
  /** Pixels. */
  size: number
  color: string
  align?: 'left' | 'center' | 'right'
  baseline?: 'top' | 'middle' | 'bottom'
  bold?: boolean
  font?: TextFont
}

function useBitmap(font: TextFont | undefined): boolean {
  return font === 'bitmap' || (font !== 'system' && !hasSystemFonts())
}

/** The bitmap font's pixels per cell at a text size. */
const dotSize = (size: number) => Math.max(1, Math.round(size / 6))

/** @internal Width of `text` in pixels. */
export function textWidth(ctx: SKRSContext2D, text: string, style: Pick<TextStyle, 'size' | 'bold' | 'font'>): number {
  if (useBitmap(style.font)) return text.length === 0 ? 0 : (4 * [...text].length - 1) * dotSize(style.size)
  ctx.font = `${style.bold ? 'bold ' : ''}${style.size}px sans-serif`
  return ctx.measureText(text).width
}

/** @internal Draws `text` anchored at (x, y), under the context's current transform. */
export function drawText(ctx: SKRSContext2D, text: string, x: number, y: number, style: TextStyle): void {
  const align = style.align ?? 'left'
  const baseline = style.baseline ?? 'middle'
  ctx.fillStyle = style.color
  if (!useBitmap(style.font)) {
    ctx.font = `${style.bold ? 'bold ' : ''}${style.size}px sans-serif`
    ctx.textAlign = align
    ctx.textBaseline = baseline
    ctx.fillText(text, x, y)
    return
  }
  const dot = dotSize(style.size)
  const width = textWidth(ctx, text, style)
  const x0 = Math.round(align === 'left' ? x : align === 'center' ? x - width / 2 : x - width)
  const y0 = Math.round(baseline === 'top' ? y : baseline === 'middle' ? y - 2.5 * dot : y - 5 * dot)
  let column = 0
  for (const char of text) {
    const glyph = GLYPHS[char] ?? GLYPHS[char.toUpperCase()] ?? GLYPHS['?']
    for (let cell = 0; cell < 15; cell++) {
      if (glyph[cell] !== '#') continue
      ctx.fillRect(x0 + (column * 4 + (cell % 3)) * dot, y0 + Math.floor(cell / 3) * dot, dot, dot)
      if (style.bold) ctx.fillRect(x0 + (column * 4 + (cell % 3)) * dot + dot / 2, y0 + Math.floor(cell / 3) * dot, dot, dot)
    }
    column++
  }
}
