/** The text put where a secret was. */
export const REDACTED = '[REDACTED]'

/**
 * Replaces every occurrence of each secret in `text` (and the password part of any URL) with
 * {@link REDACTED}. Used on native error messages before they reach a DatabaseError.
 */
export function redactSecrets(text: string, secrets: readonly (string | undefined)[] = []): string {
  let out = redactUrlPasswords(text)
  for (const secret of secrets) {
    if (secret && secret.length > 0) out = out.split(secret).join(REDACTED)
  }
  return out
}

/**
 * Hides the password in every `scheme://user:password@host` found in `text`. The password runs to the
 * LAST `@` before the path (the WHATWG URL rule: `postgres://u:p@ss@db/x` is password `p@ss` on host
 * `db`), so a raw `@` in a password never leaves its tail printed; a `?` or `#` after it may be hidden
 * with it (never less).
 */
export function redactUrlPasswords(text: string): string {
  return text.replace(/([a-z][a-z0-9+.-]*:\/\/[^:/?#@\s]*):([^/\s]*)@/gi, `$1:${REDACTED}@`)
}
