/**
 * Resuming trains the checkpoint's network, so options that resolve to
 * another one (another architecture, size or image shape) are refused rather
 * than silently ignored. `what` names those options: `model` for
 * `PixelCNN.train`, the model flags for the CLI.
 */

import { ConfigError, nativeSync } from './errors'
import { nativeBinding } from './native'
import { toConfigJson } from './options'
import type { CreateOptions, ModelConfig, ModelOptions } from './types'

/**
 * The network `options` ask for, resolved as `PixelCNN.create` would make it
 * (presets and defaults filled in, validated), so that `{ preset: 'gated-small' }`
 * and a checkpoint's full config compare; without building the network, so
 * no weight is initialised and no memory is needed for it. `device` and
 * `seed`, which `create` takes beside the network, are left out as it does.
 * An invalid config is the `ConfigError` that `create` would throw.
 */
export function requestedConfig(options: ModelOptions | CreateOptions): ModelConfig {
  const { device: _device, seed: _seed, ...model } = options as CreateOptions
  return JSON.parse(nativeSync(() => nativeBinding().resolveModelConfig(toConfigJson(model, 'model')))) as ModelConfig
}

export function checkSameNetwork(requested: ModelConfig, saved: ModelConfig, path: string, what: string): void {
  const fields = [...new Set([...Object.keys(requested), ...Object.keys(saved)])] as (keyof ModelConfig)[]
  const differing = fields.filter((k) => requested[k] !== saved[k])
  if (differing.length === 0) return
  const show = (v: unknown) => (v === undefined ? 'absent' : JSON.stringify(v))
  throw new ConfigError(
    `the network asked for by ${what} is ${JSON.stringify(requested)} but the checkpoint ${path} to resume holds ${JSON.stringify(saved)} ` +
      `(${differing.map((k) => `${k}: ${show(requested[k])} vs ${show(saved[k])}`).join(', ')}). ` +
      `Leave ${what} out to resume the checkpoint as it is, or write the new network to another path.`,
  )
}
