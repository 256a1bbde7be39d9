import { Writable } from 'node:stream'
import { GuardedStream } from '@dbpool/cli'

/** A stream whose writes fail with `code` (as process.stdout does once its reader is gone). */
function failingStream(code: string): Writable & { attempts: number } {
  const stream = new Writable({
    write(_chunk, _encoding, callback) {
      stream.attempts++
      callback(Object.assign(new Error(`write ${code}`), { code, errno: -32, syscall: 'write' }))
    },
  }) as Writable & { attempts: number }
  stream.attempts = 0
  return stream
}

const tick = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

describe('GuardedStream', () => {
  it('turns EPIPE into "the reader is gone" and drops later writes, without an unhandled error', async () => {
    const stream = failingStream('EPIPE')
    const guarded = new GuardedStream(stream)
    expect(() => guarded.write('first line\n')).not.toThrow()
    await tick()
    expect(guarded.write('second line\n')).toBe(false)
    expect(guarded.write('third line\n')).toBe(false)
    await tick()
    expect(stream.attempts).toBe(1)
    expect(guarded.readerGone).toBe(true)
    expect(guarded.failure).toBeUndefined()
  })

  it('keeps any other write error (a full disk) as a failure to report', async () => {
    const guarded = new GuardedStream(failingStream('ENOSPC'))
    guarded.write('lost\n')
    await tick()
    expect(guarded.readerGone).toBe(false)
    expect(guarded.failure).toMatchObject({ code: 'ENOSPC' })
    expect(guarded.write('also lost\n')).toBe(false)
  })

  it('passes writes and the terminal flags through while the stream works', () => {
    const chunks: string[] = []
    const stream = new Writable({
      write(chunk: Buffer, _encoding, callback) {
        chunks.push(chunk.toString())
        callback()
      },
    })
    const guarded = new GuardedStream(Object.assign(stream, { isTTY: true, columns: 120 }))
    guarded.write('a\n')
    guarded.write('b\n')
    expect(chunks).toEqual(['a\n', 'b\n'])
    expect([guarded.isTTY, guarded.columns, guarded.readerGone, guarded.failure]).toEqual([true, 120, false, undefined])
  })
})
