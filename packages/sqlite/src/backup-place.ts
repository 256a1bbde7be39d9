import { link, lstat, open, rename, stat, unlink } from 'node:fs/promises'
import type { NewTarget } from './backup-target'

/**
 * What `link()` fails with where the filesystem makes no hard links: EPERM (Linux on vfat/exFAT),
 * ENOTSUP / EOPNOTSUPP (some FUSE and network filesystems), ENOSYS (an old FUSE).
 */
const NO_HARD_LINKS = new Set(['EPERM', 'ENOTSUP', 'EOPNOTSUPP', 'ENOSYS'])

/**
 * Gives `from`, a finished file of ours, the name `to` in the same directory only when nothing has
 * that name: it never replaces a file (a rename would, silently: a backup written at the same name in
 * the same millisecond by another process or manager, a user's file). Resolves with the identity of
 * the placed file (device and inode: `from`'s), or `undefined` when `to` exists (any file, directory
 * or symlink; nothing changed, `from` still there).
 *
 * `link(from, to)`, which fails with EEXIST instead of replacing (atomic; an EEXIST while `to` is already
 * `from`'s inode, NFS's answer to a retransmitted link that was made, counts as placed), then `from`
 * is unlinked (a failure there leaves a second name of the file, a temp name that stale-temp cleanup
 * removes). Where the filesystem has no hard links (see `NO_HARD_LINKS`), `to` is first claimed by
 * creating it empty and exclusively (`O_CREAT | O_EXCL`, 0600), then `from` is renamed onto that
 * claim after checking it is still the one created (same device and inode): only our own empty
 * claim is ever replaced, and another writer using this function gets EEXIST on it meanwhile. Other
 * failures reject with the system's error, `from` left where it was.
 */
export async function placeNew(from: string, to: string): Promise<NewTarget | undefined> {
  const info = await stat(from, { bigint: true })
  const placed: NewTarget = { path: to, dev: info.dev, ino: info.ino }
  try {
    await link(from, to)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? ''
    if (NO_HARD_LINKS.has(code)) return (await claimThenRename(from, to)) ? placed : undefined
    if (code !== 'EEXIST') throw err
    // NFS may answer EEXIST to a retransmitted link that was made: then the name leads to `from`
    if (!(await sameFile(to, placed))) return undefined
  }
  await unlink(from).catch(() => undefined)
  return placed
}

/** Whether `path` (not followed) is the file `identity` names (same device and inode). */
async function sameFile(path: string, identity: { dev: bigint; ino: bigint }): Promise<boolean> {
  const now = await lstat(path, { bigint: true }).catch(() => undefined)
  return now !== undefined && now.dev === identity.dev && now.ino === identity.ino
}

/** The fallback of {@link placeNew} without hard links: an exclusive empty claim at `to`, then `from` renamed onto it. */
async function claimThenRename(from: string, to: string): Promise<boolean> {
  let handle
  try {
    handle = await open(to, 'wx', 0o600)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false
    throw err
  }
  let claim: { dev: bigint; ino: bigint }
  try {
    claim = await handle.stat({ bigint: true })
  } finally {
    await handle.close()
  }
  // the claim was removed (and the name perhaps taken again) meanwhile: leave whatever is there
  if (!(await sameFile(to, claim))) return false
  try {
    await rename(from, to)
  } catch (err) {
    await removeClaim(to, claim)
    throw err
  }
  return true
}

async function removeClaim(path: string, claim: { dev: bigint; ino: bigint }): Promise<void> {
  if (await sameFile(path, claim)) await unlink(path).catch(() => undefined)
}
