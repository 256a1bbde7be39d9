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
 * Hides the password in every `scheme://user:password@host` found in `text`. The password runs from
 * the `:` after the user name to the LAST `@` of the URL (the URL ends at a blank, or where the next
 * `scheme://` starts once an `@` was seen), so a password with an unencoded `@`, `/`, `?` or `#`
 * (`postgres://u:4711/Secr3t@db/x`, `postgres://u:p?q@db/x`) is hidden whole; an `@` in a query value
 * after the real host may be hidden with it (never less). Linear in the length of `text`: it looks
 * for `://` first and reads each character a bounded number of times.
 */
export function redactUrlPasswords(text: string): string {
  return scrubUrlPasswords(text, false)
}

/**
 * @internal {@link redactUrlPasswords}, or with `whole` the text is one URL (a blank in it is part of
 * the password, as a URL parser reads it).
 */
export function scrubUrlPasswords(text: string, whole: boolean): string {
  const length = text.length
  let out = ''
  let copied = 0
  // the blank-delimited word the last URL was in, and its last "@" (read once per word)
  let wordEnd = -1
  let wordLastAt = -1
  let sep = text.indexOf('://')
  while (sep >= 0) {
    const next = text.indexOf('://', sep + 3)
    if (sep > 0 && sep >= copied && isSchemeChar(text.charCodeAt(sep - 1))) {
      // the user name: up to ":" (a "/", "?", "#", "@" or blank first: no password)
      let colon = sep + 3
      while (colon < length && !isUserNameEnd(text.charCodeAt(colon))) colon++
      if (colon < length && text.charCodeAt(colon) === 58 /* : */) {
        if (colon >= wordEnd) {
          wordEnd = colon
          wordLastAt = -1
          while (wordEnd < length && (whole || !isBlank(text.charCodeAt(wordEnd)))) {
            if (text.charCodeAt(wordEnd) === 64 /* @ */) wordLastAt = wordEnd
            wordEnd++
          }
        }
        // the last "@" before the next URL of the word, else the word's last "@"
        let at = -1
        const stop = next >= 0 && next < wordEnd ? next : wordEnd
        for (let i = colon + 1; i < stop; i++) if (text.charCodeAt(i) === 64 /* @ */) at = i
        if (at < 0 && wordLastAt > colon) at = wordLastAt
        if (at > colon) {
          out += text.slice(copied, colon + 1) + REDACTED
          copied = at
        }
      }
    }
    sep = next
  }
  return copied === 0 ? text : out + text.slice(copied)
}

/** `[a-z0-9+.-]`, the characters of a URL scheme. */
function isSchemeChar(c: number): boolean {
  return (c >= 97 && c <= 122) || (c >= 65 && c <= 90) || (c >= 48 && c <= 57) || c === 43 || c === 46 || c === 45
}

/** `:`, `/`, `?`, `#`, `@` or a blank: where a URL's user name ends. */
function isUserNameEnd(c: number): boolean {
  return c === 58 || c === 47 || c === 63 || c === 35 || c === 64 || isBlank(c)
}

function isBlank(c: number): boolean {
  return (
    c === 32 ||
    (c >= 9 && c <= 13) ||
    c === 0xa0 ||
    c === 0x1680 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0xfeff ||
    (c >= 0x2000 && c <= 0x200a)
  )
}
