import { SeededRandom } from '@dbpool/example-kit'
import type { TransferRequest } from './transfer-service'

/** Why a planned request is in the demo. */
export type PlannedKind = 'random' | 'hot' | 'overdraw' | 'repeat' | 'key-reuse'

/** One request of the demo's storm. */
export interface PlannedTransfer {
  readonly kind: PlannedKind
  readonly request: TransferRequest & { readonly idempotencyKey: string }
}

/** An account the demo opens, with its opening balance. */
export interface PlannedAccount {
  readonly id: string
  readonly name: string
  /** `0`, or an overdraft (negative). */
  readonly minBalance: number
  readonly opening: number
}

/** Everything the demo will do, decided up front from a seed. */
export interface DemoPlan {
  readonly currency: string
  readonly accounts: readonly PlannedAccount[]
  /** The accounts most transfers fight over (deliberate write conflicts). */
  readonly hot: readonly string[]
  readonly transfers: readonly PlannedTransfer[]
}

/** The unlimited system account the opening balances come from. */
export const EQUITY_ACCOUNT = 'EQUITY'

/**
 * Plans the demo: `accountCount` accounts with opening balances, and `transferCount` transfer
 * requests: mostly random pairs, about 20% between four hot accounts (write conflicts), 5% too large
 * (refused: no account goes below its limit), 8% exact repeats of a recent request (same idempotency
 * key: must post once) and 0.5% reusing a key for a different amount (refused).
 */
export function planDemo(options: {
  readonly accounts: number
  readonly transfers: number
  readonly seed: number
  readonly currency?: string
}): DemoPlan {
  const rnd = new SeededRandom(options.seed)
  const currency = options.currency ?? 'EUR'
  const accounts: PlannedAccount[] = []
  for (let i = 1; i <= options.accounts; i++) {
    const id = `ACC-${String(i).padStart(4, '0')}`
    const hot = i <= 4
    accounts.push({
      id,
      name: `Customer ${i}`,
      minBalance: i % 10 === 0 ? -50_000 : 0,
      // whole currency units between 1,000.00 and 10,000.00; the hot accounts get the most
      opening: hot ? 1_000_000 : rnd.int(1_000, 10_000) * 100,
    })
  }
  const ids = accounts.map((a) => a.id)
  const hot = ids.slice(0, Math.min(4, ids.length))
  const transfers: PlannedTransfer[] = []
  const originals: PlannedTransfer[] = []
  const pair = (pool: readonly string[]): [string, string] => {
    const from = rnd.pick(pool)
    let to = rnd.pick(pool)
    while (to === from) to = rnd.pick(pool)
    return [from, to]
  }
  for (let i = 0; i < options.transfers; i++) {
    const r = rnd.next()
    const recent = originals.slice(-20)
    if (recent.length > 0 && r < 0.08) {
      transfers.push({ kind: 'repeat', request: { ...rnd.pick(recent).request } })
      continue
    }
    if (recent.length > 0 && r < 0.085) {
      const original = rnd.pick(recent).request
      transfers.push({ kind: 'key-reuse', request: { ...original, amount: original.amount + 1 } })
      continue
    }
    const idempotencyKey = `demo-${options.seed}-${String(i).padStart(6, '0')}`
    let planned: PlannedTransfer
    if (r < 0.28) {
      const [from, to] = pair(hot)
      planned = { kind: 'hot', request: { from, to, amount: rnd.int(1, 5_000), currency, idempotencyKey } }
    } else if (r < 0.33) {
      const [from, to] = pair(ids)
      planned = { kind: 'overdraw', request: { from, to, amount: rnd.int(5_000_000, 9_000_000), currency, idempotencyKey } }
    } else {
      const [from, to] = pair(ids)
      planned = { kind: 'random', request: { from, to, amount: rnd.int(100, 50_000), currency, idempotencyKey } }
    }
    transfers.push(planned)
    originals.push(planned)
  }
  return { currency, accounts, hot, transfers }
}
