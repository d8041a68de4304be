/**
 * CIFAR-10: small tarballs in the real format (a few records per batch)
 * served by a local server, through `loadPublishedCifar` with a test source
 * whose checksum is that of the test tarball (as the MNIST tests do with a
 * `PublishedIdxDataset`), and through `loadCifar10` itself where the real
 * checksum does not matter (errors, abort).
 */

import test from 'ava'
import { existsSync, readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'

import { AbortError, ConfigError, IoError } from '../src/errors'
import { CIFAR10, CIFAR10_CLASSES, loadCifar10, loadPublishedCifar, readCifarTarball, type PublishedCifar } from '../src/data/cifar10'
import type { Dataset } from '../src/data/dataset'
import type { DownloadProgress } from '../src/data/download'
import { cifarBatch, cifarTarball, PLANE, RECORD, tar } from './helpers/cifar'
import { md5 } from './helpers/idx'
import { startServer } from './helpers/server'
import { removeTempDirs, tempDir } from './helpers/temp'

test.after.always(removeTempDirs)

const FILE = 'cifar-10-binary.tar.gz'
const TRAIN = ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin']
const TEST = 'test_batch.bin'

/** A test source for `body`: the real layout, the test tarball's own size and MD5. */
function sourceFor(body: Buffer, extra: Partial<PublishedCifar> = {}): PublishedCifar {
  return { ...CIFAR10, name: 'small-cifar', mirrorsEnv: 'PIXELCNN_TEST_CIFAR_MIRRORS', mirrors: [], archive: { file: FILE, size: body.length, md5: md5(body) }, recordsPerBatch: undefined, ...extra }
}

/** Five training batches of `counts[i]` records and a test batch, stored out of order in the tarball (as tar does not promise any). */
function smallCifar(counts = [3, 3, 3, 3, 3], testCount = 4) {
  const train = counts.map((count, i) => cifarBatch(count, 100 + i))
  const testBatch = cifarBatch(testCount, 200)
  const entries: Array<[string, Buffer]> = [[TEST, testBatch.bytes], ...TRAIN.map((name, i): [string, Buffer] => [name, train[i].bytes]).reverse()]
  const body = cifarTarball(entries)
  return { body, train, test: testBatch, source: sourceFor(body) }
}

/** The pixel at (x, y), channel c of image n, read the way `ImageBatch` lays it out (N×H×W×C). */
function pixel(data: Uint8Array, n: number, x: number, y: number, c: number): number {
  return data[((n * 32 + y) * 32 + x) * 3 + c]
}

/** The expected interleaved images of some batches, built from their planes. */
function interleaved(batches: Array<{ planes: Uint8Array[] }>): Uint8Array {
  const planes = batches.flatMap((b) => b.planes)
  const out = new Uint8Array(planes.length * 3 * PLANE)
  planes.forEach((image, n) => {
    for (let p = 0; p < PLANE; p++) for (let c = 0; c < 3; c++) out[(n * PLANE + p) * 3 + c] = image[c * PLANE + p]
  })
  return out
}

function checkDataset(t: import('ava').ExecutionContext, dataset: Dataset, small: ReturnType<typeof smallCifar>) {
  const trainCount = small.train.reduce((sum, b) => sum + b.labels.length, 0)
  t.deepEqual([dataset.train.count, dataset.train.height, dataset.train.width, dataset.train.channels], [trainCount, 32, 32, 3])
  t.deepEqual([dataset.test.count, dataset.test.height, dataset.test.width, dataset.test.channels], [small.test.labels.length, 32, 32, 3])
  t.is(dataset.train.data.length, trainCount * 3072)
  // Labels: the training batches in order 1…5, whatever their order in the tarball.
  t.deepEqual([...dataset.trainLabels], small.train.flatMap((b) => b.labels))
  t.deepEqual([...dataset.testLabels], small.test.labels)
  // A few pixels by hand: channel c of (x, y) is byte 1 + c·1024 + 32·y + x of its record.
  const first = small.train[0].planes[0]
  for (const [x, y] of [[0, 0], [1, 0], [0, 1], [31, 31], [5, 17]]) {
    t.deepEqual([0, 1, 2].map((c) => pixel(dataset.train.data, 0, x, y, c)), [0, 1, 2].map((c) => first[c * PLANE + 32 * y + x]), `pixel (${x}, ${y})`)
  }
  const lastBatch = small.train[4]
  const lastIndex = trainCount - 1
  const last = lastBatch.planes[lastBatch.planes.length - 1]
  t.deepEqual([0, 1, 2].map((c) => pixel(dataset.train.data, lastIndex, 30, 2, c)), [0, 1, 2].map((c) => last[c * PLANE + 32 * 2 + 30]))
  t.deepEqual([0, 1, 2].map((c) => pixel(dataset.test.data, 1, 7, 9, c)), [0, 1, 2].map((c) => small.test.planes[1][c * PLANE + 32 * 9 + 7]))
  // And every byte.
  t.true(Buffer.from(dataset.train.data).equals(Buffer.from(interleaved(small.train))))
  t.true(Buffer.from(dataset.test.data).equals(Buffer.from(interleaved([small.test]))))
}

test('the CIFAR-10 source: the published file, MD5 and size; the class names', (t) => {
  t.deepEqual(CIFAR10.archive, { file: 'cifar-10-binary.tar.gz', size: 170052171, md5: 'c32a1d4ab5d03f1284b67883e8d87530' })
  t.deepEqual(CIFAR10.mirrors, ['https://www.cs.toronto.edu/~kriz/'])
  t.is(CIFAR10.recordsPerBatch, 10000)
  t.deepEqual([...CIFAR10_CLASSES], ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'])
})

test('downloads into <cache>/datasets/<name>, interleaves the R, G, B planes, then loads from the cache without a request', async (t) => {
  const small = smallCifar()
  const server = await startServer({ [`/kriz/${FILE}`]: small.body })
  t.teardown(server.close)
  const cacheDir = tempDir()
  const progress: DownloadProgress[] = []
  const dataset = await loadPublishedCifar(small.source, { cacheDir, mirrors: [`${server.origin}/kriz/`], onProgress: (p) => progress.push(p) })
  checkDataset(t, dataset, small)
  t.deepEqual(readdirSync(join(cacheDir, 'datasets', 'small-cifar')), [FILE])
  t.deepEqual(progress.at(-1), { type: 'download', file: FILE, url: `${server.origin}/kriz/${FILE}`, bytes: small.body.length, totalBytes: small.body.length })
  t.deepEqual(server.requests, [`/kriz/${FILE}`])

  const again = await loadPublishedCifar(small.source, { cacheDir, mirrors: [`${server.origin}/kriz/`] })
  t.is(server.requests.length, 1)
  t.deepEqual(again, dataset)
})

test('batches of different sizes are concatenated in order 1…5', async (t) => {
  const small = smallCifar([2, 5, 1, 3, 4], 3)
  const path = join(tempDir(), FILE)
  writeFileSync(path, small.body)
  checkDataset(t, await readCifarTarball(path, small.source), small)
})

test('a wrong checksum is an IoError and nothing is cached; loadCifar10 checks the published size and MD5', async (t) => {
  const small = smallCifar()
  const server = await startServer({ [`/${FILE}`]: small.body })
  t.teardown(server.close)
  const cacheDir = tempDir()
  const wrong = { ...small.source, archive: { file: FILE, size: small.body.length, md5: 'c32a1d4ab5d03f1284b67883e8d87530' } }
  const error = await t.throwsAsync(loadPublishedCifar(wrong, { cacheDir, mirrors: [server.origin] }), { instanceOf: IoError })
  t.regex(error!.message, new RegExp(`${FILE}: md5 mismatch: got ${md5(small.body)}, expected c32a1d4ab5d03f1284b67883e8d87530`))
  t.deepEqual(readdirSync(join(cacheDir, 'datasets', 'small-cifar')), [])

  // The real source refuses the test tarball at once: the server announces another size than the published one.
  const real = await t.throwsAsync(loadCifar10({ cacheDir, mirrors: [server.origin] }), { instanceOf: IoError })
  t.regex(real!.message, new RegExp(`the server announced ${small.body.length} bytes, but the published file has 170052171`))
  t.deepEqual(readdirSync(join(cacheDir, 'datasets', 'cifar-10')), [])
})

test('a truncated or corrupt tarball is an IoError naming it, is removed from the cache, and a retry downloads it again', async (t) => {
  const small = smallCifar()
  const flipped = Buffer.from(small.body)
  flipped[Math.floor(flipped.length / 2)] ^= 0xff
  const broken: Array<[string, Buffer, RegExp]> = [
    ['truncated gzip', small.body.subarray(0, Math.floor(small.body.length / 2)), /(damaged or not a gzip-compressed tar file|breaks off or is damaged inside this entry): .*unexpected end of file/],
    ['corrupt gzip', flipped, /damaged or not a gzip-compressed tar file|breaks off or is damaged inside this entry/],
    ['not a tarball at all', Buffer.from('<html>Not found</html>'.repeat(100)), /damaged or not a gzip-compressed tar file/],
    // A whole gzip stream whose tar is cut in the middle of a batch.
    ['truncated tar', gzipSync(tar([{ name: 'cifar-10-batches-bin/data_batch_1.bin', data: cifarBatch(3, 1).bytes }]).subarray(0, 512 + RECORD)), /entry cifar-10-batches-bin\/data_batch_1\.bin: the tarball breaks off or is damaged inside this entry: .*Truncated input/],
  ]
  for (const [what, body, reason] of broken) {
    // A source whose checksum is that of the broken file, as a mirror of another version would have: the download succeeds, reading fails.
    const source = sourceFor(body)
    const server = await startServer({ [`/${FILE}`]: body })
    t.teardown(server.close)
    const cacheDir = tempDir()
    const cached = join(cacheDir, 'datasets', 'small-cifar', FILE)
    const error = await t.throwsAsync(loadPublishedCifar(source, { cacheDir, mirrors: [server.origin] }), { instanceOf: IoError }, what)
    t.true(error!.message.startsWith(`CIFAR-10 tarball ${cached}`), `${what}: ${error!.message}`)
    t.regex(error!.message, reason, what)
    t.false(existsSync(cached), `${what}: removed from the cache`)

    // The retry downloads again (the server now has the good file).
    server.routes.set(`/${FILE}`, small.body)
    checkDataset(t, await loadPublishedCifar(small.source, { cacheDir, mirrors: [server.origin] }), small)
    t.is(server.requests.length, 2, what)
  }
})

test('a missing batch, a batch of partial records, a wrong record count or a label over 9 is an IoError naming the entry', async (t) => {
  const good = cifarBatch(2, 7)
  const badLabel = Buffer.from(good.bytes)
  badLabel[RECORD] = 10
  const cases: Array<[string, Array<[string, Buffer]>, Partial<PublishedCifar>, RegExp]> = [
    ['missing test batch', TRAIN.map((n) => [n, good.bytes]), {}, /: it has no entry cifar-10-batches-bin\/test_batch\.bin$/],
    ['missing training batch', [...TRAIN.slice(0, 2), ...TRAIN.slice(3), TEST].map((n) => [n, good.bytes]), {}, /: it has no entry cifar-10-batches-bin\/data_batch_3\.bin$/],
    [
      'partial record',
      [...TRAIN, TEST].map((n) => [n, n === TEST ? good.bytes.subarray(0, RECORD + 100) : good.bytes]),
      {},
      /, entry cifar-10-batches-bin\/test_batch\.bin: has 3173 bytes, not a whole positive number of 3073-byte records/,
    ],
    ['empty batch', [...TRAIN, TEST].map((n) => [n, n === TRAIN[1] ? Buffer.alloc(0) : good.bytes]), {}, /entry cifar-10-batches-bin\/data_batch_2\.bin: has 0 bytes/],
    ['record count', [...TRAIN, TEST].map((n) => [n, good.bytes]), { recordsPerBatch: 10000 }, /entry cifar-10-batches-bin\/data_batch_1\.bin: holds 2 records, expected 10000/],
    ['label 10', [...TRAIN, TEST].map((n) => [n, n === TRAIN[3] ? badLabel : good.bytes]), {}, /entry cifar-10-batches-bin\/data_batch_4\.bin: record 1 has label 10; labels are 0–9/],
  ]
  for (const [what, entries, extra, reason] of cases) {
    const body = cifarTarball(entries)
    const path = join(tempDir(), FILE)
    writeFileSync(path, body)
    const error = await t.throwsAsync(readCifarTarball(path, sourceFor(body, extra)), { instanceOf: IoError }, what)
    t.true(error!.message.startsWith(`CIFAR-10 tarball ${path}`), error!.message)
    t.regex(error!.message, reason, what)
  }

  // Through the loader, such a tarball does not stay in the cache either.
  const body = cifarTarball([...TRAIN, TEST].map((n) => [n, n === TEST ? badLabel : good.bytes]))
  const server = await startServer({ [`/${FILE}`]: body })
  t.teardown(server.close)
  const cacheDir = tempDir()
  await t.throwsAsync(loadPublishedCifar(sourceFor(body), { cacheDir, mirrors: [server.origin] }), { instanceOf: IoError, message: /label 10/ })
  t.deepEqual(readdirSync(join(cacheDir, 'datasets', 'small-cifar')), [])
})

test('an AbortSignal stops the download or the reading with an AbortError, and leaves nothing behind', async (t) => {
  const small = smallCifar()
  // Announces the published size (so the download starts), sends a little, then stalls.
  const server = await startServer({
    [`/${FILE}`]: (_req, res) => {
      res.writeHead(200, { 'content-length': CIFAR10.archive.size })
      res.write(small.body.subarray(0, 1000))
    },
  })
  t.teardown(server.close)
  const cacheDir = tempDir()
  const controller = new AbortController()
  const error = await t.throwsAsync(
    loadCifar10({ cacheDir, mirrors: [server.origin], signal: controller.signal, onProgress: () => setTimeout(() => controller.abort(), 20) }),
    { instanceOf: AbortError },
  )
  t.regex(error!.message, /cifar-10-binary\.tar\.gz was aborted/)
  await new Promise((r) => setTimeout(r, 50))
  t.deepEqual(readdirSync(join(cacheDir, 'datasets', 'cifar-10')), [])
  await t.throwsAsync(loadCifar10({ cacheDir, mirrors: [server.origin], signal: AbortSignal.abort() }), { instanceOf: AbortError })
  t.is(server.requests.length, 1)

  // While reading: the tarball is kept (it is not corrupt).
  const path = join(tempDir(), FILE)
  writeFileSync(path, small.body)
  const reading = new AbortController()
  const promise = readCifarTarball(path, small.source, reading.signal)
  reading.abort()
  await t.throwsAsync(promise, { instanceOf: AbortError, message: /loading CIFAR-10 was aborted/ })
  t.true(existsSync(path))
})

test('bad options are ConfigErrors, before any request', async (t) => {
  const server = await startServer()
  t.teardown(server.close)
  await t.throwsAsync(loadCifar10({ source: 'bundled' as never, mirrors: [server.origin] }), { instanceOf: ConfigError, message: /`source` must be 'download', got "bundled"/ })
  await t.throwsAsync(loadCifar10({ mirrors: [] }), { instanceOf: ConfigError, message: /mirrors/ })
  await t.throwsAsync(loadCifar10({ cacheDir: '' }), { instanceOf: ConfigError, message: /cacheDir/ })
  await t.throwsAsync(loadCifar10({ mirrors: [server.origin], timeoutMs: -1 }), { instanceOf: ConfigError, message: /timeoutMs/ })
  t.is(server.requests.length, 0)
})
