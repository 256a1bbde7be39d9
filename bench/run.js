'use strict'
// `npm run bench`: runs every benchmark in one process run and writes bench/RESULTS.md.
// Ratios compare dbpool with its anchor measured in the same run, never against a fixed time.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const suites = [
  [
    'Pool overhead: an acquire+release cycle through DatabasePool vs raw tarn, same no-op manager',
    './pool-overhead',
    'ratio = tarn ops/s ÷ DatabasePool ops/s (the cost of our layer; target at most 1.25).',
  ],
  [
    'SQLite: DatabasePool vs raw better-sqlite3',
    './sqlite',
    'ratio = dbpool ops/s ÷ raw ops/s (targets: point read at least 0.8, writers at least 0.7).',
  ],
  [
    'Postgres: pool.query vs pg.Pool({ max: 10 }); postgres.js and pgbench as references',
    './postgres',
    "ratio = dbpool ops/s ÷ pg.Pool ops/s (target at least 1.0 at every concurrency). The sessionReset row compares dbpool with itself: 'clean' ops/s ÷ 'none' ops/s, the price of the reset round trip (no target).",
  ],
]

function table(rows) {
  const keys = Object.keys(rows[0] ?? {})
  const line = (cells) => `| ${cells.join(' | ')} |`
  return [
    line(keys),
    line(keys.map(() => '---')),
    ...rows.map((r) => line(keys.map((k) => (r[k] === null || r[k] === undefined ? '' : String(r[k]))))),
  ].join('\n')
}

async function main() {
  const only = process.argv[2]
  const sections = []
  for (const [title, mod, meaning] of suites) {
    if (only && !mod.includes(only)) continue
    process.stdout.write(`running ${mod} ...\n`)
    const rows = await require(mod).main()
    console.table(rows)
    sections.push(`## ${title}\n\n${meaning}\n\n${table(rows)}\n`)
  }
  const header = [
    '# Benchmark results',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}.`,
    'Every ratio compares figures measured in the same run; each section says which way round.',
    'Regenerate with `npm run bench` (or `npm run bench -- sqlite` for one suite).',
    '',
  ].join('\n')
  if (!only) fs.writeFileSync(path.join(__dirname, 'RESULTS.md'), `${header}\n${sections.join('\n')}`)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
