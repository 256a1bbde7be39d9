// Every test file fails on an unhandled rejection instead of letting it pass silently.
process.on('unhandledRejection', (reason) => {
  throw reason instanceof Error ? reason : new Error(`unhandled rejection: ${String(reason)}`)
})
