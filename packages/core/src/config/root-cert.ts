import { X509Certificate } from 'node:crypto'
import { configError } from './validate'

/**
 * libpq 16's `sslrootcert=system`: trust the system's CAs. Here Node's default trust store (its
 * bundled Mozilla CAs plus `NODE_EXTRA_CA_CERTS`; the OS store when node runs with
 * `--use-openssl-ca` or `--use-system-ca`), as with no `sslRootCert` at all. As in libpq it needs
 * `verify-full`: the default mode becomes `verify-full`, a weaker one is CONFIGURATION.
 */
export const SYSTEM_ROOT_CERT = 'system'

const CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]*?-----END CERTIFICATE-----/g

/**
 * Checks that `pem` is PEM text holding at least one CA certificate, each of which parses, and no
 * private key; returns it unchanged. Otherwise CONFIGURATION naming `option` and the value as
 * `shown` (default: a one-line value that looks like a file path is shown, anything else only by its
 * kind and length: never a key's contents). A file path is refused, not read: `sslRootCert` is the
 * PEM text itself (the URL's `sslrootcert` and PGSSLROOTCERT are files, read when the config is made).
 */
export function checkRootCert(option: string, pem: unknown, shown?: string): string {
  if (typeof pem !== 'string' || pem.length === 0) throw configError(option, typeof pem === 'string' ? pem : typeof pem, 'must be PEM text')
  const hasKey = /-----BEGIN [A-Z ]*PRIVATE KEY-----/.test(pem)
  const looksLikePath = !pem.includes('\n') && !pem.includes('-----') && pem.length <= 4096
  const value = shown ?? (hasKey ? '[PEM with a private key]' : looksLikePath ? pem : `[text, ${pem.length} characters]`)
  if (hasKey) throw configError(option, value, 'holds a private key: give only the CA certificate(s) that sign the server certificate')
  const blocks = pem.match(CERTIFICATE) ?? []
  if (blocks.length === 0) {
    throw configError(
      option,
      value,
      looksLikePath && shown === undefined
        ? 'must be the PEM text of the CA certificate (-----BEGIN CERTIFICATE-----), not a file path: read the file (readFileSync(path, "utf8")), or use the URL\'s sslrootcert=<path> / PGSSLROOTCERT'
        : 'holds no PEM certificate (-----BEGIN CERTIFICATE-----)',
    )
  }
  blocks.forEach((block, i) => {
    try {
      new X509Certificate(block)
    } catch (err) {
      throw configError(option, value, `certificate ${i + 1} of ${blocks.length} does not parse (${(err as Error).message})`)
    }
  })
  return pem
}
