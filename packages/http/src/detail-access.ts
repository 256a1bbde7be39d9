import { createHash, timingSafeEqual } from 'node:crypto'
import type { IncomingMessage } from 'node:http'
import { configError } from '@dbpool/core'
import { checkBoolean, checkString } from '@dbpool/core/internal'

/** Who may see the detail of `/health` and `/ready` (targets, versions, stats, check messages). */
export type DetailAccess = 'statuses' | 'details' | 'invalid-token'

/** Shortest bearer token accepted: 16 characters (guessing it over HTTP must be hopeless). */
export const MIN_TOKEN_LENGTH = 16

/**
 * What a bearer token must be, as the CONFIGURATION error says it: {@link MIN_TOKEN_LENGTH}
 * characters or more, printable ASCII only (`!` to `~`, no whitespace). A request carries the token
 * as header bytes, which Node.js reads as Latin-1: a token with any other character (`é`, sent as
 * UTF-8 by clients) could never match. RFC 6750's `b64token` is a subset of this.
 */
export const TOKEN_RULE = `must be at least ${MIN_TOKEN_LENGTH} characters without whitespace, printable ASCII only (! to ~): Node.js reads a request header's bytes as Latin-1, so a token with other characters could never match`

/** Whether `value` can be a bearer token ({@link TOKEN_RULE}). */
export function isValidToken(value: string): boolean {
  return value.length >= MIN_TOKEN_LENGTH && /^[\x21-\x7e]+$/.test(value)
}

/**
 * Decides per request whether the detail is shown: always with `details: true`; with a `token`,
 * to requests whose `Authorization: Bearer <token>` matches it (compared in constant time, as
 * SHA-256 digests, so neither the content nor the length leaks through timing); otherwise never.
 * A request that presents a wrong token (or another scheme) is `invalid-token`: the handler answers
 * 401 so that a misconfigured client notices, while a request without `Authorization` (a probe)
 * gets the statuses.
 */
export class DetailGate {
  readonly #always: boolean
  readonly #digest: Buffer | undefined

  /** @throws DatabaseError `CONFIGURATION` for a non-boolean `details`, a token that breaks {@link TOKEN_RULE} (shorter than {@link MIN_TOKEN_LENGTH}, whitespace, a character outside printable ASCII), or both given. */
  constructor(details: unknown, token: unknown) {
    this.#always = details === undefined ? false : checkBoolean('health handler.details', details)
    if (token === undefined) {
      this.#digest = undefined
      return
    }
    const value = checkString('health handler.token', token)
    // the value itself never goes into an error message: it is a secret
    if (!isValidToken(value)) throw configError('health handler.token', '[set]', TOKEN_RULE)
    if (this.#always) throw configError('health handler.details', details, 'give details: true or a token, not both')
    this.#digest = digest(value)
  }

  /** True when the handler was built with a token (requests may present one). */
  get hasToken(): boolean {
    return this.#digest !== undefined
  }

  /** What `req` may see. */
  access(req: IncomingMessage): DetailAccess {
    if (this.#always) return 'details'
    const header = req.headers.authorization
    if (this.#digest === undefined || header === undefined) return 'statuses'
    const match = /^Bearer[ ]+(\S+)[ ]*$/i.exec(header)
    if (!match?.[1]) return 'invalid-token'
    return timingSafeEqual(digest(match[1]), this.#digest) ? 'details' : 'invalid-token'
  }
}

function digest(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest()
}
