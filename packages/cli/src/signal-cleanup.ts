import { removeBackupTempFilesSync } from '@dbpool/sqlite'

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const

/**
 * While a backup or restore runs: on SIGINT, SIGTERM or SIGHUP, removes its temp files (a backup's
 * copy holds the whole database; a restore's staged copy too, see `removeBackupTempFilesSync`), then
 * lets the signal end the process as it would have (the parent sees the signal). `onSignal` runs
 * first (synchronously: the process ends right after), e.g. to say that a restore had already
 * completed. Returns the function that takes the handlers away again.
 */
export function removeTempFilesOnSignals(onSignal?: (signal: NodeJS.Signals) => void): () => void {
  const dispose = (): void => {
    for (const signal of SIGNALS) process.off(signal, handler)
  }
  const handler = (signal: NodeJS.Signals): void => {
    try {
      onSignal?.(signal)
    } catch {
      // a report that cannot be written must not keep the temp files
    }
    removeBackupTempFilesSync()
    dispose()
    process.kill(process.pid, signal)
  }
  for (const signal of SIGNALS) process.on(signal, handler)
  return dispose
}
