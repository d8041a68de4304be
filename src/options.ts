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
      paths.set(value, root ? where : field)
      parents.set(value, this)
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
  if (typeof value !== 'object' || value === null) return false
  const proto: unknown = Object.getPrototypeOf(value)
  if (proto === Object.prototype || proto === null) return true
  return Object.getPrototypeOf(proto) === null && (proto as { constructor?: { name?: unknown } }).constructor?.name === 'Object'
}

/** Names an options argument in messages: `options` of `model.fit`, an example of what belongs there. */
export interface Argument {
  /** @default 'options' */ name?: string
  /** The function it belongs to: `PixelCNN.create`, `model.fit`. */
  fn: string
  /** `undefined` means every default; otherwise the argument is required. @default true */
  optional?: boolean
  /** Shown after "must be a plain object like". */
  example?: string
}

/**
 * Checks an options argument: a plain object, or undefined where it is
 * optional. `null` is refused like everywhere in the library (the data loaders
 * too), and so is a Map, array or class instance, which would read as `{}`.
 */
export function checkOptions(options: unknown, { name = 'options', fn, optional = true, example }: Argument): Record<string, unknown> {
  if (options === undefined && optional) return {}
  if (!isPlainObject(options)) {
    throw new ConfigError(`\`${name}\` of ${fn} must be a plain object${example ? ` like ${example}` : ''}, got ${describe(options)}`)
  }
  return options
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
