/**
 * The seed's PixelCNN (the Keras example in shared/seeds/000_*.txt) written
 * in pure TensorFlow.js with the low-level ops API and our own variables, as
 * a baseline for the libtorch core.
 *
 * Network (28×28×1 binary input, NHWC throughout):
 *   PixelConv mask A, 7×7, 1→128, ReLU, same             6,400 params
 *   5 × residual block                                 5 × 98,624
 *       1×1 conv 128→128 ReLU                             16,512
 *       PixelConv mask B, 3×3, 128→64, ReLU, same         73,792
 *       1×1 conv 64→128 ReLU                               8,320
 *       add the block input
 *   2 × PixelConv mask B, 1×1, 128→128, ReLU          2 × 16,512
 *   1×1 conv 128→1, sigmoid                                  129
 *                                               total    532,673
 *
 * Unlike the seed, which rewrites its kernel (`kernel.assign(kernel * mask)`)
 * on every call, a masked kernel here is multiplied by a fixed mask tensor
 * inside the forward computation, so the gradient reaches the kernel through
 * the mask (masked taps get a zero gradient) and the stored kernel is never
 * modified.
 */

import * as tf from '@tensorflow/tfjs'
import { mulberry32 } from '../../src/data/binarize'

export const HEIGHT = 28
export const WIDTH = 28
export const SEED_PARAMETER_COUNT = 532_673

/**
 * How the convolutions' gradients are computed in a training step.
 * - `stock`: tf.conv2d's registered gradient (Conv2DBackpropInput and
 *   Conv2DBackpropFilter kernels). The CPU backend's Conv2DBackpropFilter is a
 *   scalar JS loop; the wasm backend has no Conv2DBackpropFilter kernel.
 * - `workaround`: tf.customGrad; the filter gradient is a forward conv2d on
 *   transposed tensors (a matMul for 1×1 kernels), and the input gradient is
 *   tf.conv2d of dy with the kernel rotated by 180° and its in/out channels
 *   swapped. Only ops every backend has (pad, transpose, reverse, matMul,
 *   conv2d) are used.
 */
export type GradMode = 'stock' | 'workaround'

export interface Conv {
  name: string
  k: number
  cin: number
  cout: number
  /** [k, k, cin, cout] */
  kernel: tf.Variable<tf.Rank.R4>
  /** [cout] */
  bias: tf.Variable<tf.Rank.R1>
  /** Fixed causal mask [k, k, 1, 1] (broadcast over channels), or null for a plain conv. */
  mask: tf.Tensor4D | null
}

export interface PixelCNNModel {
  first: Conv
  blocks: { conv1: Conv; pixel: Conv; conv2: Conv }[]
  head: Conv[]
  out: Conv
  /** Every conv, in layer order. */
  convs: Conv[]
  /** Every trainable variable, in layer order. */
  variables: tf.Variable[]
}

/**
 * The causal mask of a k×k PixelConv, as in the seed: every row above the
 * centre is 1; in the centre row the taps left of the centre are 1; mask B
 * also keeps the centre tap (a layer may see its own position's features, but
 * mask A, used on the raw image, must not see the pixel it predicts). All
 * other taps (right of the centre, rows below) are 0. For k = 1 mask B is all
 * ones, which is why the seed's 1×1 "PixelConv" layers are plain 1×1 convs.
 */
export function causalMask(k: number, type: 'A' | 'B'): tf.Tensor4D {
  const c = k >> 1
  const values = new Float32Array(k * k)
  for (let r = 0; r < k; r++) {
    for (let col = 0; col < k; col++) {
      values[r * k + col] = r < c || (r === c && (col < c || (type === 'B' && col === c))) ? 1 : 0
    }
  }
  return tf.tensor4d(values, [k, k, 1, 1])
}

function makeConv(name: string, k: number, cin: number, cout: number, seed: number, mask: 'A' | 'B' | null): Conv {
  // Keras Conv2D defaults: glorot_uniform kernel (fan_in = k·k·cin,
  // fan_out = k·k·cout), zero bias.
  const limit = Math.sqrt(6 / (k * k * cin + k * k * cout))
  const kernel = tf.variable(tf.randomUniform([k, k, cin, cout], -limit, limit, 'float32', seed), true, `${name}/kernel`) as tf.Variable<tf.Rank.R4>
  const bias = tf.variable(tf.zeros([cout]), true, `${name}/bias`) as tf.Variable<tf.Rank.R1>
  return { name, k, cin, cout, kernel, bias, mask: mask ? causalMask(k, mask) : null }
}

let modelsBuilt = 0

/**
 * Builds the seed network with seeded Glorot-uniform kernels and zero biases.
 * Variable names get a per-model prefix, since tfjs variable names are global.
 */
export function buildModel(seed = 0): PixelCNNModel {
  let s = seed * 1000
  const prefix = `pixelcnn${modelsBuilt++}`
  const first = makeConv(`${prefix}/pixel_conv_A`, 7, 1, 128, ++s, 'A')
  const blocks = Array.from({ length: 5 }, (_, i) => ({
    conv1: makeConv(`${prefix}/res${i}/conv1`, 1, 128, 128, ++s, null),
    pixel: makeConv(`${prefix}/res${i}/pixel_conv_B`, 3, 128, 64, ++s, 'B'),
    conv2: makeConv(`${prefix}/res${i}/conv2`, 1, 64, 128, ++s, null),
  }))
  const head = [0, 1].map((i) => makeConv(`${prefix}/head${i}/pixel_conv_B`, 1, 128, 128, ++s, 'B'))
  const out = makeConv(`${prefix}/out`, 1, 128, 1, ++s, null)
  const convs = [first, ...blocks.flatMap((b) => [b.conv1, b.pixel, b.conv2]), ...head, out]
  const model: PixelCNNModel = { first, blocks, head, out, convs, variables: convs.flatMap((c) => [c.kernel, c.bias]) }
  const count = parameterCount(model)
  if (count !== SEED_PARAMETER_COUNT) {
    throw new Error(`parameter count ${count} differs from the seed's ${SEED_PARAMETER_COUNT}`)
  }
  return model
}

export function parameterCount(model: PixelCNNModel): number {
  return model.variables.reduce((sum, v) => sum + v.size, 0)
}

export function disposeModel(model: PixelCNNModel): void {
  for (const v of model.variables) v.dispose()
  for (const c of model.convs) c.mask?.dispose()
}

/**
 * Filter gradient of a stride-1 'same' convolution without Conv2DBackpropFilter:
 *   dW[i, j, ci, co] = Σ_{n,h,w} xpad[n, h+i, w+j, ci] · dy[n, h, w, co]
 * That sum is itself a 'valid' convolution once batch and channels swap
 * roles: take xpad as cin images of (H+2p)×(W+2p) with N channels, and dy as
 * an H×W filter from N to cout channels; the output is [cin, k, k, cout].
 * For k = 1 it is one matMul, dyᵀ [cout, NHW] × x [NHW, cin], taken in the
 * plain orientation because the wasm backend runs matMul with
 * transposeA = true on a slow path (about 8× slower here). Both forms beat
 * im2col (one matMul per tap over sliced copies of x) on both backends.
 */
export function conv2dFilterGrad(x: tf.Tensor4D, dy: tf.Tensor4D, k: number): tf.Tensor4D {
  return tf.tidy(() => {
    const [n, h, w, cin] = x.shape
    const cout = dy.shape[3]
    if (k === 1) {
      const dyT = tf.transpose(tf.reshape(dy, [n * h * w, cout])) // [cout, NHW]
      const g = tf.matMul(dyT, tf.reshape(x, [n * h * w, cin])) // [cout, cin]
      return tf.reshape(tf.transpose(g), [1, 1, cin, cout])
    }
    const p = k >> 1
    const xpad = tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]]) // [N, H+2p, W+2p, cin]
    const xT = tf.transpose(xpad, [3, 1, 2, 0]) as tf.Tensor4D // [cin, H+2p, W+2p, N]
    const dyT = tf.transpose(dy, [1, 2, 0, 3]) as tf.Tensor4D // [H, W, N, cout]
    const g = tf.conv2d(xT, dyT, 1, 'valid') // [cin, k, k, cout]
    return tf.transpose(g, [1, 2, 0, 3]) as tf.Tensor4D // [k, k, cin, cout]
  })
}

/**
 * Input gradient of a stride-1 'same' convolution with odd k, as a forward
 * convolution: dx = conv2d(dy, W'), W'[i, j, co, ci] = W[k-1-i, k-1-j, ci, co].
 */
export function conv2dInputGrad(dy: tf.Tensor4D, w: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => {
    const flipped = tf.transpose(tf.reverse(w, [0, 1]), [0, 1, 3, 2]) // [k, k, cout, cin]
    return tf.conv2d(dy, flipped as tf.Tensor4D, 1, 'same')
  })
}

/** tf.conv2d (stride 1, 'same') whose gradients avoid Conv2DBackpropFilter/Input. */
const conv2dWorkaround = tf.customGrad((...args: (tf.Tensor | tf.GradSaveFunc)[]) => {
  const [x, w, save] = args as [tf.Tensor4D, tf.Tensor4D, tf.GradSaveFunc]
  save([x, w])
  const value = tf.conv2d(x, w, 1, 'same')
  const gradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => {
    const [sx, sw] = saved as [tf.Tensor4D, tf.Tensor4D]
    const dy4 = dy as tf.Tensor4D
    return [conv2dInputGrad(dy4, sw), conv2dFilterGrad(sx, dy4, sw.shape[0])]
  }
  return { value, gradFunc }
}) as (x: tf.Tensor4D, w: tf.Tensor4D) => tf.Tensor4D

function conv(c: Conv, x: tf.Tensor4D, mode: GradMode): tf.Tensor4D {
  // The mask multiplication is part of the differentiated computation.
  const w = c.mask ? tf.mul(c.kernel, c.mask) as tf.Tensor4D : c.kernel
  const y = mode === 'stock' ? tf.conv2d(x, w, 1, 'same') : conv2dWorkaround(x, w)
  return tf.add(y, c.bias)
}

/**
 * x: [N, 28, 28, 1] float (0/1) → logits [N, 28, 28, 1]; sigmoid(logits) is
 * the seed model's output, p(pixel = 1 | pixels before it in raster order).
 */
export function forward(model: PixelCNNModel, x: tf.Tensor4D, mode: GradMode = 'stock'): tf.Tensor4D {
  // Each layer in its own tidy, and the previous activation disposed as soon
  // as it is used, so that inference holds a few activations at a time rather
  // than every intermediate of the pass. (Under a gradient tape the tape keeps
  // what backprop needs, so this is safe in training too.)
  const step = (prev: tf.Tensor4D, f: () => tf.Tensor4D): tf.Tensor4D => {
    const next = tf.tidy(f)
    if (prev !== x) prev.dispose()
    return next
  }
  let h = step(x, () => tf.relu(conv(model.first, x, mode))) // [N, 28, 28, 128]
  for (const b of model.blocks) {
    h = step(h, () => {
      let t = tf.relu(conv(b.conv1, h, mode)) // [N, 28, 28, 128]
      t = tf.relu(conv(b.pixel, t, mode)) // [N, 28, 28, 64]
      t = tf.relu(conv(b.conv2, t, mode)) // [N, 28, 28, 128]
      return tf.add(h, t)
    })
  }
  for (const c of model.head) h = step(h, () => tf.relu(conv(c, h, mode)))
  return step(h, () => conv(model.out, h, mode)) // [N, 28, 28, 1] logits
}

/** The seed model's output: per-pixel probabilities [N, 28, 28, 1]. */
export function predictProbabilities(model: PixelCNNModel, x: tf.Tensor4D): tf.Tensor4D {
  return tf.tidy(() => tf.sigmoid(forward(model, x)))
}

/**
 * Binary cross-entropy of the model's predictions against the image itself,
 * mean over pixels (computed from logits, which equals Keras's
 * binary_crossentropy on sigmoid outputs up to its 1e-7 clipping).
 */
export function loss(model: PixelCNNModel, x: tf.Tensor4D, mode: GradMode = 'stock'): tf.Scalar {
  return tf.tidy(() => tf.losses.sigmoidCrossEntropy(x, forward(model, x, mode)) as tf.Scalar)
}

/** The seed's optimizer: Adam, learning rate 5e-4. */
export function makeOptimizer(): tf.Optimizer {
  return tf.train.adam(5e-4)
}

/** One optimizer step on batch x; returns the loss before the update. */
export function trainStep(model: PixelCNNModel, optimizer: tf.Optimizer, x: tf.Tensor4D, mode: GradMode = 'stock'): number {
  const cost = optimizer.minimize(() => loss(model, x, mode), true, model.variables)
  const value = cost!.dataSync()[0]
  cost!.dispose()
  return value
}

/** The seeded uniform generator of the library's own binarization, for the Bernoulli draws. */
export { mulberry32 }

export interface NaiveSampleResult {
  /** [count, 28, 28] pixels, 0/1; pixels after the last one drawn stay 0. */
  images: Float32Array
  /** Pixels drawn (784 unless maxPixels stopped the loop). */
  pixels: number
  seconds: number
  /** Wall time of each pixel's step (forward pass + draw). */
  pixelSeconds: number[]
  /** seconds / pixels. */
  secondsPerPixel: number
}

/**
 * The seed's sampling loop: start from all-zero images; for each of the 784
 * pixels in raster order run a full forward pass over the whole batch, read
 * p at that pixel and set it to ceil(p − u), u ~ U[0, 1), i.e. 1 with
 * probability p. (The seed's Keras predict() splits the batch into chunks of
 * 32; here the batch goes through in one pass.) With maxPixels the loop stops
 * early so that a full run can be extrapolated from secondsPerPixel.
 */
export function sampleNaive(model: PixelCNNModel, count: number, seed: number, maxPixels = HEIGHT * WIDTH): NaiveSampleResult {
  const uniform = mulberry32(seed)
  const images = new Float32Array(count * HEIGHT * WIDTH)
  const total = Math.min(maxPixels, HEIGHT * WIDTH)
  const pixelSeconds: number[] = []
  const started = performance.now()
  for (let p = 0; p < total; p++) {
    const t0 = performance.now()
    const row = Math.floor(p / WIDTH)
    const col = p % WIDTH
    const probs = tf.tidy(() => {
      const x = tf.tensor4d(images, [count, HEIGHT, WIDTH, 1])
      return tf.sigmoid(tf.slice(forward(model, x), [0, row, col, 0], [count, 1, 1, 1]))
    })
    const values = probs.dataSync()
    probs.dispose()
    for (let n = 0; n < count; n++) images[n * HEIGHT * WIDTH + p] = values[n] - uniform() > 0 ? 1 : 0 // ceil(p − u)
    pixelSeconds.push((performance.now() - t0) / 1000)
  }
  const seconds = (performance.now() - started) / 1000
  return { images, pixels: total, seconds, pixelSeconds, secondsPerPixel: seconds / total }
}
