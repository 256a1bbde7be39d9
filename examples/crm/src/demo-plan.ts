import type { Stage } from './pipeline'
import { SeededRandom } from '@dbpool/example-kit'

/** A customer the demo tries to create, with its contacts. */
export interface PlannedCustomer {
  readonly name: string
  readonly email: string
  /** True when `email` repeats an earlier customer's (differently cased): exactly one of them is created. */
  readonly duplicate: boolean
  readonly contacts: readonly { readonly name: string; readonly role: string; readonly email: string }[]
}

/** A deal the demo opens for the customer at `customer` (an index into the plan's customers). */
export interface PlannedDeal {
  readonly customer: number
  readonly title: string
  readonly amount: number
}

/** A stage move of the deal at `deal` (an index into the plan's deals). */
export interface PlannedMove {
  readonly deal: number
  readonly to: Stage
}

/** Everything the CRM demo will do, decided up front from a seed. */
export interface CrmDemoPlan {
  readonly currency: string
  readonly customers: readonly PlannedCustomer[]
  readonly deals: readonly PlannedDeal[]
  /** About 30% of them target the first 10 deals (deliberate conflicts). */
  readonly moves: readonly PlannedMove[]
  /** Terms the demo searches for (a first name, a domain). */
  readonly searches: readonly string[]
}

const FIRST = [
  'Ada',
  'Alan',
  'Barbara',
  'Claude',
  'Donald',
  'Edsger',
  'Frances',
  'Grace',
  'John',
  'Katherine',
  'Linus',
  'Margaret',
  'Niklaus',
  'Radia',
  'Tim',
  'Whitfield',
]
const LAST = [
  'Lovelace',
  'Turing',
  'Liskov',
  'Shannon',
  'Knuth',
  'Dijkstra',
  'Allen',
  'Hopper',
  'Backus',
  'Johnson',
  'Torvalds',
  'Hamilton',
  'Wirth',
  'Perlman',
  'Berners-Lee',
  'Diffie',
]
const DOMAINS = ['example.com', 'acme.test', 'globex.test', 'initech.test', 'umbrella.test']
const ROLES = ['buyer', 'CTO', 'finance', 'legal', 'champion']
const TARGETS: readonly [Stage, number][] = [
  ['qualified', 0.25],
  ['proposal', 0.25],
  ['negotiation', 0.2],
  ['won', 0.1],
  ['lost', 0.08],
  ['lead', 0.07],
  ['qualified', 0.05],
]

/** Plans the CRM demo: customers (5% duplicate emails) with 1-3 contacts, deals, and stage moves. */
export function planCrmDemo(options: {
  readonly customers: number
  readonly deals: number
  readonly moves: number
  readonly seed: number
}): CrmDemoPlan {
  const rnd = new SeededRandom(options.seed)
  const customers: PlannedCustomer[] = []
  for (let i = 0; i < options.customers; i++) {
    const first = rnd.pick(FIRST)
    const last = rnd.pick(LAST)
    const contacts = Array.from({ length: rnd.int(1, 3) }, (_, c) => ({
      name: `${rnd.pick(FIRST)} ${rnd.pick(LAST)}`,
      role: rnd.pick(ROLES),
      email: `contact${c}.${i}@${rnd.pick(DOMAINS)}`,
    }))
    if (i > 0 && rnd.next() < 0.05) {
      const original = customers[rnd.int(0, i - 1)] as PlannedCustomer
      customers.push({ name: `${first} ${last}`, email: `  ${original.email.toUpperCase()} `, duplicate: true, contacts })
      continue
    }
    customers.push({
      name: `${first} ${last}`,
      email: `${first}.${last}.${i}@${rnd.pick(DOMAINS)}`.toLowerCase(),
      duplicate: false,
      contacts,
    })
  }
  const unique = customers.map((c, i) => ({ c, i })).filter((x) => !x.c.duplicate)
  const deals: PlannedDeal[] = Array.from({ length: options.deals }, (_, d) => ({
    customer: rnd.pick(unique).i,
    title: `Deal ${d + 1}`,
    amount: rnd.int(10, 500) * 10_000,
  }))
  const moves: PlannedMove[] = Array.from({ length: options.moves }, () => ({
    deal: rnd.next() < 0.3 ? rnd.int(0, Math.min(10, deals.length) - 1) : rnd.int(0, deals.length - 1),
    to: weighted(rnd, TARGETS),
  }))
  return { currency: 'EUR', customers, deals, moves, searches: [(rnd.pick(FIRST) as string).toLowerCase(), 'acme.test'] }
}

function weighted(rnd: SeededRandom, items: readonly [Stage, number][]): Stage {
  const total = items.reduce((s, [, w]) => s + w, 0)
  let r = rnd.next() * total
  for (const [item, w] of items) {
    r -= w
    if (r < 0) return item
  }
  return (items[items.length - 1] as [Stage, number])[0]
}
