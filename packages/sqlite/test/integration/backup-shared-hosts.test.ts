import { copyFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs'
import { BackupManager, createSqlitePool } from '@dbpool/sqlite'
import { tempDir } from './helpers'

// Two hosts whose databases have the same path (/data/app.db on each machine) back up into one
// shared directory (an NFS mount): each backup's record names its host, and retention ranks and
// deletes per host and path, never another host's backups.
const tmp = tempDir()
afterAll(() => tmp.cleanup())

/** Makes a copy of `file` look taken by another host (a different host tag in its record), with the given sequence. */
function asOtherHost(file: string, copy: string, sequence: number, host: string | undefined): void {
  copyFileSync(file, copy)
  const record = JSON.parse(readFileSync(`${file}.json`, 'utf8')) as { source: string; host?: string }
  const other = host === undefined ? { source: record.source, sequence } : { source: record.source, host, sequence }
  writeFileSync(`${copy}.json`, `${JSON.stringify(other)}\n`)
}

describe('backups of two hosts in one directory', () => {
  it('a record names its host; keepLast never deletes nor counts a backup recorded by another host', async () => {
    const pool = createSqlitePool(tmp.file('app.db'), { name: 'hosts' })
    const directory = tmp.file('shared')
    try {
      await pool.query('create table t (x)')
      const backups = new BackupManager(pool, { directory, retention: { keepLast: 1 } })
      const first = await backups.backup()
      const record = JSON.parse(readFileSync(`${first.file}.json`, 'utf8')) as { host?: unknown }
      expect(record.host).toMatch(/^[0-9a-f]{8}$/)
      const otherHost = record.host === '00000000' ? '11111111' : '00000000'
      // the other machine's backups of its own /…/app.db, ranked after ours
      const theirs = [tmp.file('shared/app-20990101T000000000Z.db'), tmp.file('shared/app-20990102T000000000Z.db')]
      asOtherHost(first.file, theirs[0]!, 50, otherHost)
      asOtherHost(first.file, theirs[1]!, 51, otherHost)
      const second = await backups.backup()
      // ours: ranked among this host's only (sequence 2, not 52); the first one pruned, theirs kept
      expect(JSON.parse(readFileSync(`${second.file}.json`, 'utf8'))).toMatchObject({ sequence: 2, host: record.host })
      expect(second.deleted).toEqual([first.file])
      for (const file of theirs) expect(existsSync(file)).toBe(true)
      expect((await backups.list()).filter((b) => b.host === otherHost)).toHaveLength(2)
      expect(await backups.prune()).toEqual([])
      for (const file of theirs) expect(existsSync(file)).toBe(true)
    } finally {
      await pool.close()
    }
  })

  it('a record of an older version (no host) of the same path still counts as this host’s (pruned as before)', async () => {
    const pool = createSqlitePool(tmp.file('old.db'), { name: 'old' })
    const directory = tmp.file('old-shared')
    try {
      await pool.query('create table t (x)')
      const backups = new BackupManager(pool, { directory, retention: { keepLast: 1 } })
      const first = await backups.backup()
      const older = tmp.file('old-shared/old-20000101T000000000Z.db')
      asOtherHost(first.file, older, 1, undefined)
      const second = await backups.backup()
      expect([...second.deleted].sort()).toEqual([first.file, older].sort())
    } finally {
      await pool.close()
    }
  })
})
