export { PixelCNN } from './model'
export { loadMnist, type MnistOptions } from './data/mnist'
export { loadFashionMnist, FASHION_MNIST_CLASSES, type FashionMnistOptions } from './data/fashion-mnist'
export { loadCifar10, CIFAR10_CLASSES, type Cifar10Options } from './data/cifar10'
export { loadImageFolder, type ImageFolder, type ImageFolderOptions } from './data/folder'
export { loadIdx, parseIdx, binarizeImages, type IdxImages } from './data/idx'
export { resolveCacheDir } from './data/cache'
export { loadTokens, writeTokens, type TokenGrid, type LoadTokensOptions } from './data/tokens'
export { loadConditions, loadMaps, type ConditionVectors, type ConditionMaps } from './data/conditions'
export type { DownloadProgress } from './data/download'
export type { DownloadDatasetOptions } from './data/sources'
export { binarize, SEED_THRESHOLD, type Binarization } from './data/binarize'
export type { Dataset } from './data/dataset'
export { writeImageGrid, renderImageGrid, type GridOptions } from './image-grid'
export { writeTrainingCurve, renderTrainingCurve, type CurveEpoch, type CurveOptions } from './training-curve'
export { sliceImages, type ImageBatch } from './images'
export { isTokenGrid, type Grid } from './grids'
export {
  PixelCNNError,
  ConfigError,
  DataError,
  CheckpointError,
  DeviceError,
  AbortError,
  BusyError,
  IoError,
  DistributedError,
  ResourceError,
  TrainingDivergedError,
  LibtorchError,
  type ErrorCode,
} from './errors'
export type * from './types'
export { libtorchInfo, matmulGflops } from './info'
