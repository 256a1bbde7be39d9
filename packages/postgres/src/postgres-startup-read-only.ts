/**
 * Whether a connection's startup `options` (the config's, the URL's `options=`, PGOPTIONS) make its
 * sessions read-only, read exactly as the server reads them: pg_split_opts splits the text on
 * whitespace (a backslash takes the next character as it is), then process_postgres_switches reads
 * the words as command-line switches (getopt), where `-c name=value` (also `-cname=value`) and
 * `--name=value` set a parameter (ParseLongOption: `-` in the name is `_`; names are
 * case-insensitive), applied in order (the last one wins), and the value of a boolean is read by
 * parse_bool (a prefix, case-insensitive, of `true`, `false`, `yes`, `no`; `on`, `off` from two
 * letters; `1`, `0`). `undefined` when the options do not set `default_transaction_read_only`, or
 * when the server would refuse them (a stray word, a switch without its value, a value that is no
 * boolean): such a pool never connects.
 */
export function startupOptionsReadOnly(options: string | undefined): boolean | undefined {
  // a quick no before the parse: a backslash escapes the letter after it (`re\ad`), so without them
  if (options === undefined || !/read/i.test(options.replace(/\\/g, ''))) return undefined
  const settings = startupOptionSettings(options)
  if (settings === undefined) return undefined
  let readOnly: boolean | undefined
  for (const { name, value } of settings) {
    if (name.toLowerCase() !== 'default_transaction_read_only') continue
    const parsed = parseBool(value)
    // the server refuses the connection: no session of this pool exists to be read-only
    if (parsed === undefined) return undefined
    readOnly = parsed
  }
  return readOnly
}

/** PostgreSQL's postgres switches (getopt): the letters followed by `:` take a value. */
const SWITCHES = 'B:bc:C:D:d:EeFf:h:ijk:lN:nOPp:r:S:sTt:v:W:-:'

/**
 * The `-c` / `--` settings of a startup options text, in order, names with `-` read as `_`;
 * `undefined` when the server would refuse the text (see {@link startupOptionsReadOnly}).
 */
export function startupOptionSettings(options: string): { readonly name: string; readonly value: string }[] | undefined {
  const words = splitOptions(options)
  const settings: { name: string; value: string }[] = []
  for (let i = 0; i < words.length; i++) {
    const word = words[i]!
    // getopt: `--` alone ends the switches; any word left is an argument the server refuses
    if (word === '--') return i === words.length - 1 ? settings : undefined
    if (word.length < 2 || word[0] !== '-') return undefined
    for (let at = 1; at < word.length; at++) {
      const flag = word[at]!
      const spec = SWITCHES.indexOf(flag)
      if (flag === ':' || spec < 0) return undefined
      if (SWITCHES[spec + 1] !== ':') continue
      // a switch with a value: the rest of the word, else the next word
      let value: string
      if (at + 1 < word.length) value = word.slice(at + 1)
      else if (i + 1 < words.length) value = words[++i]!
      else return undefined
      if (flag === 'c' || flag === '-') {
        const equal = value.indexOf('=')
        if (equal < 0) return undefined
        settings.push({ name: value.slice(0, equal).replace(/-/g, '_'), value: value.slice(equal + 1) })
      }
      break
    }
  }
  return settings
}

/** pg_split_opts: words separated by whitespace (C isspace); a backslash takes the next character literally. */
function splitOptions(options: string): string[] {
  const words: string[] = []
  let word = ''
  let inWord = false
  let escaped = false
  for (const ch of options) {
    if (!escaped && (ch === ' ' || ch === '\t' || ch === '\n' || ch === '\v' || ch === '\f' || ch === '\r')) {
      if (inWord) words.push(word)
      word = ''
      inWord = false
      continue
    }
    inWord = true
    if (!escaped && ch === '\\') escaped = true
    else {
      escaped = false
      word += ch
    }
  }
  if (inWord) words.push(word)
  return words
}

/** PostgreSQL's parse_bool: `undefined` for a value it refuses. */
export function parseBool(value: string): boolean | undefined {
  const v = value.toLowerCase()
  if (v.length === 0) return undefined
  const prefixOf = (word: string, min = 1): boolean => v.length >= min && word.startsWith(v)
  if (prefixOf('true') || prefixOf('yes') || prefixOf('on', 2) || v === '1') return true
  if (prefixOf('false') || prefixOf('no') || prefixOf('off', 2) || v === '0') return false
  return undefined
}
