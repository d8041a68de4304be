import test from 'ava'
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { DataError, loadTokens, writeTokens, type TokenGrid } from '../src/index'
import { encodeNpy, parseNpy } from '../src/data/npy'
import { removeTempDirs, tempDir } from './helpers/temp'

test.after.always(removeTempDirs)

const dir = tempDir('tokens')

/** Runs `code` in the project's Python (NumPy comes with PyTorch); undefined outside `npm test` unless CI requires it. */
function python(code: string): string | undefined {
  const interpreter = process.env.PIXELCNN_PYTHON
  if (!interpreter) {
    if (process.env.CI) throw new Error('PIXELCNN_PYTHON is not set: npm test sets it (scripts/env.sh)')
    return undefined
  }
  return execFileSync(interpreter, ['-c', code], { encoding: 'utf8' })
}

test('loadTokens reads what numpy.save writes: int16, int32 and int64, either byte order', async (t) => {
  const made = python(`
import numpy as np
grid = (np.arange(2 * 3 * 5).reshape(2, 3, 5) * 37) % 512
for dtype in ['<i2', '>i2', '<i4', '>i4', '<i8', '>i8']:
    np.save(${JSON.stringify(dir)} + '/codes' + dtype.replace('<', 'le').replace('>', 'be') + '.npy', grid.astype(dtype))
print('ok')`)
  if (made === undefined) return t.pass('no Python configured (PIXELCNN_PYTHON)')
  const expected = Int32Array.from({ length: 30 }, (_, i) => (i * 37) % 512)
  for (const name of ['lei2', 'bei2', 'lei4', 'bei4', 'lei8', 'bei8']) {
    const grid = await loadTokens(path.join(dir, `codes${name}.npy`), { vocabulary: 512 })
    t.deepEqual([grid.count, grid.height, grid.width], [2, 3, 5], name)
    t.deepEqual(grid.data, expected, name)
  }
})

test('writeTokens writes what numpy.load reads back unchanged, int32 and uint16', async (t) => {
  const int32: TokenGrid = { count: 3, height: 4, width: 2, data: Int32Array.from({ length: 24 }, (_, i) => (i * 2731) % 65536) }
  const uint16: TokenGrid = { ...int32, data: Uint16Array.from(int32.data) }
  await writeTokens(path.join(dir, 'out32.npy'), int32)
  await writeTokens(path.join(dir, 'out16.npy'), uint16)
  const read = python(`
import numpy as np, json
a = np.load(${JSON.stringify(dir)} + '/out32.npy'); b = np.load(${JSON.stringify(dir)} + '/out16.npy')
print(json.dumps([str(a.dtype), a.shape, a.ravel().tolist(), str(b.dtype), b.shape, b.ravel().tolist()]))`)
  // Read back here as well: what the library writes it reads.
  t.deepEqual((await loadTokens(path.join(dir, 'out32.npy'))).data, int32.data)
  if (read === undefined) return t.pass('no Python configured (PIXELCNN_PYTHON)')
  const [dtype32, shape32, values32, dtype16, shape16, values16] = JSON.parse(read)
  t.deepEqual([dtype32, shape32, values32], ['int32', [3, 4, 2], [...int32.data]])
  t.deepEqual([dtype16, shape16, values16], ['uint16', [3, 4, 2], [...uint16.data]])
})

test('the header is padded as NumPy pads it: the data starts at a multiple of 64 bytes', (t) => {
  for (const shape of [[1], [7], [2, 3, 5], [1000, 32, 32]]) {
    const count = shape.reduce((a, b) => a * b, 1)
    const bytes = encodeNpy(new Int32Array(count), shape)
    t.is((bytes.length - 4 * count) % 64, 0, `shape ${shape}`)
    t.deepEqual(parseNpy(bytes, 'x.npy').shape, shape)
  }
})

/** A .npy file with `header` (a dict literal) and `data`, in format 1.0. */
function npy(header: string, data: Buffer = Buffer.alloc(0)): Buffer {
  const prefix = Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 0, 0])
  prefix.writeUInt16LE(header.length + 1, 8)
  return Buffer.concat([prefix, Buffer.from(header + '\n', 'latin1'), data])
}

test('bad .npy files are DataErrors that name the file and what is wrong', async (t) => {
  const int32 = (values: number[]) => Buffer.from(Int32Array.from(values).buffer)
  const cases: [string, Buffer, RegExp, number?][] = [
    ['float.npy', npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1, 1, 2), }", Buffer.alloc(8)), /tokens must be integers \(int16, int32, int64.*got dtype '<f4'/],
    ['object.npy', npy("{'descr': '|O', 'fortran_order': False, 'shape': (1,), }", Buffer.alloc(8)), /dtype '\|O' is not a numeric dtype/],
    ['flat.npy', npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 2), }", int32([1, 2, 3, 4])), /shape \(count, height, width\).*got \(2, 2\)/],
    ['empty.npy', npy("{'descr': '<i4', 'fortran_order': False, 'shape': (0, 2, 2), }"), /each at least 1, got \(0, 2, 2\)/],
    ['negative.npy', npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2, 2), }", int32([1, 2, -3, 4])), /grid 0, row 1, column 0 is -3/],
    ['large.npy', npy("{'descr': '<i4', 'fortran_order': False, 'shape': (2, 1, 2), }", int32([1, 2, 3, 512])), /grid 1, row 0, column 1 is 512; tokens must be in 0 … 511 \(vocabulary 512\)/, 512],
    ['short.npy', npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1, 2, 2), }", int32([1, 2, 3])), /needs 16 bytes of data, the file has 12/],
    ['fortran.npy', npy("{'descr': '<i4', 'fortran_order': True, 'shape': (1, 2, 2), }", int32([1, 2, 3, 4])), /Fortran order; save numpy.ascontiguousarray/],
    ['magic.npy', Buffer.from('PK\x03\x04 this is a zip archive'), /not a \.npy file \(it does not start with/],
    ['version.npy', Buffer.concat([Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 9, 0]), Buffer.alloc(8)]), /version 9\.0 is not one of/],
    ['cut.npy', Buffer.from([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, 1, 0, 200, 0, 0x7b]), /header is cut off/],
    ['nokeys.npy', npy("{'descr': '<i4', 'shape': (1, 1, 1), }", int32([1])), /lacks 'descr', 'fortran_order' or 'shape'/],
    ['shape.npy', npy("{'descr': '<i4', 'fortran_order': False, 'shape': (1, x, 1), }", int32([1])), /not a tuple of whole numbers/],
  ]
  for (const [name, bytes, message, vocabulary] of cases) {
    const file = path.join(dir, name)
    writeFileSync(file, bytes)
    const error = await t.throwsAsync(loadTokens(file, { vocabulary }), { instanceOf: DataError }, name)
    t.true(error?.message.includes(file), `${name} names its file: ${error?.message}`)
    t.regex(error?.message ?? '', message, name)
  }
  await t.throwsAsync(loadTokens(path.join(dir, 'float.npy'), { vocabulary: 1 }), { instanceOf: DataError, message: /`vocabulary` must be a whole number from 2 to 65536, got 1/ })
})

test('writeTokens refuses a grid whose data does not match its shape, or holds negative tokens', async (t) => {
  const file = path.join(dir, 'refused.npy')
  await t.throwsAsync(writeTokens(file, { count: 2, height: 2, width: 2, data: new Int32Array(7) }), { instanceOf: DataError, message: /7 tokens, but count × height × width = 8/ })
  await t.throwsAsync(writeTokens(file, { count: 1, height: 1, width: 2, data: Int32Array.from([0, -1]) }), { instanceOf: DataError, message: /column 1 is -1/ })
  t.throws(() => readFileSync(file), { code: 'ENOENT' }, 'nothing was written')
})
