import test from 'ava'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { PixelCNN } from '../src/index'
import { randomImages } from './support/images'

const child = path.join(__dirname, 'support', 'train-child.ts')
const EPOCHS = 300

/** Runs the child; with `killAfterMs`, SIGKILLs it that long after its first step. */
function run(checkpoint: string, killAfterMs?: number): Promise<{ killed: boolean; output: string }> {
  return new Promise((resolve, reject) => {
    const proc = spawn(process.execPath, ['--import', 'tsx', child, checkpoint, String(EPOCHS)], { stdio: ['ignore', 'pipe', 'pipe'] })
    let output = ''
    let timer: NodeJS.Timeout | undefined
    proc.stdout.on('data', (chunk: Buffer) => {
      output += chunk
      if (killAfterMs !== undefined && !timer && output.includes('step')) timer = setTimeout(() => proc.kill('SIGKILL'), killAfterMs)
    })
    proc.stderr.on('data', (chunk: Buffer) => (output += chunk))
    proc.on('error', reject)
    proc.on('exit', (code, signal) => {
      clearTimeout(timer)
      if (signal === 'SIGKILL') resolve({ killed: true, output })
      else if (code === 0) resolve({ killed: false, output })
      else reject(new Error(`child exited with ${code}: ${output.slice(-2000)}`))
    })
  })
}

test('training killed with SIGKILL 20 times leaves a loadable checkpoint each time and resumes to the same weights', async (t) => {
  const dir = mkdtempSync(path.join(tmpdir(), 'pixelcnn-kill-'))
  const interrupted = path.join(dir, 'interrupted.safetensors')
  let survived = 0
  let kills = 0
  let seed = 12345
  const random = () => ((seed = (seed * 1103515245 + 12345) % 2 ** 31) / 2 ** 31)
  for (let i = 0; i < 20; i++) {
    // A step (and its checkpoint) takes about 2 ms here, so the kill lands
    // anywhere: mid-step, mid-write, mid-rename.
    const { killed } = await run(interrupted, Math.floor(random() * 250))
    if (!killed) break
    kills++
    if (!existsSync(interrupted)) continue
    const model = await PixelCNN.load(interrupted, { device: 'cpu' }) // throws if the file were torn
    t.true(model.parameterCount > 0)
    survived++
  }
  t.log(`kills: ${kills}, checkpoints that loaded after a kill: ${survived}`)
  t.is(kills, 20, 'the run finished before 20 kills: make it longer')
  t.is(survived, 20)
  const finished = await run(interrupted)
  t.false(finished.killed)
  // Temporary files of killed writers are cleaned up by the next save.
  t.deepEqual(readdirSync(dir).filter((f) => f.endsWith('.tmp')), [])

  const straight = path.join(dir, 'straight.safetensors')
  await run(straight)
  const [a, b] = await Promise.all([PixelCNN.load(interrupted), PixelCNN.load(straight)])
  t.is(a.history.length, EPOCHS)
  t.deepEqual(a.history.map((r) => [r.trainLoss, r.valLoss]), b.history.map((r) => [r.trainLoss, r.valLoss]))
  const images = randomImages(4, 8, 8, 5)
  t.deepEqual(await a.predict(images), await b.predict(images))
})
