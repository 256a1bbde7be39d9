import { existsSync } from 'node:fs'
import { request } from 'node:http'

/** The answer of {@link dockerAnswers}. */
export type DockerProbe = { readonly ok: true } | { readonly ok: false; readonly reason: string }

/**
 * Asks the Docker engine's `/_ping` (through `DOCKER_HOST`, `TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE`
 * or `/var/run/docker.sock`) with a short timeout, so a machine without an engine is detected in
 * about a second instead of through testcontainers' slower runtime discovery.
 */
export function dockerAnswers(timeoutMs = 1_000): Promise<DockerProbe> {
  const target = dockerTarget()
  if (target === 'tls') return Promise.resolve({ ok: true })
  if (!target) return Promise.resolve({ ok: false, reason: 'no Docker engine (DOCKER_HOST unset, no /var/run/docker.sock)' })
  return new Promise((resolve) => {
    const req = request({ ...target, path: '/_ping', method: 'GET', timeout: timeoutMs }, (res) => {
      res.resume()
      resolve(res.statusCode === 200 ? { ok: true } : { ok: false, reason: `the Docker engine answered ${res.statusCode}` })
    })
    req.on('timeout', () => req.destroy(new Error(`no answer within ${timeoutMs} ms`)))
    req.on('error', (err) => resolve({ ok: false, reason: `the Docker engine does not answer: ${err.message}` }))
    req.end()
  })
}

function dockerTarget(): { socketPath: string } | { host: string; port: number } | 'tls' | undefined {
  const override = process.env.TESTCONTAINERS_DOCKER_SOCKET_OVERRIDE
  if (override && existsSync(override)) return { socketPath: override }
  const host = process.env.DOCKER_HOST
  if (host) {
    if (host.startsWith('unix://')) return { socketPath: host.slice('unix://'.length) }
    const tcp = /^(?:tcp|http):\/\/([^:/]+):(\d+)/.exec(host)
    // a TLS engine (DOCKER_TLS_VERIFY) is not probed here: testcontainers, with its certificates, decides
    if (tcp) return process.env.DOCKER_TLS_VERIFY ? 'tls' : { host: tcp[1] as string, port: Number(tcp[2]) }
  }
  return existsSync('/var/run/docker.sock') ? { socketPath: '/var/run/docker.sock' } : undefined
}
