/**
 * Run as a separate process by the download tests (`node --import tsx
 * download-child.ts '<json request>'`), to check that two processes filling
 * the same cache at once do not corrupt it. Prints the result as JSON.
 */

import { downloadVerified, type DownloadRequest } from '../../src/data/download'

const request = JSON.parse(process.argv[2]) as DownloadRequest
downloadVerified(request).then(
  (result) => process.stdout.write(JSON.stringify(result)),
  (error: Error) => {
    process.stderr.write(`${error.name}: ${error.message}`)
    process.exitCode = 1
  },
)
