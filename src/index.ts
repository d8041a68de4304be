export { PixelCNN } from './model'
export { loadMnist, type MnistOptions } from './data/mnist'
export { binarize, SEED_THRESHOLD, type Binarization } from './data/binarize'
export type { Dataset } from './data/dataset'
export { writeImageGrid, renderImageGrid, type GridOptions } from './image-grid'
export { sliceImages, type ImageBatch } from './images'
export {
  PixelCNNError,
  ConfigError,
  DataError,
  CheckpointError,
  DeviceError,
  AbortError,
  BusyError,
  IoError,
  LibtorchError,
  type ErrorCode,
} from './errors'
export type * from './types'
export { libtorchInfo } from './info'
