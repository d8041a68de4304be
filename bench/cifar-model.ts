/** The CIFAR-shaped network of the benchmarks: 32×32×3, Gated PixelCNN, 10-component logistic mixture. */
export const CIFAR_BENCH_MODEL = {
  architecture: 'gated', output: 'logistic-mixture', mixtures: 10, height: 32, width: 32, channels: 3,
  filters: 64, layers: 6, inputKernel: 7, kernel: 3, outputLayers: 2,
} as const
