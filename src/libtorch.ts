/**
 * Finding libtorch at run time, before the addon loads, so that users never
 * set LD_LIBRARY_PATH. Looked for in this order:
 * 1. `PIXELCNN_LIBTORCH` or `LIBTORCH`: a libtorch directory or a PyTorch
 *    `torch/` package directory (either has `lib/libtorch.so`, `.dylib` on macOS);
 * 2. the `torch` package of the active `python3`, if it is the exact version
 *    the addon was built against;
 * 3. the environment `npx pixelcnn setup` installs in the user's cache.
 * The found libraries are opened with RTLD_GLOBAL: the dynamic linker then
 * reuses them, by soname, for the addon's own dependencies. (Node's
 * `process.dlopen` opens a library that is not an addon, then reports it did
 * not register a module; RTLD_NODELETE keeps it loaded anyway.) A libtorch
 * already in the process (another libtorch addon) is reused the same way.
 */

import { execFileSync } from 'node:child_process'
import { existsSync, readdirSync, readFileSync } from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { resolveCacheDir } from './data/cache'
import { LibtorchError } from './errors'

/** The PyTorch release the addon links (tch 0.24). */
export const LIBTORCH_VERSION = '2.11.0'

/** Shared-library names differ by platform: libtorch.so on Linux, libtorch.dylib on macOS. */
const LIB_EXT = process.platform === 'darwin' ? 'dylib' : 'so'
/** RTLD_NODELETE, which Node does not export: 0x1000 in glibc, 0x80 on macOS. */
const RTLD_NODELETE = process.platform === 'darwin' ? 0x80 : 0x1000

export interface LibtorchLocation {
  /** The directory holding libtorch.so, libtorch_cpu.so, libc10.so. */
  libDir: string
  version: string | null
  source: string
}

/** `2.11.0+cu130` → `2.11.0`. */
function release(version: string): string {
  return version.trim().split('+')[0]
}

/** The version of a libtorch or `torch/` directory, or null when it does not say. */
function versionOf(root: string): string | null {
  const pyVersion = path.join(root, 'version.py')
  if (existsSync(pyVersion)) {
    const match = /__version__\s*=\s*['"]([^'"]+)['"]/.exec(readFileSync(pyVersion, 'utf8'))
    if (match) return release(match[1])
  }
  const buildVersion = path.join(root, 'build-version')
  if (existsSync(buildVersion)) return release(readFileSync(buildVersion, 'utf8'))
  return null
}

function inspect(root: string, source: string): LibtorchLocation | string {
  const libDir = path.join(root, 'lib')
  if (!existsSync(path.join(libDir, `libtorch.${LIB_EXT}`))) return `${source}: ${root} has no lib/libtorch.${LIB_EXT}`
  const version = versionOf(root)
  if (version !== null && version !== LIBTORCH_VERSION) return `${source}: ${root} is PyTorch ${version}, but this addon needs ${LIBTORCH_VERSION}`
  return { libDir, version, source }
}

function pythonTorch(python: string): string | null {
  try {
    // find_spec locates the package without importing it (importing torch takes seconds).
    const script = "import importlib.util as u; s = u.find_spec('torch'); print(s.submodule_search_locations[0] if s else '')"
    const out = execFileSync(python, ['-c', script], { encoding: 'utf8', timeout: 20_000, stdio: ['ignore', 'pipe', 'ignore'] })
    return out.trim().split('\n').pop() || null
  } catch {
    return null
  }
}

/** The torch/ directory inside the cached setup environment, if installed. */
function cachedTorch(): string | null {
  const env = path.join(resolveCacheDir(), `torch-${LIBTORCH_VERSION}`)
  const lib = path.join(env, 'lib')
  if (!existsSync(path.join(env, '.complete')) || !existsSync(lib)) return null
  for (const python of readdirSync(lib).filter((d) => d.startsWith('python'))) {
    const torch = path.join(lib, python, 'site-packages', 'torch')
    if (existsSync(torch)) return torch
  }
  return null
}

/** Where libtorch is, or a LibtorchError that lists where it looked and the fix. */
export function findLibtorch(env: NodeJS.ProcessEnv = process.env): LibtorchLocation {
  const tried: string[] = []
  const check = (root: string | null | undefined, source: string): LibtorchLocation | null => {
    if (!root) return null
    const found = inspect(root, source)
    if (typeof found === 'string') {
      tried.push(found)
      return null
    }
    return found
  }
  for (const name of ['PIXELCNN_LIBTORCH', 'LIBTORCH'] as const) {
    if (env[name]) {
      const found = check(env[name], `$${name}`)
      if (found) return found
    } else tried.push(`$${name}: not set`)
  }
  const python = env.PIXELCNN_PYTHON_FOR_TORCH || 'python3'
  const fromPython = pythonTorch(python)
  if (fromPython) {
    const found = check(fromPython, `${python} -c 'import torch'`)
    if (found) return found
  } else tried.push(`${python} -c 'import torch': no torch package`)
  const cached = cachedTorch()
  if (cached) {
    const found = check(cached, 'the `npx pixelcnn setup` environment')
    if (found) return found
  } else tried.push(`the \`npx pixelcnn setup\` environment: not in ${path.join(resolveCacheDir(), `torch-${LIBTORCH_VERSION}`)}`)
  throw new LibtorchError(
    `pixelcnn needs libtorch ${LIBTORCH_VERSION} (PyTorch ${LIBTORCH_VERSION}) and found none:\n` +
      tried.map((t) => `  - ${t}`).join('\n') +
      `\nFix: run \`npx pixelcnn setup\` (installs torch==${LIBTORCH_VERSION} from PyPI into your cache, once), ` +
      `or set PIXELCNN_LIBTORCH to a libtorch ${LIBTORCH_VERSION} or PyTorch ${LIBTORCH_VERSION} torch/ directory.`,
  )
}

let preloaded: LibtorchLocation | undefined

/** Opens libtorch's libraries process-wide so that the addon links against them. */
export function preloadLibtorch(): LibtorchLocation {
  if (preloaded) return preloaded
  const location = findLibtorch()
  const { RTLD_NOW, RTLD_GLOBAL } = os.constants.dlopen
  for (const lib of ['libc10', 'libtorch_cpu', 'libtorch']) {
    const file = path.join(location.libDir, `${lib}.${LIB_EXT}`)
    try {
      process.dlopen({ exports: {} } as NodeJS.Module, file, RTLD_NOW | RTLD_GLOBAL | RTLD_NODELETE)
    } catch (error) {
      // Expected: a plain library registers no Node module. Anything else is real.
      if (!/did not self-register/.test((error as Error).message)) {
        throw new LibtorchError(`could not load ${file}: ${(error as Error).message}`, { cause: error })
      }
    }
  }
  preloaded = location
  return location
}
