/**
 * The training-recipe flags of `pixelcnn train` (issue 23): `--recipe`,
 * `--schedule`, `--ema`, `--clip-grad-norm`, `--weight-decay`,
 * `--validate-every`, `--early-stopping`, `--best`. Each overrides the same
 * field of `--config`'s file, which overrides the recipe.
 */

import type { Grid } from '../grids'
import { ConfigError, nativeSync } from '../errors'
import { nativeBinding } from '../native'
import { toConfigJson } from '../options'
import type { FitOptions, Schedule, TrainOptions } from '../types'
import { type Args, number } from './args'

/** `--schedule constant | exponential:DECAY | step:EVERY:FACTOR | cosine:WARMUP[:TOTAL[:MIN]]`. */
export function parseSchedule(raw: string): Schedule {
  const [type, ...rest] = raw.split(':')
  const numbers = rest.map((v) => {
    const n = Number(v)
    if (v.trim() === '' || !Number.isFinite(n)) throw new ConfigError(`\`--schedule\`: ${JSON.stringify(v)} in ${JSON.stringify(raw)} is not a number`)
    return n
  })
  const arity = (min: number, max: number) => {
    if (numbers.length < min || numbers.length > max) throw new ConfigError(`\`--schedule ${type}\` takes ${min === max ? min : `${min} to ${max}`} numbers after the type, got ${JSON.stringify(raw)}`)
  }
  switch (type) {
    case 'constant':
      arity(0, 0)
      return { type: 'constant' }
    case 'exponential':
      arity(1, 1)
      return { type: 'exponential', decay: numbers[0] }
    case 'step':
      arity(2, 2)
      return { type: 'step', every: numbers[0], factor: numbers[1] }
    case 'cosine': {
      arity(1, 3)
      const [warmupSteps, totalSteps, minLearningRate] = numbers
      return { type: 'cosine', warmupSteps, ...(totalSteps !== undefined && { totalSteps }), ...(minLearningRate !== undefined && { minLearningRate }) }
    }
    default:
      throw new ConfigError(`\`--schedule\` must be constant, exponential:DECAY, step:EVERY:FACTOR or cosine:WARMUP[:TOTAL[:MIN]], got ${JSON.stringify(raw)}`)
  }
}

/** The recipe flags over the config file's fields. */
export function recipeOptions(args: Args, fromFile: Partial<TrainOptions>): Partial<FitOptions> {
  const options: Partial<FitOptions> = {}
  const recipe = args.recipe ?? fromFile.recipe
  if (recipe !== undefined) options.recipe = recipe as FitOptions['recipe']
  const schedule = typeof args.schedule === 'string' ? parseSchedule(args.schedule) : fromFile.schedule
  if (schedule !== undefined) options.schedule = schedule
  const fields = [
    ['ema', 'ema'],
    ['clip-grad-norm', 'clipGradNorm'],
    ['weight-decay', 'weightDecay'],
    ['validate-every', 'validateEvery'],
  ] as const
  for (const [flag, field] of fields) {
    const value = number(args, flag) ?? fromFile[field]
    if (value !== undefined) options[field] = value
  }
  const patience = number(args, 'early-stopping')
  if (patience !== undefined) options.earlyStopping = { ...fromFile.earlyStopping, patience }
  else if (fromFile.earlyStopping !== undefined) options.earlyStopping = fromFile.earlyStopping
  return options
}

/**
 * The CLI fits one epoch per call, so a cosine schedule without `totalSteps`
 * would end with each epoch: it is given the whole run's end instead,
 * `epochs` × the steps of an epoch at the batch size `fit` will use (the
 * recipe's, when it sets one).
 */
export function wholeRunSchedule(fit: Partial<FitOptions<Grid>>, epochs: number, trainCount: number): Schedule | undefined {
  const schedule = fit.schedule
  const { data: _data, onProgress: _onProgress, signal: _signal, logDir: _logDir, ...config } = fit
  const resolved = JSON.parse(nativeSync(() => nativeBinding().resolveTrainConfig(toConfigJson(config)))) as { batchSize: number; schedule: Schedule }
  const effective = schedule ?? resolved.schedule
  if (effective.type !== 'cosine' || effective.totalSteps !== undefined) return schedule
  return { ...effective, totalSteps: epochs * Math.ceil(trainCount / resolved.batchSize) }
}
