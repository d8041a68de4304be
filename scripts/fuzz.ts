/**
 * Long fuzzing runs (fast-check) of the two parsers that read outside bytes
 * in TypeScript: the IDX parser (`parseIdx`, plain and gzip) and the image
 * decode path of `loadImageFolder` (`decodeImage`: @napi-rs/canvas's
 * `loadImage` on a file's bytes, PNG or JPEG). Every input must either parse
 * or fail with a typed error (a `PixelCNNError`) naming the input; anything
 * else — another error class, an unnamed input, a result inconsistent with
 * itself — is a failure, and the script exits 1 after printing it.
 *
 *   node --import tsx scripts/fuzz.ts --runs 1000000 [--image-share 0.1] [--seed 1]
 *
 * `--runs` is the total number of executions, split between the targets by
 * `--image-share`. Measured (the README's figures): 300,000 PNG/JPEG inputs
 * in 78 s (about 0.26 ms each) against 900,000 IDX inputs in 101 s (about
 * 0.11 ms each), so an image input costs about 2.3 times an IDX one.
 * The CI suite runs the same targets briefly (__test__/fuzz.spec.ts).
 */

import { createCanvas } from '@napi-rs/canvas'
import fc from 'fast-check'
import { gzipSync } from 'node:zlib'

import { decodeImage } from '../src/data/folder'
import { parseIdx } from '../src/data/idx'
import { PixelCNNError } from '../src/errors'

export interface FuzzReport {
  target: string
  runs: number
  ok: number
  typed: number
  /** Descriptions of the failures (at most 10 kept). */
  failures: string[]
  seconds: number
}

// ---------------------------------------------------------------------------
// Inputs

function idxFile(dims: number[], fill: number): Uint8Array {
  const header = Buffer.alloc(4 + 4 * dims.length)
  header[2] = 0x08
  header[3] = dims.length
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i))
  const body = Buffer.alloc(dims.reduce((a, b) => a * b, 1), fill)
  return Buffer.concat([header, body])
}

/** Valid IDX files (images and labels, plain and gzip) that mutations start from. */
const IDX_SEEDS: Uint8Array[] = (() => {
  const plain = [idxFile([3, 4, 5], 7), idxFile([7], 3), idxFile([0, 28, 28], 0), idxFile([2, 28, 28], 200), idxFile([1, 1, 1], 1)]
  return [...plain, ...plain.map((b) => gzipSync(b))]
})()

/** Small valid PNG and JPEG files of a few shapes, drawn with the same canvas library. */
function imageSeeds(): Uint8Array[] {
  const seeds: Uint8Array[] = []
  for (const [w, h] of [[1, 1], [8, 8], [13, 5], [32, 32]]) {
    const canvas = createCanvas(w, h)
    const context = canvas.getContext('2d')
    context.fillStyle = '#123456'
    context.fillRect(0, 0, w, h)
    context.fillStyle = 'rgba(250, 20, 90, 0.5)'
    context.fillRect(0, 0, Math.ceil(w / 2), Math.ceil(h / 2))
    seeds.push(canvas.toBuffer('image/png'), canvas.toBuffer('image/jpeg', 90))
  }
  return seeds
}

/** One mutation of a byte string: set, flip, insert, delete, truncate, duplicate a slice, or overwrite a 32-bit field. */
const mutation = fc.tuple(fc.integer({ min: 0, max: 6 }), fc.nat(), fc.nat(), fc.integer({ min: 0, max: 255 }))

function mutate(seed: Uint8Array, steps: Array<[number, number, number, number]>): Uint8Array {
  let bytes = Buffer.from(seed)
  for (const [op, a, b, value] of steps) {
    const n = bytes.length
    const at = n === 0 ? 0 : a % n
    switch (op) {
      case 0:
        if (n) bytes[at] = value
        break
      case 1:
        if (n) bytes[at] ^= 1 << (value & 7)
        break
      case 2:
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from([value]), bytes.subarray(at)])
        break
      case 3:
        if (n) bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(at + 1 + (b % 8))])
        break
      case 4:
        bytes = bytes.subarray(0, at)
        break
      case 5: {
        const slice = bytes.subarray(at, at + 1 + (b % 64))
        bytes = Buffer.concat([bytes.subarray(0, at), slice, slice, bytes.subarray(at + slice.length)])
        break
      }
      default:
        // A whole 32-bit field: dimensions, chunk lengths and JPEG sizes are where parsers go wrong.
        if (n >= 4) bytes.writeUInt32BE((b * 2654435761) >>> 0, Math.min(at, n - 4))
    }
  }
  return bytes
}

function mutated(seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.tuple(fc.constantFrom(...seeds), fc.array(mutation, { minLength: 1, maxLength: 6 })).map(([seed, steps]) => mutate(seed, steps))
}

const idxInputs: fc.Arbitrary<Uint8Array> = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 300 }) },
  {
    weight: 3,
    arbitrary: fc
      .tuple(fc.constantFrom(0x08, 0x09, 0x0d, 0x42), fc.array(fc.oneof(fc.integer({ min: 0, max: 40 }), fc.nat()), { maxLength: 4 }), fc.uint8Array({ maxLength: 200 }), fc.boolean())
      .map(([type, dims, body, zip]) => {
        const head = Buffer.alloc(4 + 4 * dims.length)
        head[2] = type
        head[3] = dims.length
        dims.forEach((d, i) => head.writeUInt32BE(d >>> 0, 4 + 4 * i))
        const file = Buffer.concat([head, body])
        return zip ? gzipSync(file) : file
      }),
  },
  { weight: 5, arbitrary: mutated(IDX_SEEDS) },
)

const PNG_SIGNATURE = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])
const JPEG_START = Buffer.from([0xff, 0xd8, 0xff])

function imageInputs(seeds: Uint8Array[]): fc.Arbitrary<Uint8Array> {
  return fc.oneof(
    { weight: 1, arbitrary: fc.uint8Array({ maxLength: 400 }) },
    { weight: 1, arbitrary: fc.tuple(fc.constantFrom(PNG_SIGNATURE, JPEG_START), fc.uint8Array({ maxLength: 400 })).map(([head, body]) => Buffer.concat([head, body])) },
    { weight: 6, arbitrary: mutated(seeds) },
  )
}

// ---------------------------------------------------------------------------
// Targets

function classify(report: FuzzReport, error: unknown, name: string, input: Uint8Array): void {
  if (error instanceof PixelCNNError && error.message.includes(name)) {
    report.typed++
    return
  }
  const what = error instanceof Error ? `${error.name}: ${error.message}` : String(error)
  if (report.failures.length < 10) report.failures.push(`${what} (input ${Buffer.from(input).toString('base64')})`)
}

export function fuzzIdx(runs: number, seed: number): FuzzReport {
  const report: FuzzReport = { target: 'parseIdx', runs: 0, ok: 0, typed: 0, failures: [], seconds: 0 }
  const started = process.hrtime.bigint()
  fc.check(
    fc.property(idxInputs, (bytes) => {
      report.runs++
      try {
        const { dims, data } = parseIdx(bytes, 'fuzz.idx')
        const elements = dims.reduce((a, b) => a * b, 1)
        if (data.length !== elements) throw new Error(`returned ${data.length} bytes for dims ${dims.join('×')}`)
        report.ok++
      } catch (error) {
        classify(report, error, 'fuzz.idx', bytes)
      }
      return true // every input runs; failures are collected, not shrunk
    }),
    { numRuns: runs, seed },
  )
  report.seconds = Number(process.hrtime.bigint() - started) / 1e9
  return report
}

export async function fuzzImages(runs: number, seed: number): Promise<FuzzReport> {
  const report: FuzzReport = { target: 'decodeImage (PNG/JPEG)', runs: 0, ok: 0, typed: 0, failures: [], seconds: 0 }
  const started = process.hrtime.bigint()
  await fc.check(
    fc.asyncProperty(imageInputs(imageSeeds()), async (bytes) => {
      report.runs++
      try {
        const image = await decodeImage(bytes, 'fuzz.png')
        if (!(image.width > 0 && image.height > 0)) throw new Error(`decoded to ${image.width}×${image.height}`)
        report.ok++
      } catch (error) {
        classify(report, error, 'fuzz.png', bytes)
      }
      return true
    }),
    { numRuns: runs, seed },
  )
  report.seconds = Number(process.hrtime.bigint() - started) / 1e9
  return report
}

// ---------------------------------------------------------------------------
// Command line

function argument(args: string[], name: string, fallback: number): number {
  const at = args.indexOf(name)
  if (at === -1) return fallback
  const value = Number(args[at + 1])
  if (!Number.isFinite(value) || value < 0) throw new Error(`${name} needs a non-negative number, got ${args[at + 1]}`)
  return value
}

function print(report: FuzzReport): void {
  const failed = report.runs - report.ok - report.typed
  console.log(
    `${report.target}: ${report.runs} executions in ${report.seconds.toFixed(1)} s — ok ${report.ok}, typed error ${report.typed}, failure ${failed}`,
  )
  for (const failure of report.failures) console.log(`  FAILURE ${failure}`)
}

async function main(): Promise<void> {
  const args = process.argv.slice(2)
  const runs = Math.floor(argument(args, '--runs', 100_000))
  const share = argument(args, '--image-share', 0.1)
  const seed = Math.floor(argument(args, '--seed', 1))
  const imageRuns = Math.round(runs * Math.min(1, share))
  const started = Date.now()
  const reports = [fuzzIdx(runs - imageRuns, seed)]
  print(reports[0])
  reports.push(await fuzzImages(imageRuns, seed))
  print(reports[1])
  const total = reports.reduce((sum, r) => sum + r.runs, 0)
  const failed = reports.reduce((sum, r) => sum + r.runs - r.ok - r.typed, 0)
  console.log(`total: ${total} executions, ${failed} failures, ${((Date.now() - started) / 1000).toFixed(1)} s wall (seed ${seed})`)
  process.exitCode = failed === 0 ? 0 : 1
}

if (require.main === module) {
  main().catch((error) => {
    console.error(error)
    process.exit(1)
  })
}
