import { defaultBackupTimeoutMs } from '@dbpool/sqlite'

const MiB = 1024 * 1024

describe('defaultBackupTimeoutMs', () => {
  it('is 4 times the copy time at 20 MiB/s, at least 10 s and at most 300 s', () => {
    expect(defaultBackupTimeoutMs(0)).toBe(10_000)
    expect(defaultBackupTimeoutMs(50 * MiB)).toBe(10_000) // 2.5 s expected: the floor
    expect(defaultBackupTimeoutMs(100 * MiB)).toBe(20_000) // 5 s expected
    expect(defaultBackupTimeoutMs(1024 * MiB)).toBe(204_800) // 51.2 s expected
    expect(defaultBackupTimeoutMs(1536 * MiB)).toBe(300_000) // 76.8 s expected: the cap
    expect(defaultBackupTimeoutMs(100 * 1024 * MiB)).toBe(300_000)
  })
})
