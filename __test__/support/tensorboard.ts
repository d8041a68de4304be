import { execFileSync } from 'node:child_process'
import * as path from 'node:path'

export interface TensorBoardRead {
  scalars: Record<string, { step: number; value: number }[]>
  images: Record<string, { step: number; width: number; height: number }[]>
}

/**
 * What the real `tensorboard` package's reader sees in the event files of
 * `logDir` (read_tensorboard.py), or `undefined` where no PyTorch
 * environment is configured (`npm test` sets PIXELCNN_PYTHON; the setup
 * installs tensorboard into it). Scalars come sorted by step: the training
 * log writes an epoch's steps between its throttled step events after them.
 */
export function readTensorBoard(logDir: string): TensorBoardRead | undefined {
  const python = process.env.PIXELCNN_PYTHON
  if (!python) return undefined
  const read = JSON.parse(execFileSync(python, [path.join(__dirname, 'read_tensorboard.py'), logDir], { encoding: 'utf8' })) as TensorBoardRead
  for (const events of Object.values(read.scalars)) events.sort((a, b) => a.step - b.step)
  return read
}
