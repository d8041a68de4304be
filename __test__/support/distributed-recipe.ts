import { PixelCNN, type DistributedOptions } from '../../src/index'
import { stripedImages, TINY } from './images'

/**
 * Two epochs of a tiny network on 97 striped images (the last batch of 1
 * leaves one of two ranks without a share), global batch 16, one thread:
 * the losses of each epoch and p(x = 1) of 4 test images.
 */
export async function distributedRecipe(distributed?: DistributedOptions | 'env'): Promise<{ losses: number[]; probs: number[] }> {
  const data = { train: stripedImages(97, 8, 8, 1), test: stripedImages(32, 8, 8, 2) }
  const model = PixelCNN.create({ preset: 'small', ...TINY, device: 'cpu', seed: 3 })
  await model.fit({ data, epochs: 2, batchSize: 16, learningRate: 5e-3, seed: 7, threads: 1, distributed })
  const losses = model.history.flatMap((e) => [e.trainLoss, e.valLoss!])
  const probe = { ...data.test, count: 4, data: data.test.data.subarray(0, 4 * 64) }
  return { losses, probs: Array.from(await model.predict(probe, { threads: 1 })) }
}
