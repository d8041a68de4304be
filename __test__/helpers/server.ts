/**
 * A local HTTP server for the download tests: routes map a path to a body (a
 * Buffer, served with its Content-Length) or to a handler that can misbehave
 * (error status, truncated body, never answering). Every request is logged.
 */

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'

export type Route = Buffer | ((req: IncomingMessage, res: ServerResponse) => void)

export interface TestServer {
  /** `http://127.0.0.1:<port>`, without a trailing slash. */
  origin: string
  /** Paths requested so far, in order. */
  requests: string[]
  routes: Map<string, Route>
  close(): Promise<void>
}

export async function startServer(routes: Record<string, Route> = {}): Promise<TestServer> {
  const table = new Map(Object.entries(routes))
  const requests: string[] = []
  const server = createServer((req, res) => {
    const path = new URL(req.url ?? '/', 'http://x').pathname
    requests.push(path)
    const route = table.get(path)
    if (route === undefined) {
      res.writeHead(404, { 'content-length': 0 }).end()
    } else if (Buffer.isBuffer(route)) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': route.length }).end(route)
    } else {
      route(req, res)
    }
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as AddressInfo
  return {
    origin: `http://127.0.0.1:${port}`,
    requests,
    routes: table,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections()
        server.close(() => resolve())
      }),
  }
}

/** A URL on which nothing listens (a server bound, then closed). */
export async function refusedOrigin(): Promise<string> {
  const server = await startServer()
  await server.close()
  return server.origin
}

/** Announces `body.length * 2` bytes, sends `body`, then closes the connection. */
export function truncated(body: Buffer): Route {
  return (_req, res) => {
    res.writeHead(200, { 'content-length': body.length * 2 })
    res.write(body, () => setTimeout(() => res.socket?.destroy(), 20))
  }
}

/** Accepts the request and never answers. */
export const silent: Route = () => {}

/** Sends the first `head` bytes at once, then stalls forever. */
export function stallAfter(body: Buffer, head: number): Route {
  return (_req, res) => {
    res.writeHead(200, { 'content-length': body.length })
    res.write(body.subarray(0, head))
  }
}

/** Sends `body` in `parts` pieces `delayMs` apart. */
export function slow(body: Buffer, parts: number, delayMs: number): Route {
  return (_req, res) => {
    res.writeHead(200, { 'content-length': body.length })
    const size = Math.ceil(body.length / parts)
    let offset = 0
    const next = () => {
      if (res.destroyed) return
      res.write(body.subarray(offset, offset + size))
      offset += size
      if (offset >= body.length) res.end()
      else setTimeout(next, delayMs)
    }
    next()
  }
}

export function status(code: number): Route {
  return (_req, res) => {
    res.writeHead(code, { 'content-length': 0 }).end()
  }
}

export function redirect(location: string, code = 302): Route {
  return (_req, res) => {
    res.writeHead(code, { location, 'content-length': 0 }).end()
  }
}

/**
 * Announces `body`'s full length, then sends it `bytes` at a time every
 * `intervalMs` — never idle long enough for an idle timeout, so only an
 * overall deadline (or an abort) stops it.
 */
export function trickle(body: Buffer, bytes: number, intervalMs: number): Route {
  return (_req, res) => {
    res.writeHead(200, { 'content-length': body.length })
    let offset = 0
    const timer = setInterval(() => {
      if (res.destroyed || offset >= body.length) {
        clearInterval(timer)
        if (!res.destroyed) res.end()
        return
      }
      res.write(body.subarray(offset, offset + bytes))
      offset += bytes
    }, intervalMs)
    res.on('close', () => clearInterval(timer))
  }
}
