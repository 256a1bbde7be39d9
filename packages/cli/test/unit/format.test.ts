import { Output, formatMs, formatNumber, printHealth, type CliIo } from '@dbpool/cli'
import type { ManagerHealthReport } from '@dbpool/core'

describe('formatNumber (human output)', () => {
  it('rounds to at most 2 decimals and drops trailing zeros', () => {
    expect(formatNumber(2.669173999999998)).toBe('2.67')
    expect(formatNumber(0.004)).toBe('0')
    expect(formatNumber(1234.5678)).toBe('1234.57')
    expect(formatNumber(0.1 + 0.2)).toBe('0.3')
    expect(formatNumber(0.005)).toBe('0.01')
    expect(formatNumber(2.5)).toBe('2.5')
    expect(formatNumber(30_000)).toBe('30000')
    expect(formatNumber(-0.001)).toBe('0')
    expect(formatNumber(-3.14159)).toBe('-3.14')
    expect(formatNumber(Number.NaN)).toBe('NaN')
    expect(formatNumber(Number.POSITIVE_INFINITY)).toBe('Infinity')
    expect(formatNumber(1e15 + 0.3)).toBe('1000000000000000')
    expect(formatMs(2.669173999999998)).toBe('2.67 ms')
  })

  it('never prints more than 2 decimals, whatever the double', () => {
    for (let i = 0; i < 20_000; i++) {
      const value = (i * 7919.123456789) / 977 ** (i % 4)
      expect(formatNumber(value)).toMatch(/^-?\d+(\.\d{1,2})?$/)
    }
  })
})

describe('printHealth', () => {
  it('rounds the latencies of the report and of each check', () => {
    const out: string[] = []
    const io: CliIo = { stdout: { write: (s: string) => out.push(s) }, stderr: { write: () => true }, env: {}, cwd: '/' }
    const report: ManagerHealthReport = {
      status: 'healthy',
      pools: {
        app: {
          pool: 'app',
          backend: 'postgres',
          target: 'postgres://db/app',
          status: 'healthy',
          checkedAt: new Date(0).toISOString(),
          latencyMs: 12.345678,
          stats: { size: 1, idle: 1, used: 0, pending: 0, max: 10, min: 0, utilization: 0 },
          checks: [
            { name: 'ping', status: 'healthy', latencyMs: 0.004 },
            { name: 'replication', status: 'healthy', latencyMs: 2.669173999999998 },
          ],
        },
      },
    }
    printHealth(new Output(io), report)
    expect(out.join('')).toBe(
      [
        'app: healthy  postgres://db/app  (postgres, checked in 12.35 ms, 0/10 connections in use)',
        '  ping         healthy   0 ms',
        '  replication  healthy   2.67 ms',
        'overall: healthy',
        '',
      ].join('\n'),
    )
  })
})
