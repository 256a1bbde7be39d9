export { Progress } from './progress'
export type { ProgressOptions, ProgressSink } from './progress'
export { SeededRandom } from './random'
export { formatMinorUnits } from './money'
