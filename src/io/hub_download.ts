/**
 * Fetches one file of a hub repo into the cache as blobs/<etag>, resuming a download that was cut.
 *
 * @huggingface/hub's downloadFileToCacheDir cannot resume: it writes blobs/<etag>.incomplete from
 * byte 0 every time. So the blob step is done here, still over the library's HTTP: under the blob's
 * lock the bytes already in blobs/<etag>.incomplete are kept, the rest is asked for with
 * `downloadFile(...).slice(start)` (a `Range: bytes=start-` request) and appended. The finished
 * file must have the listed size and match its etag (the sha256 of an LFS file, the git blob sha1 of
 * a small one) before it is renamed to blobs/<etag>. One that does not is deleted; if it had been
 * resumed it is fetched once more from byte 0 (a server may have ignored the Range).
 *
 * The library's xet transfer is turned off (`xet: false`): the hub serves every file, xet-backed or
 * not, over plain HTTP with ranges, which is what the resume relies on.
 */
import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { downloadFile } from '@huggingface/hub';
import { ClipkitError } from '../errors';
import { fileSize, RepoCache } from './hub_cache';
import type { HubFetch } from './hub_fetch';

/** A file as the hub's listing gives it. */
export interface RemoteFile {
  path: string;
  /** sha256 (LFS) or git blob sha1: the blob's name in the cache. */
  etag: string;
  size: number;
}

export interface FetchBlobOptions {
  cache: RepoCache;
  repoId: string;
  commit: string;
  endpoint: string;
  hub: HubFetch;
  signal?: AbortSignal;
  /** Called with the file's bytes on disk as they grow. */
  onBytes?: (bytesOnDisk: number) => void;
}

/** Why `file` is not `remote`'s contents, or null when it is (size, then sha256 or git sha1). */
async function contentProblem(file: string, remote: RemoteFile): Promise<string | null> {
  const size = fileSize(file);
  if (size !== remote.size) return `${size} bytes where the hub lists ${remote.size}`;
  let hash: crypto.Hash, what: string;
  if (/^[0-9a-f]{64}$/.test(remote.etag)) {
    hash = crypto.createHash('sha256');
    what = 'sha256';
  } else if (/^[0-9a-f]{40}$/.test(remote.etag)) {
    hash = crypto.createHash('sha1').update(`blob ${size}\0`);
    what = 'git blob sha1';
  } else {
    return null; // an etag of another form: only the size can be checked
  }
  for await (const chunk of fs.createReadStream(file)) hash.update(chunk as Buffer);
  const got = hash.digest('hex');
  return got === remote.etag ? null : `${what} ${got} where the hub lists ${remote.etag}`;
}

/**
 * Appends bytes `start..` of the remote file to `incomplete`. Returns false when the server sent
 * more than the file holds (it ignored the Range); throws E_IO when the transfer breaks off.
 */
async function appendRemote(remote: RemoteFile, incomplete: string, start: number, o: FetchBlobOptions): Promise<boolean> {
  const where = `${o.repoId}@${o.commit}`;
  const body = await downloadFile({ repo: o.repoId, path: remote.path, revision: o.commit, hubUrl: o.endpoint, fetch: o.hub.fetch, xet: false });
  if (!body) throw new ClipkitError('E_IO', `File ${remote.path} not found in ${where} on ${o.endpoint}, although the listing has it.`);
  if (body.size !== remote.size)
    throw new ClipkitError('E_IO', `The hub serves ${remote.path} of ${where} with ${body.size} bytes but lists ${remote.size}.`);
  const out = await fs.promises.open(incomplete, 'a');
  let onDisk = start;
  try {
    for await (const chunk of (start > 0 ? body.slice(start) : body).stream()) {
      if (onDisk + chunk.length > remote.size) return false;
      await out.write(chunk);
      onDisk += chunk.length;
      o.onBytes?.(onDisk);
    }
  } catch (err) {
    if (o.signal?.aborted) throw o.signal.reason;
    const last = o.hub.lastError();
    if (last && (err === last || err === last.message)) throw last;
    const cause = (err as { cause?: { message?: string } })?.cause?.message;
    throw new ClipkitError(
      'E_IO',
      `Download of ${remote.path} (${where}) broke off after ${onDisk} of ${remote.size} bytes ` +
        `(${(err as Error)?.message ?? err}${cause ? `: ${cause}` : ''}). Run again to resume: the bytes so far are kept in ${incomplete}.`,
    );
  } finally {
    await out.close();
  }
  return true;
}

/** Makes blobs/<etag> hold `remote`'s contents (no-op when it already does); returns its path. */
export async function fetchBlob(remote: RemoteFile, o: FetchBlobOptions): Promise<string> {
  const blob = o.cache.blobPath(remote.etag);
  if (fileSize(blob) === remote.size) return blob;
  fs.mkdirSync(path.dirname(blob), { recursive: true });
  await o.cache.withBlobLock(
    remote.etag,
    async () => {
      if (fileSize(blob) === remote.size) return; // another process finished it while we waited
      const incomplete = `${blob}.incomplete`;
      for (let attempt = 0; ; attempt++) {
        let start = Math.max(0, fileSize(incomplete));
        if (start > remote.size) {
          fs.rmSync(incomplete, { force: true });
          start = 0;
        }
        o.onBytes?.(start);
        const fits = start === remote.size || (await appendRemote(remote, incomplete, start, o));
        const problem = fits ? await contentProblem(incomplete, remote) : 'the server sent more bytes than the file holds';
        if (!problem) {
          fs.renameSync(incomplete, blob);
          return;
        }
        fs.rmSync(incomplete, { force: true });
        if (start > 0 && attempt === 0) continue; // the kept bytes may be what is wrong: once more from byte 0
        throw new ClipkitError('E_IO', `Downloaded ${remote.path} of ${o.repoId}@${o.commit} is corrupt (${problem}); it was deleted, run again to fetch it anew.`);
      }
    },
    o.signal,
  );
  return blob;
}
