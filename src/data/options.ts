/**
 * The check every data loader makes on its options argument before reading
 * any field of it. Without it `null` fails with a TypeError on the first
 * property read, a `Map` (whose entries are not properties) is silently read
 * as "no options", and a circular object could send a later walk over it
 * into a stack overflow (RangeError). Each of these is a `ConfigError` that
 * names the argument and the function.
 */

import { ConfigError } from '../errors'
import { describe } from '../images'

/** How deep nested plain objects and arrays are walked looking for a cycle; deeper is refused too. */
const MAX_DEPTH = 32

/**
 * Returns `value` as an options object: `undefined` gives `{}`; anything but
 * a plain object (prototype `Object.prototype` or `null`) is refused, and so
 * is a plain object that reaches itself through nested plain objects or
 * arrays. `argument` and `fn` name it in the message (`options`, `loadIdx`).
 * Values that are not plain objects or arrays (an AbortSignal, a function)
 * are not walked into.
 */
export function checkOptions<T extends object>(value: T | null | undefined, argument: string, fn: string): T {
  if (value === undefined) return {} as T
  if (!isPlainObject(value)) {
    throw new ConfigError(`\`${argument}\` of ${fn} must be a plain object, got ${what(value)}`)
  }
  const cycle = findCycle(value, argument, [], 0)
  if (cycle !== undefined) throw new ConfigError(`\`${argument}\` of ${fn} ${cycle}`)
  return value as T
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return false
  const proto = Object.getPrototypeOf(value)
  return proto === null || proto === Object.prototype
}

function what(value: unknown): string {
  if (value === null) return 'null'
  if (Array.isArray(value)) return 'an array'
  if (value instanceof Map) return 'a Map'
  if (value instanceof Set) return 'a Set'
  return describe(value)
}

/** A description of the first cycle (or excessive depth) under `value`, else `undefined`. */
function findCycle(value: object, path: string, ancestors: object[], depth: number): string | undefined {
  if (ancestors.includes(value)) return `has a circular reference: ${path} refers back to an object that contains it`
  if (depth > MAX_DEPTH) return `is nested more than ${MAX_DEPTH} levels deep (at ${path})`
  ancestors.push(value)
  try {
    const entries = Array.isArray(value) ? value.map((v, i) => [`${path}[${i}]`, v] as const) : Object.keys(value).map((k) => [`${path}.${k}`, (value as Record<string, unknown>)[k]] as const)
    for (const [where, child] of entries) {
      if (Array.isArray(child) || isPlainObject(child)) {
        const found = findCycle(child, where, ancestors, depth + 1)
        if (found !== undefined) return found
      }
    }
    return undefined
  } finally {
    ancestors.pop()
  }
}
