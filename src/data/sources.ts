/**
 * The published IDX datasets: where they can be downloaded, their checksums,
 * and how to turn the four downloaded files into a `Dataset`.
 *
 * Checksums:
 * - MNIST: the SHA-256 values published with the files and used by many
 *   projects (TensorFlow Datasets' checksum records, among others); the sizes
 *   are those of the same records. torchvision publishes the MD5s
 *   f68b3c2d…, d53e105e…, 9fb629c4…, ec29112d… for the same files.
 * - Fashion-MNIST: upstream publishes MD5s only (in its README; torchvision
 *   uses the same). The SHA-256 values below were computed from the exact
 *   upstream bytes, rebuilt from Debian's `dataset-fashion-mnist` package:
 *   Debian's gzip files carry the same deflate streams but a stripped header
 *   (no file name, another mtime); restoring the original header (file name,
 *   mtimes 1504176606 and 1504176627) gives files whose sizes and MD5s are
 *   exactly the published ones, and these are their SHA-256s.
 */

import { AbortError, ConfigError, DataError } from '../errors'
import { describe } from '../images'
import { checkBinarization, SEED_THRESHOLD, type Binarization } from './binarize'
import { datasetDir, type Checksum } from './cache'
import type { Dataset } from './dataset'
import { downloadVerified, type DownloadProgress } from './download'
import { binarizeImages, loadIdx } from './idx'
import { checkOptions } from '../options'

export type PublishedFile = Checksum & {
  file: string
  /** Size in bytes of the published (gzip) file. */
  size: number
}

export interface PublishedIdxDataset {
  /** Directory name under `<cache>/datasets/`. */
  name: string
  /** Environment variable with comma-separated mirrors overriding `mirrors`. */
  mirrorsEnv: string
  mirrors: readonly string[]
  trainImages: PublishedFile
  trainLabels: PublishedFile
  testImages: PublishedFile
  testLabels: PublishedFile
  trainCount: number
  testCount: number
}

export const MNIST: PublishedIdxDataset = {
  name: 'mnist',
  mirrorsEnv: 'PIXELCNN_MNIST_MIRRORS',
  mirrors: ['https://ossci-datasets.s3.amazonaws.com/mnist/', 'https://storage.googleapis.com/cvdf-datasets/mnist/'],
  trainImages: {
    file: 'train-images-idx3-ubyte.gz',
    size: 9912422,
    sha256: '440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609',
  },
  trainLabels: {
    file: 'train-labels-idx1-ubyte.gz',
    size: 28881,
    sha256: '3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c',
  },
  testImages: {
    file: 't10k-images-idx3-ubyte.gz',
    size: 1648877,
    sha256: '8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6',
  },
  testLabels: {
    file: 't10k-labels-idx1-ubyte.gz',
    size: 4542,
    sha256: 'f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6',
  },
  trainCount: 60000,
  testCount: 10000,
}

export const FASHION_MNIST: PublishedIdxDataset = {
  name: 'fashion-mnist',
  mirrorsEnv: 'PIXELCNN_FASHION_MNIST_MIRRORS',
  mirrors: [
    'http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/',
    'https://raw.githubusercontent.com/zalandoresearch/fashion-mnist/master/data/fashion/',
  ],
  // Published MD5s: 8d4fb7e6…, 25c81989…, bef4ecab…, bb300cfd… (in this order).
  trainImages: {
    file: 'train-images-idx3-ubyte.gz',
    size: 26421880,
    sha256: '3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84',
  },
  trainLabels: {
    file: 'train-labels-idx1-ubyte.gz',
    size: 29515,
    sha256: 'a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845',
  },
  testImages: {
    file: 't10k-images-idx3-ubyte.gz',
    size: 4422102,
    sha256: '346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073',
  },
  testLabels: {
    file: 't10k-labels-idx1-ubyte.gz',
    size: 5148,
    sha256: '67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5',
  },
  trainCount: 60000,
  testCount: 10000,
}

/** Options shared by the loaders that download a published dataset. */
export interface DownloadDatasetOptions {
  /** Cache root. @default $PIXELCNN_CACHE_DIR, else $XDG_CACHE_HOME/pixelcnn, else ~/.cache/pixelcnn */
  cacheDir?: string
  /** Base URLs tried in order. @default the dataset's env variable (comma-separated), else the public mirrors */
  mirrors?: string[]
  /** How to binarize; `'none'` keeps the 8-bit grayscale (for `output: 'categorical'`). @default 0.33 × 256 (the seed's threshold) */
  threshold?: Binarization
  /** Seed for `threshold: 'stochastic'` (the test set uses seed + 1). @default 0 */
  seed?: number
  onProgress?: (progress: DownloadProgress) => void
  signal?: AbortSignal
  /**
   * A deadline for each file's download, every mirror included: a server
   * trickling data cannot keep it going past this (see download.ts). @default 1800000 (30 minutes)
   */
  timeoutMs?: number
  /** A mirror fails, and the next is tried, after this long without data. @default 30000 */
  idleTimeoutMs?: number
}

/** The mirrors to use: the option, else the environment variable, else the defaults. */
export function mirrorsFor(source: Pick<PublishedIdxDataset, 'mirrorsEnv' | 'mirrors'>, mirrors?: string[]): string[] {
  if (mirrors !== undefined) {
    if (!Array.isArray(mirrors) || mirrors.length === 0 || mirrors.some((m) => typeof m !== 'string' || m === '')) {
      throw new ConfigError(`\`mirrors\` must be a non-empty array of URLs, got ${describe(mirrors)}`)
    }
    return mirrors
  }
  const env = process.env[source.mirrorsEnv]
  if (env !== undefined && env.trim() !== '') {
    return env.split(',').map((m) => m.trim()).filter((m) => m !== '')
  }
  return [...source.mirrors]
}

/**
 * Downloads (or finds in the cache) the four files of a published dataset and
 * loads them. Files are fetched one after the other, so that progress reads
 * in order and a failure stops before starting the next file.
 */
export async function loadPublishedIdx(source: PublishedIdxDataset, options?: DownloadDatasetOptions): Promise<Dataset> {
  options = checkOptions(options, { fn: 'loadPublishedIdx', walk: true })
  // Bad options fail before anything is downloaded.
  checkBinarizationOptions(options)
  const cacheDir = datasetDir(source.name, options.cacheDir)
  const mirrors = mirrorsFor(source, options.mirrors)
  const paths: string[] = []
  for (const published of [source.trainImages, source.trainLabels, source.testImages, source.testLabels]) {
    const { path } = await downloadVerified({
      ...published,
      mirrors,
      cacheDir,
      timeoutMs: options.timeoutMs,
      idleTimeoutMs: options.idleTimeoutMs,
      onProgress: options.onProgress,
      signal: options.signal,
    })
    paths.push(path)
  }
  return loadIdxDataset(paths, { train: source.trainCount, test: source.testCount }, options)
}

/**
 * Loads `[trainImages, trainLabels, testImages, testLabels]` IDX files into a
 * binarized `Dataset`; `counts`, when given, are the expected image counts.
 */
export async function loadIdxDataset(
  paths: string[],
  counts: { train?: number; test?: number },
  options: { threshold?: Binarization; seed?: number; signal?: AbortSignal } = {},
): Promise<Dataset> {
  options = checkOptions(options, { fn: 'loadIdxDataset', walk: true })
  const [trainImages, trainLabels, testImages, testLabels] = paths
  const { threshold, seed } = checkBinarizationOptions(options)
  const train = await loadIdx(trainImages, trainLabels, { count: counts.train })
  if (options.signal?.aborted) throw new AbortError('loading the dataset was aborted')
  const test = await loadIdx(testImages, testLabels, { count: counts.test })
  if (train.images.height !== test.images.height || train.images.width !== test.images.width) {
    throw new DataError(
      `the training images (${trainImages}) are ${train.images.height}×${train.images.width} but the test images ` +
        `(${testImages}) are ${test.images.height}×${test.images.width}`,
    )
  }
  return {
    train: binarizeImages(train.images, threshold, seed),
    test: binarizeImages(test.images, threshold, seed + 1),
    trainLabels: train.labels as Uint8Array,
    testLabels: test.labels as Uint8Array,
  }
}

function checkBinarizationOptions(options: { threshold?: unknown; seed?: unknown }): { threshold: Binarization; seed: number } {
  const threshold = checkBinarization(options.threshold ?? SEED_THRESHOLD)
  const seed = options.seed ?? 0
  if (typeof seed !== 'number' || !Number.isSafeInteger(seed)) {
    throw new ConfigError(`\`seed\` must be an integer, got ${describe(seed)}`)
  }
  return { threshold, seed }
}
