'use strict'
// `npm run bench`: runs every benchmark in one process run and writes bench/RESULTS.md.
// Ratios compare dbpool with its anchor measured in the same run, never against a fixed time.
const fs = require('node:fs')
const os = require('node:os')
const path = require('node:path')

const suites = [
  ['pool overhead: acquire+release through DatabasePool vs raw tarn (no-op manager)', './pool-overhead'],
  ['SQLite: DatabasePool vs raw better-sqlite3', './sqlite'],
  ['Postgres: DatabasePool vs pg.Pool, and pgbench', './postgres'],
]

function table(rows) {
  const keys = Object.keys(rows[0] ?? {})
  const line = (cells) => `| ${cells.join(' | ')} |`
  return [line(keys), line(keys.map(() => '---')), ...rows.map((r) => line(keys.map((k) => (r[k] === null || r[k] === undefined ? '' : String(r[k])))))].join('\n')
}

async function main() {
  const only = process.argv[2]
  const sections = []
  for (const [title, mod] of suites) {
    if (only && !mod.includes(only)) continue
    process.stdout.write(`running ${mod} ...\n`)
    const rows = await require(mod).main()
    console.table(rows)
    sections.push(`## ${title}\n\n${table(rows)}\n`)
  }
  const header = [
    '# Benchmark results',
    '',
    `Measured ${new Date().toISOString().slice(0, 10)} on ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.version}.`,
    'Each ratio is anchor ops/s ÷ dbpool ops/s from the same run (below 1 means dbpool is faster).',
    'Regenerate with `npm run bench` (or `npm run bench -- sqlite` for one suite).',
    '',
  ].join('\n')
  if (!only) fs.writeFileSync(path.join(__dirname, 'RESULTS.md'), `${header}\n${sections.join('\n')}`)
}

main().catch((err) => {
  console.error(err)
  process.exitCode = 1
})
