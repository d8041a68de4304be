import test from 'ava'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { ConfigError, DataError, IoError } from '../src/errors'
import { binarizeImages, loadIdx, parseIdx } from '../src/data/idx'
import { gzip, idxHeader, idxImages, idxLabels, seeded } from './helpers/idx'
import { removeTempDirs, tempDir } from './helpers/temp'

test.after.always(removeTempDirs)
const dir = tempDir('idx')
let counter = 0
function write(bytes: Uint8Array, name = `f${counter++}`): string {
  const path = join(dir, name)
  writeFileSync(path, bytes)
  return path
}

test('loadIdx reads plain and gzip images and labels alike', async (t) => {
  const { bytes: images, pixels } = idxImages(5, 4, 3)
  const { bytes: labels, labels: expected } = idxLabels(5)
  for (const transform of [(b: Buffer) => b, gzip]) {
    const result = await loadIdx(write(transform(images)), write(transform(labels)))
    t.deepEqual(
      { count: result.images.count, height: result.images.height, width: result.images.width, channels: result.images.channels },
      { count: 5, height: 4, width: 3, channels: 1 },
    )
    t.deepEqual([...result.images.data], [...pixels])
    t.deepEqual([...(result.labels ?? [])], [...expected])
  }
  // gzip is recognised by its magic bytes, not by the name.
  const named = await loadIdx(write(gzip(images), 'plain-looking-name'))
  t.is(named.labels, undefined)
  t.deepEqual([...named.images.data], [...pixels])
})

test('loadIdx checks the expected shape', async (t) => {
  const path = write(idxImages(2, 4, 3).bytes)
  await t.notThrowsAsync(loadIdx(path, undefined, { count: 2, height: 4, width: 3 }))
  const error = await t.throwsAsync(loadIdx(path, undefined, { height: 28 }), { instanceOf: DataError })
  t.regex(error!.message, /height 4, expected 28/)
  t.true(error!.message.includes(path))
})

test('a bad magic number is quoted in hex with the file name', async (t) => {
  const bytes = idxImages(1, 2, 2).bytes
  bytes.writeUInt32BE(0x12345678, 0)
  const path = write(bytes)
  const error = await t.throwsAsync(loadIdx(path), { instanceOf: DataError })
  t.true(error!.message.includes(path))
  t.true(error!.message.includes('0x12345678'))
  t.true(error!.message.includes('0x00000803'))
})

test('unsupported element types and dimension counts are named', (t) => {
  const floats = Buffer.concat([idxHeader([1], 0x0d), Buffer.alloc(4)])
  t.regex(t.throws(() => parseIdx(floats, 'floats.idx'), { instanceOf: DataError })!.message, /floats\.idx.*0x00000d01.*float32/)
  const twoDims = Buffer.concat([idxHeader([2, 2]), Buffer.alloc(4)])
  t.regex(t.throws(() => parseIdx(twoDims, '2d.idx'), { instanceOf: DataError })!.message, /2d\.idx.*2 dimension/)
})

test('labels given as images and images given as labels are refused', async (t) => {
  const images = write(idxImages(3, 2, 2).bytes)
  const labels = write(idxLabels(3).bytes)
  t.regex((await t.throwsAsync(loadIdx(labels), { instanceOf: DataError }))!.message, /should hold images.*0x00000801/)
  t.regex((await t.throwsAsync(loadIdx(images, images), { instanceOf: DataError }))!.message, /should hold labels.*0x00000803/)
})

test('dimensions that disagree with the length are reported both ways', (t) => {
  const { bytes } = idxImages(3, 4, 4)
  const short = t.throws(() => parseIdx(bytes.subarray(0, bytes.length - 1), 'short.idx'), { instanceOf: DataError })
  t.regex(short!.message, /short\.idx is truncated: its header says 3×4×4 = 48 elements \(64 bytes .*\), but it has 63 bytes/)
  const long = t.throws(() => parseIdx(Buffer.concat([bytes, Buffer.from([0])]), 'long.idx'), { instanceOf: DataError })
  t.regex(long!.message, /long\.idx has trailing bytes: .* but it has 65 bytes/)
  const huge = Buffer.concat([idxHeader([0xffffffff, 0xffffffff, 0xffffffff]), Buffer.alloc(10)])
  t.regex(t.throws(() => parseIdx(huge, 'huge.idx'), { instanceOf: DataError })!.message, /huge\.idx is truncated/)
  const header = t.throws(() => parseIdx(idxHeader([3, 4, 4]).subarray(0, 10), 'cut.idx'), { instanceOf: DataError })
  t.regex(header!.message, /cut\.idx has 10 bytes, too short for its 16-byte header/)
})

test('empty files and empty or broken gzip streams are DataErrors', async (t) => {
  const empty = write(new Uint8Array(0))
  t.regex((await t.throwsAsync(loadIdx(empty), { instanceOf: DataError }))!.message, new RegExp(`${empty} is empty`))
  t.regex(t.throws(() => parseIdx(gzip(new Uint8Array(0)), 'e.gz'), { instanceOf: DataError })!.message, /e\.gz is empty once decompressed/)
  const zipped = gzip(idxImages(2, 3, 3).bytes)
  const cut = t.throws(() => parseIdx(zipped.subarray(0, zipped.length - 10), 'cut.gz'), { instanceOf: DataError })
  t.regex(cut!.message, /cut\.gz is not a valid gzip stream/)
  t.regex(t.throws(() => parseIdx(Buffer.from([0, 0]), 'two'), { instanceOf: DataError })!.message, /two has 2 byte\(s\)/)
})

test('label count must equal image count', async (t) => {
  const images = write(idxImages(4, 2, 2).bytes)
  const labels = write(idxLabels(3).bytes)
  const error = await t.throwsAsync(loadIdx(images, labels), { instanceOf: DataError })
  t.is(error!.message, `IDX file ${labels} has 3 labels but ${images} has 4 images`)
})

test('a missing file is an IoError naming it', async (t) => {
  const missing = join(dir, 'missing.idx')
  const error = await t.throwsAsync(loadIdx(missing), { instanceOf: IoError })
  t.true(error!.message.includes(missing))
  t.true(error!.message.includes('ENOENT'))
})

test('binarizeImages thresholds (default 0.33 × 256) or samples', (t) => {
  const images = { count: 1, height: 1, width: 4, channels: 1, data: Uint8Array.from([0, 84, 85, 255]) }
  t.deepEqual([...binarizeImages(images).data], [0, 0, 1, 1])
  t.deepEqual([...binarizeImages(images, 200).data], [0, 0, 0, 1])
  const stochastic = binarizeImages(images, 'stochastic', 7).data
  t.deepEqual([stochastic[0], stochastic[3]], [0, 1])
  t.deepEqual([...binarizeImages(images, 'stochastic', 7).data], [...stochastic])
  t.throws(() => binarizeImages(images, 300), { instanceOf: ConfigError })
  t.throws(() => binarizeImages(images, 'otsu' as never), { instanceOf: ConfigError })
})

test('parseIdx on 2,000 random and mutated buffers returns or throws DataError only', (t) => {
  const random = seeded(2024)
  const int = (n: number) => Math.floor(random() * n)
  const valid = [idxImages(3, 4, 5).bytes, idxLabels(7).bytes, idxImages(0, 28, 28).bytes]
  const seeds = [...valid, ...valid.map((b) => gzip(b))]
  let parsed = 0
  for (let i = 0; i < 2000; i++) {
    let buffer: Buffer
    const kind = i % 4
    if (kind === 0) {
      buffer = Buffer.from(Array.from({ length: int(64) }, () => int(256)))
      if (random() < 0.5 && buffer.length >= 4) buffer.set([0, 0, 8, random() < 0.5 ? 1 : 3])
    } else {
      buffer = Buffer.from(seeds[int(seeds.length)])
      const mutations = 1 + int(4)
      for (let m = 0; m < mutations; m++) {
        const op = int(3)
        if (op === 0 && buffer.length > 0) buffer[int(buffer.length)] = int(256)
        else if (op === 1) buffer = buffer.subarray(0, int(buffer.length + 1))
        else buffer = Buffer.concat([buffer, Buffer.from([int(256)])])
      }
    }
    try {
      const result = parseIdx(buffer, `fuzz-${i}`)
      const elements = result.dims.reduce((a, b) => a * b, 1)
      if (result.data.length !== elements) t.fail(`case ${i}: ${result.data.length} bytes for dims ${result.dims}`)
      parsed++
    } catch (error) {
      if (!(error instanceof DataError)) t.fail(`case ${i} threw ${(error as Error).name}: ${(error as Error).message}`)
      else if (!(error as Error).message.includes(`fuzz-${i}`)) t.fail(`case ${i}: message does not name the file`)
    }
  }
  t.log(`${parsed} of 2000 buffers parsed, the rest were refused with DataError`)
  t.pass()
})
