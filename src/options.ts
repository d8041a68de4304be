/**
 * User options → the JSON the native core validates. The core is the single
 * judge of what is valid; this file only refuses what JSON cannot carry
 * faithfully (NaN and ±Infinity would become null, functions would vanish).
 */

import { ConfigError } from './errors'
import { describe } from './images'

export function toConfigJson(options: object, where = ''): string {
  return JSON.stringify(options, function (key, value: unknown) {
    const field = key ? (where ? `${where}.${key}` : key) : where || 'config'
    if (typeof value === 'number' && !Number.isFinite(value)) {
      throw new ConfigError(`\`${field}\` must be a finite number, got ${value}`)
    }
    // Typed arrays and Buffers (labels from the loaders) travel as JSON arrays.
    // The holder's own value is checked: a Buffer's toJSON has already run on `value`.
    const original = (this as Record<string, unknown>)[key]
    if (ArrayBuffer.isView(original) && !(original instanceof DataView)) return Array.from(original as unknown as ArrayLike<number>)
    if (typeof value === 'function' || typeof value === 'symbol' || typeof value === 'bigint') {
      throw new ConfigError(`\`${field}\` must be JSON data, got ${describe(value)}`)
    }
    return value
  })
}

/** Splits `keys` off an options object: they are handled in TypeScript. */
export function splitOptions<T extends object, K extends string>(options: T, keys: readonly K[]): [Record<string, unknown>, Record<K, unknown>] {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new ConfigError(`options must be an object, got ${describe(options)}`)
  }
  const rest: Record<string, unknown> = {}
  const picked = {} as Record<K, unknown>
  for (const [k, v] of Object.entries(options)) {
    if ((keys as readonly string[]).includes(k)) picked[k as K] = v
    else rest[k] = v
  }
  return [rest, picked]
}

export function checkCallback(value: unknown, field: string): ((event: never) => void) | undefined {
  if (value === undefined || value === null) return undefined
  if (typeof value !== 'function') throw new ConfigError(`\`${field}\` must be a function, got ${describe(value)}`)
  return value as (event: never) => void
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
