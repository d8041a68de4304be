import type { ImageBatch } from '../images'

/** A labelled dataset split into training and test images. */
export interface Dataset {
  train: ImageBatch
  test: ImageBatch
  /** One label (0–9 for MNIST) per training image. */
  trainLabels: Uint8Array
  testLabels: Uint8Array
}
