#!/usr/bin/env node
import { run } from './cli'

run(process.argv.slice(2), { stdout: process.stdout, stderr: process.stderr, env: process.env, cwd: process.cwd() }).then(
  (code) => {
    process.exitCode = code
  },
  (err: unknown) => {
    // run() never rejects; this is a last resort that still prints one line
    process.stderr.write(`dbpool: error: ${err instanceof Error ? err.message : String(err)}\n`)
    process.exitCode = 1
  },
)
