/**
 * The command line's data-parallel training: `pixelcnn train --nproc N`
 * (ranks on 127.0.0.1) and `--distributed env`. Tiny models on 96 small IDX
 * images: a launched run, and one stopped with Ctrl-C and resumed, against a
 * single process with the same global batch; a rank that dies or fails; bad flags.
 */

import test from 'ava'
import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { ConfigError, PixelCNN } from '../src/index'
import { rankDevice } from '../src/cli/train'
import { runCli } from './helpers/cli'
import { largestDifference } from './support/pytorch'
import { idxImages } from './helpers/idx'
import { removeTempDirs, tempDir } from './helpers/temp'

test.after.always(removeTempDirs)

const pixelcnn = runCli

const dir = tempDir('cli-distributed')
const train = path.join(dir, 'train-images-idx3-ubyte')
const testImages = path.join(dir, 't10k-images-idx3-ubyte')
writeFileSync(train, idxImages(96, 28, 28, 1).bytes)
writeFileSync(testImages, idxImages(32, 28, 28, 2).bytes)
const data = `idx:${train},${testImages}`
const config = path.join(dir, 'config.json')
writeFileSync(config, JSON.stringify({ model: { preset: 'small', filters: 8, residualBlocks: 1 }, learningRate: 2e-3 }))
/** 24 steps of a global batch of 4 per epoch: enough steps that a Ctrl-C lands inside an epoch. */
const recipe = ['train', '--data', data, '--config', config, '--batch-size', '4', '--seed', '5', '--device', 'cpu']
const probe = { count: 4, height: 28, width: 28, channels: 1, data: (() => {
  const pixels = idxImages(32, 28, 28, 2).pixels.subarray(0, 4 * 28 * 28)
  return Uint8Array.from(pixels, (v) => (v > 127 ? 1 : 0))
})() }

/** p(x = 1) of the probe images under a saved model, and its epoch losses. */
async function outcome(file: string): Promise<{ probs: Float32Array; losses: number[] }> {
  const model = await PixelCNN.load(file, { device: 'cpu' })
  return { probs: await model.predict(probe, { threads: 1 }), losses: model.history.flatMap((e) => [e.trainLoss, e.valLoss!]) }
}

// One process, the same global batch: what the launched runs must reproduce.
let single: Promise<{ probs: Float32Array; losses: number[] }> | undefined
function singleProcess(): Promise<{ probs: Float32Array; losses: number[] }> {
  single ??= (async () => {
    const file = path.join(dir, 'single.safetensors')
    const run = await pixelcnn([...recipe, '--epochs', '3', '--threads', '1', '--out', file])
    if (run.code !== 0) throw new Error(`the single-process run failed: ${run.stderr}`)
    return outcome(file)
  })()
  return single
}

test.serial('--nproc 2 trains like one process with the same global batch, and only rank 0 prints', async (t) => {
  const file = path.join(dir, 'two.safetensors')
  const run = await pixelcnn([...recipe, '--epochs', '3', '--nproc', '2', '--out', file])
  t.is(run.code, 0, run.stderr)
  t.regex(run.stderr, /pixelcnn train: 2 processes on 127\.0\.0\.1:\d+ \(pids \d+ \d+\)/)
  // Rank 0's lines once each; nothing from rank 1.
  t.is(run.stderr.match(/^data: /gm)?.length, 1, run.stderr)
  t.is(run.stderr.match(/^epoch 3\/3 /gm)?.length, 1, run.stderr)
  t.is(run.stdout.match(/\| epoch \| train loss/g)?.length, 1, run.stdout)
  t.notRegex(run.stdout + run.stderr, /\[rank 1\]/)
  t.true(existsSync(path.join(dir, 'two.curve.png')))
  const [two, one] = [await outcome(file), await singleProcess()]
  const probGap = largestDifference(two.probs, one.probs)
  const lossGap = largestDifference(two.losses, one.losses, { relative: true })
  t.log(`2 processes against 1: predictions within ${probGap.toExponential(2)}, losses within a relative ${lossGap.toExponential(2)}`)
  t.true(probGap < 1e-4, `predictions differ by ${probGap}`)
  t.true(lossGap < 1e-5, `losses ${two.losses} against ${one.losses}`)
})

test.serial('Ctrl-C to the launcher stops every rank with rank 0 saving; --resume with --nproc 2 finishes like one process', async (t) => {
  const file = path.join(dir, 'resumed.safetensors')
  const args = [...recipe, '--epochs', '3', '--checkpoint-every', '1', '--nproc', '2', '--out', file]
  let sent = false
  const stopped = await pixelcnn(args, {
    onStderr: (stderr, pid) => {
      if (!sent && /^epoch 1\/3 /m.test(stderr)) {
        sent = true
        process.kill(pid, 'SIGINT')
      }
    },
  })
  t.is(stopped.code, 130, stopped.stdout + stopped.stderr)
  t.regex(stopped.stdout, /continue with --resume/)
  t.notRegex(stopped.stderr, /\[rank 1\]|failed|Error/, 'rank 1 stops quietly once rank 0 has saved')
  const saved = await PixelCNN.load(file, { device: 'cpu' })
  t.true(saved.history.length >= 1 && saved.history.length < 3, `stopped after ${saved.history.length} epochs`)
  const resumed = await pixelcnn([...args, '--resume'])
  t.is(resumed.code, 0, resumed.stderr)
  t.is(resumed.stderr.match(/resuming from/g)?.length, 1, resumed.stderr)
  const [two, one] = [await outcome(file), await singleProcess()]
  const probGap = largestDifference(two.probs, one.probs)
  t.log(`stopped at epoch ${saved.history.length + 1} and resumed, against one uninterrupted process: predictions within ${probGap.toExponential(2)}`)
  t.true(probGap < 1e-4, `predictions differ by ${probGap}`)
  t.true(largestDifference(two.losses, one.losses, { relative: true }) < 1e-5, `losses ${two.losses} against ${one.losses}`)
})

test.serial('a run stopped in one process resumes in two (the batches depend only on seed, epoch and global batch)', async (t) => {
  const file = path.join(dir, 'regrouped.safetensors')
  const args = [...recipe, '--epochs', '3', '--checkpoint-every', '1', '--out', file]
  let sent = false
  const stopped = await pixelcnn([...args, '--threads', '1'], {
    onStderr: (stderr, pid) => {
      if (!sent && /^epoch 1\/3 /m.test(stderr)) {
        sent = true
        process.kill(pid, 'SIGINT')
      }
    },
  })
  t.is(stopped.code, 130, stopped.stdout + stopped.stderr)
  const resumed = await pixelcnn([...args, '--nproc', '2', '--resume'])
  t.is(resumed.code, 0, resumed.stderr)
  const [two, one] = [await outcome(file), await singleProcess()]
  const probGap = largestDifference(two.probs, one.probs)
  t.log(`stopped alone, resumed as 2 ranks, against one uninterrupted process: predictions within ${probGap.toExponential(2)}`)
  t.true(probGap < 1e-4, `predictions differ by ${probGap}`)
})

test.serial('a rank killed during training makes the launcher stop the others and exit non-zero at once; the checkpoint stays intact', async (t) => {
  const file = path.join(dir, 'killed.safetensors')
  let killedAt = 0
  const run = await pixelcnn([...recipe, '--epochs', '200', '--checkpoint-every', '5', '--nproc', '2', '--out', file], {
    limitMs: 120_000,
    onStderr: (stderr) => {
      const pids = /\(pids (\d+) (\d+)\)/.exec(stderr)
      if (!killedAt && pids && /^epoch 1\/200 /m.test(stderr)) {
        killedAt = Date.now()
        process.kill(Number(pids[2]), 'SIGKILL')
      }
    },
  })
  const seconds = (Date.now() - killedAt) / 1000
  t.true(killedAt > 0, run.stderr)
  t.log(`the launcher exited ${seconds.toFixed(1)} s after rank 1 was killed, with status ${run.code}`)
  t.is(run.signal, null)
  t.not(run.code, 0)
  t.regex(run.stderr, /rank 1 of 2 was killed by SIGKILL/)
  t.true(seconds < 20, `took ${seconds} s`)
  t.true((await PixelCNN.load(file, { device: 'cpu' })).history.length >= 1)
})

/** Whether a process runs (a zombie, waiting for a parent to reap it, does not). */
function running(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, 'utf8'))
  } catch {
    return false
  }
}

test.serial('ranks whose launcher is killed stop by themselves, rank 0 saving', async (t) => {
  const file = path.join(dir, 'orphaned.safetensors')
  let pids: number[] = []
  let killedAt = 0
  const run = await pixelcnn([...recipe, '--epochs', '200', '--checkpoint-every', '5', '--nproc', '2', '--out', file], {
    limitMs: 120_000,
    onStderr: (stderr, launcher) => {
      const found = /\(pids (\d+) (\d+)\)/.exec(stderr)
      if (!pids.length && found && /^epoch 1\/200 /m.test(stderr)) {
        pids = [Number(found[1]), Number(found[2])]
        killedAt = Date.now()
        process.kill(launcher, 'SIGKILL')
      }
    },
  })
  t.is(run.signal, 'SIGKILL')
  t.is(pids.length, 2, run.stderr)
  // The run's output closes when rank 0 (which writes to it directly) has exited.
  const deadline = Date.now() + 20_000
  while (pids.some(running) && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 100))
  t.deepEqual(pids.filter(running), [], 'both ranks stopped')
  t.log(`both ranks stopped within ${((Date.now() - killedAt) / 1000).toFixed(1)} s of the launcher's death`)
  t.regex(run.stderr, /stopping after the current step and saving it/)
  const saved = await PixelCNN.load(file, { device: 'cpu' })
  t.true(saved.history.length >= 1 && saved.history.length < 200)
})

test.serial('a failure only rank 0 can see (an --out it cannot write) fails the launched run quickly, naming the rank', async (t) => {
  // A missing folder is created (as mkdir -p would); a regular file where the folder should be cannot be.
  const blocker = path.join(dir, 'not-a-folder')
  writeFileSync(blocker, 'a file')
  const started = Date.now()
  const run = await pixelcnn([...recipe, '--epochs', '1', '--nproc', '2', '--out', path.join(blocker, 'm.safetensors')], { limitMs: 120_000 })
  const seconds = (Date.now() - started) / 1000
  t.is(run.code, 1, run.stderr)
  t.regex(run.stderr, /IoError: .*not-a-folder.* is a file, not a folder/)
  t.regex(run.stderr, /rank \d of 2 exited with status 1/)
  t.true(seconds < 60, `took ${seconds} s`)
})

test.serial('bad --nproc and --distributed values are ConfigErrors naming the flag and quoting the value', async (t) => {
  const out = ['--out', path.join(dir, 'never.safetensors')]
  for (const value of ['0', 'abc', '1.5', '-2']) {
    const run = await pixelcnn([...recipe, `--nproc=${value}`, ...out])
    t.is(run.code, 1, run.stderr)
    t.true(run.stderr.includes(`ConfigError: \`--nproc\` must be a positive integer (the number of processes to train in), got ${JSON.stringify(value)}`), run.stderr)
  }
  const both = await pixelcnn([...recipe, '--nproc', '2', '--distributed', 'env', ...out])
  t.is(both.code, 1)
  t.regex(both.stderr, /ConfigError: `--nproc` starts its own group on 127\.0\.0\.1; leave out `--distributed` \(got "env"\)/)
  const mpi = await pixelcnn([...recipe, '--distributed', 'mpi', ...out])
  t.is(mpi.code, 1)
  t.regex(mpi.stderr, /ConfigError: `--distributed` must be env .*, got "mpi"/)
  const noRank = await pixelcnn([...recipe, '--distributed', 'env', ...out], { env: { MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500', WORLD_SIZE: '2', RANK: '' } })
  t.is(noRank.code, 1)
  t.regex(noRank.stderr, /ConfigError: .*environment variable RANK/)
  const badRank = await pixelcnn([...recipe, '--distributed', 'env', ...out], { env: { MASTER_ADDR: '127.0.0.1', MASTER_PORT: '29500', WORLD_SIZE: '2', RANK: 'two' } })
  t.is(badRank.code, 1)
  t.regex(badRank.stderr, /ConfigError: .*RANK must be an integer, got "two"/)
  t.false(existsSync(path.join(dir, 'never.safetensors')))
})

test('under --distributed env each rank takes the GPU of its LOCAL_RANK unless the device names one', (t) => {
  const gpu = () => true
  const noGpu = () => false
  t.is(rankDevice('cuda', 'env', { LOCAL_RANK: '1' }, gpu), 'cuda:1')
  t.is(rankDevice('auto', 'env', { LOCAL_RANK: '3' }, gpu), 'cuda:3')
  t.is(rankDevice('auto', 'env', { LOCAL_RANK: '3' }, noGpu), 'auto', 'auto stays auto on a CPU machine')
  t.is(rankDevice('cuda:2', 'env', { LOCAL_RANK: '1' }, gpu), 'cuda:2', 'an explicit index is kept')
  t.is(rankDevice('cpu', 'env', { LOCAL_RANK: '1' }, gpu), 'cpu')
  t.is(rankDevice('cuda', 'env', {}, gpu), 'cuda', 'no LOCAL_RANK: as given')
  t.is(rankDevice('cuda', undefined, { LOCAL_RANK: '1' }, gpu), 'cuda', 'only under --distributed env')
  t.throws(() => rankDevice('cuda', 'env', { LOCAL_RANK: 'one' }, gpu), { instanceOf: ConfigError, message: /LOCAL_RANK.*"one"/ })
})
