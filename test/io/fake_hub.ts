/**
 * Test helper: a Hugging Face hub on 127.0.0.1 (node:http, random port) serving in-memory repos in
 * the hub's URL layout, with the headers the real one sends:
 *
 *   GET  /api/models/{org}/{name}/revision/{rev}      model info; `sha` is the revision's commit
 *   GET  /api/models/{org}/{name}/tree/{rev}          top-level listing: oid (git blob sha1), size,
 *                                                     lfs {oid (sha256), size} for large files
 *   POST /api/models/{org}/{name}/paths-info/{rev}    the same entries for the paths asked for
 *   GET|HEAD /{org}/{name}/resolve/{rev}/{file}       small files: 200 with ETag (git sha1);
 *                                                     LFS files: 302 to /cdn/{sha256} with
 *                                                     X-Linked-Etag / X-Linked-Size
 *   GET|HEAD /cdn/{sha256}                            LFS contents
 *
 * Every file response carries X-Repo-Commit and honours `Range: bytes=a-b` with 206 and
 * Content-Range. Errors carry X-Error-Code (RepoNotFound, RevisionNotFound, EntryNotFound) like
 * the hub's. A private repo answers 401 unless the request has `Authorization: Bearer <token>`.
 * `cutAfter` makes the next full GET of one file send that many body bytes and then destroy the
 * socket. Every request is recorded in `requests`.
 */
import * as crypto from 'node:crypto';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';

/** Files ending in these are stored in LFS (sha256 oid), as the hub's default .gitattributes says. */
const LFS_SUFFIXES = ['.safetensors', '.bin', '.msgpack', '.model', '.h5'];

export interface FakeRepo {
  /** Commit sha → file path → contents. */
  commits: Map<string, Map<string, Buffer>>;
  /** Branch or tag → commit sha. */
  refs: Map<string, string>;
  /** When set, every request must carry this bearer token. */
  token?: string;
}

export interface RecordedRequest {
  method: string;
  path: string;
  range?: string;
  authorization?: string;
}

/** Hashes of each buffer, computed once (the server looks LFS contents up by sha256 on every request). */
const hashes = new WeakMap<Buffer, { sha1?: string; sha256?: string }>();
const memo = (b: Buffer) => hashes.get(b) ?? hashes.set(b, {}).get(b)!;
export const gitBlobSha1 = (b: Buffer) => (memo(b).sha1 ??= crypto.createHash('sha1').update(`blob ${b.length}\0`).update(b).digest('hex'));
export const sha256 = (b: Buffer) => (memo(b).sha256 ??= crypto.createHash('sha256').update(b).digest('hex'));
export const isLfs = (file: string) => LFS_SUFFIXES.some((s) => file.endsWith(s));

/** A fake 40-hex commit sha derived from a label. */
export const commitSha = (label: string) => crypto.createHash('sha1').update(`commit ${label}`).digest('hex');

/** The listing entry the hub's tree API returns for one file. */
function treeEntry(file: string, b: Buffer) {
  const entry: Record<string, unknown> = { type: 'file', oid: gitBlobSha1(b), size: b.length, path: file };
  if (isLfs(file)) entry.lfs = { oid: sha256(b), size: b.length, pointerSize: 134 };
  return entry;
}

export class FakeHub {
  readonly repos = new Map<string, FakeRepo>();
  readonly requests: RecordedRequest[] = [];
  /** The next full GET of `file` sends `bytes` body bytes, then the socket is destroyed. */
  cutAfter: { file: string; bytes: number } | null = null;
  private server: http.Server | null = null;
  private port = 0;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Adds (or replaces) a repo with one commit per entry of `commits`; `main` is the last one. */
  addRepo(id: string, commits: [label: string, files: Record<string, Buffer>][], o: { tags?: Record<string, string>; token?: string } = {}): string[] {
    const repo: FakeRepo = { commits: new Map(), refs: new Map(), token: o.token };
    const shas = commits.map(([label, files]) => {
      const sha = commitSha(`${id} ${label}`);
      repo.commits.set(sha, new Map(Object.entries(files)));
      return sha;
    });
    repo.refs.set('main', shas[shas.length - 1]);
    for (const [tag, label] of Object.entries(o.tags ?? {})) repo.refs.set(tag, shas[commits.findIndex(([l]) => l === label)]);
    this.repos.set(id, repo);
    return shas;
  }

  /** Requests whose path contains `part` (and, when given, whose method is `method`). */
  requestsFor(part: string, method?: string): RecordedRequest[] {
    return this.requests.filter((r) => r.path.includes(part) && (!method || r.method === method));
  }

  async start(port = 0): Promise<this> {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((err) => {
        res.statusCode = 500;
        res.end(String(err));
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    const server = this.server;
    this.server = null;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url!, this.url);
    const route = url.pathname;
    this.requests.push({ method: req.method!, path: route, range: req.headers.range, authorization: req.headers.authorization });
    const fail = (status: number, code: string, message: string) => {
      res.writeHead(status, { 'Content-Type': 'application/json', 'X-Error-Code': code });
      res.end(JSON.stringify({ error: message }));
    };

    let m = /^\/cdn\/([0-9a-f]{64})$/.exec(route);
    if (m) {
      for (const repo of this.repos.values())
        for (const files of repo.commits.values())
          for (const [file, b] of files) if (isLfs(file) && sha256(b) === m[1]) return this.sendFile(req, res, file, b, { ETag: `"${m[1]}"` });
      return fail(404, 'EntryNotFound', 'no such object');
    }

    m = /^\/api\/models\/([^/]+\/[^/]+)\/(revision|tree|paths-info)\/([^/]+)$/.exec(route) ?? /^\/([^/]+\/[^/]+)\/(resolve)\/([^/]+)\/(.+)$/.exec(route);
    if (!m) return fail(404, 'NotFound', `no route ${route}`);
    const [, id, kind, revEncoded, file] = m;
    const repo = this.repos.get(id);
    if (!repo) return fail(404, 'RepoNotFound', 'Repository not found');
    if (repo.token && req.headers.authorization !== `Bearer ${repo.token}`)
      return fail(401, 'RepoNotFound', 'Invalid username or password.');
    const rev = decodeURIComponent(revEncoded);
    const sha = repo.commits.has(rev) ? rev : repo.refs.get(rev);
    if (!sha) return fail(404, 'RevisionNotFound', `Invalid rev id: ${rev}`);
    const files = repo.commits.get(sha)!;

    if (kind === 'revision') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return void res.end(JSON.stringify({ _id: `id-${id}`, id, sha, private: !!repo.token, lastModified: '2024-01-01T00:00:00.000Z', siblings: [...files.keys()].map((f) => ({ rfilename: f })) }));
    }
    if (kind === 'tree') {
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return void res.end(JSON.stringify([...files].filter(([f]) => !f.includes('/')).map(([f, b]) => treeEntry(f, b))));
    }
    if (kind === 'paths-info') {
      const body = JSON.parse(await new Promise<string>((resolve) => { let s = ''; req.on('data', (c) => (s += c)); req.on('end', () => resolve(s)); }));
      res.writeHead(200, { 'Content-Type': 'application/json' });
      return void res.end(JSON.stringify((body.paths as string[]).filter((p) => files.has(p)).map((p) => ({ ...treeEntry(p, files.get(p)!), lastCommit: { id: sha, title: 'c', date: '2024-01-01' } }))));
    }
    const b = files.get(file);
    if (!b) return fail(404, 'EntryNotFound', `${file} does not exist at ${rev}`);
    const common = { 'X-Repo-Commit': sha, ETag: `"${gitBlobSha1(b)}"` };
    if (isLfs(file)) {
      res.writeHead(302, { ...common, Location: `/cdn/${sha256(b)}`, 'X-Linked-Etag': `"${sha256(b)}"`, 'X-Linked-Size': String(b.length), 'Content-Length': 0 });
      return void res.end();
    }
    this.sendFile(req, res, file, b, common);
  }

  private sendFile(req: http.IncomingMessage, res: http.ServerResponse, file: string, b: Buffer, headers: Record<string, string>): void {
    const range = /^bytes=(\d+)-(\d*)$/.exec(req.headers.range ?? '');
    let start = 0, end = b.length - 1;
    if (range) {
      start = Number(range[1]);
      end = range[2] ? Math.min(Number(range[2]), b.length - 1) : b.length - 1;
      if (start >= b.length) {
        res.writeHead(416, { 'Content-Range': `bytes */${b.length}` });
        return void res.end();
      }
    }
    const body = b.subarray(start, end + 1);
    res.writeHead(range ? 206 : 200, {
      ...headers,
      'Accept-Ranges': 'bytes',
      'Content-Type': 'application/octet-stream',
      'Content-Length': String(body.length),
      ...(range && { 'Content-Range': `bytes ${start}-${end}/${b.length}` }),
    });
    if (req.method === 'HEAD') return void res.end();
    const cut = this.cutAfter;
    if (cut && cut.file === file && start === 0 && body.length === b.length) {
      this.cutAfter = null;
      res.write(body.subarray(0, cut.bytes), () => res.socket?.destroy());
      return;
    }
    res.end(body);
  }
}
