/**
 * A folder of PNG or JPEG images as a batch, for training on your own
 * pictures:
 * - each image is resized to `size` by stretching (the aspect ratio is not
 *   kept, as MNIST-like data is square), then, with `channels: 1` (the
 *   default), converted to grayscale by luminance (Rec. 601: 0.299 R +
 *   0.587 G + 0.114 B, as PIL's 'L' mode) and binarized with `threshold`;
 *   with `channels: 3` it is kept as 8-bit RGB (pixel-interleaved, like every
 *   `ImageBatch`), not binarized unless a `threshold` is given;
 * - MNIST is light ink on a dark background, so `invert: true` is there for
 *   dark-on-light pictures (scans, drawings); with colour it inverts each
 *   channel. Alpha is dropped by compositing: transparent pixels are treated
 *   as background and drawn onto black, or onto white when `invert` is set,
 *   so that either way they end up 0 in every channel: 0 is the background
 *   of the MNIST-like data this loader was made for, and what a model's
 *   zero padding sees beyond the edges. (Colour photos rarely have alpha;
 *   for cut-outs on another background, flatten them before loading);
 * - labels come from sub-folders: the sub-folder names, sorted, are the
 *   `classNames` and a label is an index into them. Images directly in `dir`
 *   belong to the class `''`, put last so that a stray file does not shift
 *   the other labels. Deeper folders belong to their top-level sub-folder.
 * Files are read in sorted path order, so the result is deterministic. Names
 * starting with '.' and files that are not .png/.jpg/.jpeg are skipped.
 *
 * Symbolic links are followed, as if they were what they point to: a link
 * to an image file is loaded (under the link's own path, in `files`), a link
 * to a folder is read like a sub-folder. A link with an image name (.png,
 * .jpg, .jpeg) that cannot be followed is refused with an `IoError` naming
 * it, rather than skipped (a silently smaller dataset is hard to notice):
 * one that points to nothing and a loop of links (ELOOP). A link with any
 * other name that cannot be followed (`notes.txt -> gone`) is ignored, like
 * any other file that is not an image.
 *
 * Each folder is read at most once, however many links lead to it: folders
 * are identified by device and inode, and one set of those already read is
 * kept for the whole call. Entries are visited in sorted order of their
 * names, depth first, so the path under which a shared folder's images are
 * listed (and the class they get) is the first one in that order; a later
 * link to it, and a link back to a folder that contains it, adds nothing and
 * is skipped. This also bounds the work by the number of distinct folders: a
 * chain of folders each linking twice to the next is read once per folder,
 * not 2^depth times.
 *
 * An image name that is neither a regular file nor a folder once links are
 * followed (a FIFO, a device, a socket) is refused: reading it could block
 * forever or never end. Each image file is opened and checked again when it
 * is read (see read-file.ts) and may hold at most `MAX_IMAGE_FILE_BYTES`.
 */

import { createCanvas, loadImage, type Image } from '@napi-rs/canvas'
import { readdir, stat } from 'node:fs/promises'
import { join, relative, sep } from 'node:path'

import { ConfigError, DataError, IoError } from '../errors'
import { describe, type ImageBatch } from '../images'
import { binarize, checkBinarization, SEED_THRESHOLD, type Binarization } from './binarize'
import { checkOptions } from '../options'
import { errno } from '../write-file'
import { readRegularFile } from './read-file'

export interface ImageFolderOptions {
  /** Output size: a side for square images, or `[height, width]`. @default 28 */
  size?: number | [height: number, width: number]
  /** 1: grayscale; 3: RGB (alpha is dropped, see above). @default 1 */
  channels?: 1 | 3
  /**
   * How to binarize (each channel, for RGB); `'none'` keeps the 8-bit values
   * (for `output: 'categorical'`). @default 0.33 × 256 (the seed's threshold)
   * for grayscale, `'none'` for RGB
   */
  threshold?: Binarization
  /** Seed for `threshold: 'stochastic'`. @default 0 */
  seed?: number
  /** Invert the gray levels (for dark ink on a light background). @default false */
  invert?: boolean
}

export interface ImageFolder {
  /** The images in sorted path order: 0/1 once binarized, else 0–255; `channels` as asked. */
  images: ImageBatch
  /** One label per image: an index into `classNames`. */
  labels: Uint8Array
  /** Sorted sub-folder names, then `''` if images lie directly in `dir`. */
  classNames: string[]
  /** Each image's path relative to `dir`, in the same order. */
  files: string[]
}

const EXTENSIONS = /\.(png|jpe?g)$/i
const MAX_SIDE = 4096
/** The largest image file read (256 MiB): far beyond any picture meant for a 4096×4096 output, and a bound on memory. */
export const MAX_IMAGE_FILE_BYTES = 256 * 1024 * 1024

export async function loadImageFolder(dir: string, options?: ImageFolderOptions): Promise<ImageFolder> {
  options = checkOptions(options, { fn: 'loadImageFolder', walk: true })
  if (typeof dir !== 'string' || dir === '') throw new ConfigError(`\`dir\` must be a non-empty path, got ${describe(dir)}`)
  const [height, width] = checkSize(options.size ?? 28)
  const channels = options.channels ?? 1
  if (channels !== 1 && channels !== 3) {
    throw new ConfigError(`\`channels\` must be 1 (grayscale) or 3 (RGB), got ${describe(channels)}`)
  }
  const threshold = checkBinarization(options.threshold ?? (channels === 3 ? 'none' : SEED_THRESHOLD))
  const seed = options.seed ?? 0
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) throw new ConfigError(`\`seed\` must be an integer, got ${describe(seed)}`)
  const invert = options.invert ?? false
  if (typeof invert !== 'boolean') throw new ConfigError(`\`invert\` must be a boolean, got ${describe(invert)}`)

  const files = (await listImages(dir, dir, new Set([await folderId(dir, dir)]))).sort(compareCodeUnits)
  if (files.length === 0) throw new DataError(`no PNG or JPEG files in ${dir}`)
  const classOf = (file: string) => (file.includes(sep) ? file.slice(0, file.indexOf(sep)) : '')
  const folders = [...new Set(files.map(classOf).filter((c) => c !== ''))].sort(compareCodeUnits)
  const classNames = files.some((f) => classOf(f) === '') ? [...folders, ''] : folders
  if (classNames.length > 256) {
    throw new DataError(`${dir} has ${classNames.length} classes (sub-folders); labels are bytes, so at most 256 are supported`)
  }

  const pixels = height * width
  const values = new Uint8Array(files.length * pixels * channels)
  const canvas = createCanvas(width, height)
  const context = canvas.getContext('2d')
  context.imageSmoothingEnabled = true
  context.imageSmoothingQuality = 'high'
  for (const [index, file] of files.entries()) {
    const path = join(dir, file)
    const image = await decode(path)
    context.globalCompositeOperation = 'source-over'
    context.fillStyle = invert ? '#ffffff' : '#000000'
    context.fillRect(0, 0, width, height)
    context.drawImage(image, 0, 0, width, height)
    const rgba = context.getImageData(0, 0, width, height).data
    const offset = index * pixels * channels
    if (channels === 3) {
      for (let p = 0; p < pixels; p++) {
        for (let c = 0; c < 3; c++) values[offset + 3 * p + c] = invert ? 255 - rgba[4 * p + c] : rgba[4 * p + c]
      }
    } else {
      for (let p = 0; p < pixels; p++) {
        const l = Math.round(0.299 * rgba[4 * p] + 0.587 * rgba[4 * p + 1] + 0.114 * rgba[4 * p + 2])
        values[offset + p] = invert ? 255 - l : l
      }
    }
  }
  return {
    images: { count: files.length, height, width, channels, data: binarize(values, threshold, seed) },
    labels: Uint8Array.from(files, (file) => classNames.indexOf(classOf(file))),
    classNames,
    files,
  }
}

function checkSize(size: unknown): [number, number] {
  const side = (v: unknown) => typeof v === 'number' && Number.isInteger(v) && v >= 1 && v <= MAX_SIDE
  if (side(size)) return [size as number, size as number]
  if (Array.isArray(size) && size.length === 2 && side(size[0]) && side(size[1])) return [size[0], size[1]]
  throw new ConfigError(
    `\`size\` must be an integer from 1 to ${MAX_SIDE} or a [height, width] pair of them, got ${describe(size)}` +
      (Array.isArray(size) ? ` ${JSON.stringify(size)}` : ''),
  )
}

/**
 * Image files under `dir`, relative to `root`, recursively; hidden names
 * skipped, links followed (see the top of this file). `visited` holds the
 * identity of every folder read so far in this call, `dir`'s included: a
 * folder met again (through another link, or a link back up) is skipped.
 */
async function listImages(dir: string, root: string, visited: Set<string>): Promise<string[]> {
  let entries
  try {
    entries = await readdir(dir, { withFileTypes: true })
  } catch (error) {
    throw new IoError(`cannot read the image folder ${dir}: ${(error as Error).message}`, { cause: error })
  }
  // Sorted, so that which of two paths to one folder is kept does not depend on the file system's order.
  entries.sort((a, b) => compareCodeUnits(a.name, b.name))
  const found: string[] = []
  for (const entry of entries) {
    if (entry.name.startsWith('.')) continue
    const path = join(dir, entry.name)
    const isImage = EXTENSIONS.test(entry.name)
    let kind: 'directory' | 'file' | 'other' = entry.isDirectory() ? 'directory' : entry.isFile() ? 'file' : 'other'
    if (entry.isSymbolicLink()) kind = await followLink(path, root, isImage)
    if (kind === 'directory') {
      const id = await folderId(path, root)
      if (visited.has(id)) continue
      visited.add(id)
      found.push(...(await listImages(path, root, visited)))
    } else if (isImage && kind === 'file') {
      found.push(relative(root, path))
    } else if (isImage) {
      throw new IoError(`cannot read image ${path}: it is not a regular file (a FIFO, device or socket)`)
    }
  }
  return found
}

/**
 * What a symbolic link leads to. One that cannot be followed is an `IoError`
 * naming it when it has an image name, else `'other'` (ignored).
 */
async function followLink(path: string, root: string, isImage: boolean): Promise<'directory' | 'file' | 'other'> {
  try {
    const target = await stat(path)
    return target.isDirectory() ? 'directory' : target.isFile() ? 'file' : 'other'
  } catch (error) {
    if (!isImage) return 'other'
    const code = errno(error)
    const reason =
      code === 'ELOOP' ? 'it is a loop of symbolic links (ELOOP)' : code === 'ENOENT' ? 'it is a symbolic link to nothing (ENOENT)' : (code ?? (error as Error).message)
    throw new IoError(`cannot read ${relative(root, path)} in the image folder ${root}: ${reason}`, { cause: error })
  }
}

/** A folder's identity (device and inode), the same through every link to it. */
async function folderId(path: string, root: string): Promise<string> {
  try {
    const stats = await stat(path)
    return `${stats.dev}:${stats.ino}`
  } catch (error) {
    throw new IoError(`cannot read the image folder ${path === root ? root : relative(root, path)}: ${(error as Error).message}`, { cause: error })
  }
}

async function decode(path: string): Promise<Image> {
  const bytes = await readRegularFile(path, 'image', MAX_IMAGE_FILE_BYTES)
  return decodeImage(bytes, path)
}

/**
 * Decodes PNG or JPEG bytes (`name` is only used in the error): the one call
 * the folder loader makes on a file's content, exported for the fuzzer
 * (scripts/fuzz.ts). Anything undecodable is a `DataError` naming `name`.
 */
export async function decodeImage(bytes: Uint8Array, name: string): Promise<Image> {
  try {
    const image = await loadImage(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength))
    if (!(image.width > 0 && image.height > 0)) throw new Error(`it decodes to ${image.width}×${image.height} pixels`)
    return image
  } catch (error) {
    const reason = error instanceof Error ? error.message : String(error)
    throw new DataError(`cannot decode image ${name} as PNG or JPEG: ${reason}`, { cause: error })
  }
}

/** Sorts by UTF-16 code units, the same in every locale. */
function compareCodeUnits(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0
}
