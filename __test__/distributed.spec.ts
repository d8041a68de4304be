import test from 'ava'
import { spawn } from 'node:child_process'
import { createServer } from 'node:net'
import * as path from 'node:path'
import { ConfigError, DeviceError, DistributedError, PixelCNN } from '../src/index'
import { distributedRecipe } from './support/distributed-recipe'
import { randomImages, TINY } from './support/images'

async function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number }
      server.close(() => resolve(port))
    })
  })
}

function runRank(rank: number, worldSize: number, port: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', path.join(__dirname, 'support', 'distributed-rank.ts')], {
    env: { ...process.env, RANK: String(rank), WORLD_SIZE: String(worldSize), MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port) },
  })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  return new Promise((resolve) => child.on('close', (code) => resolve({ code, stdout, stderr })))
}

test.serial("two processes with distributed: 'env' train like one process with the same global batch", async (t) => {
  const port = await freePort()
  const ranks = await Promise.all([runRank(0, 2, port), runRank(1, 2, port)])
  const single = await distributedRecipe()
  for (const [rank, { code, stdout, stderr }] of ranks.entries()) {
    t.is(code, 0, `rank ${rank}: ${stderr}`)
    const { losses, probs } = JSON.parse(stdout.trim().split('\n').pop()!) as { losses: number[]; probs: number[] }
    const lossGap = Math.max(...losses.map((l, i) => Math.abs(l - single.losses[i]) / single.losses[i]))
    const probGap = Math.max(...probs.map((p, i) => Math.abs(p - single.probs[i])))
    t.log(`rank ${rank}: losses within a relative ${lossGap.toExponential(2)}, predictions within ${probGap.toExponential(2)}`)
    t.true(lossGap < 1e-5, `rank ${rank}: ${losses} against ${single.losses}`)
    t.true(probGap < 1e-4, `rank ${rank}: predictions differ by ${probGap}`)
  }
})

test.serial('a rank whose peers never join fails with a DistributedError after the timeout, and the model stays usable', async (t) => {
  const model = PixelCNN.create({ preset: 'small', ...TINY, device: 'cpu' })
  const started = Date.now()
  const distributed = { rank: 0, worldSize: 2, masterPort: await freePort(), timeoutSeconds: 2 }
  const error = await t.throwsAsync(model.fit({ data: { train: randomImages(4, 8, 8, 1) }, distributed }), { instanceOf: DistributedError })
  t.regex(error!.message, /rank 0 of 2 could not join/)
  t.true(Date.now() - started < 30_000)
  await model.fit({ data: { train: randomImages(4, 8, 8, 1) } })
  t.is(model.history.length, 1)
})

test.serial('bad distributed options are typed errors naming the field', async (t) => {
  const model = PixelCNN.create({ preset: 'small', ...TINY, device: 'cpu' })
  const fit = (distributed: unknown) => model.fit({ data: { train: randomImages(2, 8, 8, 1) }, distributed: distributed as never })
  await t.throwsAsync(fit({ rank: 2, worldSize: 2 }), { instanceOf: ConfigError, message: /`distributed\.rank`.*2/ })
  await t.throwsAsync(fit({ rank: 0, worldSize: 0 }), { instanceOf: ConfigError, message: /`distributed\.worldSize`/ })
  await t.throwsAsync(fit({ rank: 0, worldSize: 1, masterPort: 70000 }), { instanceOf: ConfigError, message: /`distributed\.masterPort`.*70000/ })
  await t.throwsAsync(fit({ rank: 0, worldSize: 1, backend: 'mpi' }), { instanceOf: ConfigError, message: /`distributed\.backend`/ })
  await t.throwsAsync(fit({ rank: 0, worldSize: 1, backend: 'nccl' }), { instanceOf: DeviceError, message: /nccl.*CUDA/ })
  const saved = { ...process.env }
  Object.assign(process.env, { MASTER_ADDR: '127.0.0.1', MASTER_PORT: '1234', WORLD_SIZE: '2' })
  delete process.env.RANK
  try {
    await t.throwsAsync(fit('env'), { instanceOf: ConfigError, message: /environment variable RANK/ })
  } finally {
    for (const name of ['MASTER_ADDR', 'MASTER_PORT', 'WORLD_SIZE', 'RANK']) delete process.env[name]
    Object.assign(process.env, saved)
  }
})
