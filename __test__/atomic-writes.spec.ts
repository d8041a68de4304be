/**
 * The shared atomic writer (src/write-file.ts) and its two users, pictures
 * (`writeFileAtomic`) and downloads into the cache (`downloadVerified`),
 * against someone who can write to the target's folder: symbolic links
 * planted at the temporary names (the old predictable ones, and — with the
 * random source pinned — at the exact names the writer will try) must never
 * be followed; a replaced file keeps its mode; concurrent writers never
 * leave a mixture.
 */

import test from 'ava'
import { spawnSync } from 'node:child_process'
import { chmodSync, lstatSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'

import { downloadVerified } from '../src/data/download'
import { IoError } from '../src/errors'
import { createAtomicFile, setRandomSourceForTests, tempPathFor, writeFileAtomic } from '../src/write-file'
import { gzip, idxImages, sha256 } from './helpers/idx'
import { startServer } from './helpers/server'
import { removeTempDirs, tempDir } from './helpers/temp'

test.after.always(removeTempDirs)

const VICTIM_BYTES = Buffer.from('the victim: must never change\n')

/** A file outside the target folder that planted links point to. */
function victim(): string {
  const file = join(tempDir('victim'), 'victim.txt')
  writeFileSync(file, VICTIM_BYTES)
  chmodSync(file, 0o644)
  return file
}

/**
 * Pins the writer's random source (write-file.ts's `setRandomSourceForTests`)
 * to a known sequence for the duration of `body`, so that the writer's
 * candidate temporary names are known in advance (`names(count)` gives
 * them), and restores it afterwards.
 */
async function withPinnedRandom<T>(body: (names: (target: string, count: number) => string[]) => Promise<T>): Promise<T> {
  let counter = 0
  const names = (target: string, count: number) => {
    const saved = counter
    const out = Array.from({ length: count }, () => tempPathFor(target))
    counter = saved
    return out
  }
  setRandomSourceForTests((size) => Buffer.alloc(size, counter++ % 256))
  try {
    return await body(names)
  } finally {
    setRandomSourceForTests(undefined)
  }
}

/** The old predictable temporary names of both writers, for `target`. */
function oldNames(target: string): string[] {
  const dir = join(target, '..')
  const name = target.slice(dir.length + 1)
  return [join(dir, `.${name}.${process.pid}.tmp`), `${target}.${process.pid}.tmp`, `${target}.${process.pid}.part`]
}

test('writeFileAtomic: links planted at the old predictable name and at the next 7 candidate names are not followed', async (t) => {
  const dir = tempDir('pictures')
  const target = join(dir, 'samples.png')
  const file = victim()
  for (const name of oldNames(target)) symlinkSync(file, name)
  await withPinnedRandom(async (names) => {
    const planted = names(target, 7)
    t.is(new Set(planted).size, 7, 'the candidate names differ')
    for (const name of planted) symlinkSync(file, name)
    await writeFileAtomic(target, Buffer.from('new picture'), 'the image')
  })
  t.deepEqual(readFileSync(file), VICTIM_BYTES)
  t.deepEqual(readFileSync(target), Buffer.from('new picture'))
  t.true(lstatSync(target).isFile())
  // Only the target and the planted links (still links, still to the victim) remain.
  const left = readdirSync(dir).filter((n) => n !== 'samples.png')
  t.is(left.length, 10)
  for (const name of left) t.true(lstatSync(join(dir, name)).isSymbolicLink(), name)
})

test('writeFileAtomic: when every candidate name is taken it fails with an IoError naming the file, and changes nothing', async (t) => {
  const dir = tempDir('pictures')
  const target = join(dir, 'grid.png')
  writeFileSync(target, 'old picture')
  const file = victim()
  await withPinnedRandom(async (names) => {
    for (const name of names(target, 8)) symlinkSync(file, name)
    const error = await t.throwsAsync(writeFileAtomic(target, Buffer.from('new'), 'the image'), { instanceOf: IoError })
    t.is(error!.code, 'Io')
    t.true(error!.message.startsWith(`${target}: could not write the image`), error!.message)
    t.regex(error!.message, /EEXIST/)
  })
  t.deepEqual(readFileSync(file), VICTIM_BYTES)
  t.is(readFileSync(target, 'utf8'), 'old picture')
})

test('writeFileAtomic: a replaced file keeps its permission bits; a new one gets 0o666 minus the umask', async (t) => {
  const dir = tempDir('modes')
  const kept = join(dir, 'kept.png')
  writeFileSync(kept, 'old')
  chmodSync(kept, 0o640)
  await writeFileAtomic(kept, Buffer.from('new'), 'the image')
  t.is(statSync(kept).mode & 0o777, 0o640)
  t.is(readFileSync(kept, 'utf8'), 'new')

  const umask = process.umask()
  const fresh = join(dir, 'fresh.png')
  await writeFileAtomic(fresh, Buffer.from('x'), 'the image')
  t.is(statSync(fresh).mode & 0o777, 0o666 & ~umask)
})

test('createAtomicFile: the temporary file has the old file\'s mode before any content is written', async (t) => {
  const dir = tempDir('modes')
  const target = join(dir, 'secret.png')
  writeFileSync(target, 'old')
  chmodSync(target, 0o600)
  const temp = await createAtomicFile(target)
  try {
    t.is(statSync(temp.tempPath).mode & 0o777, 0o600, 'fchmod-ed right after the create')
    t.is(statSync(temp.tempPath).size, 0)
  } finally {
    await temp.discard()
  }
  t.deepEqual(readdirSync(dir), ['secret.png'])
})

test('temporary names carry the writer\'s pid: .<name>.<pid>.<24 hex>.tmp', (t) => {
  const name = tempPathFor('/some/folder/model.png')
  t.regex(name, new RegExp(`^/some/folder/\\.model\\.png\\.${process.pid}\\.[0-9a-f]{24}\\.tmp$`))
})

/** The pid of a child that has already exited (so no process has it, barring reuse). */
function deadPid(): number {
  const { pid } = spawnSync(process.execPath, ['-e', ''])
  if (typeof pid !== 'number') throw new Error('could not spawn a child')
  return pid
}

test('after a write, the temporaries of the same target left by dead writers are removed; live writers\', other targets\' and other names stay', async (t) => {
  const dir = tempDir('stale')
  const target = join(dir, 'grid.png')
  const hex = 'ab'.repeat(12)
  // 2^22 + 1 is above Linux's largest pid_max, so never alive; the other is a child that has exited.
  const dead = [2 ** 22 + 1, deadPid()].map((pid) => `.grid.png.${pid}.${hex}.tmp`)
  // The parent (ava's main process) is alive; this process's own may belong to a write in progress.
  const alive = [`.grid.png.${process.ppid}.${hex}.tmp`, `.grid.png.${process.pid}.${hex}.tmp`]
  const other = [`.other.png.${2 ** 22 + 1}.${hex}.tmp`, `.grid.png.${2 ** 22 + 1}.tmp`, 'grid.png.tmp']
  const file = victim()
  for (const name of [...dead, ...alive, ...other]) writeFileSync(join(dir, name), 'leftover')
  // A dead writer's name planted as a link: removing it removes the link, never the file it points to.
  const link = `.grid.png.${2 ** 22 + 1}.${'cd'.repeat(12)}.tmp`
  symlinkSync(file, join(dir, link))
  await writeFileAtomic(target, Buffer.from('grid'), 'the image')
  t.is(readFileSync(target, 'utf8'), 'grid')
  t.deepEqual(readdirSync(dir).sort(), ['grid.png', ...alive, ...other].sort())
  t.deepEqual(readFileSync(file), VICTIM_BYTES)
})

test('writeFileAtomic: a link at the target itself is replaced by the file, the file it pointed to is untouched', async (t) => {
  const dir = tempDir('pictures')
  const target = join(dir, 'curve.png')
  const file = victim()
  symlinkSync(file, target)
  await writeFileAtomic(target, Buffer.from('curve'), 'the image')
  t.true(lstatSync(target).isFile())
  t.is(readFileSync(target, 'utf8'), 'curve')
  t.deepEqual(readFileSync(file), VICTIM_BYTES)
  // Its mode is the default, not copied from the link's target.
  t.is(statSync(target).mode & 0o777, 0o666 & ~process.umask())
})

test('writeFileAtomic: 24 concurrent writers of one file leave exactly one complete version and no temporary file', async (t) => {
  const dir = tempDir('race')
  const target = join(dir, 'shared.png')
  const versions = Array.from({ length: 24 }, (_, i) => Buffer.alloc(64 * 1024 + i, i + 1))
  await Promise.all(versions.map((bytes) => writeFileAtomic(target, bytes, 'the image')))
  const final = readFileSync(target)
  t.true(versions.some((v) => v.equals(final)), 'the file is one whole version')
  t.deepEqual(readdirSync(dir), ['shared.png'])
})

test('writeFileAtomic: a failed write is an IoError naming the file and leaves no temporary file', async (t) => {
  const dir = tempDir('fail')
  const target = join(dir, 'missing-folder', 'x.png')
  const error = await t.throwsAsync(writeFileAtomic(target, Buffer.from('x'), 'the image'), { instanceOf: IoError })
  t.true(error!.message.includes(target))
  t.deepEqual(readdirSync(dir), [])
})

const FILE = 'images-idx3-ubyte.gz'
const BODY = gzip(idxImages(20, 28, 28, 9).bytes)
const SHA = sha256(BODY)

test('downloads: links planted at the old temporary names and at the candidate names in the cache are not followed', async (t) => {
  const server = await startServer({ [`/${FILE}`]: BODY })
  t.teardown(server.close)
  const dir = tempDir('cache')
  const dest = join(dir, FILE)
  const file = victim()
  for (const name of oldNames(dest)) symlinkSync(file, name)
  const result = await withPinnedRandom(async (names) => {
    // The hash of the (absent) cached file uses no randomness, so these are the names the download will try.
    for (const name of names(dest, 5)) symlinkSync(file, name)
    return downloadVerified({ file: FILE, sha256: SHA, mirrors: [server.origin], cacheDir: dir })
  })
  t.false(result.fromCache)
  t.deepEqual(readFileSync(file), VICTIM_BYTES)
  t.true(readFileSync(dest).equals(BODY))
  t.true(lstatSync(dest).isFile())
  const links = readdirSync(dir).filter((n) => n !== FILE)
  t.is(links.length, 8)
  for (const name of links) t.true(lstatSync(join(dir, name)).isSymbolicLink())
})

test('downloads: a corrupt cached file replaced by the download keeps its mode; two concurrent processes are covered in data-download', async (t) => {
  const server = await startServer({ [`/${FILE}`]: BODY })
  t.teardown(server.close)
  const dir = tempDir('cache')
  mkdirSync(dir, { recursive: true })
  const dest = join(dir, FILE)
  writeFileSync(dest, 'damaged')
  chmodSync(dest, 0o640)
  const result = await downloadVerified({ file: FILE, sha256: SHA, mirrors: [server.origin], cacheDir: dir })
  t.false(result.fromCache)
  t.true(readFileSync(dest).equals(BODY))
  t.is(statSync(dest).mode & 0o777, 0o640)
  t.deepEqual(readdirSync(dir), [FILE])
})
