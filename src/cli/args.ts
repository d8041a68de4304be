/** The command line's options and the helpers that read them. */

import { ConfigError } from '../errors'
import type { Precision } from '../types'

export const OPTIONS = {
  data: { type: 'string' },
  preset: { type: 'string' },
  architecture: { type: 'string' },
  classes: { type: 'string' },
  conditional: { type: 'boolean' },
  epochs: { type: 'string' },
  'batch-size': { type: 'string' },
  'learning-rate': { type: 'string' },
  seed: { type: 'string' },
  threads: { type: 'string' },
  device: { type: 'string' },
  precision: { type: 'string' },
  output: { type: 'string' },
  mixtures: { type: 'string' },
  vocabulary: { type: 'string' },
  conditions: { type: 'string' },
  maps: { type: 'string' },
  'map-vocabulary': { type: 'string' },
  embedding: { type: 'string' },
  dropout: { type: 'string' },
  channels: { type: 'string' },
  config: { type: 'string' },
  out: { type: 'string' },
  resume: { type: 'boolean' },
  'checkpoint-every': { type: 'string' },
  'samples-every': { type: 'string' },
  recipe: { type: 'string' },
  logdir: { type: 'string' },
  schedule: { type: 'string' },
  ema: { type: 'string' },
  'clip-grad-norm': { type: 'string' },
  'weight-decay': { type: 'string' },
  'validate-every': { type: 'string' },
  'early-stopping': { type: 'string' },
  best: { type: 'string' },
  distributed: { type: 'string' },
  nproc: { type: 'string' },
  model: { type: 'string' },
  from: { type: 'string' },
  height: { type: 'string' },
  width: { type: 'string' },
  count: { type: 'string' },
  label: { type: 'string' },
  'per-class': { type: 'string' },
  temperature: { type: 'string' },
  rows: { type: 'string' },
  repeats: { type: 'string' },
  columns: { type: 'string' },
  scale: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const

export type Args = Partial<Record<keyof typeof OPTIONS, string | boolean>>

export function number(args: Args, name: keyof typeof OPTIONS): number | undefined {
  const raw = args[name]
  if (raw === undefined) return undefined
  const value = Number(raw)
  if (typeof raw !== 'string' || raw.trim() === '' || !Number.isFinite(value)) throw new ConfigError(`\`--${name}\` must be a number, got ${JSON.stringify(raw)}`)
  return value
}

/** `--precision fp32|bf16|auto`, or undefined when not given (the library's default, auto). */
export function precision(args: Args): Precision | undefined {
  const raw = args.precision
  if (raw === undefined) return undefined
  if (raw !== 'fp32' && raw !== 'bf16' && raw !== 'auto') throw new ConfigError(`\`--precision\` must be fp32, bf16 or auto, got ${JSON.stringify(raw)}`)
  return raw
}

export function required(args: Args, name: keyof typeof OPTIONS): string {
  const value = args[name]
  if (typeof value !== 'string' || value === '') throw new ConfigError(`\`--${name}\` is required (see \`pixelcnn help\`)`)
  return value
}
