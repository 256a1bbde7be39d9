import { DatabaseError, configError } from '@dbpool/core'
import { EXIT_CODES, Output, describeError, errorDetails, exitCodeFor, type CliIo } from '@dbpool/cli'

function io(tty = false): CliIo & { out: string[]; err: string[] } {
  const out: string[] = []
  const err: string[] = []
  return {
    out,
    err,
    stdout: { write: (s: string) => out.push(s), isTTY: tty },
    stderr: { write: (s: string) => err.push(s), isTTY: tty },
    env: {},
    cwd: '/',
  }
}

describe('describeError', () => {
  it('prints the code, the message on one line and what to do', () => {
    const err = new DatabaseError('CONNECTION_FAILED', 'connect ECONNREFUSED\n  127.0.0.1:5432')
    expect(describeError(err)).toBe(
      'dbpool: CONNECTION_FAILED: connect ECONNREFUSED 127.0.0.1:5432 (check that the database is running and reachable (host, port or file path))',
    )
    expect(describeError(new DatabaseError('DEADLOCK', 'x'))).toBe('dbpool: DEADLOCK: x (run again with --verbose for details)')
    expect(describeError(new Error('boom'))).toBe('dbpool: error: boom (run again with --verbose for details)')
    expect(describeError('text')).toBe('dbpool: error: text (run again with --verbose for details)')
  })

  it('does not advise a retry when the statement may have committed (detail.outcome unknown)', () => {
    expect(describeError(new DatabaseError('CONNECTION_LOST', 'lost'))).toContain('check the server and retry')
    const unknown = new DatabaseError('CONNECTION_LOST', 'lost', { retryable: false, detail: { outcome: 'unknown' } })
    expect(describeError(unknown)).toBe(
      'dbpool: CONNECTION_LOST: lost (it may have been applied: check the database before running it again)',
    )
    const commit = new DatabaseError('MIGRATION_FAILED', 'migration 0001_a.sql failed to commit', { detail: { outcome: 'unknown' } })
    expect(describeError(commit)).toBe(
      'dbpool: MIGRATION_FAILED: migration 0001_a.sql failed to commit (it may have been applied: check dbpool migrate status and the database before running it again)',
    )
  })

  it('gives the stack and the chain of causes for --verbose', () => {
    const root = new Error('socket hang up')
    const err = new DatabaseError('CONNECTION_LOST', 'lost', { cause: root })
    const details = errorDetails(err)
    expect(details).toMatch(/^DatabaseError: lost\n\s+at /)
    expect(details).toContain('caused by: Error: socket hang up')
    expect(errorDetails(new DatabaseError('QUERY_FAILED', 'x', { cause: 'plain' }))).toContain('caused by: plain')
  })

  // the hint said "(check --url, DATABASE_URL and dbpool.toml)" for an error caused by PGSSLMODE
  it('names the environment variable a CONFIGURATION error is about in its hint', () => {
    expect(describeError(configError('PGSSLMODE', 'strict', 'must be one of disable, ...'))).toBe(
      'dbpool: CONFIGURATION: invalid PGSSLMODE "strict": must be one of disable, ... (check the environment variable PGSSLMODE)',
    )
    for (const [option, name] of [
      ['PGSSLROOTCERT', 'PGSSLROOTCERT'],
      ['PGTARGETSESSIONATTRS', 'PGTARGETSESSIONATTRS'],
      ['PGCHANNELBINDING', 'PGCHANNELBINDING'],
      ['DBPOOL_APP_MAX', 'DBPOOL_APP_MAX'],
      ['DATABASE_REPLICA_URLS[1]', 'DATABASE_REPLICA_URLS'],
    ]) {
      expect(describeError(configError(option!, 'x', 'bad'), { hideConfigValues: true })).toMatch(
        new RegExp(`\\(check the environment variable ${name!.replace(/[[\]]/g, '\\$&')}\\)$`),
      )
    }
    // an option of the file or of the code keeps the general hint
    expect(describeError(configError('database.url sslmode', 'x', 'bad'))).toMatch(/\(check --url, DATABASE_URL and dbpool\.toml\)$/)
    expect(describeError(configError('pool.max', 'x', 'bad'))).toMatch(/\(check --url, DATABASE_URL and dbpool\.toml\)$/)
  })

  it('names the key, not the value, of configError errors when config values are hidden (stack and causes too)', () => {
    const value = configError('sqlite.readers', 'Hidden-R1', 'must be an integer between 0 and 64')
    const err = new DatabaseError('CONFIGURATION', 'cannot open', { cause: value })
    const hide = { hideConfigValues: true }
    expect(describeError(value, hide)).toBe(
      'dbpool: CONFIGURATION: invalid sqlite.readers: must be an integer between 0 and 64 (check --url, DATABASE_URL and dbpool.toml)',
    )
    const details = errorDetails(err, hide)
    expect(details).toMatch(/\ncaused by: DatabaseError: invalid sqlite.readers: must be an integer between 0 and 64\n\s+at /)
    expect(details).not.toContain('Hidden-R1')
    // without a config file (--url) and for command line options the value is shown
    expect(describeError(value)).toContain('"Hidden-R1"')
    expect(describeError(configError('--pool', 'nope', 'is not configured'), hide)).toContain('"nope"')
  })

  it('a restore given the database itself as its source points at FILE, not at the configuration', () => {
    for (const option of ['restore.file', 'restoreDatabaseFile.file']) {
      const err = configError(
        option,
        '/srv/app.db',
        'is the database being restored (/srv/app.db): restore from a backup, not from the database itself',
      )
      const line = describeError(err)
      expect(line).toMatch(/\(restore from a backup file, not from the database itself\)$/)
      expect(line).not.toContain('check --url')
    }
  })
})

describe('Output', () => {
  it('scrubs known secrets and URL passwords from everything it writes', () => {
    const stream = io()
    const out = new Output(stream)
    out.addSecrets(['hunter2', ''])
    out.line('connecting with hunter2 to postgres://app:other-pw@db/x')
    out.note('note hunter2')
    out.json({ password: 'hunter2' })
    out.error(new DatabaseError('AUTHENTICATION_FAILED', 'password hunter2 rejected for postgres://app:other-pw@db/x'), true)
    const all = [...stream.out, ...stream.err].join('')
    expect(all).not.toContain('hunter2')
    expect(all).not.toContain('other-pw')
    expect(stream.out[0]).toBe('connecting with [REDACTED] to postgres://app:[REDACTED]@db/x\n')
    expect(stream.err[1]).toBe(
      'dbpool: AUTHENTICATION_FAILED: password [REDACTED] rejected for postgres://app:[REDACTED]@db/x (check the user name and password (in the URL or PGPASSWORD))\n',
    )
    expect(stream.err[2]).toMatch(/^DatabaseError: password \[REDACTED\]/)
  })

  it('prints a single error line without --verbose', () => {
    const stream = io()
    new Output(stream).error(new DatabaseError('BUSY', 'locked'), false)
    expect(stream.err).toEqual(['dbpool: BUSY: locked (another process holds the database lock; retry when it is done)\n'])
  })

  it('draws a progress bar on a terminal', () => {
    const stream = io(true)
    const progress = new Output(stream).progress('backup')
    progress.update(0, 0, 'pages')
    progress.update(5, 10, 'pages')
    progress.update(10, 10, 'pages')
    progress.phase('verifying')
    progress.finish()
    expect(stream.err).toEqual([
      `\rbackup [${'#'.repeat(15)}${'.'.repeat(15)}]  50% 5/10 pages`,
      `\rbackup [${'#'.repeat(30)}] 100% 10/10 pages`,
      '\n',
      'backup: verifying\n',
    ])
  })

  it('prints a plain line per 10 % when not on a terminal', () => {
    const stream = io(false)
    const progress = new Output(stream).progress('backup')
    for (let done = 0; done <= 100; done += 4) progress.update(done, 100, 'pages')
    progress.finish()
    expect(stream.err).toEqual([0, 12, 20, 32, 40, 52, 60, 72, 80, 92, 100].map((p) => `backup: ${p}% (${p}/100 pages)\n`))
  })
})

describe('exit codes', () => {
  it('maps health statuses to 0 / 1 / 2', () => {
    expect([exitCodeFor('healthy'), exitCodeFor('degraded'), exitCodeFor('unhealthy')]).toEqual([0, 1, 2])
    expect(EXIT_CODES.usage).toBe(64)
  })
})
