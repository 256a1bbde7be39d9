import { execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import * as core from '@dbpool/core'
import * as internal from '@dbpool/core/internal'

// OpenTelemetry's rule for libraries: depend on @opentelemetry/api only and leave the SDK and the
// exporters to the application (two SDK copies in one app disagree on versions and registration).
// @dbpool/http holds the SDK and the Prometheus exporter; @dbpool/core must not pull them in.
const root = join(__dirname, '..', '..', '..', '..')

interface NpmTree {
  readonly dependencies?: Readonly<Record<string, NpmTree>>
}

function names(tree: NpmTree, into = new Set<string>()): Set<string> {
  for (const [name, child] of Object.entries(tree.dependencies ?? {})) {
    into.add(name)
    names(child, into)
  }
  return into
}

it("@dbpool/core's run-time dependencies are exactly @opentelemetry/api and tarn", () => {
  const pkg = JSON.parse(readFileSync(join(root, 'packages', 'core', 'package.json'), 'utf8')) as {
    dependencies?: Record<string, string>
    peerDependencies?: Record<string, string>
    optionalDependencies?: Record<string, string>
  }
  expect(Object.keys(pkg.dependencies ?? {}).sort()).toEqual(['@opentelemetry/api', 'tarn'])
  expect(pkg.peerDependencies ?? {}).toEqual({})
  expect(pkg.optionalDependencies ?? {}).toEqual({})
})

it('`npm ls --omit=dev --workspace @dbpool/core` lists no OpenTelemetry SDK or exporter', () => {
  const out = execFileSync('npm', ['ls', '--omit=dev', '--workspace', '@dbpool/core', '--all', '--json'], {
    cwd: root,
    encoding: 'utf8',
    timeout: 60_000,
  })
  const tree = JSON.parse(out) as NpmTree
  const core = tree.dependencies?.['@dbpool/core']
  expect(core).toBeDefined()
  const all = [...names(core ?? {})]
  expect(all).toContain('@opentelemetry/api')
  expect(all.filter((name) => name.startsWith('@opentelemetry/') && name !== '@opentelemetry/api')).toEqual([])
}, 60_000)

it('the main entry is for applications; the backends’ helpers are in @dbpool/core/internal', () => {
  for (const name of ['checkInteger', 'requireObject', 'rejectUnknownKeys', 'jsonParameterText', 'invalidParameter', 'withDeadline'])
    expect({ name, inMain: name in core, inInternal: typeof (internal as Record<string, unknown>)[name] }).toEqual({
      name,
      inMain: false,
      inInternal: 'function',
    })
  // what apps use stays in the main entry
  for (const name of ['PoolFactory', 'DatabaseError', 'configError', 'MAX_TIMER_MS', 'sql', 'HealthChecker', 'MetricsCollector'])
    expect({ name, inMain: name in core }).toEqual({ name, inMain: true })
  // the HTTP handler and the Prometheus registry moved to @dbpool/http
  for (const name of ['createHealthHandler', 'createMetricsRegistry', 'MetricsRegistry']) expect(name in core).toBe(false)
})
