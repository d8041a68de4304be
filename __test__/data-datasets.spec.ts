import test from 'ava'
import { readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { ConfigError, DataError, IoError } from '../src/errors'
import { loadFashionMnist } from '../src/data/fashion-mnist'
import { loadMnist } from '../src/data/mnist'
import { FASHION_MNIST, loadPublishedIdx, MNIST, mirrorsFor, type PublishedIdxDataset } from '../src/data/sources'
import type { DownloadProgress } from '../src/data/download'
import { publishedFashionMnist } from './helpers/fashion'
import { gzip, idxImages, idxLabels, sha256 } from './helpers/idx'
import { refusedOrigin, startServer } from './helpers/server'
import { removeTempDirs, tempDir } from './helpers/temp'

test.after.always(removeTempDirs)

/** A small published dataset (12 training, 4 test 6×5 images) served by a local server. */
function smallDataset() {
  const trainImages = idxImages(12, 6, 5, 11)
  const trainLabels = idxLabels(12, 12)
  const testImages = idxImages(4, 6, 5, 13)
  const testLabels = idxLabels(4, 14)
  const files = {
    'train-images-idx3-ubyte.gz': gzip(trainImages.bytes),
    'train-labels-idx1-ubyte.gz': gzip(trainLabels.bytes),
    't10k-images-idx3-ubyte.gz': gzip(testImages.bytes),
    't10k-labels-idx1-ubyte.gz': gzip(testLabels.bytes),
  }
  const published = (file: keyof typeof files) => ({ file, size: files[file].length, sha256: sha256(files[file]) })
  const source: PublishedIdxDataset = {
    name: 'small',
    mirrorsEnv: 'PIXELCNN_TEST_SMALL_MIRRORS',
    mirrors: [],
    trainImages: published('train-images-idx3-ubyte.gz'),
    trainLabels: published('train-labels-idx1-ubyte.gz'),
    testImages: published('t10k-images-idx3-ubyte.gz'),
    testLabels: published('t10k-labels-idx1-ubyte.gz'),
    trainCount: 12,
    testCount: 4,
  }
  return { files, source, trainImages, trainLabels, testImages, testLabels }
}

test('a published dataset downloads into <cache>/datasets/<name>, binarized, and then loads from the cache', async (t) => {
  const small = smallDataset()
  const server = await startServer(Object.fromEntries(Object.entries(small.files).map(([name, body]) => [`/m/${name}`, body])))
  t.teardown(server.close)
  const cacheDir = tempDir()
  const progress: DownloadProgress[] = []
  const dataset = await loadPublishedIdx(small.source, { cacheDir, mirrors: [`${server.origin}/m/`], threshold: 128, onProgress: (p) => progress.push(p) })
  t.deepEqual(readdirSync(join(cacheDir, 'datasets', 'small')).sort(), Object.keys(small.files).sort())
  t.is(dataset.train.count, 12)
  t.is(dataset.test.count, 4)
  t.deepEqual([dataset.train.height, dataset.train.width, dataset.train.channels], [6, 5, 1])
  t.deepEqual([...dataset.train.data], [...small.trainImages.pixels].map((v) => (v >= 128 ? 1 : 0)))
  t.deepEqual([...dataset.testLabels], [...small.testLabels.labels])
  t.deepEqual([...new Set(progress.map((p) => p.file))], Object.keys(small.files))

  const again = await loadPublishedIdx(small.source, { cacheDir, mirrors: [`${server.origin}/m/`], threshold: 128 })
  t.deepEqual(again, dataset)
  t.is(server.requests.length, 4)
})

test('mirrors: the option, then the environment variable, then the defaults', (t) => {
  t.deepEqual(mirrorsFor(MNIST, ['http://a/']), ['http://a/'])
  t.deepEqual(mirrorsFor(MNIST), [...MNIST.mirrors])
  process.env.PIXELCNN_TEST_SMALL_MIRRORS = ' http://x/ , http://y/,'
  t.teardown(() => delete process.env.PIXELCNN_TEST_SMALL_MIRRORS)
  t.deepEqual(mirrorsFor({ ...MNIST, mirrorsEnv: 'PIXELCNN_TEST_SMALL_MIRRORS' }), ['http://x/', 'http://y/'])
  t.throws(() => mirrorsFor(MNIST, []), { instanceOf: ConfigError })
})

test('loadMnist({ source: "download" }) checks the published SHA-256 and lists each mirror', async (t) => {
  // Files that are not the real MNIST: every mirror must refuse them.
  const small = smallDataset()
  const server = await startServer({
    '/one/train-images-idx3-ubyte.gz': small.files['train-images-idx3-ubyte.gz'],
    '/two/train-images-idx3-ubyte.gz': Buffer.alloc(MNIST.trainImages.size),
  })
  t.teardown(server.close)
  const cacheDir = tempDir()
  const error = await t.throwsAsync(loadMnist({ source: 'download', cacheDir, mirrors: [`${server.origin}/one`, `${server.origin}/two`] }), {
    instanceOf: IoError,
  })
  t.regex(error!.message, /could not download train-images-idx3-ubyte\.gz from any of its 2 mirrors/)
  t.regex(error!.message, new RegExp(`/one/train-images-idx3-ubyte.gz: the server announced \\d+ bytes, but the published file has 9912422`))
  t.regex(error!.message, /\/two\/train-images-idx3-ubyte\.gz: sha256 mismatch: got [0-9a-f]{64}, expected 440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609/)
  t.deepEqual(readdirSync(join(cacheDir, 'datasets', 'mnist')), [])
})

test('bad options fail before anything is downloaded', async (t) => {
  const server = await startServer()
  t.teardown(server.close)
  const options = { cacheDir: tempDir(), mirrors: [server.origin] }
  await t.throwsAsync(loadMnist({ ...options, source: 'download', threshold: 999 }), { instanceOf: ConfigError, message: /threshold/ })
  await t.throwsAsync(loadFashionMnist({ ...options, seed: 0.5 }), { instanceOf: ConfigError, message: /seed/ })
  await t.throwsAsync(loadMnist({ source: 'web' as never }), { instanceOf: ConfigError, message: /'bundled' or 'download', got "web"/ })
  await t.throwsAsync(loadFashionMnist({ source: 'bundled' as never }), { instanceOf: ConfigError, message: /'download' or 'system'/ })
  t.is(server.requests.length, 0)
})

test('loadFashionMnist({ source: "system", dir }) reads IDX files, compressed or not', async (t) => {
  const small = smallDataset()
  const dir = tempDir()
  writeFileSync(join(dir, 'train-images-idx3-ubyte.gz'), small.files['train-images-idx3-ubyte.gz'])
  writeFileSync(join(dir, 'train-labels-idx1-ubyte'), small.trainLabels.bytes)
  writeFileSync(join(dir, 't10k-images-idx3-ubyte'), small.testImages.bytes)
  writeFileSync(join(dir, 't10k-labels-idx1-ubyte.gz'), small.files['t10k-labels-idx1-ubyte.gz'])
  const dataset = await loadFashionMnist({ source: 'system', dir, threshold: 'stochastic', seed: 3 })
  t.is(dataset.train.count, 12)
  t.true(dataset.test.data.every((v) => v === 0 || v === 1))
  t.deepEqual([...dataset.trainLabels], [...small.trainLabels.labels])
  // threshold 'none': the 8-bit grayscale as it is, for categorical models.
  const gray = await loadFashionMnist({ source: 'system', dir, threshold: 'none' })
  t.deepEqual([...gray.test.data], [...small.testImages.pixels])

  const empty = tempDir()
  const error = await t.throwsAsync(loadFashionMnist({ source: 'system', dir: empty }), { instanceOf: IoError })
  t.true(error!.message.includes(join(empty, 'train-images-idx3-ubyte.gz')))
  writeFileSync(join(empty, 'train-images-idx3-ubyte'), small.trainImages.bytes)
  writeFileSync(join(empty, 'train-labels-idx1-ubyte'), small.testLabels.bytes)
  writeFileSync(join(empty, 't10k-images-idx3-ubyte'), small.testImages.bytes)
  writeFileSync(join(empty, 't10k-labels-idx1-ubyte'), small.testLabels.bytes)
  await t.throwsAsync(loadFashionMnist({ source: 'system', dir: empty }), { instanceOf: DataError, message: /has 4 labels but .* has 12 images/ })
})

test('the real Fashion-MNIST downloads with the published checksums (served locally)', async (t) => {
  const files = publishedFashionMnist()
  if (typeof files === 'string') {
    t.log(`skipped: ${files}`)
    t.pass()
    return
  }
  const server = await startServer(Object.fromEntries([...files].map(([name, body]) => [`/fashion/${name}`, body])))
  t.teardown(server.close)
  const cacheDir = tempDir()
  const refused = await refusedOrigin()
  const dataset = await loadFashionMnist({ cacheDir, mirrors: [refused, `${server.origin}/fashion/`] })
  t.deepEqual([dataset.train.count, dataset.train.height, dataset.train.width, dataset.test.count], [60000, 28, 28, 10000])
  t.is(dataset.trainLabels.length, 60000)
  t.true(dataset.testLabels.every((l) => l < 10))
  // Each class has 6,000 training images.
  const perClass = new Array(10).fill(0)
  for (const l of dataset.trainLabels) perClass[l]++
  t.deepEqual(perClass, new Array(10).fill(6000))
  for (const published of [FASHION_MNIST.trainImages, FASHION_MNIST.trainLabels, FASHION_MNIST.testImages, FASHION_MNIST.testLabels]) {
    t.is(files.get(published.file)!.length, published.size)
    t.is(sha256(files.get(published.file)!), published.sha256 as string)
  }

  // Debian's files hold the same images (the comparison is by bytes: ava's deepEqual is too slow for 47 MB).
  const system = await loadFashionMnist({ source: 'system' })
  const same = (a: Uint8Array, b: Uint8Array) => Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))
  t.true(same(system.train.data, dataset.train.data))
  t.true(same(system.test.data, dataset.test.data))
  t.true(same(system.trainLabels, dataset.trainLabels))
  t.true(same(system.testLabels, dataset.testLabels))
})

test('loadMnist({ threshold: "none" }) gives the bundled digits as 8-bit grayscale, the same images as binarized', async (t) => {
  const [gray, binary] = [await loadMnist({ threshold: 'none' }), await loadMnist()]
  t.is(gray.train.count, binary.train.count)
  t.true(gray.train.data.some((v) => v > 1 && v < 255))
  t.true(gray.train.data.every((v, i) => (v >= 0.33 * 256 ? 1 : 0) === binary.train.data[i]))
  t.deepEqual([...gray.testLabels], [...binary.testLabels])
  await t.throwsAsync(loadMnist({ threshold: 'grey' as never }), { instanceOf: ConfigError, message: /'stochastic' or 'none'/ })
})
