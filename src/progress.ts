/**
 * Progress callbacks of the long native calls (`fit`, `sample`, `complete`):
 * a guard around the user's `onProgress`, and the cancel token that both an
 * `AbortSignal` and a failing callback stop the native work through.
 */

import { AbortError, native } from './errors'
import { nativeBinding } from './native'
import type { CancelToken } from '../native/index'

/**
 * A user's progress callback, guarded. A throw escaping a native progress call
 * would be an uncaught exception that ends Node, and a rejected promise from an
 * async callback an unhandled rejection; instead the first failure is kept,
 * cancels the native work (through the same token as `signal`), and no further
 * events are delivered.
 *
 * Promises the callback returns get a rejection handler but are never waited
 * for: one that never settles cannot hold the call. When the native call
 * settles, a failure already recorded is the call's error (it is why the work
 * stopped); otherwise the native result or error stands, and a rejection that
 * comes later is ignored (handled, so it is no unhandledRejection either).
 */
export class Listener<E> {
  readonly #callback: ((event: E) => unknown) | undefined
  #failure: { error: unknown } | undefined
  #cancel: (() => void) | undefined
  /** Promises returned by the callback that have not settled yet. */
  #unsettled = 0

  constructor(callback: ((event: E) => unknown) | undefined) {
    this.#callback = callback
  }

  get active(): boolean {
    return this.#callback !== undefined && this.#failure === undefined
  }

  /** Called once the native call has its token; a failure before that cancels at once. */
  onCancel(cancel: () => void): void {
    this.#cancel = cancel
    if (this.#failure) cancel()
  }

  emit(event: E): void {
    if (!this.active) return
    try {
      const result = this.#callback!(event)
      if (isThenable(result)) {
        this.#unsettled++
        Promise.resolve(result).then(
          () => this.#unsettled--,
          (error: unknown) => {
            this.#unsettled--
            this.#fail(error)
          },
        )
      }
    } catch (error) {
      this.#fail(error)
    }
  }

  /**
   * After the native call resolved (and the last `emit`): throws the
   * callback's first failure, if any. Promises still pending get one turn of
   * the event loop, so that one already rejected (`Promise.reject(e)`, an
   * async callback that threw before its first `await`) counts; pending ones
   * are not waited for beyond that.
   */
  async settled(): Promise<void> {
    if (this.#unsettled > 0 && this.#failure === undefined) await new Promise((resolve) => setImmediate(resolve))
    if (this.#failure) throw this.#failure.error
  }

  /**
   * After the native call rejected with `error`: the callback's failure when
   * one was recorded by then (the native error is then the cancel it caused),
   * else `error` itself. A later rejection never replaces it.
   */
  reason(error: unknown): unknown {
    return this.#failure ? this.#failure.error : error
  }

  #fail(error: unknown): void {
    if (this.#failure) return
    this.#failure = { error }
    this.#cancel?.()
  }
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return (typeof value === 'object' || typeof value === 'function') && value !== null && typeof (value as { then?: unknown }).then === 'function'
}

/** Runs a native call with a cancel token wired to `signal` and to the listener's failure. */
export async function cancellable<T, E>(
  signal: AbortSignal | undefined,
  listener: Listener<E>,
  what: string,
  run: (token: CancelToken) => Promise<T>,
): Promise<T> {
  if (signal?.aborted) throw new AbortError(`${what} was aborted before it started`)
  const token = new (nativeBinding().CancelToken)()
  const onAbort = () => token.cancel()
  signal?.addEventListener('abort', onAbort, { once: true })
  listener.onCancel(onAbort)
  try {
    return await native(() => run(token))
  } finally {
    signal?.removeEventListener('abort', onAbort)
  }
}
