import { readdirSync, readFileSync, statSync } from 'node:fs'
import { join, relative } from 'node:path'
import { inspect } from 'node:util'
import { runInNewContext } from 'node:vm'
import { DatabaseError } from '@dbpool/core'
import { makePool, rejection } from './helpers'

// An error made in another realm (a vm context; under jest, errors of Node's core and of native
// addons such as better-sqlite3) is no `instanceof Error` here: every error path reads it as one all the same.
const otherRealm = (message: string, cause?: unknown): Error =>
  runInNewContext('Object.assign(new Error(message), cause === undefined ? {} : { cause })', { message, cause }) as Error

describe('an error of another realm', () => {
  it('is one indeed (instanceof Error is false)', () => {
    expect(otherRealm('x') instanceof Error).toBe(false)
  })

  it("DatabaseError's toJSON and inspect show it as an error with its name and message", () => {
    const err = new DatabaseError('QUERY_FAILED', 'x', { cause: otherRealm('near "select": syntax error') })
    expect(err.toJSON().cause).toEqual({ name: 'Error', message: 'near "select": syntax error' })
    expect(inspect(err)).toContain('cause: Error: near "select": syntax error')
  })

  it("a transaction is not replayed when an outcome 'unknown' lies below it in the cause chain", async () => {
    const { pool } = makePool({ max: 1 })
    const lost = new DatabaseError('CONNECTION_LOST', 'lost during COMMIT', { retryable: false, detail: { outcome: 'unknown' } })
    let calls = 0
    const err = await rejection(
      pool.transaction(
        async () => {
          calls++
          throw new DatabaseError('TRANSACTION_ROLLED_BACK', 'rolled back', { cause: otherRealm('wrapped', lost), retryable: false })
        },
        { retry: { maxAttempts: 3, baseDelayMs: 0, retryOn: () => true } },
      ),
    )
    expect(calls).toBe(1)
    expect(err.detail).toMatchObject({ outcome: 'unknown', notReplayed: true })
    await pool.close()
  })

  it('no package source tests errors with `instanceof Error` (isErrorLike from @dbpool/core/internal)', () => {
    const root = join(__dirname, '..', '..', '..')
    const found: string[] = []
    const walk = (dir: string): void => {
      for (const name of readdirSync(dir)) {
        const file = join(dir, name)
        if (statSync(file).isDirectory()) walk(file)
        else if (/\.tsx?$/.test(name) && !file.endsWith(join('util', 'error-like.ts'))) {
          readFileSync(file, 'utf8')
            .split('\n')
            .forEach((line, i) => {
              // a comment may name it
              if (/\binstanceof Error\b/.test(line) && !/^\s*(\/\/|\*)/.test(line)) found.push(`${relative(root, file)}:${i + 1}`)
            })
        }
      }
    }
    for (const pkg of readdirSync(root)) {
      const src = join(root, pkg, 'src')
      if (statSync(src, { throwIfNoEntry: false })?.isDirectory()) walk(src)
    }
    expect(found).toEqual([])
  })
})
