import { runInThisContext } from 'node:vm'

/**
 * Runs `fn` with the process in time zone `tz`, then restores the previous one. Node applies a
 * change of `process.env.TZ` at run time, but jest gives each test file a copy of `process.env`, so
 * this sets it on the real process (the one of the outer context).
 */
export async function withTimeZone<T>(tz: string, fn: () => T | Promise<T>): Promise<T> {
  const env = (runInThisContext('process') as NodeJS.Process).env
  const before = env.TZ
  env.TZ = tz
  try {
    return await fn()
  } finally {
    if (before === undefined) delete env.TZ
    else env.TZ = before
  }
}
