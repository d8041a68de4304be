/** The CIFAR-shaped network of the benchmarks: 32×32×3, Gated PixelCNN, 10-component logistic mixture. */
export const CIFAR_BENCH_MODEL = {
  architecture: 'gated', output: 'logistic-mixture', mixtures: 10, height: 32, width: 32, channels: 3,
  filters: 64, layers: 6, inputKernel: 7, kernel: 3, outputLayers: 2,
} as const

/**
 * The prior-shaped network (issue 25): the same gated stacks over a 32×32 grid of 512 tokens, as a
 * PixelCNN prior over VQ-VAE codes is used; the tokens enter through an embedding of 64 (= filters).
 */
export const PRIOR_BENCH_MODEL = {
  architecture: 'gated', vocabulary: 512, height: 32, width: 32,
  filters: 64, layers: 6, inputKernel: 7, kernel: 3, outputLayers: 2,
} as const
