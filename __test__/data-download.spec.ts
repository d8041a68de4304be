import test from 'ava'
import { spawn } from 'node:child_process'
import { readdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { AbortError, ConfigError, IoError } from '../src/errors'
import { datasetDir, resolveCacheDir } from '../src/data/cache'
import { downloadVerified, type DownloadProgress } from '../src/data/download'
import { gzip, idxImages, md5, sha256 } from './helpers/idx'
import { redirect, refusedOrigin, silent, slow, stallAfter, startServer, status, trickle, truncated } from './helpers/server'
import { removeTempDirs, tempDir } from './helpers/temp'

test.after.always(removeTempDirs)

const FILE = 'images-idx3-ubyte.gz'
const BODY = gzip(idxImages(50, 28, 28, 5).bytes)
const SHA = sha256(BODY)

function cacheDir(): string {
  return tempDir('cache')
}

test('downloads, verifies and caches; a cache hit makes no request', async (t) => {
  const server = await startServer({ [`/a/${FILE}`]: BODY })
  t.teardown(server.close)
  const dir = cacheDir()
  const progress: DownloadProgress[] = []
  const first = await downloadVerified({ file: FILE, sha256: SHA, mirrors: [`${server.origin}/a`], cacheDir: dir, onProgress: (p) => progress.push(p) })
  t.deepEqual(first, { path: join(dir, FILE), fromCache: false, url: `${server.origin}/a/${FILE}` })
  t.true(readFileSync(first.path).equals(BODY))
  t.deepEqual(readdirSync(dir), [FILE])
  t.true(progress.length >= 2)
  t.deepEqual(progress.at(-1), { type: 'download', file: FILE, url: `${server.origin}/a/${FILE}`, bytes: BODY.length, totalBytes: BODY.length })
  t.deepEqual(server.requests, [`/a/${FILE}`])

  const again = await downloadVerified({ file: FILE, sha256: SHA.toUpperCase(), mirrors: [`${server.origin}/a/`], cacheDir: dir })
  t.deepEqual(again, { path: join(dir, FILE), fromCache: true })
  t.is(server.requests.length, 1)
})

test('an MD5 checksum is accepted too', async (t) => {
  const server = await startServer({ [`/${FILE}`]: BODY })
  t.teardown(server.close)
  const result = await downloadVerified({ file: FILE, md5: md5(BODY), mirrors: [server.origin], cacheDir: cacheDir() })
  t.false(result.fromCache)
})

test('a checksum mismatch does not poison the cache, and the next call retries', async (t) => {
  const wrong = Buffer.from(BODY)
  wrong[100] ^= 1
  const server = await startServer({ [`/${FILE}`]: wrong })
  t.teardown(server.close)
  const dir = cacheDir()
  const error = await t.throwsAsync(downloadVerified({ file: FILE, sha256: SHA, mirrors: [server.origin], cacheDir: dir }), { instanceOf: IoError })
  t.true(error!.message.includes(`${server.origin}/${FILE}: sha256 mismatch: got ${sha256(wrong)}, expected ${SHA}`))
  t.deepEqual(readdirSync(dir), [])

  server.routes.set(`/${FILE}`, BODY)
  const result = await downloadVerified({ file: FILE, sha256: SHA, mirrors: [server.origin], cacheDir: dir })
  t.false(result.fromCache)
  t.is(server.requests.length, 2)
  t.true(readFileSync(result.path).equals(BODY))
})

test('a corrupt cached file is downloaded again and replaced', async (t) => {
  const server = await startServer({ [`/${FILE}`]: BODY })
  t.teardown(server.close)
  const dir = cacheDir()
  writeFileSync(join(dir, FILE), BODY.subarray(0, 100))
  const result = await downloadVerified({ file: FILE, sha256: SHA, mirrors: [server.origin], cacheDir: dir })
  t.false(result.fromCache)
  t.true(readFileSync(result.path).equals(BODY))
})

test('a truncated body fails that mirror; the next one is used', async (t) => {
  const half = BODY.subarray(0, BODY.length >> 1)
  const server = await startServer({ [`/bad/${FILE}`]: truncated(half), [`/good/${FILE}`]: BODY })
  t.teardown(server.close)
  const dir = cacheDir()
  const alone = await t.throwsAsync(downloadVerified({ file: FILE, sha256: SHA, mirrors: [`${server.origin}/bad`], cacheDir: dir }), { instanceOf: IoError })
  t.regex(alone!.message, new RegExp(`/bad/${FILE}: truncated: the connection closed after ${half.length} of ${half.length * 2} bytes`))
  t.deepEqual(readdirSync(dir), [])

  const result = await downloadVerified({ file: FILE, sha256: SHA, mirrors: [`${server.origin}/bad`, `${server.origin}/good`], cacheDir: dir })
  t.is(result.url, `${server.origin}/good/${FILE}`)
  t.deepEqual(readdirSync(dir), [FILE])
})

test('an HTTP 500 or a refused connection fails over to the next mirror', async (t) => {
  const server = await startServer({ [`/err/${FILE}`]: status(500), [`/ok/${FILE}`]: BODY })
  t.teardown(server.close)
  const refused = await refusedOrigin()
  const result = await downloadVerified({
    file: FILE,
    sha256: SHA,
    mirrors: [refused, `${server.origin}/err`, `${server.origin}/ok`],
    cacheDir: cacheDir(),
  })
  t.is(result.url, `${server.origin}/ok/${FILE}`)
  t.deepEqual(server.requests, [`/err/${FILE}`, `/ok/${FILE}`])
})

test('when every mirror fails, the error lists each URL and why', async (t) => {
  const server = await startServer({ [`/err/${FILE}`]: status(503), [`/hang/${FILE}`]: silent, [`/stall/${FILE}`]: stallAfter(BODY, 1000) })
  t.teardown(server.close)
  const refused = await refusedOrigin()
  const dir = cacheDir()
  const started = Date.now()
  const error = await t.throwsAsync(
    downloadVerified({
      file: FILE,
      sha256: SHA,
      mirrors: [`${server.origin}/hang`, `${server.origin}/stall`, `${server.origin}/err`, `${server.origin}/missing`, refused],
      cacheDir: dir,
      idleTimeoutMs: 300,
    }),
    { instanceOf: IoError },
  )
  const elapsed = Date.now() - started
  t.true(elapsed >= 550 && elapsed < 5000, `took ${elapsed} ms`)
  const lines = error!.message.split('\n')
  t.is(lines[0], `could not download ${FILE} from any of its 5 mirrors:`)
  t.is(lines[1], `  - ${server.origin}/hang/${FILE}: no data for 300 ms (idleTimeoutMs)`)
  t.is(lines[2], `  - ${server.origin}/stall/${FILE}: no data for 300 ms (idleTimeoutMs)`)
  t.is(lines[3], `  - ${server.origin}/err/${FILE}: HTTP 503 Service Unavailable`)
  t.is(lines[4], `  - ${server.origin}/missing/${FILE}: HTTP 404 Not Found`)
  t.regex(lines[5], new RegExp(`^  - ${refused}/${FILE}: .*ECONNREFUSED`))
  t.is((error!.cause as AggregateError).errors.length, 5)
  t.deepEqual(readdirSync(dir), [])
})

test('redirects are followed, up to 5', async (t) => {
  const server = await startServer({ [`/r1/${FILE}`]: redirect(`/r2/${FILE}`, 301), [`/final/${FILE}`]: BODY, [`/loop/${FILE}`]: redirect(`/loop/${FILE}`) })
  t.teardown(server.close)
  // An absolute Location as well as a relative one.
  server.routes.set(`/r2/${FILE}`, redirect(`${server.origin}/final/${FILE}`, 307))
  const result = await downloadVerified({ file: FILE, sha256: SHA, mirrors: [`${server.origin}/r1`], cacheDir: cacheDir() })
  t.is(result.url, `${server.origin}/r1/${FILE}`)
  t.deepEqual(server.requests, [`/r1/${FILE}`, `/r2/${FILE}`, `/final/${FILE}`])

  const error = await t.throwsAsync(downloadVerified({ file: FILE, sha256: SHA, mirrors: [`${server.origin}/loop`], cacheDir: cacheDir() }), { instanceOf: IoError })
  t.regex(error!.message, /more than 5 redirects/)
  t.is(server.requests.filter((p) => p.startsWith('/loop')).length, 6)
})

test('a server announcing another size than the published one fails at once', async (t) => {
  const server = await startServer({ [`/${FILE}`]: BODY })
  t.teardown(server.close)
  const error = await t.throwsAsync(
    downloadVerified({ file: FILE, sha256: SHA, size: BODY.length + 1, mirrors: [server.origin], cacheDir: cacheDir() }),
    { instanceOf: IoError },
  )
  t.regex(error!.message, new RegExp(`announced ${BODY.length} bytes, but the published file has ${BODY.length + 1}`))
})

test('concurrent calls in one process share one download', async (t) => {
  const server = await startServer({ [`/${FILE}`]: slow(BODY, 4, 30) })
  t.teardown(server.close)
  const dir = cacheDir()
  const request = { file: FILE, sha256: SHA, mirrors: [server.origin], cacheDir: dir }
  const [a, b] = await Promise.all([downloadVerified(request), downloadVerified(request)])
  t.is(a.path, b.path)
  t.is(server.requests.length, 1)
  t.true(readFileSync(a.path).equals(BODY))
  t.deepEqual(readdirSync(dir), [FILE])
})

test('two processes filling the same cache at once both succeed', async (t) => {
  const server = await startServer({ [`/${FILE}`]: slow(BODY, 8, 40) })
  t.teardown(server.close)
  const dir = cacheDir()
  const request = { file: FILE, sha256: SHA, mirrors: [server.origin], cacheDir: dir }
  const child = new Promise<string>((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', join(__dirname, 'helpers', 'download-child.ts'), JSON.stringify(request)], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    let out = ''
    let err = ''
    proc.stdout.on('data', (d) => (out += d))
    proc.stderr.on('data', (d) => (err += d))
    proc.on('close', (code) => (code === 0 ? resolve(out) : reject(new Error(`child exited ${code}: ${err}`))))
  })
  // Start ours once the child's request is in flight, so that the two overlap.
  const deadline = Date.now() + 15000
  while (server.requests.length === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10))
  const ours = await downloadVerified(request)
  const theirs = JSON.parse(await child)
  t.is(theirs.path, ours.path)
  t.is(server.requests.length, 2)
  t.true(readFileSync(ours.path).equals(BODY))
  t.deepEqual(readdirSync(dir), [FILE])
})

test('an AbortSignal stops the download and leaves no temp file', async (t) => {
  const server = await startServer({ [`/${FILE}`]: stallAfter(BODY, 1000) })
  t.teardown(server.close)
  const dir = cacheDir()
  const controller = new AbortController()
  const promise = downloadVerified({
    file: FILE,
    sha256: SHA,
    mirrors: [server.origin, server.origin],
    cacheDir: dir,
    signal: controller.signal,
    onProgress: () => setTimeout(() => controller.abort(), 50),
  })
  const error = await t.throwsAsync(promise, { instanceOf: AbortError })
  t.regex(error!.message, new RegExp(`download of ${FILE} was aborted`))
  t.is(server.requests.length, 1)
  await new Promise((r) => setTimeout(r, 50))
  t.deepEqual(readdirSync(dir), [])

  const already = await t.throwsAsync(
    downloadVerified({ file: FILE, sha256: SHA, mirrors: [server.origin], cacheDir: dir, signal: AbortSignal.abort() }),
    { instanceOf: AbortError },
  )
  t.truthy(already)
  t.is(server.requests.length, 1)
})

test('one caller aborting does not stop a download another caller shares', async (t) => {
  const server = await startServer({ [`/${FILE}`]: slow(BODY, 5, 40) })
  t.teardown(server.close)
  const dir = cacheDir()
  const controller = new AbortController()
  const request = { file: FILE, sha256: SHA, mirrors: [server.origin], cacheDir: dir }
  const aborted = downloadVerified({ ...request, signal: controller.signal, onProgress: () => controller.abort() })
  const kept = downloadVerified(request)
  await t.throwsAsync(aborted, { instanceOf: AbortError })
  const result = await kept
  t.false(result.fromCache)
  t.true(readFileSync(result.path).equals(BODY))
  t.is(server.requests.length, 1)
})

test('a call made just after every sharer aborted starts a fresh download', async (t) => {
  const server = await startServer({ [`/${FILE}`]: slow(BODY, 4, 30) })
  t.teardown(server.close)
  const request = { file: FILE, sha256: SHA, mirrors: [server.origin], cacheDir: cacheDir() }
  const controller = new AbortController()
  const first = downloadVerified({ ...request, signal: controller.signal, onProgress: () => controller.abort() })
  await t.throwsAsync(first, { instanceOf: AbortError })
  // The abandoned download may still be winding down: this call must not join it.
  const second = await downloadVerified(request)
  t.false(second.fromCache)
  t.is(server.requests.length, 2)
})

test('timeoutMs is a deadline: a body trickling a byte every 300 ms fails within it, with an IoError, and leaves the cache as it was', async (t) => {
  t.timeout(20_000, 'a hang here means a trickle kept the download going') // fail, rather than wait for the body
  const server = await startServer({ [`/${FILE}`]: trickle(BODY, 1, 300), [`/next/${FILE}`]: BODY })
  t.teardown(server.close)
  const dir = cacheDir()
  // A damaged cached copy: it must be neither replaced by a partial file nor removed.
  writeFileSync(join(dir, FILE), 'old bytes')
  const started = Date.now()
  const error = await t.throwsAsync(
    downloadVerified({ file: FILE, sha256: SHA, mirrors: [server.origin, `${server.origin}/next`], cacheDir: dir, timeoutMs: 1200 }),
    { instanceOf: IoError },
  )
  const elapsed = Date.now() - started
  // The upper bound is loose (a loaded CI machine): a trickle that kept the download going would take 2 minutes (t.timeout fails it first).
  t.true(elapsed >= 1100 && elapsed < 12_000, `took ${elapsed} ms`)
  t.is(error!.code, 'Io')
  t.regex(error!.message, new RegExp(`^could not download ${FILE} within timeoutMs \\(1200 ms\\):\\n  - ${server.origin}/${FILE}: still downloading when the deadline passed$`))
  t.deepEqual(server.requests, [`/${FILE}`], 'the deadline covers the whole call: no further mirror is tried')
  await new Promise((r) => setTimeout(r, 50))
  t.deepEqual(readdirSync(dir), [FILE])
  t.is(readFileSync(join(dir, FILE), 'utf8'), 'old bytes')
})

test('the deadline spans mirrors: time spent on a silent mirror counts', async (t) => {
  t.timeout(20_000, 'a hang here means a trickle kept the download going') // fail, rather than wait for the body
  const server = await startServer({ [`/hang/${FILE}`]: silent, [`/trickle/${FILE}`]: trickle(BODY, 1, 100) })
  t.teardown(server.close)
  const dir = cacheDir()
  const started = Date.now()
  const error = await t.throwsAsync(
    downloadVerified({ file: FILE, sha256: SHA, mirrors: [`${server.origin}/hang`, `${server.origin}/trickle`], cacheDir: dir, timeoutMs: 1000, idleTimeoutMs: 500 }),
    { instanceOf: IoError },
  )
  const elapsed = Date.now() - started
  t.true(elapsed >= 900 && elapsed < 10_000, `took ${elapsed} ms`)
  const lines = error!.message.split('\n')
  t.is(lines[0], `could not download ${FILE} within timeoutMs (1000 ms):`)
  t.is(lines[1], `  - ${server.origin}/hang/${FILE}: no data for 500 ms (idleTimeoutMs)`)
  t.is(lines[2], `  - ${server.origin}/trickle/${FILE}: still downloading when the deadline passed`)
  t.deepEqual(readdirSync(dir), [])
})

test('an abort during a trickle rejects promptly with AbortError and leaves no file', async (t) => {
  t.timeout(20_000, 'a hang here means a trickle kept the download going') // fail, rather than wait for the body
  const server = await startServer({ [`/${FILE}`]: trickle(BODY, 1, 300) })
  t.teardown(server.close)
  const dir = cacheDir()
  const controller = new AbortController()
  const promise = downloadVerified({ file: FILE, sha256: SHA, mirrors: [server.origin], cacheDir: dir, signal: controller.signal })
  await new Promise((r) => setTimeout(r, 700))
  const aborted = Date.now()
  controller.abort()
  const error = await t.throwsAsync(promise, { instanceOf: AbortError })
  // Promptly: long before the next trickled byte could end the transfer (the body takes minutes).
  t.true(Date.now() - aborted < 1000, `rejected ${Date.now() - aborted} ms after the abort`)
  t.is(error!.code, 'Aborted')
  await new Promise((r) => setTimeout(r, 50))
  t.deepEqual(readdirSync(dir), [])
})

test('a caller joining a shared download keeps its own, shorter deadline; the download goes on for the other', async (t) => {
  t.timeout(20_000, 'a hang here means a trickle kept the download going') // fail, rather than wait for the body
  const server = await startServer({ [`/${FILE}`]: slow(BODY, 10, 150) })
  t.teardown(server.close)
  const dir = cacheDir()
  const request = { file: FILE, sha256: SHA, mirrors: [server.origin], cacheDir: dir }
  let patientDone = false
  const patient = downloadVerified(request).finally(() => (patientDone = true))
  const hurried = await t.throwsAsync(downloadVerified({ ...request, timeoutMs: 300 }), { instanceOf: IoError })
  t.false(patientDone, 'the hurried caller failed while the download was still going')
  t.regex(hurried!.message, new RegExp(`could not download ${FILE} within timeoutMs \\(300 ms\\): the download, shared with a call that waits longer, was still running`))
  const result = await patient
  t.true(readFileSync(result.path).equals(BODY))
  t.is(server.requests.length, 1)
})

test('a joiner with a longer deadline than the first caller keeps the shared download going: the first fails alone, the joiner gets the file', async (t) => {
  t.timeout(20_000, 'a hang here means a trickle kept the download going')
  const server = await startServer({ [`/${FILE}`]: slow(BODY, 10, 150) })
  t.teardown(server.close)
  const dir = cacheDir()
  const request = { file: FILE, sha256: SHA, mirrors: [server.origin], cacheDir: dir }
  let joinerDone = false
  const first = downloadVerified({ ...request, timeoutMs: 300 })
  const joiner = downloadVerified({ ...request, timeoutMs: 60_000 }).finally(() => (joinerDone = true))
  const error = await t.throwsAsync(first, { instanceOf: IoError })
  t.false(joinerDone)
  t.regex(error!.message, new RegExp(`within timeoutMs \\(300 ms\\): the download, shared with a call that waits longer, was still running`))
  const result = await joiner
  t.false(result.fromCache)
  t.true(readFileSync(result.path).equals(BODY))
  t.is(server.requests.length, 1, 'one download, shared')
})

test('when the joiner\'s longer deadline passes too, its error quotes its own timeoutMs and the mirrors tried', async (t) => {
  t.timeout(20_000, 'a hang here means a trickle kept the download going')
  const server = await startServer({ [`/${FILE}`]: trickle(BODY, 1, 300) })
  t.teardown(server.close)
  const dir = cacheDir()
  const request = { file: FILE, sha256: SHA, mirrors: [server.origin], cacheDir: dir, idleTimeoutMs: 5000 }
  const first = downloadVerified({ ...request, timeoutMs: 300 })
  const joiner = downloadVerified({ ...request, timeoutMs: 900 })
  await t.throwsAsync(first, { instanceOf: IoError, message: /timeoutMs \(300 ms\)/ })
  const error = await t.throwsAsync(joiner, { instanceOf: IoError })
  t.regex(error!.message, new RegExp(`^could not download ${FILE} within timeoutMs \\(900 ms\\):\\n  - ${server.origin}/${FILE}: still downloading when the deadline passed$`))
  t.deepEqual(server.requests, [`/${FILE}`])
  await new Promise((r) => setTimeout(r, 50))
  t.deepEqual(readdirSync(dir), [])
})

test('bad requests are ConfigErrors', async (t) => {
  const base = { file: FILE, sha256: SHA, mirrors: ['http://127.0.0.1:1/'], cacheDir: cacheDir() }
  await t.throwsAsync(downloadVerified({ ...base, sha256: 'abc' }), { instanceOf: ConfigError, message: /sha256 must be 64 hexadecimal digits, got "abc"/ })
  await t.throwsAsync(downloadVerified({ ...base, mirrors: [] }), { instanceOf: ConfigError, message: /mirrors/ })
  await t.throwsAsync(downloadVerified({ ...base, file: '../x' }), { instanceOf: ConfigError, message: /plain file name/ })
  await t.throwsAsync(downloadVerified({ ...base, timeoutMs: 0 }), { instanceOf: ConfigError, message: /timeoutMs/ })
  await t.throwsAsync(downloadVerified({ ...base, idleTimeoutMs: -5 }), { instanceOf: ConfigError, message: /`idleTimeoutMs` must be a positive number of milliseconds, got -5/ })
  const both = { ...base, md5: md5(BODY) } as never
  await t.throwsAsync(downloadVerified(both), { instanceOf: ConfigError, message: /not both/ })
})

test.serial('the cache root: option, then $PIXELCNN_CACHE_DIR, then $XDG_CACHE_HOME, then ~/.cache', (t) => {
  const saved = { own: process.env.PIXELCNN_CACHE_DIR, xdg: process.env.XDG_CACHE_HOME, home: process.env.HOME }
  t.teardown(() => {
    for (const [key, value] of [['PIXELCNN_CACHE_DIR', saved.own], ['XDG_CACHE_HOME', saved.xdg], ['HOME', saved.home]] as const) {
      if (value === undefined) delete process.env[key]
      else process.env[key] = value
    }
  })
  process.env.PIXELCNN_CACHE_DIR = '/tmp/own'
  process.env.XDG_CACHE_HOME = '/tmp/xdg'
  process.env.HOME = '/tmp/home'
  t.is(resolveCacheDir('/tmp/option'), '/tmp/option')
  t.is(resolveCacheDir(), '/tmp/own')
  t.is(datasetDir('mnist'), '/tmp/own/datasets/mnist')
  delete process.env.PIXELCNN_CACHE_DIR
  t.is(resolveCacheDir(), '/tmp/xdg/pixelcnn')
  process.env.XDG_CACHE_HOME = 'relative/ignored'
  t.is(resolveCacheDir(), '/tmp/home/.cache/pixelcnn')
  t.throws(() => resolveCacheDir(''), { instanceOf: ConfigError })
})
