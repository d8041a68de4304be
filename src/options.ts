/**
 * User options → the JSON the native core validates. The core is the single
 * judge of what is valid; this file only refuses what JSON cannot carry
 * faithfully (NaN and ±Infinity would become null, functions and BigInts
 * would vanish or throw, a Map would become `{}`, a cycle cannot be written),
 * naming the field by its full path (`data.trainLabels[3]`), as the core does.
 */

import { ConfigError } from './errors'
import { describe } from './images'

export function toConfigJson(options: object, where = ''): string {
  // The path and parent of each object the replacer has entered: JSON.stringify
  // calls it depth first with the holder as `this`, so the holder's path is
  // known, and walking up the parents tells a cycle from a shared reference.
  const paths = new Map<object, string>()
  const parents = new Map<object, object>()
  const depths = new Map<object, number>()
  return JSON.stringify(options, function (this: object, key: string, value: unknown) {
    const holderPath = paths.get(this)
    const root = holderPath === undefined
    const field = root ? where || 'config' : Array.isArray(this) ? `${holderPath}[${key}]` : holderPath ? `${holderPath}.${key}` : key
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw new ConfigError(`\`${field}\` must be a finite number, got ${value}`)
    }
    if (typeof value === 'bigint') throw new ConfigError(`\`${field}\` must be a number, got the BigInt ${value}n`)
    if (typeof value === 'function' || typeof value === 'symbol') {
      throw new ConfigError(`\`${field}\` must be JSON data, got ${describe(value)}`)
    }
    // Typed arrays and Buffers (labels from the loaders) travel as JSON arrays.
    // The holder's own value is checked: a Buffer's toJSON has already run on `value`.
    const original = (this as Record<string, unknown>)[key]
    if (ArrayBuffer.isView(original) && !(original instanceof DataView)) value = Array.from(original as unknown as ArrayLike<number>)
    if (typeof value === 'object' && value !== null) {
      if (!Array.isArray(value) && !isPlainObject(value)) {
        throw new ConfigError(`\`${field}\` must be a plain object or an array, got ${describe(value)}`)
      }
      for (let up: object | undefined = this; up !== undefined; up = parents.get(up)) {
        if (up === value) throw new ConfigError(`\`${field}\` refers back to an object that contains it (a circular reference): options must be JSON data`)
      }
      const depth = root ? 0 : (depths.get(this) ?? 0) + 1
      if (depth > MAX_OPTIONS_DEPTH) throw new ConfigError(`\`${field}\` is nested more than ${MAX_OPTIONS_DEPTH} levels deep: options must be JSON data`)
      paths.set(value, root ? where : field)
      parents.set(value, this)
      depths.set(value, depth)
    }
    return value
  })
}

/**
 * `{}`, an object literal or `Object.create(null)`; not a Map, Set, array or
 * class instance. An object literal from another realm (a `vm` context) has
 * that realm's Object.prototype, which is recognised by having no prototype
 * itself and a constructor named Object.
 */
export function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto: unknown = Object.getPrototypeOf(value)
  if (proto === Object.prototype || proto === null) return true
  return Object.getPrototypeOf(proto) === null && (proto as { constructor?: { name?: unknown } }).constructor?.name === 'Object'
}

/** How deep nested plain objects and arrays may go, in options walked by `checkOptions` and in `toConfigJson`. */
export const MAX_OPTIONS_DEPTH = 32

/** Names an options argument in messages: `options` of `model.fit`, an example of what belongs there. */
export interface Argument {
  /** @default 'options' */ name?: string
  /** The function it belongs to: `PixelCNN.create`, `model.fit`, `loadIdx`. */
  fn: string
  /** `undefined` means every default; otherwise the argument is required. @default true */
  optional?: boolean
  /** Shown after "must be a plain object like". */
  example?: string
  /**
   * Also walk the nested plain objects and arrays, refusing a cycle or more
   * than `MAX_OPTIONS_DEPTH` levels (naming the path from `name`). For options
   * read field by field in TypeScript (the data loaders); options that go on
   * through `toConfigJson` leave it off, as that walk makes the same checks
   * naming each field by the path the core uses. @default false
   */
  walk?: boolean
}

/**
 * Checks an options argument, the one check of the whole library (the model's
 * methods and the data loaders): a plain object (see `isPlainObject`), or
 * undefined where it is optional (then `{}`). `null` is refused, and so is a
 * Map, Set, array or class instance, which would read as `{}` (a `Map`'s
 * entries are not properties): a `ConfigError` naming the argument and the
 * function, before any field is read. With `walk`, a cycle or excessive
 * nesting is refused too (a later walk over a cycle would never end).
 * Values that are neither plain objects nor arrays (an AbortSignal, a typed
 * array, a function) are not walked into.
 */
export function checkOptions<T extends object = Record<string, unknown>>(
  options: unknown,
  { name = 'options', fn, optional = true, example, walk = false }: Argument,
): T {
  if (options === undefined && optional) return {} as T
  if (!isPlainObject(options)) {
    throw new ConfigError(`\`${name}\` of ${fn} must be a plain object${example ? ` like ${example}` : ''}, got ${describe(options)}`)
  }
  if (walk) {
    const problem = findCycle(options, name, [], 0)
    if (problem !== undefined) throw new ConfigError(`\`${name}\` of ${fn} ${problem}`)
  }
  return options as T
}

/** A description of the first cycle (or excessive depth) under `value`, else `undefined`. */
function findCycle(value: object, at: string, ancestors: object[], depth: number): string | undefined {
  if (ancestors.includes(value)) return `has a circular reference: ${at} refers back to an object that contains it`
  if (depth > MAX_OPTIONS_DEPTH) return `is nested more than ${MAX_OPTIONS_DEPTH} levels deep (at ${at})`
  ancestors.push(value)
  try {
    const array = Array.isArray(value)
    for (const key of array ? value.keys() : Object.keys(value)) {
      const child: unknown = (value as Record<string | number, unknown>)[key]
      if (Array.isArray(child) || isPlainObject(child)) {
        const found = findCycle(child, array ? `${at}[${key}]` : `${at}.${String(key)}`, ancestors, depth + 1)
        if (found !== undefined) return found
      }
    }
    return undefined
  } finally {
    ancestors.pop()
  }
}

/** Splits `keys` off an options argument (checked by `checkOptions`): they are handled in TypeScript. */
export function splitOptions<K extends string>(options: unknown, keys: readonly K[], argument: Argument): [Record<string, unknown>, Record<K, unknown>] {
  const rest: Record<string, unknown> = {}
  const picked = {} as Record<K, unknown>
  for (const [k, v] of Object.entries(checkOptions(options, argument))) {
    if ((keys as readonly string[]).includes(k)) picked[k as K] = v
    else rest[k] = v
  }
  return [rest, picked]
}

export function checkCallback(value: unknown, field: string): ((event: never) => unknown) | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'function') throw new ConfigError(`\`${field}\` must be a function, got ${describe(value)}`)
  return value as (event: never) => unknown
}

export function checkSignal(value: unknown, field = 'signal'): AbortSignal | undefined {
  if (value === undefined || value === null) return undefined
  if (!(value instanceof AbortSignal)) throw new ConfigError(`\`${field}\` must be an AbortSignal, got ${describe(value)}`)
  return value
}

export function checkDevice(value: unknown, field = 'device'): string {
  if (value === undefined || value === null) return 'auto'
  if (typeof value !== 'string') throw new ConfigError(`\`${field}\` must be 'auto', 'cpu', 'cuda' or 'cuda:N', got ${describe(value)}`)
  return value
}
