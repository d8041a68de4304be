/**
 * `distributed: 'env'`: the group from the variables `torchrun` (and
 * `pixelcnn train --nproc`) set for each process.
 */

import { ConfigError } from './errors'
import type { DistributedOptions } from './types'

const VARIABLES = ['RANK', 'WORLD_SIZE', 'MASTER_ADDR', 'MASTER_PORT'] as const

function integer(env: NodeJS.ProcessEnv, name: (typeof VARIABLES)[number]): number {
  const raw = env[name]
  if (raw === undefined || raw === '') throw new ConfigError(`\`distributed: 'env'\` needs the environment variable ${name} (as torchrun sets it)`)
  const value = Number(raw)
  if (!Number.isInteger(value)) throw new ConfigError(`\`distributed: 'env'\`: ${name} must be an integer, got ${JSON.stringify(raw)}`)
  return value
}

export function distributedFromEnv(env: NodeJS.ProcessEnv = process.env): DistributedOptions {
  const masterAddr = env.MASTER_ADDR
  if (masterAddr === undefined || masterAddr === '') throw new ConfigError("`distributed: 'env'` needs the environment variable MASTER_ADDR (as torchrun sets it)")
  return { rank: integer(env, 'RANK'), worldSize: integer(env, 'WORLD_SIZE'), masterAddr, masterPort: integer(env, 'MASTER_PORT') }
}
