/**
 * The hostile-input matrix: risky calls that must end in a typed error (or a
 * success), never in a dead process or a hang. Each case runs alone in a
 * child process (hostile-child.ts) under a time limit; hostile-matrix.spec.ts
 * runs them and checks each outcome against `expect`.
 *
 * A case is a small async function. Whatever it throws is its outcome (the
 * child reports the error's class name, `code`, message, and the message of
 * its `cause`); resolving means success. `ctx.report` adds details (elapsed
 * times, whether the model is still usable, file hashes) that `expect.details`
 * and `expect.check` look at.
 */

import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { createServer as createHttpServer } from 'node:http'
import { createServer as createTcpServer, type AddressInfo, type Socket } from 'node:net'
import { join } from 'node:path'

import { loadCifar10, loadIdx, loadImageFolder, PixelCNN } from '../../src/index'
import { downloadVerified } from '../../src/data/download'
import { checkpointWith as editedCheckpoint } from '../helpers/checkpoint'
import { makeFifo } from '../helpers/hang'
import { randomImages, TINY } from './images'

export interface CaseContext {
  /** A fresh directory of this child's own, removed when it exits. */
  dir: string
  /** Adds details to the reported outcome. */
  report(details: Record<string, unknown>): void
  /** Milliseconds since the case started. */
  elapsed(): number
}

/** What the child prints (one JSON line); `fatal` when an error escaped as an uncaught exception or rejection. */
export interface ChildOutcome {
  hostileCase: string
  ok: boolean
  name?: string
  code?: string
  message?: string
  instanceOfPixelCNNError?: boolean
  causeName?: string
  causeMessage?: string
  fatal?: 'uncaughtException' | 'unhandledRejection'
  elapsedMs: number
  details: Record<string, unknown>
}

export interface Expectation {
  /** The call resolves. */
  ok?: true
  /** The call rejects with an error of one of these classes (`name`) … */
  names?: string[]
  /** … with one of these `code`s … */
  codes?: string[]
  /** … whose message matches every one of these. */
  message?: RegExp[]
  /** The regexes may match the message of the error's `cause` instead (a wrapped user error). */
  orCause?: boolean
  /** The outcome arrives within this many milliseconds of the case starting (measured in the child). */
  maxMs?: number
  /** Details the case must have reported, compared with `===`. */
  details?: Record<string, unknown>
  /** Any further check: returns a problem, or undefined. */
  check?: (outcome: ChildOutcome) => string | undefined
}

export interface HostileCase {
  name: string
  /** The child is killed after this long (a hang). */
  limitMs: number
  run(ctx: CaseContext): Promise<unknown>
  expect: Expectation
}

const QUICK = 20_000
const SLOW = 60_000

const TYPED_CONFIG = { names: ['ConfigError'], codes: ['InvalidConfig'] }
const MEMORY = /\d(\.\d+)?\s*(bytes|[KMGT]i?B)\b/

// ---- small builders -------------------------------------------------------

function tinyModel(extra: object = {}): PixelCNN {
  return PixelCNN.create({ ...TINY, device: 'cpu', ...extra })
}

async function savedCheckpoint(ctx: CaseContext, name = 'valid.safetensors'): Promise<string> {
  const file = join(ctx.dir, name)
  await tinyModel().save(file)
  return file
}

/** A valid checkpoint's bytes with its JSON header replaced by `edit(header)` (helpers/checkpoint.ts). */
async function checkpointWith(ctx: CaseContext, name: string, edit: (header: Record<string, any>) => void): Promise<string> {
  return editedCheckpoint(await savedCheckpoint(ctx), join(ctx.dir, name), edit)
}

/** An IDX file: magic 0x0803 (images, 3 dims) or 0x0801 (labels), the dims, then `body`. */
function idxFile(ctx: CaseContext, name: string, dims: number[], body: Buffer): string {
  const header = Buffer.alloc(4 + 4 * dims.length)
  header.writeUInt32BE(0x800 + dims.length, 0)
  dims.forEach((d, i) => header.writeUInt32BE(d, 4 + 4 * i))
  const file = join(ctx.dir, name)
  writeFileSync(file, Buffer.concat([header, body]))
  return file
}

const fifo = (ctx: CaseContext, name: string) => makeFifo(join(ctx.dir, name))

function sha256(file: string): string {
  return createHash('sha256').update(readFileSync(file)).digest('hex')
}

/** A TCP server on 127.0.0.1 that accepts connections and never answers. */
async function silentTcpServer(): Promise<number> {
  const sockets: Socket[] = []
  const server = createTcpServer((socket) => {
    sockets.push(socket)
    socket.resume()
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return (server.address() as AddressInfo).port
}

/**
 * Runs `call` with an `onProgress` that throws 'boom', then checks the model
 * still samples. Reports how the error came back (`via`: the Error itself, a
 * wrapper whose cause it is, or not at all) and `usable`.
 */
async function withThrowingCallback(ctx: CaseContext, model: PixelCNN, call: (onProgress: () => never) => Promise<unknown>): Promise<void> {
  let calls = 0
  const boom = new Error('boom (thrown by onProgress)')
  const onProgress = (): never => {
    calls++
    throw boom
  }
  let error: unknown
  let rejected = false
  try {
    await call(onProgress)
  } catch (e) {
    rejected = true
    error = e
  }
  const via = !rejected ? 'resolved' : error === boom ? 'the Error itself' : (error as { cause?: unknown })?.cause === boom ? 'a wrapper with it as cause' : 'another error'
  ctx.report({ callbackCalls: calls, via })
  try {
    const again = await model.sample({ count: 1 })
    ctx.report({ usable: again.count === 1 })
  } catch (e) {
    ctx.report({ usable: false, usableError: `${(e as Error).name}: ${(e as Error).message}` })
  }
  if (rejected) throw error
}

// ---- the cases ------------------------------------------------------------

export const cases: HostileCase[] = [
  // 2. Paths given to save
  {
    name: 'save: the path is a directory',
    limitMs: QUICK,
    run: async (ctx) => {
      const target = join(ctx.dir, 'target-dir.safetensors')
      mkdirSync(target)
      await tinyModel().save(target)
    },
    expect: { names: ['IoError', 'CheckpointError'], codes: ['Io', 'Checkpoint'], message: [/target-dir\.safetensors/] },
  },
  {
    name: 'save: into a directory that does not exist',
    limitMs: QUICK,
    run: (ctx) => tinyModel().save(join(ctx.dir, 'no-such-dir', 'deeper', 'model.safetensors')),
    expect: { names: ['IoError', 'CheckpointError'], codes: ['Io', 'Checkpoint'], message: [/no-such-dir/] },
  },

  // 3. User callbacks that throw
  {
    name: 'fit: onProgress throws',
    limitMs: SLOW,
    run: (ctx) => {
      const model = tinyModel()
      return withThrowingCallback(ctx, model, (onProgress) =>
        model.fit({ data: { train: randomImages(512, 8, 8) }, epochs: 2, batchSize: 4, threads: 1, onProgress }),
      )
    },
    expect: { message: [/boom/], orCause: true, details: { usable: true } },
  },
  {
    name: 'sample: onProgress throws',
    limitMs: SLOW,
    run: (ctx) => {
      const model = tinyModel()
      return withThrowingCallback(ctx, model, (onProgress) => model.sample({ count: 512, threads: 1, onProgress }))
    },
    expect: { message: [/boom/], orCause: true, details: { usable: true } },
  },
  {
    name: 'complete: onProgress throws',
    limitMs: SLOW,
    run: (ctx) => {
      const model = tinyModel()
      return withThrowingCallback(ctx, model, (onProgress) => model.complete(randomImages(512, 8, 8), { known: { rows: 2 }, threads: 1, onProgress }))
    },
    expect: { message: [/boom/], orCause: true, details: { usable: true } },
  },

  // 4. Requests that need more memory than the machine has
  {
    name: 'create: gated, 4096 filters, 64 layers',
    limitMs: SLOW,
    run: async () => PixelCNN.create({ architecture: 'gated', filters: 4096, layers: 64, device: 'cpu' }),
    expect: { names: ['ResourceError', 'ConfigError'], codes: ['Resource', 'InvalidConfig'], message: [MEMORY, /filters|layers/] },
  },
  {
    name: 'sample: count 1e7 on a 32×32×3 model',
    limitMs: SLOW,
    run: () =>
      PixelCNN.create({ architecture: 'gated', channels: 3, height: 32, width: 32, output: 'categorical', filters: 8, layers: 1, device: 'cpu' }).sample({
        count: 1e7,
      }),
    expect: { names: ['ResourceError', 'ConfigError'], codes: ['Resource', 'InvalidConfig'], message: [/count/, MEMORY] },
  },
  {
    name: 'sample: count 2000 on a tiny 8×8 model fits',
    limitMs: SLOW,
    run: async (ctx) => {
      const images = await tinyModel().sample({ count: 2000 })
      ctx.report({ count: images.count })
    },
    expect: { ok: true, details: { count: 2000 } },
  },
  {
    name: 'fit: batchSize 65536 of 32×32×3 images on a gated 256-filter model',
    limitMs: SLOW,
    run: async () => {
      const model = PixelCNN.create({ architecture: 'gated', channels: 3, height: 32, width: 32, output: 'categorical', filters: 256, layers: 4, device: 'cpu' })
      const count = 65536
      const train = { count, height: 32, width: 32, channels: 3, data: new Uint8Array(count * 32 * 32 * 3) }
      await model.fit({ data: { train }, batchSize: 65536, epochs: 1 })
    },
    expect: { names: ['ResourceError', 'ConfigError'], codes: ['Resource', 'InvalidConfig'], message: [/batchSize/, MEMORY] },
  },
  {
    name: 'load: a checkpoint whose header declares a tensor of 1e12 elements',
    limitMs: SLOW,
    run: async (ctx) => PixelCNN.load(await checkpointWith(ctx, 'huge-tensor.safetensors', (h) => { h['output.bias'].shape = [1_000_000, 1_000_000] })),
    expect: { names: ['CheckpointError', 'ResourceError'], codes: ['Checkpoint', 'Resource'], message: [/huge-tensor\.safetensors/] },
  },

  // 5. Reads that never end
  {
    name: 'loadIdx: /dev/zero',
    limitMs: QUICK,
    run: () => loadIdx('/dev/zero'),
    expect: { names: ['DataError', 'IoError'], codes: ['InvalidData', 'Io'], message: [/\/dev\/zero/], maxMs: 10_000 },
  },
  {
    name: 'load: /dev/zero',
    limitMs: QUICK,
    run: () => PixelCNN.load('/dev/zero'),
    expect: { names: ['CheckpointError', 'IoError'], codes: ['Checkpoint', 'Io'], message: [/\/dev\/zero/], maxMs: 10_000 },
  },
  {
    name: 'load: a FIFO',
    limitMs: QUICK,
    run: (ctx) => PixelCNN.load(fifo(ctx, 'pipe.safetensors')),
    expect: { names: ['CheckpointError', 'IoError'], codes: ['Checkpoint', 'Io'], message: [/pipe\.safetensors/], maxMs: 10_000 },
  },
  {
    name: 'loadIdx: a FIFO',
    limitMs: QUICK,
    run: (ctx) => loadIdx(fifo(ctx, 'pipe.idx')),
    expect: { names: ['DataError', 'IoError'], codes: ['InvalidData', 'Io'], message: [/pipe\.idx/], maxMs: 10_000 },
  },
  {
    name: 'loadImageFolder: a FIFO named x.png',
    limitMs: QUICK,
    run: (ctx) => {
      const dir = join(ctx.dir, 'folder-with-fifo')
      mkdirSync(dir)
      fifo(ctx, join('folder-with-fifo', 'x.png'))
      return loadImageFolder(dir)
    },
    expect: { names: ['DataError', 'IoError'], codes: ['InvalidData', 'Io'], message: [/folder-with-fifo|x\.png/], maxMs: 10_000 },
  },
  {
    name: 'load: a directory',
    limitMs: QUICK,
    run: (ctx) => {
      const dir = join(ctx.dir, 'ckpt-dir.safetensors')
      mkdirSync(dir)
      return PixelCNN.load(dir)
    },
    expect: { names: ['CheckpointError', 'IoError'], codes: ['Checkpoint', 'Io'], message: [/ckpt-dir\.safetensors/], maxMs: 10_000 },
  },

  // 6. Waits on peers that never answer
  {
    name: 'fit: distributed, the master accepts and never answers (timeoutSeconds 3)',
    limitMs: 60_000,
    run: async (ctx) => {
      const masterPort = await silentTcpServer()
      const model = tinyModel({ preset: 'small' })
      try {
        await model.fit({
          data: { train: randomImages(4, 8, 8) },
          batchSize: 4,
          distributed: { rank: 1, worldSize: 2, masterAddr: '127.0.0.1', masterPort, timeoutSeconds: 3 },
        })
      } finally {
        ctx.report({ elapsedSeconds: Math.round(ctx.elapsed() / 100) / 10 })
      }
    },
    expect: { names: ['DistributedError'], codes: ['Distributed'], maxMs: 3_000 + 30_000 },
  },
  {
    name: 'fit: distributed, the master never answers, aborted after 1 s',
    // Below the 60 s timeoutSeconds: a run that ignored the abort is killed here and fails.
    limitMs: 45_000,
    run: async (ctx) => {
      const masterPort = await silentTcpServer()
      const model = tinyModel({ preset: 'small' })
      const controller = new AbortController()
      setTimeout(() => controller.abort(), 1000)
      try {
        await model.fit({
          data: { train: randomImages(4, 8, 8) },
          batchSize: 4,
          distributed: { rank: 1, worldSize: 2, masterAddr: '127.0.0.1', masterPort, timeoutSeconds: 60 },
          signal: controller.signal,
        })
      } finally {
        ctx.report({ elapsedSeconds: Math.round(ctx.elapsed() / 100) / 10 })
      }
    },
    expect: { names: ['AbortError'], codes: ['Aborted'], maxMs: 1_000 + 25_000 },
  },
  {
    name: 'download: a byte every 300 ms with timeoutMs 2000',
    // The body takes 300 s: a trickle that kept the download going is killed here and fails.
    limitMs: 45_000,
    run: async (ctx) => {
      const server = createHttpServer((_req, res) => {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 1000 })
        const timer = setInterval(() => res.write(Buffer.from([42])), 300)
        res.on('close', () => clearInterval(timer))
      })
      await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
      const { port } = server.address() as AddressInfo
      try {
        await downloadVerified({
          file: 'trickle.bin',
          mirrors: [`http://127.0.0.1:${port}/`],
          cacheDir: join(ctx.dir, 'cache'),
          sha256: '0'.repeat(64),
          timeoutMs: 2000,
        })
      } finally {
        ctx.report({ elapsedSeconds: Math.round(ctx.elapsed() / 100) / 10 })
      }
    },
    expect: { names: ['IoError'], codes: ['Io'], message: [/trickle\.bin/], maxMs: 2_000 + 28_000 },
  },

  // 7. Misuse of the API
  {
    name: 'loadImageFolder(dir, null)',
    limitMs: QUICK,
    run: (ctx) => loadImageFolder(ctx.dir, null as never),
    expect: { ...TYPED_CONFIG, message: [/options/] },
  },
  {
    name: 'loadIdx(images, labels, null)',
    limitMs: QUICK,
    run: (ctx) => {
      const images = idxFile(ctx, 'images.idx', [2, 4, 4], Buffer.alloc(32))
      const labels = idxFile(ctx, 'labels.idx', [2], Buffer.from([0, 1]))
      return loadIdx(images, labels, null as never)
    },
    expect: { ...TYPED_CONFIG, message: [/options/] },
  },
  {
    name: 'loadCifar10(null)',
    limitMs: QUICK,
    run: () => loadCifar10(null as never),
    expect: { ...TYPED_CONFIG, message: [/options/] },
  },
  {
    name: 'PixelCNN.load(path, null)',
    limitMs: QUICK,
    run: async (ctx) => PixelCNN.load(await savedCheckpoint(ctx), null as never),
    expect: { ...TYPED_CONFIG, message: [/options/] },
  },
  {
    name: 'create: options with a circular reference',
    limitMs: QUICK,
    run: async () => {
      const options: Record<string, unknown> = { ...TINY, device: 'cpu' }
      options.loop = options
      return PixelCNN.create(options as never)
    },
    expect: { ...TYPED_CONFIG, message: [/circular|cycle|itself|loop/i] },
  },
  {
    name: 'fit: options with a circular reference',
    limitMs: QUICK,
    run: () => {
      const checkpoint: Record<string, unknown> = { every: 1 }
      checkpoint.loop = checkpoint
      return tinyModel().fit({ data: { train: randomImages(4, 8, 8) }, checkpoint: checkpoint as never })
    },
    expect: { ...TYPED_CONFIG, message: [/circular|cycle|itself|checkpoint/i] },
  },
  {
    name: 'sample: options with a circular reference',
    limitMs: QUICK,
    run: () => {
      const options: Record<string, unknown> = { count: 1 }
      options.loop = options
      return tinyModel().sample(options as never)
    },
    expect: { ...TYPED_CONFIG, message: [/circular|cycle|itself|loop/i] },
  },
  {
    name: 'new PixelCNN() without create or load',
    limitMs: QUICK,
    run: async () => new (PixelCNN as unknown as new () => PixelCNN)(),
    expect: { ...TYPED_CONFIG, message: [/PixelCNN\.(create|load|train)/] },
  },
  {
    name: 'create: a Map as options',
    limitMs: QUICK,
    run: async () => PixelCNN.create(new Map<string, unknown>([['filters', 8], ['device', 'cpu']]) as never),
    expect: { ...TYPED_CONFIG, message: [/options/, /Map/] },
  },
  {
    name: 'fit: NaN among trainLabels',
    limitMs: QUICK,
    run: () =>
      tinyModel({ classes: 10 }).fit({ data: { train: randomImages(4, 8, 8), trainLabels: [0, Number.NaN, 2, 3] }, batchSize: 4 }),
    expect: { ...TYPED_CONFIG, message: [/data\.trainLabels\[1\]/] },
  },
  {
    name: 'fit: a BigInt among trainLabels',
    limitMs: QUICK,
    run: () =>
      tinyModel({ classes: 10 }).fit({ data: { train: randomImages(4, 8, 8), trainLabels: [0, 1, 2n, 3] as never }, batchSize: 4 }),
    expect: { ...TYPED_CONFIG, message: [/data\.trainLabels\[2\]/] },
  },
  {
    name: 'sample: labels [1n]',
    limitMs: QUICK,
    run: () => tinyModel({ classes: 10 }).sample({ labels: [1n] as never }),
    expect: { ...TYPED_CONFIG, message: [/labels\[0\]/] },
  },

  // 8. Resuming a checkpoint as another architecture
  {
    name: 'train: resume a pixelcnn checkpoint with model gated-small',
    limitMs: SLOW,
    run: async (ctx) => {
      const path = join(ctx.dir, 'resume.safetensors')
      const train = randomImages(8, 8, 8)
      await PixelCNN.train({ data: { train }, model: TINY, device: 'cpu', epochs: 1, batchSize: 4, checkpoint: { path } })
      const before = sha256(path)
      try {
        await PixelCNN.train({ data: { train }, model: { preset: 'gated-small' }, device: 'cpu', epochs: 2, batchSize: 4, checkpoint: { path }, resume: true })
      } finally {
        ctx.report({ checkpointUnchanged: sha256(path) === before })
      }
    },
    expect: { ...TYPED_CONFIG, message: [/pixelcnn/, /gated/], details: { checkpointUnchanged: true } },
  },

  // Regression: native inputs that once were risky
  {
    name: 'load: a truncated checkpoint',
    limitMs: QUICK,
    run: async (ctx) => {
      const bytes = readFileSync(await savedCheckpoint(ctx))
      const cut = join(ctx.dir, 'cut.safetensors')
      writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length / 2)))
      return PixelCNN.load(cut)
    },
    expect: { names: ['CheckpointError'], codes: ['Checkpoint'], message: [/cut\.safetensors/] },
  },
  {
    name: 'load: a checkpoint with a huge header length',
    limitMs: QUICK,
    run: (ctx) => {
      const file = join(ctx.dir, 'absurd.safetensors')
      const bytes = Buffer.alloc(64)
      bytes.writeBigUInt64LE(1n << 60n)
      writeFileSync(file, bytes)
      return PixelCNN.load(file)
    },
    expect: { names: ['CheckpointError'], codes: ['Checkpoint'], message: [/absurd\.safetensors/] },
  },
  {
    name: 'load: random bytes',
    limitMs: QUICK,
    run: (ctx) => {
      const file = join(ctx.dir, 'random.safetensors')
      writeFileSync(file, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919 + 13) % 256)))
      return PixelCNN.load(file)
    },
    expect: { names: ['CheckpointError'], codes: ['Checkpoint'], message: [/random\.safetensors/] },
  },
  {
    name: 'loadIdx: dimensions whose product overflows',
    limitMs: QUICK,
    run: (ctx) => loadIdx(idxFile(ctx, 'overflow.idx', [0xffffffff, 0xffffffff, 0xffffffff], Buffer.alloc(64))),
    expect: { names: ['DataError'], codes: ['InvalidData'], message: [/overflow\.idx/] },
  },
]
