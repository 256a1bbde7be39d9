import { ConnectBudget } from '../../src/postgres-connect-budget'

/** A clock the test moves by hand. */
function clock(): { now: () => number; advance: (ms: number) => void } {
  let t = 1_000
  return { now: () => t, advance: (ms) => void (t += ms) }
}

describe('ConnectBudget', () => {
  it('one attempt gets the whole deadline, as a single host', () => {
    const c = clock()
    expect(new ConnectBudget(10_000, 1, c.now).next()).toBe(10_000)
  })

  it('splits what is left among the attempts left: hung attempts use their share, the last gets the rest', () => {
    const c = clock()
    const budget = new ConnectBudget(4_000, 3, c.now)
    expect(budget.next()).toBe(1_334)
    c.advance(1_334)
    expect(budget.next()).toBe(1_333)
    c.advance(1_333)
    expect(budget.next()).toBe(1_333)
  })

  it('an attempt refused at once leaves its share to the next ones', () => {
    const c = clock()
    const budget = new ConnectBudget(4_000, 2 * 2, c.now)
    expect(budget.next()).toBe(1_000)
    c.advance(1_000) // hung
    expect(budget.next()).toBe(1_000)
    c.advance(10) // refused
    expect(budget.next()).toBe(1_495)
    c.advance(1_495)
    expect(budget.next()).toBe(1_495)
  })

  it('nothing when the deadline is used up (more attempts than counted too)', () => {
    const c = clock()
    const budget = new ConnectBudget(2_000, 1, c.now)
    expect(budget.next()).toBe(2_000)
    c.advance(1_500)
    expect(budget.next()).toBe(500)
    c.advance(500)
    expect(budget.next()).toBeUndefined()
  })

  it("prefer-standby's second pass shares what the first left", () => {
    const c = clock()
    const budget = new ConnectBudget(4_000, 2, c.now)
    expect(budget.next()).toBe(2_000)
    c.advance(2_000) // hung
    expect(budget.next()).toBe(2_000)
    c.advance(20) // up, not a standby
    budget.add(2)
    expect(budget.next()).toBe(990)
  })
})

describe('ConnectBudget.share', () => {
  it('is what next() would give, without counting an attempt; undefined once the deadline is used up', () => {
    let now = 0
    const budget = new ConnectBudget(1_000, 2, () => now)
    expect(budget.share()).toBe(500)
    expect(budget.share()).toBe(500)
    now = 400
    expect(budget.share()).toBe(300)
    expect(budget.next()).toBe(300)
    expect(budget.share()).toBe(600)
    now = 1_000
    expect(budget.share()).toBeUndefined()
  })
})
