/**
 * What a conditional model is given besides the images: condition vectors
 * (`conditionSize`) and condition maps (`conditionMap`), checked here for
 * their kind and length and packed for the core as one Float32Array, each
 * image's vector followed by its map (H×W×C, channels-last like images). The
 * core checks the values (finite, a token map's tokens in its vocabulary).
 */

import { DataError } from './errors'
import { describe } from './images'
import type { ModelConfig } from './types'

/** Condition vectors as a Float32Array (any array of numbers is copied into one), or `null` when not given. */
function vectors(value: unknown, field: string): Float32Array | null {
  if (value === undefined || value === null) return null
  if (value instanceof Float32Array) return value
  if (Array.isArray(value) || value instanceof Float64Array) return Float32Array.from(value as ArrayLike<number>)
  throw new DataError(`\`${field}\` must be a Float32Array of N×conditionSize values, got ${describe(value)}`)
}

/** Condition maps: real values (Float32Array) or a token map's tokens (Int32Array, Uint16Array), or `null`. */
function maps(value: unknown, field: string): ArrayLike<number> | null {
  if (value === undefined || value === null) return null
  if (value instanceof Float32Array || value instanceof Int32Array || value instanceof Uint16Array || value instanceof Float64Array) return value
  throw new DataError(`\`${field}\` must be a Float32Array (or for a token map an Int32Array or Uint16Array) of N×height×width×channels values, got ${describe(value)}`)
}

/**
 * The conditioning of `count` images for the core: `null` for a model
 * without vectors or maps (whatever was given is then passed on for the
 * core to refuse by name), else the packed values. `fields` name the
 * arguments in errors (`data.trainConditions`, `data.trainMaps`).
 */
export function packConditions(config: ModelConfig, count: number | undefined, given: { vectors: unknown; maps: unknown }, fields: { vectors: string; maps: string }): Float32Array | null {
  const v = vectors(given.vectors, fields.vectors)
  const m = maps(given.maps, fields.maps)
  const map = config.conditionMap
  if (!map) {
    if (m) throw new DataError(`\`${fields.maps}\` was given but the model takes no condition maps (create it with \`conditionMap\`)`)
    return v
  }
  if (!m) throw new DataError(`\`${fields.maps}\` is required: the model is conditional on a ${map.height}×${map.width}×${map.channels} map per image`)
  const perMap = map.height * map.width * map.channels
  const n = count ?? m.length / perMap
  if (!Number.isInteger(n) || m.length !== n * perMap) {
    throw new DataError(`\`${fields.maps}\` has ${m.length} values but ${count ?? 'the'} images × a ${map.height}×${map.width}×${map.channels} map need ${count === undefined ? 'a multiple of ' + perMap : n * perMap}`)
  }
  const d = config.conditionSize ?? 0
  if (d === 0) {
    if (v) throw new DataError(`\`${fields.vectors}\` was given but the model takes no condition vectors, only maps`)
    return m instanceof Float32Array ? m : Float32Array.from(m)
  }
  if (!v) throw new DataError(`\`${fields.vectors}\` is required: the model is conditional on a vector of ${d} values per image`)
  if (v.length !== n * d) throw new DataError(`\`${fields.vectors}\` has ${v.length} values but ${n} images × conditionSize ${d} = ${n * d}`)
  const packed = new Float32Array(n * (d + perMap))
  for (let i = 0; i < n; i++) {
    packed.set(v.subarray(i * d, (i + 1) * d), i * (d + perMap))
    for (let j = 0; j < perMap; j++) packed[i * (d + perMap) + d + j] = m[i * perMap + j]
  }
  return packed
}

/** How many images `maps` describe for a model with a condition map (to default `sample`'s `count`); undefined otherwise. */
export function mapCount(config: ModelConfig, given: unknown): number | undefined {
  const map = config.conditionMap
  const m = maps(given, 'maps')
  if (!map || !m) return undefined
  return m.length / (map.height * map.width * map.channels)
}
