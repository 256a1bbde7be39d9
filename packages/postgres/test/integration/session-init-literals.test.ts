import { createPostgresPool } from '@dbpool/postgres'
import { createTestDatabase, type TestDatabase } from '@dbpool/testing'

// A sessionInit that fails: the server's error repeats a literal of it (22P02 quotes the input);
// the error the caller gets (and logs) shows it hidden.
let db: TestDatabase

beforeAll(async () => {
  db = await createTestDatabase()
}, 60_000)

afterAll(async () => {
  await db?.drop()
})

it("a failing sessionInit's error does not repeat its literals (a token set with set_config())", async () => {
  const pool = createPostgresPool(
    db.url,
    { min: 0, max: 1, acquireTimeoutMs: 10_000 },
    {
      sessionInit: "select set_config('app.api_token', 'tok_LIVE_S3CRET', false)::int",
    },
  )
  try {
    const err = await pool.query('select 1').then(
      () => undefined,
      (e: unknown) => e as Error,
    )
    expect(err?.message).toMatch(/session init .* failed: invalid input syntax for type integer/)
    expect(err?.message).not.toContain('tok_LIVE_S3CRET')
  } finally {
    await pool.close()
  }
})
