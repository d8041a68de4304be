/**
 * A training run that checkpoints after every step and resumes from its
 * checkpoint: the crash-safety spec kills it with SIGKILL at random moments.
 * usage: train-child.ts CHECKPOINT EPOCHS
 */
import { PixelCNN } from '../../src/index'
import { stripedImages, TINY } from './images'

const [checkpoint, epochs] = process.argv.slice(2)
PixelCNN.train({
  data: { train: stripedImages(256, 8, 8, 1), test: stripedImages(32, 8, 8, 2) },
  model: TINY, device: 'cpu', threads: 1, seed: 11, batchSize: 16, learningRate: 2e-3,
  epochs: Number(epochs),
  checkpoint: { path: checkpoint, every: 1 },
  resume: true,
  onProgress: (e) => { if (e.type === 'step') process.stdout.write(`step ${e.epoch}.${e.step}\n`) },
}).then(
  () => process.stdout.write('done\n'),
  (error) => { console.error(error); process.exit(1) },
)
