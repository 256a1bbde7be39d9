import { parseBool, startupOptionSettings, startupOptionsReadOnly } from '../../src/postgres-startup-read-only'

// Review r7 item 4: the startup options are read as the server reads them (pg_split_opts, getopt,
// ParseLongOption, parse_bool); the integration test read-only-startup-options checks the server agrees.
describe('startupOptionsReadOnly', () => {
  it.each([
    ['-c default_transaction_read_only=on', true],
    ['-c default-transaction-read-only=on', true],
    ['--default_transaction_read_only=on', true],
    ['-cdefault_transaction_read_only=tru', true],
    ['-ec default_transaction_read_only=YES', true],
    ['-c default_transaction_read_only=\\on', true],
    ['-c default_transaction_re\\ad_only=on', true],
    ['-c \\default_transaction_read_only=on', true],
    ['-c x.y=a\\ b\\ -c\\ default_transaction_read_only=off -c default_transaction_read_only=1', true],
    ['-c default_transaction_read_only=on -c default_transaction_read_only=of', false],
    ['-c default_transaction_read_only=n', false],
    ['-c x.y=a\\ -c\\ default_transaction_read_only=on', undefined],
    ['-c statement_timeout=5s', undefined],
    [undefined, undefined],
    // the server refuses these: no session of the pool exists
    ["-c default_transaction_read_only='on'", undefined],
    ['-c default_transaction_read_only=o', undefined],
    ['-c default_transaction_read_only= on', undefined],
    ['-- -c default_transaction_read_only=on', undefined],
    ['--default-transaction-read-only', undefined],
    ['-c default_transaction_read_only=on stray', undefined],
  ])('%j -> %s', (options, expected) => {
    expect(startupOptionsReadOnly(options)).toBe(expected)
  })

  it('reads -c, -cname=value and --name=value in order, names with - as _', () => {
    expect(startupOptionSettings('-c a-b=1 -cc=2 --d-e=x=y -e -B 8MB')).toEqual([
      { name: 'a_b', value: '1' },
      { name: 'c', value: '2' },
      { name: 'd_e', value: 'x=y' },
    ])
  })

  it.each([
    ['t', true],
    ['TRUE', true],
    ['y', true],
    ['on', true],
    ['1', true],
    ['f', false],
    ['fals', false],
    ['no', false],
    ['of', false],
    ['OFF', false],
    ['0', false],
    ['o', undefined],
    ['truex', undefined],
    ['', undefined],
    ['10', undefined],
  ])('parse_bool(%j) = %s', (value, expected) => {
    expect(parseBool(value)).toBe(expected)
  })
})
