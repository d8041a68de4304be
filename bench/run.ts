/**
 * `npm run bench`: every competitor in turn, each in its own process, on the
 * same machine and the same kind of input (random binary images, seeded):
 * this library (libtorch core through Node), PyTorch eager (Python, the
 * framework the core wraps), and the seed network in pure TensorFlow.js on
 * its CPU and wasm backends. Prints one table of ratios against this library.
 *
 * Then the same for the gated preset (Gated PixelCNN, 553,793 parameters)
 * against the same network in PyTorch eager.
 *
 * This library sets glibc's malloc up for large tensors (one arena, blocks up
 * to 1 GiB recycled instead of mmapped afresh: crates/pixelcnn-core/src/allocator.rs).
 * For a fair view the gated table also runs PyTorch with the same settings
 * (through GLIBC_TUNABLES) and this library with glibc's defaults.
 *
 * Then a CIFAR-shaped model (32×32×3, gated, logistic mixture) against the same network in PyTorch eager, and
 * the prior-shaped one (issue 25: a 32×32 grid of 512 tokens, gated, through an embedding) likewise.
 *
 * Then PixelCNN++ (issue 22): `pixelcnn++-small` and the full `pixelcnn++` preset at 32×32×3, training batch 16 with
 * dropout, against the same network in PyTorch eager, torch.compile and (on a CPU with native bf16) autocast bf16
 * (bench/pixelcnn-pp.ts, bench/pytorch/bench_pixelcnn_pp.py), the competitors of each preset run alternately.
 * PIXELCNN_BENCH_PP_PRESETS: which presets (default `pixelcnn++-small,pixelcnn++`);
 * PIXELCNN_BENCH_PP_TORCH_MODES / PIXELCNN_BENCH_PP_FULL_TORCH_MODES: PyTorch's configurations for the small and the
 * full preset (defaults `eager,bf16,compile,compile+bf16` and `eager,bf16`: compiling the full network takes many
 * minutes on a small CPU); PIXELCNN_BENCH_PP_ROUNDS: times to run the alternation (default 1; more: each
 * competitor's best round by training speed); PIXELCNN_BENCH_QUIET_WAIT: seconds to wait at most, before each of
 * its competitors, for the machine to be quiet (default 0).
 *
 * PIXELCNN_BENCH_SKIP: comma-separated competitors to leave out (pixelcnn-dense, pytorch, tfjs-cpu, tfjs-wasm, gated,
 * pytorch-tuned-malloc, pixelcnn-default-malloc, pixelcnn-bf16, pixelcnn-gated-bf16, cifar, and in the PixelCNN++
 * table pixelcnn-pp-small, pixelcnn-pp-small-bf16, pytorch-pp-small-eager, pytorch-pp-small-bf16,
 * pytorch-pp-small-compile, pytorch-pp-small-compile+bf16 and the same with `full` for the full preset), or a whole
 * table: `seed`, `gated`, `cifar`, `prior`, `pixelcnn-pp`.
 * PIXELCNN_BENCH_ONLY: comma-separated tables to run, the others left out (e.g. `pixelcnn-pp`: that table alone).
 *
 * Each table is followed by the precision comparison (issue 12): PyTorch eager,
 * torch.compile, and both under autocast bf16, against this library in fp32 and bf16.
 */

import { execFileSync } from 'node:child_process'
import * as path from 'node:path'
import { describeMachine } from './machine'
import { pixelcnnPpTable } from './pixelcnn-pp-table'
import { libtorchInfo } from '../src/index'

const root = path.join(__dirname, '..')
const skip = new Set((process.env.PIXELCNN_BENCH_SKIP ?? '').split(',').filter(Boolean))
const only = new Set((process.env.PIXELCNN_BENCH_ONLY ?? '').split(',').filter(Boolean))
/** Whether a whole table runs: not skipped, and named by PIXELCNN_BENCH_ONLY when that is set. */
const table = (name: 'seed' | 'gated' | 'cifar' | 'prior' | 'pixelcnn-pp') => !skip.has(name) && (only.size === 0 || only.has(name))
const threads = Number(process.env.PIXELCNN_BENCH_THREADS ?? require('node:os').availableParallelism())

/** Runs a competitor and parses the JSON object on its last line of output. */
function run(name: string, command: string, args: string[], env: NodeJS.ProcessEnv = {}): Record<string, unknown> | null {
  if (skip.has(name)) return null
  process.stderr.write(`running ${name}…\n`)
  const started = Date.now()
  try {
    const out = execFileSync(command, args, { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 26 })
    const last = out.trim().split('\n').pop() ?? '{}'
    process.stderr.write(`  ${name}: ${((Date.now() - started) / 1000).toFixed(0)} s\n`)
    return JSON.parse(last) as Record<string, unknown>
  } catch (error) {
    process.stderr.write(`  ${name} failed: ${(error as Error).message.split('\n')[0]}\n`)
    return { error: (error as Error).message.split('\n')[0] }
  }
}

/** allocator.rs's settings, as glibc reads them from the environment at process start. */
const TUNED_MALLOC = 'glibc.malloc.arena_max=1:glibc.malloc.mmap_threshold=1073741824:glibc.malloc.trim_threshold=2147483647'

const num = (v: unknown): number | undefined => (typeof v === 'number' && Number.isFinite(v) ? v : undefined)
const fmt = (v: number | undefined, digits = 2) => (v === undefined ? '–' : v >= 100 ? v.toFixed(0) : v.toPrecision(3))

function main() {
  const python = process.env.PIXELCNN_PYTHON ?? 'python3'
  console.log(`machine: ${describeMachine()}`)
  if (table('seed')) seed(python)
  gated(python)
  cifar(python)
  prior(python)
  pixelcnnPp(python)
}

/** The seed network: this library against PyTorch eager and TensorFlow.js. */
function seed(python: string) {
  const ours = run('pixelcnn', process.execPath, ['--import', 'tsx', 'bench/ours.ts'], { PIXELCNN_BENCH_THREADS: String(threads) })
  const oursDense = run('pixelcnn-dense', process.execPath, ['--import', 'tsx', 'bench/ours.ts'], { PIXELCNN_BENCH_THREADS: String(threads), PIXELCNN_MASKED_CONV: 'dense', PIXELCNN_BENCH_REFERENCE_ROWS: '1' })
  const oursBf16 = run('pixelcnn-bf16', process.execPath, ['--import', 'tsx', 'bench/ours.ts'], { PIXELCNN_BENCH_THREADS: String(threads), PIXELCNN_BENCH_PRECISION: 'bf16', PIXELCNN_BENCH_REFERENCE_ROWS: '0' })
  const torch = run('pytorch', python, ['bench/pytorch/bench.py', '--threads', String(threads), '--modes', TORCH_MODES])
  const tfCpu = run('tfjs-cpu', process.execPath, ['--import', 'tsx', 'bench/tfjs-baseline/run.ts', '--backend', 'cpu', '--json'])
  const tfWasm = run('tfjs-wasm', process.execPath, ['--import', 'tsx', 'bench/tfjs-baseline/run.ts', '--backend', 'wasm', '--json'])
  if (!ours || 'error' in ours) throw new Error('the pixelcnn run failed')

  type Row = { name: string; train?: number; trainNote?: string; forward?: number; sample?: number; sampleNote?: string; rss?: number }
  const rows: Row[] = [
    { name: 'pixelcnn (this library), fast sampler', train: num(ours.trainImagesPerSecond), forward: num(ours.forwardSeconds81), sample: num(ours.sampleFast81Seconds), rss: num(ours.peakRssMiB), trainNote: 'masked convolutions without their zero rows' },
    { name: 'pixelcnn, reference sampler', sample: num(ours.sampleReference81Seconds), sampleNote: ours.referenceExtrapolatedFromRows ? `extrapolated from ${ours.referenceExtrapolatedFromRows} rows` : undefined },
  ]
  if (oursDense && !('error' in oursDense)) rows.push({ name: 'pixelcnn, dense masked convolutions', train: num(oursDense.trainImagesPerSecond), forward: num(oursDense.forwardSeconds81), rss: num(oursDense.peakRssMiB), trainNote: 'PIXELCNN_MASKED_CONV=dense' })
  if (torch && !('error' in torch)) {
    rows.push({ name: `PyTorch ${torch.torch} eager (Python), naive sampling loop`, train: num(torch.trainImagesPerSecond), trainNote: `best layout: ${torch.bestMemoryFormat}`, forward: num(torch.forwardSeconds81), sample: num(torch.sample81Seconds), sampleNote: `extrapolated from ${torch.sampleExtrapolatedFromPasses} passes`, rss: num(torch.peakRssMiB) })
  }
  for (const [label, tf] of [['tfjs CPU backend', tfCpu], ['tfjs wasm backend', tfWasm]] as const) {
    if (!tf) continue
    if ('error' in tf) {
      rows.push({ name: `${label}: failed`, trainNote: String(tf.error) })
      continue
    }
    const train = tf.trainImagesPerSecond as Record<string, { value?: number | null; batch?: number; note?: string; error?: string }>
    const sample = tf.sample81Seconds as { value?: number; extrapolatedFromPixels?: number }
    rows.push({ name: `${label}, stock gradients`, train: num(train?.stock?.value), trainNote: train?.stock?.note ?? train?.stock?.error ?? (train?.stock?.batch ? `batch ${train.stock.batch}` : undefined), forward: num(tf.forwardSeconds81), sample: num(sample?.value), sampleNote: sample?.extrapolatedFromPixels ? `naive loop, extrapolated from ${sample.extrapolatedFromPixels} passes` : undefined, rss: num(tf.peakRssMiB) })
    if (train?.workaround) rows.push({ name: `${label}, custom filter gradient`, train: num(train.workaround.value), trainNote: train.workaround.batch ? `batch ${train.workaround.batch}` : undefined })
  }

  const base = rows[0]
  const ratio = (ourValue: number | undefined, theirs: number | undefined, higherIsBetter: boolean) =>
    ourValue === undefined || theirs === undefined ? '' : ` (${fmt(higherIsBetter ? ourValue / theirs : theirs / ourValue)}×)`
  const flopsPerTrainImage = 3 * 0.83e9
  console.log(`threads: ${threads}; fp32 matmul ceiling (2048², libtorch): ${fmt(num(ours.ceilingGflops))} GFLOP/s`)
  console.log(`pixelcnn training: ${fmt(((num(ours.trainImagesPerSecond) ?? 0) * flopsPerTrainImage) / 1e9)} GFLOP/s of the network's dense FLOPs (3 × 0.83 GFLOP per image) = ${fmt(((num(ours.trainImagesPerSecond) ?? 0) * flopsPerTrainImage) / 1e9 / (num(ours.ceilingGflops) ?? 1) * 100)}% of the ceiling\n`)
  console.log('ratios in parentheses: how many times faster this library is (training, forward, sampling)\n')
  console.log('| competitor | training images/s, batch 128 | forward, batch 81 (s) | sampling 81 images (s) | peak RSS (MiB) |')
  console.log('|---|---:|---:|---:|---:|')
  for (const r of rows) {
    const train = r.train === undefined ? (r.trainNote && !r.forward ? r.trainNote : '–') : `${fmt(r.train)}${r === base ? '' : ratio(base.train, r.train, true)}${r.trainNote ? ` [${r.trainNote}]` : ''}`
    const forward = r.forward === undefined ? '–' : `${fmt(r.forward, 3)}${r === base ? '' : ratio(base.forward, r.forward, false)}`
    const sample = r.sample === undefined ? '–' : `${fmt(r.sample)}${r === base ? '' : ratio(base.sample, r.sample, false)}${r.sampleNote ? ` [${r.sampleNote}]` : ''}`
    console.log(`| ${r.name} | ${train} | ${forward} | ${sample} | ${r.rss === undefined ? '–' : fmt(r.rss)} |`)
  }
  precisionTable('seed network', ours, oursBf16, torch)
}

/**
 * PyTorch's configurations besides eager fp32, measured by bench.py --modes.
 * PIXELCNN_BENCH_TORCH_MODES overrides them (e.g. `compile` on a CPU without
 * bf16 instructions, where autocast bf16 is emulated and takes many minutes).
 */
const TORCH_MODES = process.env.PIXELCNN_BENCH_TORCH_MODES ?? 'compile,bf16,compile+bf16'

/**
 * Issue 12's comparison: this library in fp32 and bf16 against PyTorch eager,
 * torch.compile, and both under autocast bf16, with the ratios against the
 * best PyTorch row, and the machine's fp32 and bf16 matmul ceilings.
 */
function precisionTable(what: string, ours: Record<string, unknown>, oursBf16: Record<string, unknown> | null, torch: Record<string, unknown> | null) {
  type Row = { name: string; train?: number; forward?: number; note?: string }
  const theirs: Row[] = []
  if (torch && !('error' in torch)) {
    theirs.push({ name: `PyTorch ${torch.torch} eager fp32`, train: num(torch.trainImagesPerSecond), forward: num(torch.forwardSeconds81), note: `layout ${torch.bestMemoryFormat}` })
    const modes = (torch.modes ?? {}) as Record<string, Record<string, unknown>>
    const names: Record<string, string> = { compile: 'torch.compile fp32', bf16: 'eager, autocast bf16', 'compile+bf16': 'torch.compile, autocast bf16' }
    for (const [mode, r] of Object.entries(modes)) {
      theirs.push('error' in r ? { name: `PyTorch ${names[mode] ?? mode}`, note: `failed: ${r.error}` } : { name: `PyTorch ${names[mode] ?? mode}`, train: num(r.trainImagesPerSecond), forward: num(r.forwardSeconds81), note: mode.includes('compile') ? `first step ${fmt(num(r.firstStepSeconds))} s` : undefined })
    }
  }
  const mine: Row[] = [{ name: 'pixelcnn fp32', train: num(ours.trainImagesPerSecond), forward: num(ours.forwardSeconds81) }]
  if (oursBf16) mine.push('error' in oursBf16 ? { name: 'pixelcnn bf16', note: `failed: ${oursBf16.error}` } : { name: 'pixelcnn bf16', train: num(oursBf16.trainImagesPerSecond), forward: num(oursBf16.forwardSeconds81), note: `fast sampling 81: ${fmt(num(oursBf16.sampleFast81Seconds))} s` })
  const bestTrain = Math.max(...theirs.map((r) => r.train ?? 0))
  const bestForward = Math.min(...theirs.map((r) => r.forward ?? Infinity))
  console.log(`\n${what}: precision and compilation, ratios against the best PyTorch row (training ${fmt(bestTrain)} images/s, forward ${fmt(bestForward, 3)} s)`)
  console.log(`matmul ceilings (2048², libtorch): fp32 ${fmt(num(ours.ceilingGflops))} GFLOP/s, bf16 ${fmt(num(ours.ceilingBf16Gflops))} GFLOP/s\n`)
  console.log('| configuration | training images/s, batch 128 | × best PyTorch | forward, batch 81 (s) | × best PyTorch | note |')
  console.log('|---|---:|---:|---:|---:|---|')
  for (const r of [...theirs, ...mine]) {
    const trainRatio = r.train && bestTrain > 0 ? `${fmt(r.train / bestTrain)}×` : '–'
    const forwardRatio = r.forward && Number.isFinite(bestForward) ? `${fmt(bestForward / r.forward)}×` : '–'
    console.log(`| ${r.name} | ${fmt(r.train)} | ${trainRatio} | ${fmt(r.forward, 3)} | ${forwardRatio} | ${r.note ?? ''} |`)
  }
  const fast = num(ours.sampleFast81Seconds)
  const forward = num(ours.forwardSeconds81)
  if (fast && forward) console.log(`fast sampler, fp32: ${fmt(fast / forward)} forward passes of time for 81 images`)
}

/** The gated preset: this library against the same network in PyTorch eager. */
function gated(python: string) {
  if (!table('gated')) return
  const ours = run('pixelcnn gated', process.execPath, ['--import', 'tsx', 'bench/ours.ts'], { PIXELCNN_BENCH_THREADS: String(threads), PIXELCNN_BENCH_PRESET: 'gated' })
  const oursBf16 = run('pixelcnn-gated-bf16', process.execPath, ['--import', 'tsx', 'bench/ours.ts'], { PIXELCNN_BENCH_THREADS: String(threads), PIXELCNN_BENCH_PRESET: 'gated', PIXELCNN_BENCH_PRECISION: 'bf16', PIXELCNN_BENCH_REFERENCE_ROWS: '0' })
  const torch = run('pytorch gated', python, ['bench/pytorch/bench.py', '--threads', String(threads), '--architecture', 'gated', '--modes', TORCH_MODES])
  if (!ours || 'error' in ours) throw new Error('the pixelcnn gated run failed')
  const train = num(ours.trainImagesPerSecond)
  const forward = num(ours.forwardSeconds81)
  const fast = num(ours.sampleFast81Seconds)
  const reference = num(ours.sampleReference81Seconds)
  console.log(`\ngated preset (Gated PixelCNN, ${Number(ours.parameterCount).toLocaleString('en')} parameters), batch 128 training, 81 images for forward and sampling\n`)
  console.log('| competitor | training images/s | forward, batch 81 (s) | sampling 81 images (s) | peak RSS (MiB) |')
  console.log('|---|---:|---:|---:|---:|')
  console.log(`| pixelcnn gated, fast sampler | ${fmt(train)} | ${fmt(forward, 3)} | ${fmt(fast)} | ${fmt(num(ours.peakRssMiB))} |`)
  console.log(`| pixelcnn gated, reference sampler | – | – | ${fmt(reference)} [extrapolated from ${ours.referenceExtrapolatedFromRows} rows] (${fmt(reference && fast ? reference / fast : undefined)}× slower than fast) | – |`)
  const ratios = (theirTrain?: number, theirForward?: number) =>
    `${fmt(theirTrain)} (ours ${fmt(train && theirTrain ? train / theirTrain : undefined)}×) | ${fmt(theirForward, 3)} (ours ${fmt(forward && theirForward ? theirForward / forward : undefined)}×)`
  if (torch && !('error' in torch)) {
    console.log(`| PyTorch ${torch.torch} eager gated [best layout: ${torch.bestMemoryFormat}] | ${ratios(num(torch.trainImagesPerSecond), num(torch.forwardSeconds81))} | ${fmt(num(torch.sample81Seconds))} [naive loop, extrapolated] | ${fmt(num(torch.peakRssMiB))} |`)
  }
  const torchTuned = run('pytorch-tuned-malloc', python, ['bench/pytorch/bench.py', '--threads', String(threads), '--architecture', 'gated', '--sample-passes', '2'], { GLIBC_TUNABLES: TUNED_MALLOC })
  if (torchTuned && !('error' in torchTuned)) {
    console.log(`| PyTorch eager gated, this library's malloc settings [GLIBC_TUNABLES; best layout: ${torchTuned.bestMemoryFormat}] | ${ratios(num(torchTuned.trainImagesPerSecond), num(torchTuned.forwardSeconds81))} | – | ${fmt(num(torchTuned.peakRssMiB))} |`)
  }
  const oursDefault = run('pixelcnn-default-malloc', process.execPath, ['--import', 'tsx', 'bench/ours.ts'], { PIXELCNN_BENCH_THREADS: String(threads), PIXELCNN_BENCH_PRESET: 'gated', PIXELCNN_MALLOC: 'default', PIXELCNN_CPU_CACHE: 'off', PIXELCNN_BENCH_REFERENCE_ROWS: '1' })
  if (oursDefault && !('error' in oursDefault)) {
    console.log(`| pixelcnn gated without its memory settings [PIXELCNN_MALLOC=default PIXELCNN_CPU_CACHE=off] | ${ratios(num(oursDefault.trainImagesPerSecond), num(oursDefault.forwardSeconds81))} | ${fmt(num(oursDefault.sampleFast81Seconds))} | ${fmt(num(oursDefault.peakRssMiB))} |`)
  }
  console.log(`fast sampler: ${fmt(fast && forward ? fast / forward : undefined)} forward passes of time for 81 images; ${fmt(reference && fast ? reference / fast : undefined)}× the reference loop`)
  precisionTable('gated preset', ours, oursBf16, torch)
}

/**
 * A CIFAR-shaped model (32×32×3 gated, 10-component logistic mixture, issue
 * 13): training against the same network in PyTorch eager, and the fast
 * sampler against the reference loop for 64 images.
 */
/**
 * The prior-shaped model (issue 25: a 32×32 grid of 512 tokens, gated, through an embedding): training grids/s
 * against the same network in PyTorch eager, in fp32 and (where the CPU computes bf16 natively) bf16 against
 * autocast bf16, and the fast sampler against the reference loop.
 */
function prior(python: string) {
  if (!table('prior')) return
  const bf16 = libtorchInfo().cpuBf16Native
  const rows: string[] = []
  let fp32: Record<string, unknown> | null = null
  for (const precision of bf16 ? ['fp32', 'bf16'] : ['fp32']) {
    const ours = run(`pixelcnn prior-shaped ${precision}`, process.execPath, ['--import', 'tsx', 'bench/cifar.ts'], { PIXELCNN_BENCH_THREADS: String(threads), PIXELCNN_BENCH_SHAPE: 'prior', PIXELCNN_BENCH_PRECISION: precision })
    const torch = run(`pytorch prior-shaped ${precision}`, python, ['bench/pytorch/bench_cifar.py', '--threads', String(threads), '--shape', 'prior', ...(precision === 'bf16' ? ['--bf16'] : [])])
    if (!ours || 'error' in ours) throw new Error(`the pixelcnn prior-shaped ${precision} run failed`)
    if (precision === 'fp32') fp32 = ours
    const [train, forward] = [num(ours.trainImagesPerSecond), num(ours.forwardSeconds64)]
    rows.push(`| pixelcnn, ${precision} | ${fmt(train)} | ${fmt(forward, 3)} | ${fmt(num(ours.sampleFast64Seconds))} | ${fmt(num(ours.peakRssMiB))} |`)
    if (torch && !('error' in torch)) {
      const [theirTrain, theirForward] = [num(torch.trainImagesPerSecond), num(torch.forwardSeconds64)]
      rows.push(`| PyTorch ${torch.torch} eager${precision === 'bf16' ? ' + autocast bf16' : ''} [${torch.memoryFormat}] | ${fmt(theirTrain)} (ours ${fmt(train && theirTrain ? train / theirTrain : undefined)}×) | ${fmt(theirForward, 3)} (ours ${fmt(forward && theirForward ? theirForward / forward : undefined)}×) | – | ${fmt(num(torch.peakRssMiB))} |`)
    }
  }
  if (!fp32) return
  const [forward, fast, reference] = [num(fp32.forwardSeconds64), num(fp32.sampleFast64Seconds), num(fp32.sampleReference64Seconds)]
  console.log(`\nPrior-shaped model (a 32×32 grid of 512 tokens, gated, 64 filters, 6 layers, embedding 64, categorical over the tokens: ${Number(fp32.parameterCount).toLocaleString('en')} parameters), training batch ${fp32.batchSize}, 64 grids for the forward pass and sampling, each row in its precision\n`)
  console.log('| competitor | training grids/s | forward, batch 64 (s) | sampling 64 grids (s) | peak RSS (MiB) |')
  console.log('|---|---:|---:|---:|---:|')
  for (const row of rows) console.log(row)
  console.log(`| pixelcnn, reference sampler, fp32 | – | – | ${fmt(reference)} [extrapolated from ${fp32.referenceExtrapolatedFromRows} of 32 rows] | – |`)
  console.log(`fast sampler (fp32): ${fmt(fast && forward ? fast / forward : undefined)} forward passes of time for 64 grids; ${fmt(reference && fast ? reference / fast : undefined)}× the reference loop`)
}

function cifar(python: string) {
  if (!table('cifar')) return
  const ours = run('pixelcnn cifar-shaped', process.execPath, ['--import', 'tsx', 'bench/cifar.ts'], { PIXELCNN_BENCH_THREADS: String(threads) })
  const torch = run('pytorch cifar-shaped', python, ['bench/pytorch/bench_cifar.py', '--threads', String(threads)])
  if (!ours || 'error' in ours) throw new Error('the pixelcnn cifar-shaped run failed')
  const train = num(ours.trainImagesPerSecond)
  const forward = num(ours.forwardSeconds64)
  const fast = num(ours.sampleFast64Seconds)
  const reference = num(ours.sampleReference64Seconds)
  console.log(`\nCIFAR-shaped model (32×32×3, gated, 64 filters, 6 layers, logistic mixture of 10: ${Number(ours.parameterCount).toLocaleString('en')} parameters), training batch ${ours.batchSize}, 64 images for the forward pass and sampling\n`)
  console.log('| competitor | training images/s | forward, batch 64 (s) | sampling 64 images (s) | peak RSS (MiB) |')
  console.log('|---|---:|---:|---:|---:|')
  console.log(`| pixelcnn, fast sampler | ${fmt(train)} | ${fmt(forward, 3)} | ${fmt(fast)} | ${fmt(num(ours.peakRssMiB))} |`)
  console.log(`| pixelcnn, reference sampler | – | – | ${fmt(reference)} [extrapolated from ${ours.referenceExtrapolatedFromRows} of 32 rows] | – |`)
  if (torch && !('error' in torch)) {
    const theirTrain = num(torch.trainImagesPerSecond)
    const theirForward = num(torch.forwardSeconds64)
    console.log(`| PyTorch ${torch.torch} eager [${torch.memoryFormat}] | ${fmt(theirTrain)} (ours ${fmt(train && theirTrain ? train / theirTrain : undefined)}×) | ${fmt(theirForward, 3)} (ours ${fmt(forward && theirForward ? theirForward / forward : undefined)}×) | – | ${fmt(num(torch.peakRssMiB))} |`)
  }
  console.log(`fast sampler: ${fmt(fast && forward ? fast / forward : undefined)} forward passes of time for 64 images; ${fmt(reference && fast ? reference / fast : undefined)}× the reference loop`)
}

/** PixelCNN++ (issue 22): bench/pixelcnn-pp-table.ts. */
function pixelcnnPp(python: string) {
  if (!table('pixelcnn-pp')) return
  pixelcnnPpTable({ python, threads, run, fmt, num })
}

main()
