/**
 * Fashion-MNIST (Zalando): 60,000 training and 10,000 test 28×28 grayscale
 * images of clothing in 10 classes, a drop-in harder replacement for MNIST.
 * Sources:
 * - `'download'` (default): the published files, fetched once into the cache
 *   and verified by SHA-256 (see sources.ts);
 * - `'system'`: IDX files already on disk, by default where Debian's package
 *   `dataset-fashion-mnist` installs them. Those are not checked against the
 *   published checksums (Debian recompresses the gzip headers, so the bytes
 *   differ) but are fully validated as IDX files.
 */

import { access } from 'node:fs/promises'
import { join } from 'node:path'

import { ConfigError, IoError } from '../errors'
import { describe } from '../images'
import type { Dataset } from './dataset'
import { checkOptions } from '../options'
import { FASHION_MNIST, loadIdxDataset, loadPublishedIdx, type DownloadDatasetOptions } from './sources'

/** Where Debian's `dataset-fashion-mnist` installs the files. */
export const SYSTEM_FASHION_MNIST_DIR = '/usr/share/datasets/fashion-mnist'

/** The class names, indexed by label. */
export const FASHION_MNIST_CLASSES = [
  'T-shirt/top',
  'Trouser',
  'Pullover',
  'Dress',
  'Coat',
  'Sandal',
  'Shirt',
  'Sneaker',
  'Bag',
  'Ankle boot',
] as const

export interface FashionMnistOptions extends DownloadDatasetOptions {
  /** @default 'download' */
  source?: 'download' | 'system'
  /** For `source: 'system'`: the directory holding the four IDX files (`.gz` or not). @default '/usr/share/datasets/fashion-mnist' */
  dir?: string
}

export async function loadFashionMnist(options?: FashionMnistOptions): Promise<Dataset> {
  options = checkOptions(options, { fn: 'loadFashionMnist', walk: true })
  const source = options.source ?? 'download'
  if (source === 'download') return loadPublishedIdx(FASHION_MNIST, options)
  if (source === 'system') return loadFromDir(options.dir ?? SYSTEM_FASHION_MNIST_DIR, options)
  throw new ConfigError(`\`source\` must be 'download' or 'system', got ${describe(source)}`)
}

async function loadFromDir(dir: string, options: FashionMnistOptions): Promise<Dataset> {
  if (typeof dir !== 'string' || dir === '') throw new ConfigError(`\`dir\` must be a non-empty path, got ${describe(dir)}`)
  const files = [FASHION_MNIST.trainImages, FASHION_MNIST.trainLabels, FASHION_MNIST.testImages, FASHION_MNIST.testLabels]
  const paths: string[] = []
  for (const { file } of files) {
    // Accept the published `.gz` names and their decompressed versions.
    const candidates = [join(dir, file), join(dir, file.replace(/\.gz$/, ''))]
    const found = await firstExisting(candidates)
    if (found === undefined) {
      const hint = dir === SYSTEM_FASHION_MNIST_DIR ? ' (install the Debian package dataset-fashion-mnist, or use source: \'download\')' : ''
      throw new IoError(`Fashion-MNIST file not found: none of ${candidates.join(', ')} exists${hint}`)
    }
    paths.push(found)
  }
  return loadIdxDataset(paths, {}, options)
}

async function firstExisting(paths: string[]): Promise<string | undefined> {
  for (const path of paths) {
    try {
      await access(path)
      return path
    } catch {
      // Try the next name.
    }
  }
  return undefined
}
