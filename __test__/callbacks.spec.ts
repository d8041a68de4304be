/**
 * A progress callback that throws (or whose promise rejects) must not end the
 * process: the call rejects with the callback's own error, the native work
 * stops within one step through the cancel token, no event is delivered after
 * the throw, and the model is usable afterwards. The promises a callback
 * returns are not waited for: one that never settles holds nothing, and one
 * that rejects after the call settled is handled and changes nothing.
 */
import test, { type ExecutionContext } from 'ava'
import { existsSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import * as path from 'node:path'
import { PixelCNN, type PixelCNNError, type SampleProgress, type TrainProgress } from '../src/index'
import { randomImages, stripedImages, TINY } from './support/images'

const dir = mkdtempSync(path.join(tmpdir(), 'pixelcnn-callbacks-'))

// Anything escaping to the event loop lands here instead of killing the worker.
const escaped: unknown[] = []
process.on('uncaughtException', (error) => escaped.push(error))
process.on('unhandledRejection', (error) => escaped.push(error))

/** Late native events (queued before the cancel) get time to arrive, then nothing may have escaped. */
async function nothingEscaped(t: ExecutionContext): Promise<void> {
  await new Promise((resolve) => setTimeout(resolve, 300))
  t.deepEqual(escaped.map(String), [], 'no uncaughtException or unhandledRejection')
}

// 128 steps an epoch, so that an epoch outlasts the latency of one event by far.
const big = { train: stripedImages(2048, 8, 8, 1) }
const small = { train: stripedImages(32, 8, 8, 2) }
const long = { data: big, epochs: 20, batchSize: 16, threads: 2 } as const

/**
 * Sampling checks the cancel token between rows, so the work stops within a
 * row of the throw. Counted, not timed (the suite runs on loaded machines):
 * the throw came well before the last row, no event came after it (a sampler
 * that went on would report the rows it sampled), and the call rejected long
 * before the rest of the batch could have been sampled: the time from the
 * throw to the rejection is under half the time the rows left would take at
 * the pace of the rows before the throw (a cancelled run needs about one
 * row's time: a margin of ten rows or more, however slow the machine).
 */
function stoppedWithinRows(t: ExecutionContext, seen: { at?: unknown; afterThrow: number; msBeforeThrow: number; thrownAt: number }): void {
  const { rowsDone, rowsTotal } = seen.at as { rowsDone: number; rowsTotal: number }
  t.true(rowsDone <= rowsTotal / 2, `thrown at row ${rowsDone} of ${rowsTotal}`)
  t.is(seen.afterThrow, 0, 'no rows event after the throw')
  const perRow = seen.msBeforeThrow / rowsDone
  const after = performance.now() - seen.thrownAt
  const left = (rowsTotal - rowsDone) * perRow
  const report = `${after.toFixed(0)} ms from the throw to the rejection; a row takes about ${perRow.toFixed(0)} ms, the ${rowsTotal - rowsDone} rows left about ${left.toFixed(0)} ms`
  t.log(report)
  t.true(after < left / 2, report)
}

/**
 * A callback that throws `error` at the `n`-th event of `type` (1-based) and
 * counts the events it receives after that: there must be none.
 */
function throwsAt<E extends { type: string }>(type: E['type'], n: number, error: unknown, asynchronously = false) {
  const started = performance.now()
  const seen = { matching: 0, afterThrow: 0, thrown: false, at: undefined as E | undefined, msBeforeThrow: 0, thrownAt: 0 }
  const callback = (event: E): void | Promise<void> => {
    if (seen.thrown) {
      seen.afterThrow++
      return
    }
    if (event.type !== type || ++seen.matching < n) return
    seen.thrown = true
    seen.at = event
    seen.thrownAt = performance.now()
    seen.msBeforeThrow = seen.thrownAt - started
    if (asynchronously) return Promise.reject(error)
    throw error
  }
  return { seen, callback }
}

test('fit: a throw at the first step event rejects with that error, stops at once, and the model trains again', async (t) => {
  const model = PixelCNN.create({ ...TINY, device: 'cpu' })
  const boom = new Error('boom at step 1')
  const { seen, callback } = throwsAt<TrainProgress>('step', 1, boom)
  const error = await t.throwsAsync(model.fit({ ...long, onProgress: callback }))
  t.is(error, boom, 'the very error the callback threw, not a wrapper')
  t.is(seen.afterThrow, 0, 'no event after the throw')
  t.deepEqual(model.history, [], 'stopped inside the first of 20 epochs of 128 steps')
  // Usable: trains and samples.
  await model.fit({ data: small, epochs: 1, batchSize: 16 })
  t.is(model.history.length, 1)
  t.is((await model.sample({ count: 2 })).data.length, 128)
  await nothingEscaped(t)
})

test('fit: a throw at a later event (the first epoch) stops within one step: no second epoch is recorded', async (t) => {
  const model = PixelCNN.create({ ...TINY, device: 'cpu' })
  const boom = new Error('boom at epoch 1')
  const { seen, callback } = throwsAt<TrainProgress>('epoch', 1, boom)
  const started = Date.now()
  const error = await t.throwsAsync(model.fit({ ...long, onProgress: callback }))
  const seconds = (Date.now() - started) / 1000
  t.is(error, boom)
  t.is((seen.at as { epoch: number }).epoch, 1)
  t.is(seen.afterThrow, 0, 'no event after the throw')
  t.deepEqual(model.history.map((r) => r.epoch), [1], `after ${seconds} s: the epoch that ended is kept, and no other`)
  await model.fit({ data: small, epochs: 1, batchSize: 16 })
  t.deepEqual(model.history.map((r) => r.epoch), [1, 2])
  await nothingEscaped(t)
})

test('fit: a throw at the third step event (a later, throttled event) rejects with it', async (t) => {
  const model = PixelCNN.create({ ...TINY, device: 'cpu' })
  const boom = new TypeError('boom at step event 3')
  const { seen, callback } = throwsAt<TrainProgress>('step', 3, boom)
  const error = await t.throwsAsync(model.fit({ ...long, onProgress: callback }))
  t.is(error, boom)
  t.is(seen.matching, 3)
  t.is(seen.afterThrow, 0)
  t.true(model.history.length < 2, `history ${JSON.stringify(model.history.map((r) => r.epoch))}`)
  await nothingEscaped(t)
})

test('fit: an async callback whose promise rejects is treated like a throw (no unhandledRejection)', async (t) => {
  const model = PixelCNN.create({ ...TINY, device: 'cpu' })
  const boom = new Error('async boom')
  const { seen, callback } = throwsAt<TrainProgress>('step', 1, boom, true)
  const error = await t.throwsAsync(model.fit({ ...long, onProgress: callback }))
  t.is(error, boom)
  t.is(seen.afterThrow, 0)
  t.deepEqual(model.history, [])
  // A rejection that comes later (the callback awaits first) still rejects the call.
  const late = new Error('late async boom')
  let calls = 0
  const error2 = await t.throwsAsync(
    model.fit({
      ...long,
      onProgress: async () => {
        if (++calls > 1) return
        await new Promise((resolve) => setTimeout(resolve, 50))
        throw late
      },
    }),
  )
  t.is(error2, late)
  t.true(model.history.length < 2)
  await model.fit({ data: small, epochs: 1, batchSize: 16 })
  await nothingEscaped(t)
})

/** `promise`, or a failed test after `ms`: a call held by its callback's promise is a hang, not a pass. */
async function within<T>(what: string, promise: Promise<T>, ms = 120_000): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const hang = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`HANG: ${what} did not settle within ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, hang])
  } finally {
    clearTimeout(timer)
  }
}

test('a callback whose promises never settle holds neither fit nor sample nor complete', async (t) => {
  const model = PixelCNN.create({ ...TINY, device: 'cpu' })
  let events = 0
  const never = () => {
    events++
    return new Promise<void>(() => {})
  }
  const history = await within('fit', model.fit({ data: small, epochs: 2, batchSize: 16, onProgress: never }))
  t.deepEqual(history.map((r) => r.epoch), [1, 2])
  const eventsOfFit = events
  t.true(eventsOfFit >= 3, `${eventsOfFit} events: steps, epochs and done`)
  t.is((await within('sample', model.sample({ count: 2, onProgress: never }))).count, 2)
  t.is((await within('complete', model.complete(randomImages(2, 8, 8, 7), { known: { rows: 4 }, onProgress: never }))).count, 2)
  t.true(events > eventsOfFit, 'sampling delivered its events too')
  await nothingEscaped(t)
})

test('a rejection after the call settled changes nothing: no unhandledRejection, the result or native error stands', async (t) => {
  const model = PixelCNN.create({ ...TINY, device: 'cpu' })
  const late = (ms: number) => () => new Promise<void>((_, reject) => setTimeout(() => reject(new Error('rejected after the call settled')), ms))
  // Every event's promise rejects a second after the (short) call resolved.
  const history = await model.fit({ data: small, epochs: 1, batchSize: 16, onProgress: late(1000) })
  t.is(history.length, 1)
  t.is((await model.sample({ count: 2, onProgress: late(1000) })).count, 2)
  // The call's own error (here an abort) is not replaced by a callback's rejection that comes later.
  const controller = new AbortController()
  let aborted = false
  const error = await t.throwsAsync(
    model.fit({
      ...long,
      signal: controller.signal,
      onProgress: (e) => {
        if (e.type === 'step' && !aborted) {
          aborted = true
          controller.abort()
        }
        return late(2000)()
      },
    }),
  )
  t.is((error as PixelCNNError).code, 'Aborted', `${error?.constructor.name}: ${error?.message}`)
  await new Promise((resolve) => setTimeout(resolve, 2000))
  // A promise that has already rejected when the work ends still counts (`done` is the last event).
  const boom = new Error('async boom at done')
  const { callback } = throwsAt<TrainProgress>('done', 1, boom, true)
  t.is(await t.throwsAsync(model.fit({ data: small, epochs: 1, batchSize: 16, onProgress: callback })), boom)
  await nothingEscaped(t)
})

test('fit: a throw at the final `done` event rejects the call, and the epochs trained are kept', async (t) => {
  const model = PixelCNN.create({ ...TINY, device: 'cpu' })
  const boom = new Error('boom at done')
  const { callback } = throwsAt<TrainProgress>('done', 1, boom)
  t.is(await t.throwsAsync(model.fit({ data: small, epochs: 2, batchSize: 16, onProgress: callback })), boom)
  t.deepEqual(model.history.map((r) => r.epoch), [1, 2])
  await nothingEscaped(t)
})

test('fit: a thrown non-Error value passes through as it is', async (t) => {
  const model = PixelCNN.create({ ...TINY, device: 'cpu' })
  const reason = { why: 'not an Error' }
  const rejection = await model.fit({ ...long, onProgress: () => { throw reason } }).then(
    () => undefined,
    (e: unknown) => e,
  )
  t.is(rejection, reason)
  await nothingEscaped(t)
})

// Sampling: 28×28 rows of the reference sampler (one full pass per pixel) take long enough for throttled events.
const WIDE = { ...TINY, height: 28, width: 28 } as const
const slowSample = { count: 16, method: 'reference', threads: 2, seed: 4 } as const

test('sample: a throw at the first and at a later rows event rejects with it, stops early, and sampling works again', async (t) => {
  const model = PixelCNN.create({ ...WIDE, device: 'cpu' })
  for (const n of [1, 3]) {
    const boom = new Error(`boom at rows event ${n}`)
    const { seen, callback } = throwsAt<SampleProgress>('rows', n, boom)
    const error = await t.throwsAsync(model.sample({ ...slowSample, onProgress: callback }))
    t.is(error, boom)
    t.is(seen.afterThrow, 0, 'no event after the throw')
    stoppedWithinRows(t, seen)
    const at = seen.at as { rowsDone: number; rowsTotal: number }
    t.true(at.rowsDone < at.rowsTotal, `thrown at row ${at.rowsDone} of ${at.rowsTotal}`)
  }
  // Usable, and unchanged: the same seed gives the images of a fresh model with the same weights.
  const again = await model.sample({ count: 2, seed: 9 })
  const fresh = await PixelCNN.create({ ...WIDE, device: 'cpu' }).sample({ count: 2, seed: 9 })
  t.deepEqual(again.data, fresh.data)
  await nothingEscaped(t)
})

test('sample: a rejected promise from an async callback rejects the call', async (t) => {
  const model = PixelCNN.create({ ...WIDE, device: 'cpu' })
  const boom = new Error('async sample boom')
  const { seen, callback } = throwsAt<SampleProgress>('rows', 1, boom, true)
  t.is(await t.throwsAsync(model.sample({ ...slowSample, onProgress: callback })), boom)
  stoppedWithinRows(t, seen)
  t.is(seen.afterThrow, 0)
  t.is((await model.sample({ count: 1 })).count, 1)
  await nothingEscaped(t)
})

test('sample: a throw at `done` rejects the call (the images are complete but the user said stop)', async (t) => {
  const model = PixelCNN.create({ ...TINY, device: 'cpu' })
  const boom = new Error('boom at done')
  const { callback } = throwsAt<SampleProgress>('done', 1, boom)
  t.is(await t.throwsAsync(model.sample({ count: 2, onProgress: callback })), boom)
  t.is((await model.sample({ count: 2 })).count, 2)
  await nothingEscaped(t)
})

test('complete: a throw at the first and a later rows event rejects with it, and completion works again', async (t) => {
  const model = PixelCNN.create({ ...WIDE, device: 'cpu' })
  const images = randomImages(16, 28, 28, 5)
  for (const n of [1, 3]) {
    const boom = new Error(`boom completing, rows event ${n}`)
    const { seen, callback } = throwsAt<SampleProgress>('rows', n, boom)
    const error = await t.throwsAsync(model.complete(images, { known: { rows: 2 }, method: 'reference', threads: 2, onProgress: callback }))
    t.is(error, boom)
    stoppedWithinRows(t, seen)
    t.is(seen.afterThrow, 0)
  }
  const done = await model.complete(randomImages(2, 28, 28, 6), { known: { rows: 27 } })
  t.is(done.count, 2)
  await nothingEscaped(t)
})

test('PixelCNN.train: a throw rejects with it; the checkpoint holds the steps taken and resumes', async (t) => {
  const checkpoint = { path: path.join(dir, 'thrown.safetensors'), every: 0 }
  const options = { data: big, model: TINY, device: 'cpu', epochs: 3, batchSize: 16, threads: 2, checkpoint } as const
  for (const [type, n] of [['step', 1], ['epoch', 1]] as const) {
    const boom = new Error(`train boom at ${type} ${n}`)
    const { seen, callback } = throwsAt<TrainProgress>(type, n, boom)
    t.is(await t.throwsAsync(PixelCNN.train({ ...options, onProgress: callback })), boom)
    t.is(seen.afterThrow, 0)
  }
  // The second run threw at its first epoch event; aborting saved the steps taken.
  t.true(existsSync(checkpoint.path))
  const saved = await PixelCNN.load(checkpoint.path, { device: 'cpu' })
  t.deepEqual(saved.history.map((r) => r.epoch), [1])
  const resumed = await PixelCNN.train({ ...options, resume: true })
  t.deepEqual(resumed.history.map((r) => r.epoch), [1, 2, 3])
  await nothingEscaped(t)
})
