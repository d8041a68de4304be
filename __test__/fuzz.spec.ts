/**
 * Property-based fuzzing (fast-check) of everything that reads outside data:
 * the IDX parser, the checkpoint reader (header and metadata sidecar), the
 * image-folder reader, and the configuration boundary. Each input must either
 * work or fail with a typed PixelCNNError; nothing else may escape, and the
 * process must survive. (The Rust checkpoint reader is also fuzzed natively:
 * crates/pixelcnn-core/tests/fuzz_checkpoint.rs.) The long runs of the IDX
 * parser and the image decoder are scripts/fuzz.ts (a million executions and
 * more, outside CI); here the same targets run briefly, seeded.
 */
import test from 'ava'
import fc from 'fast-check'
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { gzipSync } from 'node:zlib'
import { loadIdx, loadImageFolder, parseIdx, PixelCNN, PixelCNNError } from '../src/index'
import { fuzzIdx, fuzzImages } from '../scripts/fuzz'
import { randomImages, TINY } from './support/images'

const dir = mkdtempSync(path.join(tmpdir(), 'pixelcnn-fuzz-'))
const typed = (error: unknown) => error instanceof PixelCNNError

test('parseIdx: any bytes, and IDX headers with arbitrary dimensions, parse or give a typed error', (t) => {
  let runs = 0
  const header = fc.tuple(fc.constantFrom(0x08, 0x09, 0x0b, 0x0d, 0x42), fc.array(fc.integer({ min: 0, max: 70_000 }), { minLength: 0, maxLength: 4 }), fc.uint8Array({ maxLength: 200 }))
    .map(([type, dims, body]) => {
      const head = Buffer.alloc(4 + 4 * dims.length)
      head.writeUInt8(type, 2)
      head.writeUInt8(dims.length, 3)
      dims.forEach((d, i) => head.writeUInt32BE(d, 4 + 4 * i))
      return new Uint8Array(Buffer.concat([head, body]))
    })
  fc.assert(
    fc.property(fc.oneof(fc.uint8Array({ maxLength: 300 }), header), (bytes) => {
      runs++
      try {
        parseIdx(bytes, 'fuzz.idx')
      } catch (error) {
        if (!typed(error)) throw error
      }
    }),
    { numRuns: 3000, seed: 42 },
  )
  t.is(runs, 3000)
  t.log(`${runs} executions, 0 untyped errors`)
})

test('scripts/fuzz.ts, briefly: parseIdx and the PNG/JPEG decode path, seeded, give no untyped error', async (t) => {
  const idx = fuzzIdx(5000, 1234)
  const images = await fuzzImages(500, 1234)
  for (const report of [idx, images]) {
    t.log(`${report.target}: ${report.runs} executions, ok ${report.ok}, typed ${report.typed}, ${report.seconds.toFixed(2)} s`)
    t.deepEqual(report.failures, [], report.target)
    t.is(report.ok + report.typed, report.runs)
    t.true(report.ok > 0 && report.typed > 0, `${report.target}: the inputs reach both outcomes`)
  }
  t.is(idx.runs, 5000)
  t.is(images.runs, 500)
})

test('loadIdx on mutated files: the header-bounded file read gives a typed error naming the file, or the data', async (t) => {
  const plain = Buffer.concat([Buffer.from([0, 0, 8, 3, 0, 0, 0, 2, 0, 0, 0, 3, 0, 0, 0, 3]), Buffer.alloc(18, 9)])
  const file = path.join(dir, 'mutated.idx')
  let runs = 0
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(plain, gzipSync(plain)), fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 })), { maxLength: 4 }), fc.nat({ max: 40 }), async (seed, edits, cut) => {
      runs++
      const bytes = Buffer.from(seed.subarray(0, Math.max(0, seed.length - cut)))
      for (const [at, value] of edits) if (bytes.length) bytes[at % bytes.length] = value
      writeFileSync(file, bytes)
      try {
        const { images } = await loadIdx(file)
        if (images.data.length !== images.count * images.height * images.width) throw new Error('inconsistent result')
      } catch (error) {
        if (!typed(error) || !(error as Error).message.includes(file)) throw error
      }
    }),
    { numRuns: 300, seed: 5 },
  )
  t.is(runs, 300)
})

test('PixelCNN.load: mutated checkpoint headers and metadata give a typed error or load', async (t) => {
  const model = PixelCNN.create({ ...TINY, device: 'cpu' })
  const file = path.join(dir, 'valid.safetensors')
  await model.save(file)
  const bytes = readFileSync(file)
  const n = Number(bytes.readBigUInt64LE(0))
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString())
  const keys = Object.keys(header).filter((k) => k !== '__metadata__')
  const json = fc.oneof(fc.integer(), fc.string(), fc.constant(null), fc.array(fc.integer({ min: -5, max: 1 << 20 }), { maxLength: 5 }), fc.jsonValue({ maxDepth: 2 }))
  let runs = 0
  await fc.assert(
    fc.asyncProperty(fc.constantFrom(...keys, '__metadata__'), fc.constantFrom('dtype', 'shape', 'data_offsets', 'config', 'history', 'optimizer', 'format_version', 'partial_epoch'), json, async (key, field, value) => {
      runs++
      const edited = structuredClone(header)
      if (key === '__metadata__') edited.__metadata__[field] = typeof value === 'string' ? value : JSON.stringify(value)
      else if (['dtype', 'shape', 'data_offsets'].includes(field)) edited[key][field] = value
      else delete edited[key]
      const text = Buffer.from(JSON.stringify(edited))
      const length = Buffer.alloc(8)
      length.writeBigUInt64LE(BigInt(text.length))
      const out = path.join(dir, 'mutated.safetensors')
      writeFileSync(out, Buffer.concat([length, text, bytes.subarray(8 + n)]))
      try {
        await PixelCNN.load(out, { device: 'cpu' })
      } catch (error) {
        if (!typed(error)) throw error
      }
    }),
    { numRuns: 400, seed: 7 },
  )
  t.is(runs, 400)
  t.log(`${runs} executions, 0 untyped errors`)
})

test('loadImageFolder: random and truncated image files give a DataError naming the file', async (t) => {
  let runs = 0
  await fc.assert(
    fc.asyncProperty(fc.uint8Array({ maxLength: 400 }), fc.constantFrom('png', 'jpg'), async (body, ext) => {
      runs++
      const folder = path.join(dir, `folder-${runs}`, 'class-a')
      mkdirSync(folder, { recursive: true })
      // A real PNG signature in front of random bytes, half of the time.
      const bytes = runs % 2 ? Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), body]) : Buffer.from(body)
      writeFileSync(path.join(folder, `x.${ext}`), bytes)
      try {
        await loadImageFolder(path.dirname(folder), { size: 8 })
      } catch (error) {
        if (!typed(error)) throw error
        if (!/x\.(png|jpg)/.test((error as Error).message) && !/no images/i.test((error as Error).message)) throw error
      }
    }),
    { numRuns: 200, seed: 3 },
  )
  t.is(runs, 200)
  t.log(`${runs} executions, 0 untyped errors`)
})

// (`threads` is left out: a valid large value would really start that many libtorch threads.)
test('the configuration boundary: arbitrary JSON options give a typed error or work', async (t) => {
  const model = PixelCNN.create({ ...TINY, device: 'cpu' })
  const images = randomImages(2, 8, 8)
  let runs = 0
  await fc.assert(
    fc.asyncProperty(fc.dictionary(fc.constantFrom('count', 'seed', 'temperature', 'batchSize', 'method', 'bogus'), fc.jsonValue({ maxDepth: 1 }), { maxKeys: 3 }), async (options) => {
      runs++
      try {
        await model.sample({ ...(options as object), count: typeof options.count === 'number' && options.count > 4 ? 4 : options.count } as never)
      } catch (error) {
        if (!typed(error)) throw error
      }
    }),
    { numRuns: 300, seed: 11 },
  )
  t.is((await model.predict(images)).length, 128)
  t.log(`${runs} executions, 0 untyped errors`)
})
