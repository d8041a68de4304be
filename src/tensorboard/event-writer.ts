/**
 * TensorBoard event files, written without TensorFlow. A file is a sequence
 * of TFRecords, each
 *
 *   uint64 length | uint32 masked CRC-32C of those 8 bytes | data | uint32 masked CRC-32C of data
 *
 * (little-endian), whose data is one `Event` protobuf. Field numbers, from
 * tensorboard/compat/proto/event.proto and summary.proto:
 *
 *   Event          wall_time = 1 (double), step = 2 (int64), file_version = 3 (string), summary = 5
 *   Summary        value = 1 (repeated Value)
 *   Summary.Value  tag = 1 (string), simple_value = 2 (float), image = 4
 *   Summary.Image  height = 1, width = 2, colorspace = 3 (int32), encoded_image_string = 4 (bytes)
 *
 * The first event carries only file_version "brain.Event:2". The version
 * matters: before 2, TensorBoard's reader takes a step that goes backwards
 * for a restart after a crash and drops the events of later steps; from 2 on
 * only an explicit SessionLog START does that, so records may come out of
 * step order (the training log fills in an epoch's steps after the fact).
 *
 * The file is created exclusively, so it never replaces another writer's
 * file nor follows a planted link, and each record goes to the kernel in one
 * synchronous write: a crash loses at most the record being written, and
 * TensorBoard's reader stops at a truncated last record without complaint.
 */

import { accessSync, closeSync, constants, mkdirSync, openSync, statSync, writeSync } from 'node:fs'
import { hostname } from 'node:os'
import * as path from 'node:path'
import { maskedCrc32c } from './crc32c'
import { bytesField, doubleField, floatField, varintField } from './protobuf'

/** Summary.Image.colorspace: 1 gray, 2 gray + alpha, 3 RGB, 4 RGBA. */
export type Colorspace = 1 | 2 | 3 | 4

/**
 * Why `logDir` cannot hold event files, or `null` when it can. It need not
 * exist yet: then its nearest existing ancestor must be a writable folder,
 * where the missing folders will be made.
 */
export function checkLogDir(logDir: string): string | null {
  const target = path.resolve(logDir)
  const named = `\`logDir\` ${JSON.stringify(logDir)}`
  for (let dir = target; ; dir = path.dirname(dir)) {
    try {
      if (!statSync(dir).isDirectory()) return `${named}: ${dir === target ? 'is' : `${JSON.stringify(dir)} is`} a file, not a folder`
      accessSync(dir, constants.W_OK)
      return null
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code
      if (code === 'EACCES' || code === 'EPERM' || code === 'EROFS') return `${named}: ${JSON.stringify(dir)} is not writable`
      // ENOTDIR: an ancestor is a file; walking up finds it and says so.
      if (code !== 'ENOENT' && code !== 'ENOTDIR') return `${named}: ${(error as Error).message}`
      if (path.dirname(dir) === dir) return `${named}: no folder of it exists`
    }
  }
}

/** Makes file names of one process unique within a second (TensorFlow's writers do the same). */
let fileCounter = 0

/** PNG colour type (IHDR byte 25) to colorspace; palette images are RGB. */
const PNG_COLORSPACE: Record<number, Colorspace> = { 0: 1, 2: 3, 3: 3, 4: 2, 6: 4 }

/** The colorspace a PNG declares; RGBA for anything that is not a PNG. */
export function pngColorspace(png: Uint8Array): Colorspace {
  const isPng = png.length >= 26 && png[0] === 0x89 && png[1] === 0x50 && png[2] === 0x4e && png[3] === 0x47
  return (isPng && PNG_COLORSPACE[png[25]]) || 4
}

export class EventWriter {
  /** The event file: `<logDir>/events.out.tfevents.<unix seconds>.<hostname>.<pid>.<counter>`. */
  readonly file: string
  #fd: number | null

  /** Creates `logDir` (recursively) and a new event file in it; throws an Error naming `logDir` when it cannot. */
  constructor(logDir: string) {
    const problem = checkLogDir(logDir)
    if (problem !== null) throw new Error(problem)
    try {
      mkdirSync(logDir, { recursive: true })
    } catch (error) {
      throw new Error(`\`logDir\` ${JSON.stringify(logDir)}: ${(error as Error).message}`)
    }
    const wallTime = Date.now() / 1000
    for (;;) {
      const seconds = String(Math.floor(wallTime)).padStart(10, '0')
      const file = path.join(logDir, `events.out.tfevents.${seconds}.${hostname()}.${process.pid}.${fileCounter++}`)
      try {
        this.#fd = openSync(file, 'wx', 0o644)
        this.file = file
        break
      } catch (error) {
        // Another writer got this name (another module instance, a reused pid): take the next.
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw new Error(`\`logDir\` ${JSON.stringify(logDir)}: ${(error as Error).message}`)
      }
    }
    this.#event(wallTime, 0, bytesField(3, 'brain.Event:2'))
  }

  /** A scalar (stored as float32) at `step`; `wallTime` in seconds since the epoch, now by default. */
  scalar(tag: string, value: number, step: number, wallTime = Date.now() / 1000): void {
    this.#summaryValue(wallTime, step, tag, floatField(2, value))
  }

  /**
   * An encoded image, PNG as TensorBoard expects, of `width` × `height`
   * pixels. The colorspace defaults to the one the PNG's header declares
   * (canvas PNGs are RGBA); TensorBoard shows the bytes as they are either way.
   */
  image(tag: string, png: Uint8Array, width: number, height: number, step: number, wallTime = Date.now() / 1000, colorspace: Colorspace = pngColorspace(png)): void {
    const image = Buffer.concat([varintField(1, height), varintField(2, width), varintField(3, colorspace), bytesField(4, png)])
    this.#summaryValue(wallTime, step, tag, bytesField(4, image))
  }

  /** Nothing to do: every record is written when it is given (and not fsynced). */
  flush(): void {
    this.#openFd()
  }

  /** Closes the file; later records throw. Closing twice is harmless. */
  close(): void {
    if (this.#fd !== null) closeSync(this.#fd)
    this.#fd = null
  }

  #summaryValue(wallTime: number, step: number, tag: string, value: Buffer): void {
    if (typeof tag !== 'string' || tag === '') throw new TypeError(`TensorBoard tag must be a non-empty string, got ${JSON.stringify(tag)}`)
    if (!Number.isSafeInteger(step)) throw new RangeError(`TensorBoard step must be an integer, got ${step} (tag ${tag})`)
    this.#event(wallTime, step, bytesField(5, bytesField(1, Buffer.concat([bytesField(1, tag), value]))))
  }

  #event(wallTime: number, step: number, what: Buffer): void {
    const fd = this.#openFd()
    const data = Buffer.concat([doubleField(1, wallTime), varintField(2, step), what])
    const header = Buffer.alloc(12)
    header.writeBigUInt64LE(BigInt(data.length), 0)
    header.writeUInt32LE(maskedCrc32c(header.subarray(0, 8)), 8)
    const footer = Buffer.alloc(4)
    footer.writeUInt32LE(maskedCrc32c(data))
    const record = Buffer.concat([header, data, footer])
    for (let written = 0; written < record.length; ) written += writeSync(fd, record, written)
  }

  #openFd(): number {
    if (this.#fd === null) throw new Error(`TensorBoard event file ${this.file} is closed`)
    return this.#fd
  }
}
