import { writeFileSync } from 'node:fs'
import type { PoolLogger } from '@dbpool/core'
import { BackupManager, createSqlitePool } from '@dbpool/sqlite'
import { sleep, tempDir } from './helpers'

const tmp = tempDir()
afterAll(() => tmp.cleanup())

// review r2 item 8: an onError that throws rejected a promise nobody handled, which ends the process
describe("a scheduled backup's onError that throws", () => {
  it.each([
    [
      'throws',
      () => {
        throw new Error('logger failed')
      },
    ],
    ['rejects', () => Promise.reject(new Error('logger failed'))],
  ])('%s: warned about, no unhandled rejection, the schedule goes on', async (_how, fail) => {
    const warnings: string[] = []
    const ignore = (): void => undefined
    const logger: PoolLogger = { trace: ignore, debug: ignore, info: ignore, error: ignore, warn: (_obj, msg) => void warnings.push(msg) }
    const pool = createSqlitePool(tmp.file(`onerror-${_how}.db`), { name: `onerror-${_how}`, min: 0 }, { readers: 0 }, { logger })
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason)
    process.on('unhandledRejection', onUnhandled)
    const file = tmp.file(`not-a-directory-${_how}`)
    writeFileSync(file, 'x')
    let calls = 0
    const backups = new BackupManager(pool, {
      directory: `${file}/backups`,
      onError: (e) => {
        calls++
        expect(e.code).toBe('BACKUP_FAILED')
        return fail() as never
      },
    })
    try {
      await pool.query('create table t (id integer primary key)')
      backups.start(30)
      const deadline = Date.now() + 10_000
      while (calls < 2 && Date.now() < deadline) await sleep(20)
      await sleep(50)
      expect(calls).toBeGreaterThanOrEqual(2)
      expect(unhandled).toEqual([])
      expect(warnings.some((m) => /onError callback threw/.test(m) && /logger failed/.test(m))).toBe(true)
    } finally {
      process.off('unhandledRejection', onUnhandled)
      await backups.stop()
      await pool.close()
    }
  })

  it('with a pool logger that throws too (the same broken sink): a process warning instead, no unhandled rejection (review r8 item 2)', async () => {
    const broken = (): void => {
      throw new Error('log sink down')
    }
    const ignore = (): void => undefined
    const logger: PoolLogger = { trace: ignore, debug: ignore, info: ignore, error: broken, warn: broken }
    const pool = createSqlitePool(tmp.file('onerror-logger.db'), { name: 'onerror-logger', min: 0 }, { readers: 0 }, { logger })
    const unhandled: unknown[] = []
    const onUnhandled = (reason: unknown): void => void unhandled.push(reason)
    const warned = jest.spyOn(process, 'emitWarning').mockImplementation(() => undefined)
    process.on('unhandledRejection', onUnhandled)
    const file = tmp.file('not-a-directory-logger')
    writeFileSync(file, 'x')
    let calls = 0
    const backups = new BackupManager(pool, {
      directory: `${file}/backups`,
      onError: () => {
        calls++
        broken()
      },
    })
    try {
      await pool.query('create table t (id integer primary key)')
      backups.start(30)
      const deadline = Date.now() + 10_000
      while (calls < 2 && Date.now() < deadline) await sleep(20)
      await sleep(50)
      expect(calls).toBeGreaterThanOrEqual(2)
      expect(unhandled).toEqual([])
      const warnings = warned.mock.calls.map((args) => String(args[0]))
      expect(warnings.some((m) => /onError callback threw/.test(m) && /log sink down/.test(m))).toBe(true)
    } finally {
      warned.mockRestore()
      process.off('unhandledRejection', onUnhandled)
      await backups.stop()
      await pool.close()
    }
  })
})
