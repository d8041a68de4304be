/**
 * Output locations are checked (and made, as `mkdir -p`) before long work,
 * and the model is saved before any picture: src/output-paths.ts, the demo
 * (src/demo.ts) and `pixelcnn train` (its pictures beside --out).
 */

import test, { type ExecutionContext } from 'ava'
import { chmodSync, existsSync, mkdirSync, readdirSync, readFileSync, statSync, symlinkSync, writeFileSync } from 'node:fs'
import * as path from 'node:path'
import { type ErrorCode, IoError, PixelCNNError } from '../src/errors'
import { PixelCNN } from '../src/index'
import { checkOutputFile, checkOutputFiles, prepareOutputDir, probeWritable } from '../src/output-paths'
import { type CliRun, runCli, runScript } from './helpers/cli'
import { writeIdxPair } from './helpers/idx'
import { removeTempDirs, tempDir } from './helpers/temp'

test.after.always(removeTempDirs)

/** Whether this process ignores file permissions (root), so a read-only folder takes files anyway. */
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

/** Awaits `promise` and checks it rejected with a typed error whose message names every one of `names`. */
async function refused(t: ExecutionContext, promise: Promise<unknown>, code: ErrorCode, ...names: string[]): Promise<PixelCNNError> {
  const error = await t.throwsAsync(promise)
  t.true(error instanceof PixelCNNError, `a typed error, got ${error}`)
  t.is((error as PixelCNNError).code, code)
  for (const name of names) t.true(error!.message.includes(name), `${JSON.stringify(error!.message)} names ${name}`)
  return error as PixelCNNError
}

// --- the helper -------------------------------------------------------------

test('prepareOutputDir makes a missing nested folder, as mkdir -p, and leaves no probe file', async (t) => {
  const dir = path.join(tempDir('nested'), 'a', 'b', 'c')
  const made = await prepareOutputDir(dir, 'the test folder')
  t.is(made, path.resolve(dir))
  t.true(statSync(dir).isDirectory())
  t.deepEqual(readdirSync(dir), [], 'the probe file is removed')
  // An existing folder is fine, and its files are not touched.
  writeFileSync(path.join(dir, 'keep.txt'), 'x')
  await prepareOutputDir(dir, 'the test folder')
  t.deepEqual(readdirSync(dir), ['keep.txt'])
})

test('prepareOutputDir refuses a folder under a regular file, naming both', async (t) => {
  const file = path.join(tempDir('file-parent'), 'plain.txt')
  writeFileSync(file, 'not a folder')
  const dir = path.join(file, 'out', 'deeper')
  const error = await refused(t, prepareOutputDir(dir, 'PIXELCNN_DEMO_OUT'), 'Io', dir, file, 'PIXELCNN_DEMO_OUT')
  t.true(error instanceof IoError)
  t.is(readFileSync(file, 'utf8'), 'not a folder', 'the file is left alone')
  // The folder path itself being a file is refused too.
  await refused(t, prepareOutputDir(file, 'PIXELCNN_DEMO_OUT'), 'Io', file, 'is a file')
})

test('prepareOutputDir refuses a folder it cannot write in', async (t) => {
  const dir = tempDir('read-only')
  chmodSync(dir, 0o555)
  try {
    if (isRoot) {
      // root writes into a 0555 folder anyway: the permission case cannot be made here.
      t.log('running as root: chmod does not stop writes, so the read-only case is not testable; the file-as-parent case covers refusal')
      await t.notThrowsAsync(prepareOutputDir(dir, 'the test folder'))
      return
    }
    await refused(t, prepareOutputDir(dir, 'the test folder'), 'Io', dir, 'not writable')
    await refused(t, prepareOutputDir(path.join(dir, 'sub'), 'the test folder'), 'Io', path.join(dir, 'sub'))
  } finally {
    chmodSync(dir, 0o755)
  }
})

test('prepareOutputDir and checkOutputFile refuse an empty path with a ConfigError', async (t) => {
  await refused(t, prepareOutputDir('', 'PIXELCNN_DEMO_OUT'), 'InvalidConfig', 'PIXELCNN_DEMO_OUT')
  await refused(t, checkOutputFile('', '`--out`'), 'InvalidConfig', '`--out`')
})

test('checkOutputFile makes the folder of a file, accepts an existing file and refuses a folder in the way', async (t) => {
  const root = tempDir('files')
  const file = path.join(root, 'new', 'model.safetensors')
  t.is(await checkOutputFile(file, '`--out`'), path.resolve(file))
  t.true(statSync(path.dirname(file)).isDirectory())
  t.false(existsSync(file), 'checking does not create the file itself')
  writeFileSync(file, 'old')
  await checkOutputFile(file, '`--out`')
  t.is(readFileSync(file, 'utf8'), 'old', 'an existing file is left for the writer to replace')
  const folder = path.join(root, 'new', 'curve.png')
  mkdirSync(folder)
  await refused(t, checkOutputFile(folder, 'the training curve'), 'Io', folder, 'the training curve', 'is a folder')
  await refused(t, checkOutputFiles([{ file, what: '`--out`' }, { file: folder, what: 'the training curve' }]), 'Io', folder)
  t.deepEqual(readdirSync(path.join(root, 'new')).sort(), ['curve.png', 'model.safetensors'], 'no probe file left behind')
})

test('probeWritable and checkOutputFile: no raw Node error escapes (a missing folder, a name too long), and no probe file is left', async (t) => {
  const root = tempDir('probe')
  const missing = path.join(root, 'gone')
  const error = await refused(t, probeWritable(missing, 'the test folder'), 'Io', missing, 'the test folder', 'not writable')
  t.true(error instanceof IoError)
  // lstat of a name longer than the file system allows fails with ENAMETOOLONG: an IoError naming the file.
  const long = path.join(root, 'x'.repeat(300) + '.png')
  await refused(t, checkOutputFile(long, 'the training curve'), 'Io', 'the training curve', 'ENAMETOOLONG')
  // A link at the file (even to a folder) is fine: the writer replaces the link, never follows it.
  mkdirSync(path.join(root, 'a-folder'))
  symlinkSync(path.join(root, 'a-folder'), path.join(root, 'link.png'))
  await t.notThrowsAsync(checkOutputFile(path.join(root, 'link.png'), 'the picture'))
  t.deepEqual(readdirSync(root).sort(), ['a-folder', 'link.png'], 'no probe file left behind')
})

// --- the demo -----------------------------------------------------------------

const demo = path.join(__dirname, '..', 'src', 'demo.ts')

/** The demo, 1 epoch on 256 digits; `onStdout` and `onStderr` may act mid-run. */
function runDemo(out: string, onStdout?: (stdout: string) => void, onStderr?: (stderr: string) => void): Promise<CliRun & { seconds: number }> {
  const started = performance.now()
  return runScript(demo, [], {
    env: { PIXELCNN_DEMO_OUT: out, PIXELCNN_DEMO_EPOCHS: '1', PIXELCNN_DEMO_LIMIT: '256' },
    onStdout,
    onStderr,
    limitMs: 180_000,
  }).then((run) => ({ ...run, seconds: (performance.now() - started) / 1000 }))
}

/** The model file loads, and was trained. */
async function loadsTrained(t: ExecutionContext, file: string): Promise<void> {
  const model = await PixelCNN.load(file)
  t.is(model.history.length, 1, 'the saved model holds the epoch trained')
}

test.serial('the demo makes a missing nested PIXELCNN_DEMO_OUT and saves the model and pictures in it', async (t) => {
  const out = path.join(tempDir('demo'), 'runs', 'first')
  const run = await runDemo(out)
  t.is(run.code, 0, run.stdout + run.stderr)
  for (const file of ['demo-model.safetensors', 'training-curve.png', 'samples.png', 'completions.png']) t.true(existsSync(path.join(out, file)), file)
  t.regex(run.stdout, /256 training and 26 test digits/)
  await loadsTrained(t, path.join(out, 'demo-model.safetensors'))
})

test.serial('a demo picture that cannot be written is reported after the model is saved, and the run fails', async (t) => {
  const out = path.join(tempDir('demo-late'), 'out')
  const model = path.join(out, 'demo-model.safetensors')
  // The folder passes the check before training; once the demo says the model is saved, a folder
  // takes the place of samples.png, which no check before the training can foresee. samples.png,
  // not the curve: the demo evaluates, draws the curve and samples 81 digits before writing it,
  // so the folder is in place long before the write, however loaded the machine.
  const order: string[] = []
  const run = await runDemo(
    out,
    (stdout) => {
      if (!order.includes('saved') && stdout.includes(`saved the model to ${model}\n`)) {
        order.push('saved')
        t.true(existsSync(model), 'the model file is on disk when the demo says it is saved')
        mkdirSync(path.join(out, 'samples.png'))
      }
    },
    (stderr) => {
      if (!order.includes('failed') && /could not write samples\.png/.test(stderr)) order.push('failed')
    },
  )
  t.is(run.code, 1, run.stdout + run.stderr)
  t.deepEqual(order, ['saved', 'failed'], 'the model is saved before the picture failure is reported')
  t.regex(run.stderr, /could not write samples\.png: /)
  t.regex(run.stderr, /demo-model\.safetensors was saved in .*, but samples\.png could not be written/)
  await loadsTrained(t, model)
  // The picture before it and the one after it are drawn.
  t.true(existsSync(path.join(out, 'training-curve.png')))
  t.true(existsSync(path.join(out, 'completions.png')))
  t.regex(run.stdout, /wrote training-curve\.png, completions\.png, demo-model\.safetensors in /)
})

test.serial('the demo refuses an output folder it cannot make, or a picture path that is a folder, before loading any data', async (t) => {
  const root = tempDir('demo-bad')
  const file = path.join(root, 'a-file')
  writeFileSync(file, '')
  const underFile = path.join(file, 'out')
  const run = await runDemo(underFile)
  t.is(run.code, 1, run.stdout + run.stderr)
  t.regex(run.stderr, /IoError: PIXELCNN_DEMO_OUT/)
  t.true(run.stderr.includes(underFile), run.stderr)
  t.notRegex(run.stdout, /MNIST|epoch/, 'refused before the data and the training')
  t.true(run.seconds < 30, `refused in ${run.seconds.toFixed(1)} s`)

  const out = path.join(root, 'out')
  mkdirSync(path.join(out, 'training-curve.png'), { recursive: true })
  const blocked = await runDemo(out)
  t.is(blocked.code, 1, blocked.stdout + blocked.stderr)
  t.true(blocked.stderr.includes(path.join(out, 'training-curve.png')), blocked.stderr)
  t.notRegex(blocked.stdout, /MNIST|epoch/)
  t.false(existsSync(path.join(out, 'demo-model.safetensors')))
})

// --- pixelcnn train -------------------------------------------------------------

const cliDir = tempDir('cli')
const { train: trainImages, test: testImages } = writeIdxPair(cliDir, 96, 32)
const config = path.join(cliDir, 'config.json')
writeFileSync(config, JSON.stringify({ model: { preset: 'small', filters: 8, residualBlocks: 1 }, batchSize: 8, learningRate: 2e-3 }))
const train = (out: string, ...more: string[]) => ['train', '--data', `idx:${trainImages},${testImages}`, '--config', config, '--device', 'cpu', '--out', out, ...more]

test.serial('train --out into a missing folder makes it and writes the model and its pictures there', async (t) => {
  const out = path.join(cliDir, 'runs', 'new', 'm.safetensors')
  const run = await runCli(train(out, '--epochs', '1', '--samples-every', '1'))
  t.is(run.code, 0, run.stderr)
  t.is((await PixelCNN.load(out)).history.length, 1)
  t.true(existsSync(path.join(cliDir, 'runs', 'new', 'm.curve.png')))
  t.true(existsSync(path.join(cliDir, 'runs', 'new', 'm.samples-epoch-1.png')))
  // `sample --out` makes its folder too, and refuses one under a file before sampling.
  const grid = path.join(cliDir, 'grids', 'deep', 's.png')
  const sampled = await runCli(['sample', '--model', out, '--count', '4', '--out', grid])
  t.is(sampled.code, 0, sampled.stderr)
  t.true(existsSync(grid))
  const refusedGrid = await runCli(['sample', '--model', out, '--count', '4', '--out', path.join(out, 's.png')])
  t.is(refusedGrid.code, 1)
  t.regex(refusedGrid.stderr, /IoError: `--out` .*m\.safetensors is a file, not a folder/)
  t.notRegex(refusedGrid.stderr, /sampled/)
})

test.serial('train refuses, before reading data, an --out under a file and pictures whose paths are folders', async (t) => {
  const file = path.join(cliDir, 'plain')
  writeFileSync(file, '')
  const underFile = path.join(file, 'm.safetensors')
  const run = await runCli(train(underFile, '--epochs', '1'))
  t.is(run.code, 1, run.stderr)
  t.regex(run.stderr, /pixelcnn train: IoError: `--out`/)
  t.true(run.stderr.includes(underFile), run.stderr)
  t.notRegex(run.stderr, /data: |epoch \d+\//, 'refused before the data and the training')

  for (const [picture, flags] of [['m.curve.png', []], ['m.samples-epoch-2.png', ['--samples-every', '2']]] as const) {
    const out = path.join(cliDir, `blocked-${picture}`, 'm.safetensors')
    const folder = path.join(path.dirname(out), picture)
    mkdirSync(folder, { recursive: true })
    const blocked = await runCli(train(out, '--epochs', '3', ...flags))
    t.is(blocked.code, 1, blocked.stderr)
    t.true(blocked.stderr.includes(folder), blocked.stderr)
    t.notRegex(blocked.stderr, /data: |epoch \d+\//)
    t.false(existsSync(out), 'nothing trained')
  }
})

test.serial('train: a sample grid that fails mid-run is reported, training goes on and the model is saved', async (t) => {
  const out = path.join(cliDir, 'late', 'm.safetensors')
  const second = path.join(cliDir, 'late', 'm.samples-epoch-2.png')
  let blocked = false
  const run = await runCli(train(out, '--epochs', '3', '--samples-every', '1'), {
    onStderr: (stderr) => {
      // After the check and the first grid: a folder takes the second grid's place.
      if (!blocked && stderr.includes('m.samples-epoch-1.png')) {
        blocked = true
        mkdirSync(second)
      }
    },
  })
  t.true(blocked)
  t.is(run.code, 1, run.stderr)
  t.regex(run.stderr, /could not write .*m\.samples-epoch-2\.png.*training goes on/)
  t.regex(run.stderr, /IoError: .*m\.safetensors is saved, but a picture could not be written: .*m\.samples-epoch-2\.png/)
  t.is((await PixelCNN.load(out)).history.length, 3, 'every epoch trained and saved')
  t.true(existsSync(path.join(cliDir, 'late', 'm.samples-epoch-3.png')), 'the grids after the failure are still drawn')
  t.true(existsSync(path.join(cliDir, 'late', 'm.curve.png')))
})
