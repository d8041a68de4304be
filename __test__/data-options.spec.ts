/**
 * The options argument of every exported loader: `null`, a `Map`, a `Set`,
 * an array, a class instance and a circular object are each a `ConfigError`
 * naming the argument and the loader, raised before any file is read or any
 * request made; `undefined` and plain objects (a null prototype included)
 * are accepted.
 */

import test from 'ava'
import { readdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { runInNewContext } from 'node:vm'

import { CIFAR10, loadCifar10, loadPublishedCifar } from '../src/data/cifar10'
import { downloadVerified } from '../src/data/download'
import { loadFashionMnist } from '../src/data/fashion-mnist'
import { loadImageFolder } from '../src/data/folder'
import { loadIdx } from '../src/data/idx'
import { loadMnist } from '../src/data/mnist'
import { loadIdxDataset, loadPublishedIdx, MNIST } from '../src/data/sources'
import { ConfigError } from '../src/errors'
import { checkOptions } from '../src/options'
import { idxImages } from './helpers/idx'
import { startServer } from './helpers/server'
import { removeTempDirs, tempDir } from './helpers/temp'

test.after.always(removeTempDirs)

class Settings {
  count = 3
}

function circular(): Record<string, unknown> {
  const options: Record<string, unknown> = { threshold: 'none', nested: { deeper: [1, 2] } }
  ;(options.nested as Record<string, unknown>).back = options
  return options
}

/** Each bad value, what the message must say it is, and how the path to the cycle reads. */
const BAD: Array<[label: string, make: () => unknown, says: RegExp]> = [
  ['null', () => null, /must be a plain object, got null$/],
  ['a Map', () => new Map([['count', 3]]), /must be a plain object, got a Map$/],
  ['a Set', () => new Set([3]), /must be a plain object, got a Set$/],
  ['an array', () => [3], /must be a plain object, got an array of length 1$/],
  ['a class instance', () => new Settings(), /must be a plain object, got a Settings$/],
  ['a number', () => 3, /must be a plain object, got 3$/],
  ['a circular object', circular, /has a circular reference: options\.nested\.back refers back/],
]

/** The loaders' form of the one options check (src/options.ts). */
const check = (value: unknown, name = 'options', fn = 'f') => checkOptions(value, { name, fn, walk: true })

test('the shared check: undefined is {}, plain objects pass, a cycle through arrays is found too', (t) => {
  t.deepEqual(check(undefined), {})
  const bare = Object.assign(Object.create(null), { count: 1 })
  t.is(check(bare), bare)
  const shared = { a: 1 }
  t.notThrows(() => check({ x: shared, y: shared, signal: new AbortController().signal }), 'a shared (non-circular) object is fine')
  const list: unknown[] = []
  list.push({ again: list })
  const error = t.throws(() => check({ mirrors: list }), { instanceOf: ConfigError })
  t.regex(error!.message, /^`options` of f has a circular reference: options\.mirrors\[0\]\.again refers back/)
  let deep: Record<string, unknown> = {}
  const root = deep
  for (let i = 0; i < 100; i++) deep = (deep.next = {}) as Record<string, unknown>
  t.throws(() => check(root), { instanceOf: ConfigError, message: /nested more than 32 levels/ })
})

test('one check for the model and the loaders: an object literal from a vm context is a plain object to both, described as "an Object" when refused', async (t) => {
  const foreign = runInNewContext('({ threshold: "none" })') as object
  t.is(check(foreign), foreign)
  t.is(checkOptions(foreign, { fn: 'model.sample' }), foreign, 'the model form, without the walk')
  const data = await loadMnist(foreign as never)
  t.true(data.train.data.some((v) => v > 1), '8-bit values: the option from the other realm was read')
  // A foreign Map is refused, and an Object that is not plain (a class named Object) is described with "an".
  t.throws(() => check(runInNewContext('new Map()')), { instanceOf: ConfigError, message: /got a Map$/ })
  class Object_ {}
  Object.defineProperty(Object_, 'name', { value: 'Object' })
  t.throws(() => check(new Object_()), { instanceOf: ConfigError, message: /must be a plain object, got an Object$/ })
  // The walk is the same for foreign objects: a cycle through a foreign array is found.
  const cyclic = runInNewContext('const o = { list: [] }; o.list.push(o); o') as object
  t.throws(() => check(cyclic), { instanceOf: ConfigError, message: /^`options` of f has a circular reference: options\.list\[0\] refers back/ })
})

test('every loader refuses null, Map, Set, arrays, class instances and circular options with a ConfigError naming it, before any request', async (t) => {
  const server = await startServer({})
  t.teardown(server.close)
  const folder = tempDir()
  const idx = join(tempDir(), 'images.idx')
  writeFileSync(idx, idxImages(2, 2, 2).bytes)
  const cacheDir = tempDir('cache')
  process.env.PIXELCNN_MNIST_MIRRORS = server.origin
  process.env.PIXELCNN_FASHION_MNIST_MIRRORS = server.origin
  process.env.PIXELCNN_CIFAR10_MIRRORS = server.origin
  t.teardown(() => {
    delete process.env.PIXELCNN_MNIST_MIRRORS
    delete process.env.PIXELCNN_FASHION_MNIST_MIRRORS
    delete process.env.PIXELCNN_CIFAR10_MIRRORS
  })
  const loaders: Array<[name: string, argument: string, call: (options: never) => Promise<unknown>]> = [
    ['loadImageFolder', 'options', (o) => loadImageFolder(folder, o)],
    ['loadIdx', 'options', (o) => loadIdx(idx, undefined, o)],
    ['loadMnist', 'options', (o) => loadMnist(o)],
    ['loadFashionMnist', 'options', (o) => loadFashionMnist(o)],
    ['loadCifar10', 'options', (o) => loadCifar10(o)],
    ['loadPublishedIdx', 'options', (o) => loadPublishedIdx(MNIST, o)],
    ['loadPublishedCifar', 'options', (o) => loadPublishedCifar(CIFAR10, o)],
    ['loadIdxDataset', 'options', (o) => loadIdxDataset([idx, idx, idx, idx], {}, o)],
    ['downloadVerified', 'request', (o) => downloadVerified(o)],
  ]
  for (const [name, argument, call] of loaders) {
    for (const [label, make, says] of BAD) {
      const value = make()
      // The circular object is otherwise valid for a download request: give it the request's fields.
      if (name === 'downloadVerified' && label === 'a circular object') Object.assign(value as object, { file: 'x', md5: '0'.repeat(32), mirrors: [server.origin], cacheDir })
      const error = await t.throwsAsync(call(value as never), { instanceOf: ConfigError }, `${name}(${label})`)
      t.is(error!.code, 'InvalidConfig')
      t.true(error!.message.startsWith(`\`${argument}\` of ${name} `), `${name}(${label}): ${error!.message}`)
      t.regex(error!.message, says.source.includes('circular') ? new RegExp(says.source.replace('options', argument)) : says, `${name}(${label})`)
    }
  }
  t.deepEqual(server.requests, [], 'no request was made')
  t.deepEqual(readdirSync(cacheDir), [], 'nothing was written')
})

test('a plain object with a null prototype is accepted as options', async (t) => {
  const options = Object.assign(Object.create(null), { threshold: 'none' })
  const data = await loadMnist(options)
  t.is(data.train.channels, 1)
  t.true(data.train.data.some((v) => v > 1), '8-bit values: the option was read')
})

test('loadIdx refuses a non-string path (a number would be read as a file descriptor)', async (t) => {
  const error = await t.throwsAsync(loadIdx(0 as never), { instanceOf: ConfigError })
  t.regex(error!.message, /^`imagesPath` of loadIdx must be a non-empty path, got 0$/)
  const labels = await t.throwsAsync(loadIdx('/nonexistent', 5 as never), { instanceOf: ConfigError })
  t.regex(labels!.message, /`labelsPath` of loadIdx/)
})
