/**
 * CIFAR-10 (Krizhevsky, 2009): 50,000 training and 10,000 test 32×32 colour
 * images in 10 classes, as 8-bit RGB (`channels: 3`, for models with
 * `output: 'categorical'`; colour is not binarized).
 *
 * The source is the authors' "binary version" `cifar-10-binary.tar.gz`,
 * fetched once into `<cache>/datasets/cifar-10/` and verified by MD5 like the
 * other downloads (see download.ts: a file failing the checksum never enters
 * the cache). It is the version meant for C programs: no pickle to unpickle,
 * and a layout simple enough to read while the tarball streams through gunzip
 * and a tar parser (the `tar` package), without extracting anything to disk.
 * The tarball holds `cifar-10-batches-bin/data_batch_1.bin` … `data_batch_5.bin`
 * (training, in this order) and `test_batch.bin`, each 10,000 records of
 * 3,073 bytes: a label byte (0–9), then the 1,024 red, 1,024 green and 1,024
 * blue bytes of the image, each plane row-major. The planes are interleaved
 * into the pixel-interleaved layout `ImageBatch` uses (N×H×W×C).
 *
 * Every record is checked (whole records only, labels 0–9, all six batches
 * present, 10,000 records each) and anything wrong is an `IoError` naming the
 * tarball, the entry and the problem. A cached tarball is re-hashed on every
 * load, so one damaged on disk is downloaded again anyway; should a tarball
 * that passed its checksum still fail to read, it is removed from the cache
 * as well, so that the next call downloads it afresh instead of failing on
 * the same bytes forever.
 *
 * The tarball is read only if it is a regular file (a FIFO or a device in
 * the cache is refused at once: see read-file.ts) of exactly the published
 * size, and at most that many bytes are read; the entries' declared sizes
 * may add up to at most `MAX_TAR_BYTES`, so a damaged or hostile archive
 * cannot keep the decompressor busy without end.
 *
 * Memory: the decompressed tar is never held; records are converted as they
 * stream by. The five training batches are written straight into one buffer
 * (as long as they hold the same number of records, as the published ones
 * do), so the peak is about the size of the result: 184 MB.
 */

import { Parser, type ReadEntry } from 'tar'

import { AbortError, ConfigError, IoError } from '../errors'
import { describe, type ImageBatch } from '../images'
import { datasetDir, removeQuietly } from './cache'
import type { Dataset } from './dataset'
import { downloadVerified } from './download'
import { checkOptions } from '../options'
import { openRegularFile } from './read-file'
import { mirrorsFor, type DownloadDatasetOptions, type PublishedFile } from './sources'

/** The class names, indexed by label. */
export const CIFAR10_CLASSES = ['airplane', 'automobile', 'bird', 'cat', 'deer', 'dog', 'frog', 'horse', 'ship', 'truck'] as const

export interface Cifar10Options extends Omit<DownloadDatasetOptions, 'threshold' | 'seed'> {
  /** Only `'download'` so far: the published tarball, cached (the other options apply to it). @default 'download' */
  source?: 'download'
}

/** A published tarball of CIFAR-style binary batches. */
export interface PublishedCifar {
  /** Used in error messages, e.g. `CIFAR-10`. */
  title: string
  /** Directory name under `<cache>/datasets/`. */
  name: string
  /** Environment variable with comma-separated mirrors overriding `mirrors`. */
  mirrorsEnv: string
  mirrors: readonly string[]
  archive: PublishedFile
  /** The folder in the tarball holding the batches. */
  folder: string
  /** Training batch files, in order (they are concatenated), then the test batch. */
  trainBatches: readonly string[]
  testBatch: string
  /** Records every batch must hold; `undefined`: any positive number. */
  recordsPerBatch?: number
}

/**
 * The checksum is the MD5 published for `cifar-10-binary.tar.gz` on the
 * dataset's page, https://www.cs.toronto.edu/~kriz/cifar.html (the authors
 * publish no SHA-256; projects that record one for this file, e.g. TensorFlow
 * Datasets, have c4a38c50a1bc5f3a…a59bca1dd). The size, 170,052,171 bytes, is
 * the download size TensorFlow Datasets records for the same file.
 */
export const CIFAR10: PublishedCifar = {
  title: 'CIFAR-10',
  name: 'cifar-10',
  mirrorsEnv: 'PIXELCNN_CIFAR10_MIRRORS',
  mirrors: ['https://www.cs.toronto.edu/~kriz/'],
  archive: { file: 'cifar-10-binary.tar.gz', size: 170052171, md5: 'c32a1d4ab5d03f1284b67883e8d87530' },
  folder: 'cifar-10-batches-bin',
  trainBatches: ['data_batch_1.bin', 'data_batch_2.bin', 'data_batch_3.bin', 'data_batch_4.bin', 'data_batch_5.bin'],
  testBatch: 'test_batch.bin',
  recordsPerBatch: 10000,
}

const SIDE = 32
const PLANE = SIDE * SIDE
const IMAGE_BYTES = 3 * PLANE
/** A record: the label byte, then the red, green and blue planes. */
export const CIFAR_RECORD_BYTES = 1 + IMAGE_BYTES
const CLASSES = 10
/** The largest batch entry accepted (1 GiB; the published ones are 30 MB), so a bad header cannot make us allocate wildly. */
const MAX_BATCH_BYTES = 1 << 30
/** The most the entries of a tarball may hold in all (4 GiB; the published one holds 185 MB). */
const MAX_TAR_BYTES = 2 ** 32

/**
 * CIFAR-10 as a `Dataset` of 8-bit RGB images (see the top of this file).
 * `labels` index `CIFAR10_CLASSES`.
 */
export async function loadCifar10(options?: Cifar10Options): Promise<Dataset> {
  options = checkOptions(options, { fn: 'loadCifar10', walk: true })
  const source = options.source ?? 'download'
  if (source !== 'download') throw new ConfigError(`\`source\` must be 'download', got ${describe(source)}`)
  return loadPublishedCifar(CIFAR10, options)
}

/** Downloads (or finds in the cache) a published CIFAR-style tarball and reads it. */
export async function loadPublishedCifar(source: PublishedCifar, options?: Omit<Cifar10Options, 'source'>): Promise<Dataset> {
  options = checkOptions(options, { fn: 'loadPublishedCifar', walk: true })
  const cacheDir = datasetDir(source.name, options.cacheDir)
  const mirrors = mirrorsFor(source, options.mirrors)
  const { path } = await downloadVerified({
    ...source.archive,
    mirrors,
    cacheDir,
    timeoutMs: options.timeoutMs,
    idleTimeoutMs: options.idleTimeoutMs,
    onProgress: options.onProgress,
    signal: options.signal,
  })
  try {
    return await readCifarTarball(path, source, options.signal)
  } catch (error) {
    // Bad content (not a read error, not an abort): drop it so a retry downloads it again.
    if (error instanceof IoError && corrupt.has(error)) await removeQuietly(path)
    throw error
  }
}

/** Errors meaning the tarball's content is bad (as opposed to unreadable). */
const corrupt = new WeakSet<Error>()

/** One batch file being read: its records go to `images`/`labels` as they arrive. */
interface Batch {
  entry: string
  records: number
  images: Uint8Array
  labels: Uint8Array
  /** Records written so far. */
  done: number
  /** A record split across chunks. */
  partial: Uint8Array
  partialLength: number
  ended: boolean
}

/**
 * Reads the batches of a CIFAR-style tarball (gzip-compressed or not) at
 * `path` into a `Dataset`. Throws `IoError` on anything malformed.
 */
export async function readCifarTarball(path: string, source: PublishedCifar, signal?: AbortSignal): Promise<Dataset> {
  if (signal?.aborted) throw aborted(source)
  const where = `${source.title} tarball ${path}`
  const bad: Bad = (entry, message, cause) => {
    const error = new IoError(`${where}${entry === null ? '' : `, entry ${entry}`}: ${message}`, cause === undefined ? undefined : { cause })
    corrupt.add(error)
    return error
  }
  const slots = new Map<string, { split: 'train' | 'test'; index: number }>()
  source.trainBatches.forEach((file, index) => slots.set(`${source.folder}/${file}`, { split: 'train', index }))
  slots.set(`${source.folder}/${source.testBatch}`, { split: 'test', index: 0 })
  const train = new Arena(source.trainBatches.length)
  const test = new Arena(1)
  const batches = new Map<string, Batch>()
  const reading: Reading = { source, slots, batches, train, test, bad }
  let entryBytes = 0

  // The first failure wins; the parser is then aborted and its own error ignored.
  let failure: Error | undefined
  const parser = new Parser({
    strict: true,
    onReadEntry: (entry: ReadEntry) => {
      try {
        entryBytes += entry.size ?? 0
        if (entryBytes > MAX_TAR_BYTES) throw bad(entry.path, `the entries so far hold ${entryBytes} bytes, more than the ${MAX_TAR_BYTES} accepted`)
        const batch = failure === undefined ? startBatch(entry, reading) : undefined
        if (batch === undefined) {
          entry.resume()
          return
        }
        entry.on('data', (chunk: Buffer) => {
          if (failure !== undefined) return
          try {
            consume(batch, chunk, bad)
          } catch (error) {
            fail(error as Error)
          }
        })
        entry.on('end', () => {
          batch.ended = true
        })
      } catch (error) {
        entry.resume()
        fail(error as Error)
      }
    },
  })
  const fail = (error: Error) => {
    if (failure !== undefined) return
    failure = error
    parser.abort(new Error(error.message))
  }
  const finished = new Promise<void>((resolve, reject) => {
    parser.on('error', reject)
    parser.on('end', () => resolve())
  })
  finished.catch(() => {}) // awaited below; a rejection while still reading is not unhandled
  const onAbort = () => fail(aborted(source))
  signal?.addEventListener('abort', onAbort, { once: true })
  try {
    const file = await openRegularFile(path, `${source.title} tarball`)
    try {
      const expected = source.archive.size
      if (file.size !== expected) throw bad(null, `it has ${file.size} bytes, but the published file has ${expected}`)
      // The parser (gunzip included) works synchronously on each chunk and the
      // entries are consumed synchronously too, so there is no backlog to wait on.
      for await (const chunk of file.handle.createReadStream({ start: 0, end: Math.max(0, expected - 1), autoClose: false })) {
        if (failure !== undefined) break
        parser.write(chunk as Buffer)
      }
    } catch (error) {
      if (failure !== undefined) throw failure
      if (error instanceof IoError) throw error
      throw new IoError(`cannot read ${where}: ${(error as Error).message}`, { cause: error })
    } finally {
      await file.handle.close().catch(() => {})
    }
    if (failure === undefined) parser.end()
    try {
      await finished
    } catch (error) {
      if (failure !== undefined) throw failure
      const reason = (error as Error).message
      const open = [...batches.values()].find((b) => b.done !== b.records || b.partialLength !== 0)
      throw open
        ? bad(open.entry, `the tarball breaks off or is damaged inside this entry: ${reason}`, error)
        : bad(null, `it is damaged or not a gzip-compressed tar file: ${reason}`, error)
    }
    if (failure !== undefined) throw failure
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }

  checkComplete(slots.keys(), batches, bad)
  const trainSet = train.result()
  const testSet = test.result()
  return { train: trainSet.images, test: testSet.images, trainLabels: trainSet.labels, testLabels: testSet.labels }
}

/** What reading one tarball keeps: the expected entries, the batches begun, the splits' arenas. */
interface Reading {
  source: PublishedCifar
  slots: Map<string, { split: 'train' | 'test'; index: number }>
  batches: Map<string, Batch>
  train: Arena
  test: Arena
  bad: Bad
}

/** The batch that a tar entry holds, after checking its type and size; undefined for the archive's other files. */
function startBatch(entry: ReadEntry, { source, slots, batches, train, test, bad }: Reading): Batch | undefined {
  const name = entry.path.replace(/^(\.\/)+/, '')
  const slot = slots.get(name)
  if (slot === undefined) return undefined // batches.meta.txt, readme.html, the folder itself
  if (entry.type !== 'File' && entry.type !== 'OldFile' && entry.type !== 'ContiguousFile') {
    throw bad(name, `is a ${entry.type}, not a file`)
  }
  if (batches.has(name)) throw bad(name, 'appears twice')
  const size = entry.size
  if (size === 0 || size % CIFAR_RECORD_BYTES !== 0) {
    throw bad(name, `has ${size} bytes, not a whole positive number of ${CIFAR_RECORD_BYTES}-byte records (a label byte and 3×32×32 pixels)`)
  }
  if (size > MAX_BATCH_BYTES) throw bad(name, `has ${size} bytes, more than the ${MAX_BATCH_BYTES} accepted`)
  const records = size / CIFAR_RECORD_BYTES
  if (source.recordsPerBatch !== undefined && records !== source.recordsPerBatch) {
    throw bad(name, `holds ${records} records, expected ${source.recordsPerBatch}`)
  }
  const { images, labels } = (slot.split === 'train' ? train : test).take(slot.index, records)
  const batch: Batch = { entry: name, records, images, labels, done: 0, partial: new Uint8Array(CIFAR_RECORD_BYTES), partialLength: 0, ended: false }
  batches.set(name, batch)
  return batch
}

/** Makes the tarball's error for `entry` (null: the whole file). */
type Bad = (entry: string | null, message: string, cause?: unknown) => IoError

/**
 * Decodes `chunk`'s bytes of `batch`'s entry into its records; a record that
 * straddles two chunks waits in `batch.partial`.
 */
function consume(batch: Batch, chunk: Uint8Array, bad: Bad): void {
  let offset = 0
  if (batch.partialLength > 0) {
    const take = Math.min(CIFAR_RECORD_BYTES - batch.partialLength, chunk.length)
    batch.partial.set(chunk.subarray(0, take), batch.partialLength)
    batch.partialLength += take
    offset = take
    if (batch.partialLength < CIFAR_RECORD_BYTES) return
    writeRecord(batch, batch.partial, 0, bad)
    batch.partialLength = 0
  }
  for (; offset + CIFAR_RECORD_BYTES <= chunk.length; offset += CIFAR_RECORD_BYTES) writeRecord(batch, chunk, offset, bad)
  if (offset < chunk.length) {
    batch.partial.set(chunk.subarray(offset), 0)
    batch.partialLength = chunk.length - offset
  }
}

/** One record (a label byte, then the R, G and B planes) as a label and a pixel-interleaved RGB image. */
function writeRecord(batch: Batch, bytes: Uint8Array, offset: number, bad: Bad): void {
  const n = batch.done
  if (n >= batch.records) throw bad(batch.entry, `holds more than the ${batch.records} records its header announces`)
  const label = bytes[offset]
  if (label >= CLASSES) throw bad(batch.entry, `record ${n} has label ${label}; labels are 0–${CLASSES - 1}`)
  batch.labels[n] = label
  const out = batch.images
  const base = n * IMAGE_BYTES
  const r = offset + 1
  const g = r + PLANE
  const b = g + PLANE
  for (let p = 0; p < PLANE; p++) {
    const o = base + 3 * p
    out[o] = bytes[r + p]
    out[o + 1] = bytes[g + p]
    out[o + 2] = bytes[b + p]
  }
  batch.done = n + 1
}

/** Every expected entry was present and read whole. */
function checkComplete(names: Iterable<string>, batches: Map<string, Batch>, bad: Bad): void {
  for (const name of names) {
    const batch = batches.get(name)
    if (batch === undefined) throw bad(null, `it has no entry ${name}`)
    if (!batch.ended || batch.done !== batch.records || batch.partialLength !== 0) {
      const bytes = batch.done * CIFAR_RECORD_BYTES + batch.partialLength
      throw bad(name, `is truncated: ${bytes} of its ${batch.records * CIFAR_RECORD_BYTES} bytes`)
    }
  }
}

/**
 * Where the batches of one split are written. The first batch to arrive sets
 * the expected record count and one buffer is allocated for all the split's
 * batches at that count; a batch of another size gets its own buffer, and only
 * then are the parts copied together at the end.
 */
class Arena {
  private shared?: { records: number; images: Uint8Array; labels: Uint8Array }
  private readonly parts: Array<{ images: Uint8Array; labels: Uint8Array; records: number } | undefined>

  constructor(private readonly slots: number) {
    this.parts = new Array(slots).fill(undefined)
  }

  take(slot: number, records: number): { images: Uint8Array; labels: Uint8Array } {
    this.shared ??= { records, images: new Uint8Array(this.slots * records * IMAGE_BYTES), labels: new Uint8Array(this.slots * records) }
    const part =
      records === this.shared.records
        ? {
            records,
            images: this.shared.images.subarray(slot * records * IMAGE_BYTES, (slot + 1) * records * IMAGE_BYTES),
            labels: this.shared.labels.subarray(slot * records, (slot + 1) * records),
          }
        : { records, images: new Uint8Array(records * IMAGE_BYTES), labels: new Uint8Array(records) }
    this.parts[slot] = part
    return part
  }

  /** The split's images and labels, batches in slot order (every slot filled). */
  result(): { images: ImageBatch; labels: Uint8Array } {
    const parts = this.parts.map((p) => p!)
    const count = parts.reduce((sum, p) => sum + p.records, 0)
    const shared = this.shared!
    const whole = parts.every((p) => p.images.buffer === shared.images.buffer)
    const images = whole ? shared.images : concat(parts.map((p) => p.images))
    const labels = whole ? shared.labels : concat(parts.map((p) => p.labels))
    return { images: { count, height: SIDE, width: SIDE, channels: 3, data: images }, labels }
  }
}

function concat(arrays: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(arrays.reduce((sum, a) => sum + a.length, 0))
  let offset = 0
  for (const a of arrays) {
    out.set(a, offset)
    offset += a.length
  }
  return out
}

function aborted(source: PublishedCifar): AbortError {
  return new AbortError(`loading ${source.title} was aborted`)
}
