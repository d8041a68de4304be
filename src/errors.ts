/**
 * Typed errors. Every error this library throws is a `PixelCNNError` subclass
 * with a stable `code`; errors from the native core keep the native error as
 * `cause`.
 */

export type ErrorCode =
  | 'InvalidConfig'
  | 'InvalidData'
  | 'Checkpoint'
  | 'DeviceUnavailable'
  | 'Aborted'
  | 'Busy'
  | 'Io'
  | 'Distributed'
  | 'LibtorchNotFound'
  | 'Resource'
  | 'Diverged'
  | 'Internal'

export class PixelCNNError extends Error {
  readonly code: ErrorCode
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** A configuration value is of the wrong type, out of range, or unknown. */
export class ConfigError extends PixelCNNError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('InvalidConfig', message, options)
  }
}

/** Images or dataset files do not have the expected shape, values or format. */
export class DataError extends PixelCNNError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('InvalidData', message, options)
  }
}

/** A checkpoint is unreadable, corrupt, or does not match its model. */
export class CheckpointError extends PixelCNNError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Checkpoint', message, options)
  }
}

/** The requested device (`cuda`, `cuda:N`) is not available. */
export class DeviceError extends PixelCNNError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('DeviceUnavailable', message, options)
  }
}

/** The work was stopped by an `AbortSignal`. */
export class AbortError extends PixelCNNError {
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super('Aborted', message, options)
  }
}

/** The model is busy with another call (models run one call at a time). */
export class BusyError extends PixelCNNError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Busy', message, options)
  }
}

/** A file could not be read or written. */
export class IoError extends PixelCNNError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Io', message, options)
  }
}

/** A data-parallel group failed: a rank did not join or died, or a collective timed out. Names the rank. */
export class DistributedError extends PixelCNNError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Distributed', message, options)
  }
}

/**
 * The request needs more memory (or another resource) than this machine has:
 * the message says how much was needed and which option to lower. Raised
 * before allocating, so the process and the model stay usable.
 */
export class ResourceError extends PixelCNNError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Resource', message, options)
  }
}

/**
 * Training gave up: `maxNonFiniteSteps` steps in a row had a non-finite loss or gradient. The message names
 * the step; those steps were not taken, and checkpoints saved before are intact.
 */
export class TrainingDivergedError extends PixelCNNError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('Diverged', message, options)
  }
}

/** libtorch could not be found or loaded. */
export class LibtorchError extends PixelCNNError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('LibtorchNotFound', message, options)
  }
}

const CODES = new Set<string>(['InvalidConfig', 'InvalidData', 'Checkpoint', 'DeviceUnavailable', 'Aborted', 'Busy', 'Io', 'Distributed', 'Resource', 'Diverged', 'Internal'])

/** Turns an error from the native addon into its class, by the `code` the core set on it. */
export function fromNative(error: unknown): Error {
  if (error instanceof PixelCNNError || !(error instanceof Error)) return error as Error
  const code = (error as Error & { code?: unknown }).code
  const options = { cause: error }
  if (typeof code !== 'string' || !CODES.has(code)) return new PixelCNNError('Internal', error.message, options)
  const message = error.message
  switch (code) {
    case 'InvalidConfig': return new ConfigError(message, options)
    case 'InvalidData': return new DataError(message, options)
    case 'Checkpoint': return new CheckpointError(message, options)
    case 'DeviceUnavailable': return new DeviceError(message, options)
    case 'Aborted': return new AbortError(message, options)
    case 'Busy': return new BusyError(message, options)
    case 'Io': return new IoError(message, options)
    case 'Distributed': return new DistributedError(message, options)
    case 'Resource': return new ResourceError(message, options)
    case 'Diverged': return new TrainingDivergedError(message, options)
    default: return new PixelCNNError('Internal', message, options)
  }
}

/** Awaits a native call, rethrowing its error as a typed one. */
export async function native<T>(call: () => Promise<T> | T): Promise<T> {
  try {
    return await call()
  } catch (error) {
    throw fromNative(error)
  }
}

/** Runs a synchronous native call, rethrowing its error as a typed one. */
export function nativeSync<T>(call: () => T): T {
  try {
    return call()
  } catch (error) {
    throw fromNative(error)
  }
}
