import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import type { ImageBatch, PixelCNN, TokenGrid } from '../../src/index'

/**
 * The probabilities that the plain PyTorch module in bench/pytorch computes
 * for `images` (and `labels`) after loading the checkpoint `file` by tensor
 * name, or `undefined` where no PyTorch is configured (`npm test` sets
 * PIXELCNN_PYTHON). `dir` holds the exchange files.
 */
export function pytorchProbabilities(file: string, images: ImageBatch | TokenGrid, dir: string, labels?: Uint8Array | Float32Array, what: 'probabilities' | 'logProbs' = 'probabilities'): Float32Array | undefined {
  const python = process.env.PIXELCNN_PYTHON
  if (!python) return undefined
  const imagesFile = path.join(dir, 'images.bin')
  const out = path.join(dir, 'probs.f32')
  // Token grids go as little-endian int32 (every platform Node runs on is little-endian).
  writeFileSync(imagesFile, images.data instanceof Uint8Array ? images.data : Int32Array.from(images.data))
  const args = [path.join(__dirname, '..', '..', 'bench', 'pytorch', 'check_checkpoint.py'), ...(what === 'logProbs' ? ['--log-probs'] : []), file, imagesFile, String(images.count), out]
  if (labels) {
    writeFileSync(path.join(dir, 'labels.bin'), labels)
    args.push(path.join(dir, 'labels.bin'))
  }
  execFileSync(python, args)
  const raw = readFileSync(out)
  return new Float32Array(raw.buffer.slice(raw.byteOffset, raw.byteOffset + raw.length))
}

/** The largest absolute difference of two equally long arrays (relative to `b`'s values with `relative`). */
export function largestDifference(a: ArrayLike<number>, b: ArrayLike<number>, { relative = false } = {}): number {
  let worst = 0
  for (let i = 0; i < a.length; i++) worst = Math.max(worst, Math.abs(a[i] - b[i]) / (relative ? Math.abs(b[i]) : 1))
  return worst
}

/**
 * Saves `model` as `dir/name.safetensors`, loads it by name into the PyTorch
 * module and returns the largest difference between its log-probabilities of
 * `probe` and the library's; `undefined` where no PyTorch is configured.
 */
/** `labels`: classes, or for a model with `conditionSize` its condition vectors (N×D). */
export async function logProbGapToPytorch<D extends ImageBatch | TokenGrid>(model: PixelCNN<D>, name: string, probe: D, dir: string, labels?: Uint8Array | Float32Array): Promise<number | undefined> {
  const file = path.join(dir, `${name}.safetensors`)
  await model.save(file)
  const theirs = pytorchProbabilities(file, probe, dir, labels, 'logProbs')
  if (!theirs) return undefined
  const given = labels instanceof Float32Array ? { conditions: labels } : { labels }
  return largestDifference(await model.logProbs(probe, given), theirs)
}
