/**
 * Every loader refuses paths that are not regular files (devices, FIFOs,
 * directories) at once, and reads no more than a file's header (IDX) or its
 * published size (CIFAR) allows. A hang must fail the test, not stall the
 * runner: each call is raced against a timer, and a FIFO's blocked reader
 * (should one ever be) is released in teardown by opening its write end.
 */

import test from 'ava'
import { constants, mkdirSync, openSync, closeSync, readdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { createServer as createNetServer } from 'node:net'
import { join } from 'node:path'
import { gzipSync } from 'node:zlib'

import { CIFAR10, loadPublishedCifar, readCifarTarball, type PublishedCifar } from '../src/data/cifar10'
import { downloadVerified } from '../src/data/download'
import { loadImageFolder } from '../src/data/folder'
import { loadIdx, MAX_IDX_BYTES } from '../src/data/idx'
import { DataError, IoError, PixelCNNError } from '../src/errors'
import { cifarBatch, cifarTarball } from './helpers/cifar'
import { idxHeader, idxImages, idxLabels, md5 } from './helpers/idx'
import { startServer } from './helpers/server'
import { makeFifo, releaseFifos, within } from './helpers/hang'
import { removeTempDirs, tempDir } from './helpers/temp'

test.after.always(() => {
  releaseFifos()
  removeTempDirs()
})

const fifo = (dir: string, name: string) => makeFifo(join(dir, name))

async function refused<E extends PixelCNNError>(
  t: import('ava').ExecutionContext,
  call: Promise<unknown>,
  what: string,
  type: new (...args: never[]) => E,
  names: string,
  reason: RegExp,
): Promise<E> {
  // A hang fails on `within` (a FIFO or /dev/zero would never settle); no wall-clock bound
  // beyond that, as a loaded 2-core CI machine can take seconds to open and stat a file.
  const error = (await t.throwsAsync(within(call, 15_000, what), { instanceOf: type as never }, what)) as unknown as E
  t.true(error.message.includes(names), `${what}: the message names ${names}: ${error.message}`)
  t.regex(error.message, reason, what)
  return error
}

test('loadIdx("/dev/zero") is refused at once as a character device', async (t) => {
  const error = await refused(t, loadIdx('/dev/zero'), '/dev/zero', IoError, '/dev/zero', /character device, not a regular file/)
  t.is(error.code, 'Io')
  // A link to it (the user's own link is followed) is refused the same way.
  const link = join(tempDir(), 'zero.idx')
  symlinkSync('/dev/zero', link)
  await refused(t, loadIdx(link), 'link to /dev/zero', IoError, link, /character device/)
})

test('a FIFO as the IDX images or the labels file is refused at once, not waited on', async (t) => {
  const dir = tempDir()
  const images = join(dir, 'images.idx')
  writeFileSync(images, idxImages(2, 3, 3).bytes)
  const pipe = fifo(dir, 'pipe.idx')
  await refused(t, loadIdx(pipe), 'FIFO images', IoError, pipe, /FIFO \(named pipe\), not a regular file/)
  const error = await refused(t, loadIdx(images, pipe), 'FIFO labels', IoError, pipe, /FIFO/)
  t.is(error.code, 'Io')
})

test('a directory as an IDX file is an IoError naming it', async (t) => {
  const dir = tempDir()
  await refused(t, loadIdx(dir), 'directory', IoError, dir, /a directory, not a regular file/)
})

test('an IDX file longer or shorter than its header declares is refused before its body is read', async (t) => {
  const dir = tempDir()
  const { bytes } = idxImages(3, 4, 4)
  const long = join(dir, 'long.idx')
  writeFileSync(long, Buffer.concat([bytes, Buffer.alloc(1000)]))
  const error = await refused(t, loadIdx(long), 'long', DataError, long, /has trailing bytes: its header declares 3×4×4 = 48 elements \(64 bytes .*\), but the file has 1064 bytes/)
  t.is(error.code, 'InvalidData')
  const huge = join(dir, 'huge.idx')
  writeFileSync(huge, Buffer.concat([idxHeader([60000, 4096, 4096]), Buffer.alloc(10)]))
  await refused(t, loadIdx(huge), 'huge', DataError, huge, /is truncated: its header declares 60000×4096×4096/)
  const images = join(dir, 'images.idx')
  writeFileSync(images, bytes)
  const labels = join(dir, 'labels.idx')
  writeFileSync(labels, Buffer.concat([idxLabels(3).bytes, Buffer.from([1])]))
  await refused(t, loadIdx(images, labels), 'long labels', DataError, labels, /has trailing bytes: its header declares 3 = 3 elements/)
})

test('a gzip bomb IDX stops at the size its header declares; a header declaring more than the cap is refused', async (t) => {
  const dir = tempDir()
  // Declares one 28×28 image (800 bytes) but inflates to 256 MiB.
  const bomb = join(dir, 'bomb.idx.gz')
  const payload = Buffer.alloc(256 * 1024 * 1024)
  payload.set(idxHeader([1, 28, 28]), 0)
  writeFileSync(bomb, gzipSync(payload, { level: 9 }))
  const before = process.memoryUsage().rss
  await refused(t, loadIdx(bomb), 'bomb', DataError, bomb, /decompresses to more than the 800 bytes its header declares/)
  t.true(process.memoryUsage().rss - before < 200 * 1024 * 1024, 'the bomb was not inflated')

  // A header declaring more than MAX_IDX_BYTES (4096×4096×4096 bytes) is refused before inflating anything.
  const big = join(dir, 'big.idx.gz')
  writeFileSync(big, gzipSync(Buffer.concat([idxHeader([4096, 4096, 4096]), Buffer.alloc(1000)])))
  await refused(t, loadIdx(big), 'big', DataError, big, new RegExp(`more than the ${MAX_IDX_BYTES} bytes accepted`))
})

const FILE = 'cifar-10-binary.tar.gz'
function smallSource(body: Buffer): PublishedCifar {
  return { ...CIFAR10, name: 'small-cifar', mirrors: [], mirrorsEnv: 'PIXELCNN_TEST_NONE', archive: { file: FILE, size: body.length, md5: md5(body) }, recordsPerBatch: undefined }
}
function smallTarball(): Buffer {
  const batch = cifarBatch(2, 5).bytes
  return cifarTarball([...CIFAR10.trainBatches, CIFAR10.testBatch].map((name) => [name, batch]))
}

test('a FIFO as the cached CIFAR-10 tarball is refused at once, without a request', async (t) => {
  const server = await startServer({})
  t.teardown(server.close)
  const body = smallTarball()
  const cacheDir = tempDir()
  const dir = join(cacheDir, 'datasets', 'small-cifar')
  mkdirSync(dir, { recursive: true })
  const pipe = fifo(dir, FILE)
  await refused(t, loadPublishedCifar(smallSource(body), { cacheDir, mirrors: [server.origin] }), 'cached FIFO', IoError, pipe, /FIFO/)
  t.deepEqual(server.requests, [])
  t.deepEqual(readdirSync(dir), [FILE], 'the FIFO is left alone')
  // And read directly.
  await refused(t, readCifarTarball(pipe, smallSource(body)), 'FIFO tarball', IoError, pipe, /FIFO/)
  // And as any cached download.
  await refused(t, downloadVerified({ file: FILE, md5: md5(body), mirrors: [server.origin], cacheDir: dir }), 'cached download', IoError, pipe, /FIFO/)
})

test('a CIFAR tarball of another size than the published one is refused before it is parsed', async (t) => {
  const body = smallTarball()
  const path = join(tempDir(), FILE)
  writeFileSync(path, Buffer.concat([body, Buffer.alloc(512)]))
  await refused(t, readCifarTarball(path, smallSource(body)), 'longer tarball', IoError, path, new RegExp(`has ${body.length + 512} bytes, but the published file has ${body.length}`))
  t.deepEqual(readFileSync(path).subarray(0, body.length), body, 'nothing on disk changed (readCifarTarball only reads)')
})

test('image folder files that are not regular files are refused at once, links to them too', async (t) => {
  const dir = tempDir()
  const pipe = fifo(dir, 'pipe.png')
  await refused(t, loadImageFolder(dir), 'FIFO image', IoError, pipe, /not a regular file/)

  const other = tempDir()
  const zero = join(other, 'zero.png')
  symlinkSync('/dev/zero', zero)
  await refused(t, loadImageFolder(other), 'link to /dev/zero', IoError, zero, /not a regular file/)
})

test('a Unix socket is refused as "a socket", not by its errno (opening one fails with ENXIO)', async (t) => {
  const dir = tempDir('socket')
  const socket = join(dir, 'listening.idx')
  const server = createNetServer()
  await new Promise<void>((resolve) => server.listen(socket, resolve))
  t.teardown(() => server.close())
  const error = await refused(t, loadIdx(socket), 'loadIdx(socket)', IoError, socket, /it is a socket, not a regular file/)
  t.notRegex(error.message, /ENXIO/)
})
