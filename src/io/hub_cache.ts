/**
 * One model's folder in the Hugging Face hub cache, laid out exactly as Python's huggingface_hub
 * writes it, so that each side reuses the other's downloads:
 *
 *   <cache>/models--<org>--<name>/
 *     blobs/<etag>               a file's contents, named by the hub's etag: the sha256 of an LFS
 *                                file, the git blob sha1 of a small one
 *     blobs/<etag>.incomplete    a download in progress; the next attempt resumes from its length
 *     snapshots/<commit>/<file>  relative symlink to ../../blobs/<etag> (a copy where the file
 *                                system refuses symlinks)
 *     refs/<revision>            the commit a branch or tag pointed to when last resolved (no newline)
 *   <cache>/.locks/models--<org>--<name>/<etag>.clipkit.lock
 *
 * <cache> is $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub.
 *
 * Python guards a blob with an OS file lock (flock) on `.locks/…/<etag>.lock`, which Node cannot
 * take. clipkit processes guard it with their own lock file next to it instead: created with
 * O_EXCL, its mtime refreshed while the holder works, and taken over once it has not been
 * refreshed for LOCK_STALE_MS (the holder died). Every write lands in a temporary name first and is
 * renamed into place, so a reader never sees a half-written blob, ref or snapshot entry.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { getHFHubCachePath, getRepoFolderName } from '@huggingface/hub';
import { ClipkitError } from '../errors';

/** How often a lock holder refreshes its lock file, and when a waiter may take an unrefreshed one over. */
const LOCK_HEARTBEAT_MS = 1_000;
const LOCK_STALE_MS = 15_000;
const LOCK_POLL_MS = 100;

/** `~` at the start of a path is the home folder, as Python's expanduser reads it. */
export function expandHome(p: string): string {
  return p === '~' || p.startsWith('~/') || p.startsWith(`~${path.sep}`) ? path.join(os.homedir(), p.slice(1)) : p;
}

/** $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub (what Python uses). */
export function defaultCacheDir(): string {
  return expandHome(getHFHubCachePath());
}

/** A unique name next to `file` for write-then-rename. */
const tempName = (file: string) => `${file}.tmp-${process.pid}-${Math.random().toString(36).slice(2, 10)}`;

const sleep = (ms: number, signal?: AbortSignal) =>
  new Promise<void>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason);
    const onAbort = () => {
      clearTimeout(timer);
      reject(signal!.reason);
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve();
    }, ms);
    signal?.addEventListener('abort', onAbort, { once: true });
  });

/** Size of a file (following symlinks), or -1 when it does not exist. */
export function fileSize(file: string): number {
  try {
    return fs.statSync(file).size;
  } catch {
    return -1;
  }
}

export class RepoCache {
  /** `<cache>/models--<org>--<name>` */
  readonly folder: string;

  constructor(readonly cacheDir: string, readonly repoId: string) {
    this.folder = path.join(cacheDir, getRepoFolderName({ name: repoId, type: 'model' }));
  }

  blobPath(etag: string): string {
    return path.join(this.folder, 'blobs', etag);
  }

  snapshotDir(commit: string): string {
    return path.join(this.folder, 'snapshots', commit);
  }

  refPath(revision: string): string {
    return path.join(this.folder, 'refs', ...revision.split('/'));
  }

  /** The commit `refs/<revision>` holds, or null when the revision was never resolved here. */
  readRef(revision: string): string | null {
    try {
      return fs.readFileSync(this.refPath(revision), 'utf8').trim() || null;
    } catch {
      return null;
    }
  }

  /** Points `refs/<revision>` at `commit` (only for branches and tags: a commit needs no ref). */
  writeRef(revision: string, commit: string): void {
    if (revision === commit || this.readRef(revision) === commit) return;
    const file = this.refPath(revision);
    fs.mkdirSync(path.dirname(file), { recursive: true });
    const tmp = tempName(file);
    fs.writeFileSync(tmp, commit);
    fs.renameSync(tmp, file);
  }

  /** Makes `snapshots/<commit>/<file>` a relative symlink to `blobs/<etag>`, replacing what was there. */
  linkSnapshotFile(commit: string, file: string, etag: string): string {
    const pointer = path.join(this.snapshotDir(commit), ...file.split('/'));
    const blob = this.blobPath(etag);
    fs.mkdirSync(path.dirname(pointer), { recursive: true });
    const tmp = tempName(pointer);
    try {
      fs.symlinkSync(path.relative(path.dirname(pointer), blob), tmp);
    } catch {
      fs.copyFileSync(blob, tmp); // no symlinks here (Windows without developer mode): a copy, as Python falls back to
    }
    fs.renameSync(tmp, pointer);
    return pointer;
  }

  /**
   * Runs `fn` holding this cache's lock on one blob, so that two processes never append to the
   * same `.incomplete` file. Waits while another holder keeps its lock fresh.
   */
  async withBlobLock<T>(etag: string, fn: () => Promise<T>, signal?: AbortSignal): Promise<T> {
    const lockFile = path.join(this.cacheDir, '.locks', path.basename(this.folder), `${etag}.clipkit.lock`);
    fs.mkdirSync(path.dirname(lockFile), { recursive: true });
    for (;;) {
      let fd: number;
      try {
        fd = fs.openSync(lockFile, 'wx');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== 'EEXIST')
          throw new ClipkitError('E_IO', `Cannot create the lock file ${lockFile}: ${(err as Error).message}`);
        let age: number;
        try {
          age = Date.now() - fs.statSync(lockFile).mtimeMs;
        } catch {
          continue; // released between our open and stat
        }
        if (age > LOCK_STALE_MS) fs.rmSync(lockFile, { force: true });
        else await sleep(LOCK_POLL_MS, signal);
        continue;
      }
      fs.writeSync(fd, `${JSON.stringify({ pid: process.pid, host: os.hostname() })}\n`);
      fs.closeSync(fd);
      const heartbeat = setInterval(() => {
        const now = new Date();
        fs.utimes(lockFile, now, now, () => {});
      }, LOCK_HEARTBEAT_MS);
      heartbeat.unref();
      try {
        return await fn();
      } finally {
        clearInterval(heartbeat);
        fs.rmSync(lockFile, { force: true });
      }
    }
  }
}
