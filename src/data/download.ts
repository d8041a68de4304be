/**
 * Downloading a published file into the cache, verified against its checksum.
 *
 * Each mirror is tried in order. The body streams to a temporary file while
 * it is hashed, and the file is renamed into place only when the checksum
 * matches (see cache.ts for why this is safe with concurrent processes). A
 * mirror fails, and the next is tried, on: an HTTP error status, too many
 * redirects, a body shorter than its Content-Length, a checksum mismatch, a
 * size other than the published one, or no data for `idleTimeoutMs`. When
 * every mirror failed the `IoError` lists each URL with its reason.
 *
 * Time limits: `timeoutMs` is a deadline for the whole call, not an idle
 * timeout: connecting, redirects, every mirror and every byte of the body
 * must be done within it, so a server trickling a byte now and then cannot
 * keep a download going forever; when it passes, the call fails at once with
 * an `IoError` (no further mirror is tried). `idleTimeoutMs` additionally
 * fails one mirror that sends nothing for that long, and the next mirror is
 * tried. An `AbortSignal` is honoured at every wait as well. Either way the
 * temporary file is removed and nothing is left at the destination.
 *
 * Concurrent calls in one process for the same file and checksum share one
 * download (made with the first call's mirrors and `idleTimeoutMs`). Each
 * caller keeps its own deadline and signal: the shared download runs until
 * the latest deadline of the callers that joined it (a joiner with a longer
 * `timeoutMs` than the first call extends it), a caller whose own deadline
 * passes first fails alone, with its own `timeoutMs` in the message, and the
 * download stops only when every caller waiting on it has given up (then a
 * later call starts afresh rather than join it). Calls from other processes do
 * their own download: each writes its own temporary file, and the renames
 * into place replace one verified file with an identical one.
 */

import { createHash } from 'node:crypto'
import { mkdir } from 'node:fs/promises'
import http, { type ClientRequest, type IncomingMessage } from 'node:http'
import https from 'node:https'
import { join, resolve } from 'node:path'

import { AbortError, ConfigError, IoError } from '../errors'
import { describe } from '../images'
import { createAtomicFile, type AtomicFile } from '../write-file'
import { checksumParts, hashFile, type Checksum } from './cache'
import { checkOptions } from '../options'

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
  /** The whole call fails after this long (a deadline, every mirror included; see above). @default 1800000 (30 minutes) */
  timeoutMs?: number
  /** A mirror fails, and the next is tried, after this long without any data. @default 30000 */
  idleTimeoutMs?: number
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

export const DEFAULT_TIMEOUT_MS = 30 * 60_000
export const DEFAULT_IDLE_TIMEOUT_MS = 30_000
const DEFAULT_MAX_REDIRECTS = 5
const PROGRESS_INTERVAL_MS = 250
const REDIRECTS = new Set([301, 302, 303, 307, 308])

/** When a shared download gives up; later joiners with a later deadline move it (then `onExtend` re-arms the timer). */
interface Clock {
  /** Date.now() time: the latest deadline of the callers that joined. */
  deadline: number
  onExtend?: () => void
}

interface Shared {
  key: string
  clock: Clock
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
  const started = Date.now()
  const checked = checkRequest(checkOptions(request, { name: 'request', fn: 'downloadVerified', walk: true }) as DownloadRequest)
  if (request.signal?.aborted) throw abortError(checked.file)
  const deadline = started + checked.timeoutMs
  const key = `${checked.dest}\0${checked.algorithm}:${checked.digest}`
  let shared = inFlight.get(key)
  // A download whose deadline has passed is failing: start afresh rather than join it.
  if (shared !== undefined && shared.clock.deadline <= Date.now()) shared = undefined
  if (shared !== undefined && deadline > shared.clock.deadline) {
    shared.clock.deadline = deadline
    shared.clock.onExtend?.()
  }
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
    const clock: Clock = { deadline }
    const created: Shared = {
      key,
      clock,
      promise: fetchIntoCache(checked, clock, controller.signal, emit),
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
  return wait(shared, checked, deadline, request.signal, request.onProgress)
}

async function wait(
  shared: Shared,
  req: Checked,
  deadline: number,
  signal: AbortSignal | undefined,
  onProgress: ((progress: DownloadProgress) => void) | undefined,
): Promise<DownloadResult> {
  shared.waiters++
  // A wrapper of our own, so that two callers passing the same function each get their reports.
  const listener = onProgress && ((progress: DownloadProgress) => onProgress(progress))
  if (listener) shared.listeners.add(listener)
  let timer: NodeJS.Timeout | undefined
  let onAbort: (() => void) | undefined
  try {
    return await new Promise<DownloadResult>((resolvePromise, reject) => {
      if (signal) {
        onAbort = () => reject(abortError(req.file))
        signal.addEventListener('abort', onAbort, { once: true })
      }
      // The download enforces the latest deadline itself (with the mirrors'
      // story in the message); a caller in more of a hurry fails alone, on its own timer.
      timer = setTimeout(() => {
        if (shared.clock.deadline <= deadline) return
        reject(new IoError(`could not download ${req.file} within timeoutMs (${req.timeoutMs} ms): the download, shared with a call that waits longer, was still running`))
      }, Math.max(0, deadline - Date.now()))
      shared.promise.then(resolvePromise, (error: unknown) =>
        // The shared deadline is this caller's too (the latest one): say it with this caller's timeoutMs.
        reject(error instanceof DeadlinePassed ? new IoError(`could not download ${req.file} within timeoutMs (${req.timeoutMs} ms):${error.story}`, { cause: error.cause }) : error),
      )
    })
  } finally {
    clearTimeout(timer)
    if (signal && onAbort) signal.removeEventListener('abort', onAbort)
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
  idleTimeoutMs: number
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
  const idleTimeoutMs = request.idleTimeoutMs ?? Math.min(DEFAULT_IDLE_TIMEOUT_MS, timeoutMs)
  if (typeof idleTimeoutMs !== 'number' || !(idleTimeoutMs > 0 && idleTimeoutMs <= 2 ** 31 - 1)) {
    throw new ConfigError(`\`idleTimeoutMs\` must be a positive number of milliseconds, got ${describe(idleTimeoutMs)}`)
  }
  const maxRedirects = request.maxRedirects ?? DEFAULT_MAX_REDIRECTS
  if (!Number.isInteger(maxRedirects) || maxRedirects < 0) {
    throw new ConfigError(`\`maxRedirects\` must be a non-negative integer, got ${describe(maxRedirects)}`)
  }
  const { algorithm, digest } = checksumParts(request, 'the download request')
  const dir = resolve(cacheDir)
  return { file, dest: join(dir, file), dir, mirrors: [...mirrors], algorithm, digest, size, timeoutMs, idleTimeoutMs, maxRedirects }
}

/** Marks the transfer stopped by the call's overall deadline, to be reported with the mirrors tried so far. */
class DeadlineExceeded extends Error {}

/** The shared download's deadline passed: `story` lists the mirrors tried; each caller words the message with its own timeoutMs. */
class DeadlinePassed extends IoError {
  constructor(
    readonly story: string,
    options: { cause: unknown },
  ) {
    super(`could not download within the deadline:${story}`, options)
  }
}

async function fetchIntoCache(
  req: Checked,
  clock: Clock,
  signal: AbortSignal,
  emit: (progress: DownloadProgress) => void,
): Promise<DownloadResult> {
  if ((await hashFile(req.dest, req.algorithm, req.size)) === req.digest) return { path: req.dest, fromCache: true }
  try {
    await mkdir(req.dir, { recursive: true })
  } catch (error) {
    throw new IoError(`cannot create the cache directory ${req.dir}: ${(error as Error).message}`, { cause: error })
  }
  // One timer for the whole call: it fires however the time is being spent
  // (connecting, waiting for headers, a body trickling in, redirects, mirrors).
  // A later joiner with a later deadline re-arms it.
  const expired = new AbortController()
  let timer: NodeJS.Timeout | undefined
  const arm = () => {
    clearTimeout(timer)
    if (!expired.signal.aborted) timer = setTimeout(() => expired.abort(), Math.max(0, clock.deadline - Date.now()))
  }
  arm()
  clock.onExtend = arm
  const failures: Array<{ url: string; error: Error }> = []
  const list = () => failures.map(({ url, error }) => `\n  - ${url}: ${error.message}`).join('')
  try {
    for (const mirror of req.mirrors) {
      if (signal.aborted) throw abortError(req.file)
      const url = mirror.endsWith('/') ? mirror + req.file : `${mirror}/${req.file}`
      let temp: AtomicFile | undefined
      try {
        if (expired.signal.aborted) throw new DeadlineExceeded('not started')
        const fetched = await fetchToFile(url, req, signal, expired.signal, emit)
        temp = fetched.temp
        if (fetched.digest !== req.digest) {
          throw new Error(`${req.algorithm} mismatch: got ${fetched.digest}, expected ${req.digest}`)
        }
        try {
          await temp.commit()
        } catch (error) {
          throw new IoError(`cannot move ${temp.tempPath} to ${req.dest}: ${(error as Error).message}`, { cause: error })
        }
        return { path: req.dest, fromCache: false, url }
      } catch (error) {
        await temp?.discard()
        if (error instanceof DeadlineExceeded) {
          const reason = error.message === 'not started' ? '' : `\n  - ${url}: ${error.message}`
          throw new DeadlinePassed(`${list()}${reason}`, { cause: new AggregateError([...failures.map((f) => f.error), error]) })
        }
        if (error instanceof AbortError || error instanceof IoError) throw error
        failures.push({ url, error: error as Error })
      }
    }
  } finally {
    clock.onExtend = undefined
    clearTimeout(timer)
  }
  throw new IoError(
    `could not download ${req.file} from ${failures.length === 1 ? 'its mirror' : `any of its ${failures.length} mirrors`}:${list()}`,
    { cause: new AggregateError(failures.map((f) => f.error)) },
  )
}

/**
 * Downloads `url` (following redirects) into a fresh temporary file next to
 * the destination; returns it, not yet committed, with the body's hex digest.
 * On failure the temporary file is already removed.
 */
async function fetchToFile(
  start: string,
  req: Checked,
  signal: AbortSignal,
  expired: AbortSignal,
  emit: (progress: DownloadProgress) => void,
): Promise<{ digest: string; temp: AtomicFile }> {
  // Whatever stops the transfer from outside (idle timeout, deadline, abort)
  // is recorded here, because the streams then fail with a generic "aborted".
  let stopped: Error | undefined
  let request: ClientRequest | undefined
  let response: IncomingMessage | undefined
  let timer: NodeJS.Timeout | undefined
  let temp: AtomicFile | undefined
  const stop = (reason: Error) => {
    if (stopped) return
    stopped = reason
    response?.destroy(reason)
    request?.destroy(reason)
  }
  const arm = () => {
    clearTimeout(timer)
    timer = setTimeout(() => stop(new Error(`no data for ${req.idleTimeoutMs} ms (idleTimeoutMs)`)), req.idleTimeoutMs)
  }
  let url: URL
  try {
    url = new URL(start)
  } catch {
    throw new Error(`not a valid URL`)
  }
  const onAbort = () => stop(abortError(req.file))
  const onExpired = () => stop(new DeadlineExceeded(`still downloading when the deadline passed${response ? '' : ' (no response yet)'}`))
  signal.addEventListener('abort', onAbort)
  expired.addEventListener('abort', onExpired)
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
      if (stopped) throw stopped
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
    try {
      temp = await createAtomicFile(req.dest)
    } catch (error) {
      throw new IoError(`cannot create a temporary file next to ${req.dest}: ${(error as Error).message}`, { cause: error })
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
    try {
      for await (const chunk of response) {
        arm()
        const data = chunk as Buffer
        bytes += data.length
        if (req.size !== undefined && bytes > req.size) throw new Error(`the server sent more than the ${req.size} bytes of the published file`)
        hash.update(data)
        try {
          await temp.write(data)
        } catch (error) {
          throw new IoError(`cannot write ${temp.tempPath}: ${(error as Error).message}`, { cause: error })
        }
        if (Date.now() - lastReport >= PROGRESS_INTERVAL_MS) report()
      }
    } catch (error) {
      if (stopped) throw stopped
      if (error instanceof IoError) throw error
      if (total !== null && bytes < total) {
        throw new Error(`truncated: the connection closed after ${bytes} of ${total} bytes`, { cause: error })
      }
      throw error
    }
    if (stopped) throw stopped
    if (total !== null && bytes !== total) throw new Error(`truncated: received ${bytes} of ${total} bytes`)
    report()
    return { digest: hash.digest('hex'), temp }
  } catch (error) {
    await temp?.discard()
    throw stopped ?? error
  } finally {
    clearTimeout(timer)
    signal.removeEventListener('abort', onAbort)
    expired.removeEventListener('abort', onExpired)
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
