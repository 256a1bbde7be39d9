/** The stages of the sales pipeline, in order; `won` and `lost` close a deal. */
export const STAGES = ['lead', 'qualified', 'proposal', 'negotiation', 'won', 'lost'] as const
/** One of {@link STAGES}. */
export type Stage = (typeof STAGES)[number]

/** The stages of a deal that is still open. */
export const OPEN_STAGES: readonly Stage[] = ['lead', 'qualified', 'proposal', 'negotiation']

/** True for `won` and `lost`. */
export function isClosed(stage: Stage): boolean {
  return stage === 'won' || stage === 'lost'
}

/** True for a known stage name. */
export function isStage(value: unknown): value is Stage {
  return typeof value === 'string' && (STAGES as readonly string[]).includes(value)
}

/**
 * The pipeline's rules: an open deal moves forward any number of stages, back one stage, to `lost`
 * from anywhere, and to `won` from `proposal` or `negotiation`. A closed deal never moves.
 */
export function canMove(from: Stage, to: Stage): boolean {
  if (from === to || isClosed(from)) return false
  if (to === 'lost') return true
  if (to === 'won') return from === 'proposal' || from === 'negotiation'
  const a = OPEN_STAGES.indexOf(from)
  const b = OPEN_STAGES.indexOf(to)
  return b > a || b === a - 1
}
