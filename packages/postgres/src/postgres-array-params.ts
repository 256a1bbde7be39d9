import type { EventEmitter } from 'node:events'
import { Query, type Client } from 'pg'
import { DatabaseError } from '@dbpool/core'
import type { PostgresConnection } from './postgres-connection'
import type { StatementProgress } from './postgres-outcome'

/**
 * Array types of the built-in catalog below 10000 (`pg_type.typcategory = 'A'`, the same in every
 * supported PostgreSQL release): `int4[]` is 1007, `text[]` 1009... Another OID below 10000 is a
 * scalar type; one at or above it (catalog views' row types, user types: enums, domains, composite
 * types) is looked up in `pg_type` once per manager.
 */
const BUILTIN_ARRAYS = new Set([
  22, 30, 143, 199, 210, 270, 271, 272, 273, 629, 651, 719, 775, 791, 1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011,
  1012, 1013, 1014, 1015, 1016, 1017, 1018, 1019, 1020, 1021, 1022, 1027, 1028, 1034, 1040, 1041, 1115, 1182, 1183, 1185, 1187, 1231, 1263,
  1270, 1561, 1563, 2201, 2207, 2208, 2209, 2210, 2211, 2949, 2951, 3221, 3643, 3644, 3645, 3735, 3770, 3807, 3905, 3907, 3909, 3911, 3913,
  3927, 4073, 4090, 4097, 4192, 5039, 6150, 6151, 6152, 6153, 6155, 6157,
])
const FIRST_UNLISTED_OID = 10_000

/** Texts whose parameter types one connection keeps (cleared when full). */
const MAX_TEXTS = 256

/** The 0-based positions of `params` that hold a JS array (sent as a Postgres array literal). */
export function arrayPositions(params: readonly unknown[]): readonly number[] | undefined {
  let positions: number[] | undefined
  for (let i = 0; i < params.length; i++) if (Array.isArray(params[i])) (positions ??= []).push(i)
  return positions
}

interface Known {
  readonly generation: number
  readonly types: readonly number[]
}

/**
 * The check that a JS array goes only where the server expects an array (see {@link check}), with
 * what it learnt: per connection the parameter types of each text (for the statement cache's
 * generation: a schema change describes it again), per manager whether a type OID is an array type.
 */
export class ArrayParameterCheck {
  readonly #texts = new WeakMap<Client, Map<string, Known>>()
  readonly #arrayType = new Map<number, boolean>()

  /**
   * Refuses, before the statement is sent, a JS array in a parameter the server types as a scalar
   * (`where name in (${names})` or `values (${names})` into a text column: the array literal
   * `{"a","b"}` matched nothing, or was stored as that text): INVALID_PARAMETER naming the position
   * and the type. The types are the server's own inference for the text, from a Parse and Describe of
   * the unnamed statement (one round trip, the first time a text carries an array on a connection),
   * kept per connection until the schema changes (the statement cache's `generation`; `undefined`
   * without a statement cache, `prepare: false`: described on every run). `lookup` runs a
   * catalog query (for type OIDs of 10000 and above, once per manager). A server error of the
   * Describe (a syntax error, a missing table, an aborted transaction) is the statement's own: the
   * promise rejects with it as soon as the server answers.
   *
   * Synchronous when everything is known (the usual case after the first run): returns `undefined`
   * or throws the INVALID_PARAMETER, so the statement is sent in the same tick, in the order issued.
   * Otherwise returns a promise: the caller holds the connection's later statements until it settles.
   * `progress` is the statement's: its probe or lookup not answered yet is `progress.checking` (see
   * {@link withdrawCheck}); once `progress.withdrawn` is set, nothing more of the check is sent.
   */
  check(
    conn: PostgresConnection,
    text: string,
    positions: readonly number[],
    generation: number | undefined,
    lookup: (sqlText: string, progress: StatementProgress) => Promise<readonly { oid: number; a: boolean }[]>,
    progress: StatementProgress,
  ): Promise<void> | undefined {
    const types = this.#texts.get(conn.client)?.get(text)
    if (types !== undefined && types.generation === (generation ?? -1) && this.#unknownTypes(types.types, positions).length === 0) {
      this.#refuse(types.types, positions)
      return undefined
    }
    return this.#checkDescribed(conn, text, positions, generation, lookup, progress)
  }

  /**
   * Forgets the parameter types of `text` on `client` (its named statement is being prepared again:
   * the types may have changed with the schema).
   */
  forget(client: Client, text: string): void {
    this.#texts.get(client)?.delete(text)
  }

  async #checkDescribed(
    conn: PostgresConnection,
    text: string,
    positions: readonly number[],
    generation: number | undefined,
    lookup: (sqlText: string, progress: StatementProgress) => Promise<readonly { oid: number; a: boolean }[]>,
    progress: StatementProgress,
  ): Promise<void> {
    let texts = this.#texts.get(conn.client)
    let known = texts?.get(text)
    if (known === undefined || known.generation !== (generation ?? -1)) {
      const types = await describeParameters(conn, text, progress)
      if (texts === undefined) this.#texts.set(conn.client, (texts = new Map()))
      if (texts.size >= MAX_TEXTS) texts.clear()
      known = { generation: generation ?? -1, types }
      if (generation !== undefined) texts.set(text, known)
    }
    const unknown = this.#unknownTypes(known.types, positions)
    if (unknown.length > 0) {
      // withdrawn between the probe's answer and now: nothing more is sent for it
      if (progress.withdrawn !== undefined) throw progress.withdrawn
      const rows = await lookup(
        `select oid::int as oid, typcategory = 'A' as a from pg_type where oid in (${[...new Set(unknown)].join(', ')})`,
        progress,
      )
      for (const row of rows) this.#arrayType.set(row.oid, row.a)
      // an OID the catalog does not have (dropped meanwhile): not refused (the server judges it)
      for (const oid of unknown) if (!this.#arrayType.has(oid)) this.#arrayType.set(oid, true)
    }
    this.#refuse(known.types, positions)
  }

  /** The type OIDs of `positions` not known yet to be array types or not (user types, looked up in pg_type). */
  #unknownTypes(types: readonly number[], positions: readonly number[]): number[] {
    return positions.map((i) => types[i] ?? 0).filter((oid) => oid >= FIRST_UNLISTED_OID && !this.#arrayType.has(oid))
  }

  #refuse(types: readonly number[], positions: readonly number[]): void {
    for (const i of positions) {
      const oid = types[i] ?? 0
      // 0: the server inferred nothing (it would have refused the text)
      if (oid === 0 || (oid < FIRST_UNLISTED_OID ? BUILTIN_ARRAYS.has(oid) : this.#arrayType.get(oid) !== false)) continue
      throw new DatabaseError(
        'INVALID_PARAMETER',
        `parameter ${i + 1} (Array) is a JS array, sent as one Postgres array, but the server reads $${i + 1} as a scalar (type oid ${oid}): it would match nothing or be stored as the text of an array literal. For a list of values use = any(\${values}) (or in (\${sql.join(values)})); for JSON, sql.json(value); for an array column, cast it: \${values}::text[]`,
        { backend: 'postgres', retryable: false, detail: { position: i + 1, type: 'Array', serverType: oid } },
      )
    }
  }
}

/** pg's connection: the protocol writer and the messages it parses. */
interface Wire extends EventEmitter {
  parse(msg: { text: string; name: string; types: number[] }): void
  describe(msg: { type: 'S' | 'P'; name: string }): void
  sync(): void
}

/** Probes in flight per connection, in the order they were written (the server answers in that order). */
const PROBES = new WeakMap<Wire, ParameterProbe[]>()

/**
 * The parameter types the server infers for `text`: Parse of the unnamed statement, Describe of it
 * (ParameterDescription), Sync. pg has no API for it (it never describes a statement, and ignores
 * ParameterDescription): a submittable of its queue, handed over in turn with the connection's other
 * statements (PostgresConnection.submit; pipelined ones too). Nothing is executed; inside a transaction a Parse that fails
 * aborts it, as the statement itself would have.
 */
function describeParameters(conn: PostgresConnection, text: string, progress: StatementProgress): Promise<readonly number[]> {
  return new Promise<readonly number[]>((resolve, reject) => {
    const probe: ParameterProbe = new ParameterProbe(
      text,
      (types) => {
        if (progress.checking === probe) progress.checking = undefined
        resolve(types)
      },
      (err) => {
        if (progress.checking === probe) progress.checking = undefined
        reject(err)
      },
    )
    progress.checking = probe
    conn.submit(probe)
  })
}

/**
 * Where the array check of `progress`'s statement is: `'running'` when its probe or pg_type lookup
 * (`progress.checking`) is on the server (pg wrote it: the running statement of the connection, to
 * cancel as one); `'kept'` when it still waits its turn in the connection's queue; `undefined` when
 * none is pending.
 */
export function checkState(conn: PostgresConnection, progress: StatementProgress): 'running' | 'kept' | undefined {
  const checking = progress.checking
  if (checking === undefined) return undefined
  return conn.queued.includes(checking) ? 'kept' : 'running'
}

/**
 * Takes the array check's probe or lookup of `progress`'s statement out of the connection's queue
 * when it is still kept there (never sent), and settles the check with `error` (its statement was
 * withdrawn). False when none is kept.
 */
export function withdrawCheck(conn: PostgresConnection, progress: StatementProgress, error: Error): boolean {
  const checking = progress.checking
  if (checking === undefined || !conn.unqueue(checking)) return false
  progress.checking = undefined
  ;(checking as { handleError(err: Error): void }).handleError(error)
  return true
}

/** pg's Query: a subclass is not refused on a pipelined connection (a custom submittable is). */
const PgQuery = Query as unknown as new (text: string, values: unknown[]) => object

class ParameterProbe extends PgQuery {
  #types: readonly number[] = []
  #error: unknown = undefined
  #wire: Wire | undefined
  #settled = false

  constructor(
    readonly text: string,
    readonly resolve: (types: readonly number[]) => void,
    readonly reject: (err: unknown) => void,
  ) {
    super(text, [])
  }

  submit(wire: Wire): null {
    this.#wire = wire
    let queue = PROBES.get(wire)
    if (queue === undefined) {
      const probes: ParameterProbe[] = (queue = [])
      PROBES.set(wire, probes)
      wire.on('parameterDescription', (msg: { dataTypeIDs: number[] }) => probes[0]?.described(msg.dataTypeIDs))
    }
    queue.push(this)
    wire.parse({ text: this.text, name: '', types: [] })
    wire.describe({ type: 'S', name: '' })
    wire.sync()
    return null
  }

  described(types: readonly number[]): void {
    this.#types = types
  }

  /**
   * pg's Client hands a server's ErrorResponse to the active submittable and clears it at once: the
   * ReadyForQuery that follows goes to no submittable (pg reads it itself: transaction status, next
   * statement sent). So the probe settles on the error (a lost connection too), and on ReadyForQuery
   * only when it succeeded.
   */
  handleError(err: unknown): void {
    this.#error ??= err
    this.#settle()
  }

  handleReadyForQuery(): void {
    this.#settle()
  }

  // a Describe answers ParameterDescription, then RowDescription or NoData: nothing else runs
  handleRowDescription(): void {}
  handleDataRow(): void {}
  handlePortalSuspended(): void {}
  handleEmptyQuery(): void {}
  handleCommandComplete(): void {}

  #settle(): void {
    if (this.#settled) return
    this.#settled = true
    const queue = this.#wire === undefined ? undefined : PROBES.get(this.#wire)
    const at = queue?.indexOf(this) ?? -1
    if (at !== -1) queue!.splice(at, 1)
    if (this.#error !== undefined) this.reject(this.#error)
    else this.resolve(this.#types)
  }
}
