/**
 * Downloading a published file into the cache, verified against its checksum.
 *
 * Each mirror is tried in order. The body streams to a temporary file while
 * it is hashed, and the file is renamed into place only when the checksum
 * matches (see cache.ts for why this is safe with concurrent processes). A
 * mirror fails, and the next is tried, on: an HTTP error status, too many
 * redirects, a body shorter than its Content-Length, a checksum mismatch, a
 * size other than the published one, or no data for `timeoutMs`. When every
 * mirror failed the `IoError` lists each URL with its reason.
 *
 * Concurrent calls in one process for the same file and checksum share one
 * download (made with the first call's mirrors and timeout); it stops only
 * when every caller waiting on it has aborted. Calls from other processes do
 * their own download: each writes its own temporary file, and the renames
 * into place replace one verified file with an identical one.
 */

import { createHash } from 'node:crypto'
import { createWriteStream } from 'node:fs'
import { mkdir, rename } from 'node:fs/promises'
import http, { type ClientRequest, type IncomingMessage } from 'node:http'
import https from 'node:https'
import { join, resolve } from 'node:path'
import { Transform } from 'node:stream'
import { pipeline } from 'node:stream/promises'

import { AbortError, ConfigError, IoError } from '../errors'
import { describe } from '../images'
import { checksumParts, hashFile, removeQuietly, tempPathFor, type Checksum } from './cache'

/** Reported a few times a second while a file downloads, and once at its end. */
export interface DownloadProgress {
  type: 'download'
  /** The file's name, e.g. `train-images-idx3-ubyte.gz`. */
  file: string
  /** The URL being downloaded (after redirects). */
  url: string
  bytes: number
  /** From Content-Length; `null` when the server did not say. */
  totalBytes: number | null
}

export type DownloadRequest = Checksum & {
  /** The file's name: appended to each mirror URL and used in the cache. */
  file: string
  /** Base URLs tried in order; `file` is appended (a `/` is added if missing). */
  mirrors: readonly string[]
  /** The directory the verified file is stored in, e.g. `datasetDir('mnist')`. */
  cacheDir: string
  /** The published size in bytes, if known: a server announcing another size fails at once. */
  size?: number
  /** A mirror fails after this long without any data. @default 30000 */
  timeoutMs?: number
  /** @default 5 */
  maxRedirects?: number
  /** Called a few times a second; errors it throws are ignored. */
  onProgress?: (progress: DownloadProgress) => void
  signal?: AbortSignal
}

export interface DownloadResult {
  /** The verified file in the cache. */
  path: string
  /** `true` when the file was already cached (no request was made). */
  fromCache: boolean
  /** When downloaded: the URL requested, on the mirror that served it (before any redirect). */
  url?: string
}

export const DEFAULT_TIMEOUT_MS = 30_000
const DEFAULT_MAX_REDIRECTS = 5
const PROGRESS_INTERVAL_MS = 250
const REDIRECTS = new Set([301, 302, 303, 307, 308])

interface Shared {
  key: string
  promise: Promise<DownloadResult>
  controller: AbortController
  listeners: Set<(progress: DownloadProgress) => void>
  waiters: number
  settled: boolean
}

const inFlight = new Map<string, Shared>()

/**
 * Returns the path of `file` in `cacheDir`, downloading it first unless a
 * copy with the right checksum is already there (then no request is made).
 */
export async function downloadVerified(request: DownloadRequest): Promise<DownloadResult> {
  const checked = checkRequest(request)
  if (request.signal?.aborted) throw abortError(checked.file)
  const key = `${checked.dest}\0${checked.algorithm}:${checked.digest}`
  let shared = inFlight.get(key)
  if (shared === undefined) {
    const controller = new AbortController()
    const listeners = new Set<(progress: DownloadProgress) => void>()
    const emit = (progress: DownloadProgress) => {
      for (const listener of listeners) {
        try {
          listener(progress)
        } catch {
          // A failing progress callback must not break the download.
        }
      }
    }
    const created: Shared = {
      key,
      promise: fetchIntoCache(checked, controller.signal, emit),
      controller,
      listeners,
      waiters: 0,
      settled: false,
    }
    const done = () => {
      created.settled = true
      forget(created)
    }
    created.promise.then(done, done)
    inFlight.set(key, created)
    shared = created
  }
  return wait(shared, checked.file, request.signal, request.onProgress)
}

async function wait(
  shared: Shared,
  file: string,
  signal: AbortSignal | undefined,
  onProgress: ((progress: DownloadProgress) => void) | undefined,
): Promise<DownloadResult> {
  shared.waiters++
  // A wrapper of our own, so that two callers passing the same function each get their reports.
  const listener = onProgress && ((progress: DownloadProgress) => onProgress(progress))
  if (listener) shared.listeners.add(listener)
  try {
    if (!signal) return await shared.promise
    return await new Promise<DownloadResult>((resolvePromise, reject) => {
      const onAbort = () => reject(abortError(file))
      signal.addEventListener('abort', onAbort, { once: true })
      shared.promise
        .then(resolvePromise, reject)
        .finally(() => signal.removeEventListener('abort', onAbort))
    })
  } finally {
    shared.waiters--
    if (listener) shared.listeners.delete(listener)
    if (shared.waiters === 0 && !shared.settled) {
      // Nobody wants it any more: a later call must start afresh, not join a dying download.
      forget(shared)
      shared.controller.abort()
    }
  }
}

function forget(shared: Shared): void {
  if (inFlight.get(shared.key) === shared) inFlight.delete(shared.key)
}

interface Checked {
  file: string
  dest: string
  dir: string
  mirrors: string[]
  algorithm: 'sha256' | 'md5'
  digest: string
  size?: number
  timeoutMs: number
  maxRedirects: number
}

function checkRequest(request: DownloadRequest): Checked {
  const { file, mirrors, cacheDir, size } = request
  if (typeof file !== 'string' || !/^[\w.-]+$/.test(file) || file === '.' || file === '..') {
    throw new ConfigError(`\`file\` must be a plain file name (letters, digits, '.', '-', '_'), got ${describe(file)}`)
  }
  if (!Array.isArray(mirrors) || mirrors.length === 0 || mirrors.some((m) => typeof m !== 'string' || m === '')) {
    throw new ConfigError(`\`mirrors\` must be a non-empty array of URLs, got ${describe(mirrors)}`)
  }
  if (typeof cacheDir !== 'string' || cacheDir === '') {
    throw new ConfigError(`\`cacheDir\` must be a non-empty path, got ${describe(cacheDir)}`)
  }
  if (size !== undefined && !(Number.isSafeInteger(size) && size >= 0)) {
    throw new ConfigError(`\`size\` must be a non-negative integer, got ${describe(size)}`)
  }
  const timeoutMs = request.timeoutMs ?? DEFAULT_TIMEOUT_MS
  if (typeof timeoutMs !== 'number' || !(timeoutMs > 0 && timeoutMs <= 2 ** 31 - 1)) {
    throw new ConfigError(`\`timeoutMs\` must be a positive number of milliseconds, got ${describe(timeoutMs)}`)
  }
  const maxRedirects = request.maxRedirects ?? DEFAULT_MAX_REDIRECTS
  if (!Number.isInteger(maxRedirects) || maxRedirects < 0) {
    throw new ConfigError(`\`maxRedirects\` must be a non-negative integer, got ${describe(maxRedirects)}`)
  }
  const { algorithm, digest } = checksumParts(request, 'the download request')
  const dir = resolve(cacheDir)
  return { file, dest: join(dir, file), dir, mirrors: [...mirrors], algorithm, digest, size, timeoutMs, maxRedirects }
}

async function fetchIntoCache(
  req: Checked,
  signal: AbortSignal,
  emit: (progress: DownloadProgress) => void,
): Promise<DownloadResult> {
  if ((await hashFile(req.dest, req.algorithm)) === req.digest) return { path: req.dest, fromCache: true }
  try {
    await mkdir(req.dir, { recursive: true })
  } catch (error) {
    throw new IoError(`cannot create the cache directory ${req.dir}: ${(error as Error).message}`, { cause: error })
  }
  const failures: Array<{ url: string; error: Error }> = []
  for (const mirror of req.mirrors) {
    if (signal.aborted) throw abortError(req.file)
    const url = mirror.endsWith('/') ? mirror + req.file : `${mirror}/${req.file}`
    const tmp = tempPathFor(req.dest)
    try {
      const digest = await fetchToFile(url, tmp, req, signal, emit)
      if (digest !== req.digest) {
        throw new Error(`${req.algorithm} mismatch: got ${digest}, expected ${req.digest}`)
      }
      try {
        await rename(tmp, req.dest)
      } catch (error) {
        throw new IoError(`cannot move ${tmp} to ${req.dest}: ${(error as Error).message}`, { cause: error })
      }
      return { path: req.dest, fromCache: false, url }
    } catch (error) {
      if (error instanceof AbortError || error instanceof IoError) throw error
      failures.push({ url, error: error as Error })
    } finally {
      await removeQuietly(tmp)
    }
  }
  const list = failures.map(({ url, error }) => `\n  - ${url}: ${error.message}`).join('')
  throw new IoError(
    `could not download ${req.file} from ${failures.length === 1 ? 'its mirror' : `any of its ${failures.length} mirrors`}:${list}`,
    { cause: new AggregateError(failures.map((f) => f.error)) },
  )
}

/** Downloads `url` to `tmp` (following redirects); returns the body's hex digest. */
async function fetchToFile(
  start: string,
  tmp: string,
  req: Checked,
  signal: AbortSignal,
  emit: (progress: DownloadProgress) => void,
): Promise<string> {
  // Whatever stops the transfer from outside (timeout, abort) is recorded
  // here, because the streams then fail with a generic "aborted".
  let stopped: Error | undefined
  let request: ClientRequest | undefined
  let response: IncomingMessage | undefined
  let timer: NodeJS.Timeout | undefined
  const stop = (reason: Error) => {
    if (stopped) return
    stopped = reason
    response?.destroy(reason)
    request?.destroy(reason)
  }
  const arm = () => {
    clearTimeout(timer)
    timer = setTimeout(() => stop(new Error(`no data for ${req.timeoutMs} ms (timeoutMs)`)), req.timeoutMs)
  }
  let url: URL
  try {
    url = new URL(start)
  } catch {
    throw new Error(`not a valid URL`)
  }
  const onAbort = () => stop(abortError(req.file))
  signal.addEventListener('abort', onAbort)
  try {
    for (let redirects = 0; ; redirects++) {
      if (url.protocol !== 'http:' && url.protocol !== 'https:') {
        throw new Error(`unsupported protocol ${JSON.stringify(url.protocol)} in ${url.href}`)
      }
      arm()
      response = await get(url, (r) => {
        request = r
        if (stopped) r.destroy(stopped)
      })
      arm()
      const status = response.statusCode ?? 0
      if (REDIRECTS.has(status)) {
        response.resume()
        const location = response.headers.location
        if (!location) throw new Error(`HTTP ${status} redirect without a Location header`)
        if (redirects >= req.maxRedirects) throw new Error(`more than ${req.maxRedirects} redirects (last to ${location})`)
        url = new URL(location, url)
        continue
      }
      if (status !== 200) {
        response.resume()
        throw new Error(`HTTP ${status}${response.statusMessage ? ' ' + response.statusMessage : ''}${redirects ? ` at ${url.href}` : ''}`)
      }
      break
    }

    const length = response.headers['content-length']
    const total = length !== undefined && /^\d+$/.test(length) ? Number(length) : null
    if (req.size !== undefined && total !== null && total !== req.size) {
      response.resume()
      throw new Error(`the server announced ${total} bytes, but the published file has ${req.size}`)
    }
    const hash = createHash(req.algorithm)
    const href = url.href
    let bytes = 0
    let lastReport = 0
    const report = () => {
      lastReport = Date.now()
      emit({ type: 'download', file: req.file, url: href, bytes, totalBytes: total })
    }
    report()
    const meter = new Transform({
      transform(chunk: Buffer, _encoding, callback) {
        arm()
        hash.update(chunk)
        bytes += chunk.length
        if (Date.now() - lastReport >= PROGRESS_INTERVAL_MS) report()
        callback(null, chunk)
      },
    })
    try {
      await pipeline(response, meter, createWriteStream(tmp, { flags: 'wx' }))
    } catch (error) {
      const e = error as NodeJS.ErrnoException
      if (stopped) throw stopped
      if (e.syscall && ['open', 'write', 'close'].includes(e.syscall)) {
        throw new IoError(`cannot write ${tmp}: ${e.message}`, { cause: error })
      }
      if (total !== null && bytes < total) {
        throw new Error(`truncated: the connection closed after ${bytes} of ${total} bytes`, { cause: error })
      }
      throw error
    }
    if (total !== null && bytes !== total) throw new Error(`truncated: received ${bytes} of ${total} bytes`)
    report()
    return hash.digest('hex')
  } catch (error) {
    throw stopped ?? error
  } finally {
    clearTimeout(timer)
    signal.removeEventListener('abort', onAbort)
    request?.destroy()
  }
}

function get(url: URL, onRequest: (request: ClientRequest) => void): Promise<IncomingMessage> {
  return new Promise((resolvePromise, reject) => {
    const client = url.protocol === 'https:' ? https : http
    // `agent: false`: one connection per request, so no idle keep-alive
    // socket outlives the download.
    const request = client.get(
      url,
      { agent: false, headers: { 'user-agent': 'pixelcnn (dataset download)', 'accept-encoding': 'identity' } },
      resolvePromise,
    )
    request.on('error', reject)
    onRequest(request)
  })
}

function abortError(file: string): AbortError {
  return new AbortError(`the download of ${file} was aborted`)
}
