import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { PassThrough } from 'node:stream';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { scanCachedRepo } from '@huggingface/hub';
import { isHubId, parseHubId, resolveModel, ResolveOptions } from '../../src/io/hub';
import { progressStream } from '../../src/io/hub_progress';
import { FakeHub, gitBlobSha1, sha256 } from './fake_hub';
import { rejectsCode } from '../helpers';
import { tempDir } from './safetensors_writer';
import { REF_MODELS } from '../reference_fixtures';

const FIXTURE = path.join(REF_MODELS, 'openai_clip_tiny');
const ENV_KEYS = ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN', 'HF_TOKEN_PATH', 'HF_HUB_OFFLINE', 'HF_ENDPOINT', 'HF_HUB_CACHE', 'HF_HOME', 'HF_HUB_DISABLE_PROGRESS_BARS'];

/** The tiny CLIP fixture's weights and configs, small tokenizer files, and files a model does not need (one of them large). */
function tinyRepoFiles(): Record<string, Buffer> {
  const files: Record<string, Buffer> = {};
  for (const f of ['config.json', 'model.safetensors', 'preprocessor_config.json']) files[f] = fs.readFileSync(path.join(FIXTURE, f));
  files['vocab.json'] = Buffer.from(JSON.stringify({ '<|startoftext|>': 0, '<|endoftext|>': 1, 'a</w>': 2 }));
  files['merges.txt'] = Buffer.from('#version: 0.2\na </w>\n');
  files['tokenizer.json'] = Buffer.from('{"not": "needed"}');
  files['pytorch_model.bin'] = crypto.randomBytes(3_000_000);
  files['flax_model.msgpack'] = crypto.randomBytes(20_000_000);
  files['README.md'] = Buffer.from('# tiny\n');
  return files;
}
const NEEDED = ['config.json', 'merges.txt', 'model.safetensors', 'preprocessor_config.json', 'vocab.json'];

interface Ctx {
  hub: FakeHub;
  cache: string;
  files: Record<string, Buffer>;
  /** Commits of org/tiny: old (tagged v1) and main. */
  shas: string[];
  opts: (extra?: ResolveOptions) => ResolveOptions;
  cleanup: () => void;
  savedEnv: Record<string, string | undefined>;
}

const ctx = {} as Ctx;
async function setUp(): Promise<void> {
  ctx.savedEnv = Object.fromEntries(ENV_KEYS.map((k) => [k, process.env[k]]));
  for (const k of ENV_KEYS) delete process.env[k];
  const { dir, cleanup } = tempDir('clipkit-hub-');
  process.env.HF_TOKEN_PATH = path.join(dir, 'no-token'); // never a real saved login
  ctx.cache = path.join(dir, 'hub');
  ctx.cleanup = cleanup;
  ctx.hub = await new FakeHub().start();
  ctx.files = tinyRepoFiles();
  const old = { ...ctx.files, 'config.json': Buffer.from('{"old": true}') };
  ctx.shas = ctx.hub.addRepo('org/tiny', [['old', old], ['new', ctx.files]], { tags: { v1: 'old' } });
  ctx.opts = (extra = {}) => ({ cacheDir: ctx.cache, endpoint: ctx.hub.url, progress: false, ...extra });
}
async function tearDown(): Promise<void> {
  await ctx.hub.stop();
  ctx.cleanup();
  for (const k of ENV_KEYS) {
    if (ctx.savedEnv[k] === undefined) delete process.env[k];
    else process.env[k] = ctx.savedEnv[k];
  }
}

const repoFolder = () => path.join(ctx.cache, 'models--org--tiny');
/** Full-body downloads of a file (not the 1-byte probes the library makes first). */
const bodyGets = (part: string) => ctx.hub.requestsFor(part, 'GET').filter((r) => r.range !== 'bytes=0-0');
/** GETs of LFS contents by sha256. */
const cdnGets = (b: Buffer) => bodyGets(`/cdn/${sha256(b)}`);

// ---------------------------------------------------------------------------------------------
const Names = suite('hub: names');

Names('org/name and org/name@revision are hub ids; paths are not', () => {
  for (const s of ['openai/clip-vit-base-patch32', 'OFA-Sys/chinese-clip-vit-base-patch16', 'a/b', 'org/name.v2', 'org/my_model@main', 'org/name@refs/pr/3', 'org/name@v1.0', `org/name@${'a'.repeat(40)}`])
    assert.ok(isHubId(s), s);
  for (const s of ['name', './org/name', '/abs/path', '../org/name', 'org/name/extra', 'org/', '/name', 'org/-name', 'org/name.', 'org--x/name', 'org/na..me', 'C:/models', 'org\\name', 'org/name@', 'org/name@a@b', 'org/name@../x', 'org/name@a//b', '~/models/x'])
    assert.not.ok(isHubId(s), s);
  assert.equal(parseHubId('org/name@refs/pr/3'), { repoId: 'org/name', revision: 'refs/pr/3' });
  assert.equal(parseHubId('org/name'), { repoId: 'org/name', revision: undefined });
});

Names.run();

// ---------------------------------------------------------------------------------------------
const Local = suite('hub: local folders');
Local.before.each(setUp);
Local.after.each(tearDown);

Local('an existing folder is returned as is, without the network', async () => {
  assert.is(await resolveModel(FIXTURE, ctx.opts()), FIXTURE);
  const rel = path.relative(process.cwd(), FIXTURE);
  assert.is(await resolveModel(rel, ctx.opts()), rel);
  assert.is(ctx.hub.requests.length, 0);
});

Local('a folder named like a hub id wins over the hub', async () => {
  const dir = path.join(ctx.cache, 'org', 'tiny');
  fs.mkdirSync(dir, { recursive: true });
  const cwd = process.cwd();
  process.chdir(ctx.cache);
  try {
    assert.is(await resolveModel('org/tiny', ctx.opts()), 'org/tiny');
  } finally {
    process.chdir(cwd);
  }
  assert.is(ctx.hub.requests.length, 0);
});

Local('a missing path that is no hub id, or a file, is a clear E_IO', async () => {
  await rejectsCode(resolveModel('./no/such/folder', ctx.opts()), 'E_IO', [/No model folder at .*no.such.folder \(it does not exist\)/, /not a Hugging Face Hub id \(org\/name or org\/name@revision\)/]);
  await rejectsCode(resolveModel('missing-model', ctx.opts()), 'E_IO', /does not exist/);
  await rejectsCode(resolveModel(path.join(FIXTURE, 'config.json'), ctx.opts()), 'E_IO', /is a file, not a model folder/);
  await rejectsCode(resolveModel('', ctx.opts()), 'E_ARG', /nameOrDir/);
  await rejectsCode(resolveModel('org/tiny@main', ctx.opts({ revision: 'v1' })), 'E_ARG', /one revision/);
  assert.is(ctx.hub.requests.length, 0);
});

Local.run();

// ---------------------------------------------------------------------------------------------
const Layout = suite('hub: cache layout');
Layout.before.each(setUp);
Layout.after.each(tearDown);

Layout('blobs by etag, relative snapshot symlinks and refs/main exactly as Python writes them', async () => {
  const main = ctx.shas[1];
  const dir = await resolveModel('org/tiny', ctx.opts());
  assert.is(dir, path.join(repoFolder(), 'snapshots', main));
  assert.is(fs.readFileSync(path.join(repoFolder(), 'refs', 'main'), 'utf8'), main); // the commit, no newline
  assert.equal(fs.readdirSync(dir).sort(), NEEDED);
  for (const name of NEEDED) {
    const b = ctx.files[name];
    const etag = name === 'model.safetensors' ? sha256(b) : gitBlobSha1(b); // LFS: sha256; small files: git blob sha1
    const entry = path.join(dir, name);
    assert.ok(fs.lstatSync(entry).isSymbolicLink(), `${name} is a symlink`);
    assert.is(fs.readlinkSync(entry), path.join('..', '..', 'blobs', etag), name);
    assert.ok(fs.readFileSync(path.join(repoFolder(), 'blobs', etag)).equals(b), `blob of ${name}`);
  }
  assert.equal(fs.readdirSync(path.join(repoFolder(), 'blobs')).filter((f) => f.includes('.')), [], 'no .incomplete or temp files left');
  assert.equal(fs.readdirSync(repoFolder()).sort(), ['blobs', 'refs', 'snapshots']);
  // the library's own cache reader sees one revision with its ref and every file
  const scanned = await scanCachedRepo(repoFolder());
  assert.is(scanned.revisions.length, 1);
  assert.is(scanned.revisions[0].commitOid, main);
  assert.equal(scanned.revisions[0].refs, ['main']);
  assert.is(scanned.revisions[0].files.length, NEEDED.length);
});

Layout('only the files a model needs are fetched', async () => {
  await resolveModel('org/tiny', ctx.opts());
  for (const name of ['pytorch_model.bin', 'flax_model.msgpack', 'tokenizer.json', 'README.md']) {
    assert.equal(ctx.hub.requestsFor(name), [], `${name} requested`);
    assert.equal(cdnGets(ctx.files[name]), [], `${name} contents fetched`);
  }
  assert.is(cdnGets(ctx.files['model.safetensors']).length, 1);
  for (const name of NEEDED.filter((n) => n !== 'model.safetensors')) assert.is(bodyGets(`/resolve/${ctx.shas[1]}/${name}`).length, 1, name);
});

Layout('sharded safetensors: the index and its shards, before pytorch weights', async () => {
  const shard = (n: number) => crypto.randomBytes(1_000_000 + n);
  const index = { metadata: { total_size: 2_000_003 }, weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors', c: 'model-00001-of-00002.safetensors' } };
  ctx.hub.addRepo('org/sharded', [['c', {
    'config.json': Buffer.from('{}'),
    'model.safetensors.index.json': Buffer.from(JSON.stringify(index)),
    'model-00001-of-00002.safetensors': shard(1),
    'model-00002-of-00002.safetensors': shard(2),
    'model-00003-of-00003.safetensors': shard(3), // in the repo but not in the index
    'pytorch_model.bin': shard(4),
  }]]);
  const dir = await resolveModel('org/sharded', ctx.opts());
  assert.equal(fs.readdirSync(dir).sort(), ['config.json', 'model-00001-of-00002.safetensors', 'model-00002-of-00002.safetensors', 'model.safetensors.index.json']);
});

Layout('pytorch_model.bin when there are no safetensors; no config or no weights is a clear error', async () => {
  ctx.hub.addRepo('org/pt', [['c', { 'config.json': Buffer.from('{}'), 'pytorch_model.bin': crypto.randomBytes(1000), 'tf_model.h5': crypto.randomBytes(1000) }]]);
  assert.equal(fs.readdirSync(await resolveModel('org/pt', ctx.opts())).sort(), ['config.json', 'pytorch_model.bin']);
  ctx.hub.addRepo('org/noconfig', [['c', { 'model.safetensors': crypto.randomBytes(100) }]]);
  await rejectsCode(resolveModel('org/noconfig', ctx.opts()), 'E_FORMAT', /org\/noconfig@main has no config.json/);
  ctx.hub.addRepo('org/onnx', [['c', { 'config.json': Buffer.from('{}'), 'model.onnx': crypto.randomBytes(100) }]]);
  await rejectsCode(resolveModel('org/onnx', ctx.opts()), 'E_UNSUPPORTED', /has no weights clipkit reads: none of model.safetensors/);
});

Layout('a cache Python wrote is used as it is: no file is fetched again', async () => {
  const main = ctx.shas[1];
  const folder = repoFolder();
  fs.mkdirSync(path.join(folder, 'blobs'), { recursive: true });
  fs.mkdirSync(path.join(folder, 'snapshots', main), { recursive: true });
  fs.mkdirSync(path.join(folder, 'refs'), { recursive: true });
  fs.writeFileSync(path.join(folder, 'refs', 'main'), main);
  for (const name of [...NEEDED, 'tokenizer.json']) {
    const b = ctx.files[name];
    const etag = name === 'model.safetensors' ? sha256(b) : gitBlobSha1(b);
    fs.writeFileSync(path.join(folder, 'blobs', etag), b);
    fs.symlinkSync(path.join('..', '..', 'blobs', etag), path.join(folder, 'snapshots', main, name));
  }
  assert.is(await resolveModel('org/tiny', ctx.opts()), path.join(folder, 'snapshots', main));
  assert.equal(ctx.hub.requestsFor('/resolve/'), []);
  assert.equal(ctx.hub.requestsFor('/cdn/'), []);
  assert.is(await resolveModel('org/tiny', ctx.opts({ offline: true })), path.join(folder, 'snapshots', main));
});

Layout.run();

// ---------------------------------------------------------------------------------------------
const Revisions = suite('hub: revisions');
Revisions.before.each(setUp);
Revisions.after.each(tearDown);

Revisions('a commit sha: its own snapshot, no ref, and no network once cached', async () => {
  const [old] = ctx.shas;
  const dir = await resolveModel(`org/tiny@${old}`, ctx.opts());
  assert.is(dir, path.join(repoFolder(), 'snapshots', old));
  assert.is(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'), '{"old": true}');
  assert.not.ok(fs.existsSync(path.join(repoFolder(), 'refs')), 'no ref for a commit');
  const seen = ctx.hub.requests.length;
  assert.is(await resolveModel('org/tiny', ctx.opts({ revision: old })), dir);
  assert.is(ctx.hub.requests.length, seen, 'a cached commit needs no request');
});

Revisions('a tag: refs/<tag> holds its commit; a branch that moves gets its ref updated, unchanged blobs reused', async () => {
  const [old, main] = ctx.shas;
  assert.is(await resolveModel('org/tiny@v1', ctx.opts()), path.join(repoFolder(), 'snapshots', old));
  assert.is(fs.readFileSync(path.join(repoFolder(), 'refs', 'v1'), 'utf8'), old);
  assert.is(await resolveModel('org/tiny', ctx.opts()), path.join(repoFolder(), 'snapshots', main));
  assert.is(fs.readFileSync(path.join(repoFolder(), 'refs', 'main'), 'utf8'), main);
  assert.is(cdnGets(ctx.files['model.safetensors']).length, 1, 'the weights are shared by both commits and fetched once');
  // main moves on: the ref follows, the weights stay
  const moved = ctx.hub.addRepo('org/tiny', [['old', ctx.files], ['new', ctx.files], ['newer', { ...ctx.files, 'config.json': Buffer.from('{"newer": 1}') }]]);
  const dir = await resolveModel('org/tiny', ctx.opts());
  assert.is(dir, path.join(repoFolder(), 'snapshots', moved[2]));
  assert.is(fs.readFileSync(path.join(repoFolder(), 'refs', 'main'), 'utf8'), moved[2]);
  assert.is(fs.readFileSync(path.join(dir, 'config.json'), 'utf8'), '{"newer": 1}');
  assert.is(cdnGets(ctx.files['model.safetensors']).length, 1);
});

Revisions('an unknown model or revision is a clear 404', async () => {
  await rejectsCode(resolveModel('org/nothing', ctx.opts()), 'E_IO', /Model org\/nothing not found on http:\/\/127\.0\.0\.1:\d+ \(HTTP 404 RepoNotFound/);
  await rejectsCode(resolveModel('org/tiny@nope', ctx.opts()), 'E_IO', [/Revision nope not found in org\/tiny/, /commit sha/]);
});

Revisions.run();

// ---------------------------------------------------------------------------------------------
const Resume = suite('hub: interrupted downloads');
Resume.before.each(setUp);
Resume.after.each(tearDown);

Resume('a cut download resumes from the bytes on disk with a Range request', async () => {
  const weights = ctx.files['model.safetensors'];
  const blob = path.join(repoFolder(), 'blobs', sha256(weights));
  ctx.hub.cutAfter = { file: 'model.safetensors', bytes: 5_000_000 };
  await rejectsCode(resolveModel('org/tiny', ctx.opts()), 'E_IO', [/model.safetensors .* broke off after \d+ of 15097098 bytes/, /Run again to resume/]);
  const kept = fs.statSync(`${blob}.incomplete`).size;
  assert.ok(kept > 0 && kept <= 5_000_000, `kept ${kept} bytes`);
  assert.not.ok(fs.existsSync(blob));
  assert.ok(weights.subarray(0, kept).equals(fs.readFileSync(`${blob}.incomplete`)), 'the kept bytes are the file\'s first bytes');

  const dir = await resolveModel('org/tiny', ctx.opts());
  const gets = cdnGets(weights);
  assert.is(gets.length, 2);
  assert.is(gets[0].range, undefined);
  assert.is(gets[1].range, `bytes=${kept}-${weights.length - 1}`);
  assert.ok(fs.readFileSync(path.join(dir, 'model.safetensors')).equals(weights));
  assert.not.ok(fs.existsSync(`${blob}.incomplete`));
});

Resume('kept bytes that are wrong are caught by the sha256 and fetched again from byte 0', async () => {
  const weights = ctx.files['model.safetensors'];
  const blob = path.join(repoFolder(), 'blobs', sha256(weights));
  fs.mkdirSync(path.dirname(blob), { recursive: true });
  fs.writeFileSync(`${blob}.incomplete`, crypto.randomBytes(1000));
  const dir = await resolveModel('org/tiny', ctx.opts());
  assert.equal(cdnGets(weights).map((r) => r.range), ['bytes=1000-15097097', undefined]);
  assert.ok(fs.readFileSync(path.join(dir, 'model.safetensors')).equals(weights));
});

Resume('concurrent calls for one model share the cache without corrupting it', async () => {
  const dirs = await Promise.all([1, 2, 3].map(() => resolveModel('org/tiny', ctx.opts())));
  assert.equal(new Set(dirs).size, 1);
  assert.is(cdnGets(ctx.files['model.safetensors']).length, 1, 'one download, the others waited for it');
  for (const name of NEEDED) assert.ok(fs.readFileSync(path.join(dirs[0], name)).equals(ctx.files[name]), name);
  assert.equal(fs.readdirSync(path.join(ctx.cache, '.locks', 'models--org--tiny')), [], 'locks released');
});

Resume('a lock another process keeps fresh is waited for; a stale one is taken over', async () => {
  const weights = ctx.files['model.safetensors'];
  const lock = path.join(ctx.cache, '.locks', 'models--org--tiny', `${sha256(weights)}.clipkit.lock`);
  fs.mkdirSync(path.dirname(lock), { recursive: true });
  fs.writeFileSync(lock, '{"pid": 1}\n');
  const refresh = setInterval(() => fs.utimesSync(lock, new Date(), new Date()), 200);
  let done = false;
  const pending = resolveModel('org/tiny', ctx.opts()).then((dir) => ((done = true), dir));
  await new Promise((r) => setTimeout(r, 1500));
  assert.not.ok(done, 'waits while the lock is held');
  assert.equal(cdnGets(weights), []);
  clearInterval(refresh);
  fs.rmSync(lock);
  assert.ok(fs.readFileSync(path.join(await pending, 'model.safetensors')).equals(weights));

  const other = path.join(ctx.cache, 'other');
  const staleLock = path.join(other, '.locks', 'models--org--tiny', `${sha256(weights)}.clipkit.lock`);
  fs.mkdirSync(path.dirname(staleLock), { recursive: true });
  fs.writeFileSync(staleLock, '{"pid": 1}\n');
  const aMinuteAgo = new Date(Date.now() - 60_000);
  fs.utimesSync(staleLock, aMinuteAgo, aMinuteAgo);
  const dir = await resolveModel('org/tiny', ctx.opts({ cacheDir: other }));
  assert.ok(fs.readFileSync(path.join(dir, 'model.safetensors')).equals(weights));
  assert.not.ok(fs.existsSync(staleLock));
});

Resume.run();

// ---------------------------------------------------------------------------------------------
const Offline = suite('hub: offline and no network');
Offline.before.each(setUp);
Offline.after.each(tearDown);

Offline('a second load comes from the cache with the server stopped, offline or not', async () => {
  const dir = await resolveModel('org/tiny', ctx.opts());
  await ctx.hub.stop();
  assert.is(await resolveModel('org/tiny', ctx.opts({ offline: true })), dir);
  process.env.HF_HUB_OFFLINE = '1';
  assert.is(await resolveModel('org/tiny', ctx.opts()), dir);
  delete process.env.HF_HUB_OFFLINE;
  assert.is(await resolveModel('org/tiny', ctx.opts()), dir, 'the hub is unreachable: the cached copy serves, as in Python');
});

Offline('HF_HUB_OFFLINE with the model not cached says where the cache is and how to use a folder', async () => {
  process.env.HF_HUB_OFFLINE = '1';
  const err = await rejectsCode(resolveModel('org/tiny', ctx.opts()), 'E_IO');
  assert.ok(err.message.includes(`org/tiny@main is not in the Hugging Face cache at ${repoFolder()}`), err.message);
  assert.match(err.message, /offline mode is on \(HF_HUB_OFFLINE=1/);
  assert.match(err.message, /loadModel\('\/path\/to\/folder'\) or --model \.\/folder/);
  assert.is(ctx.hub.requests.length, 0);
  // a snapshot with the config but without the weights is not enough
  await resolveModel('org/tiny', ctx.opts({ offline: false }));
  fs.rmSync(path.join(repoFolder(), 'snapshots', ctx.shas[1], 'model.safetensors'));
  await rejectsCode(resolveModel('org/tiny', ctx.opts()), 'E_IO', /snapshot [0-9a-f]{40} lacks weights/);
});

Offline('no network: the error names the endpoint, HF_ENDPOINT and offline use', async () => {
  const url = ctx.hub.url;
  await ctx.hub.stop();
  const err = await rejectsCode(resolveModel('org/tiny', ctx.opts()), 'E_IO', [/ECONNREFUSED/, /HF_ENDPOINT/, /HF_HUB_OFFLINE=1/, /--model \.\/folder/]);
  assert.ok(err.message.includes(`Cannot reach the Hugging Face Hub at ${url} to fetch org/tiny@main`), err.message);
  assert.ok(err.message.includes(`not completely in the cache at ${repoFolder()}`), err.message);
});

Offline('an aborted signal stops the call with its reason', async () => {
  const reason = new Error('stop');
  const err = await resolveModel('org/tiny', ctx.opts({ signal: AbortSignal.abort(reason) })).catch((e) => e);
  assert.is(err, reason);
});

Offline.run();

// ---------------------------------------------------------------------------------------------
const Auth = suite('hub: tokens and endpoints');
Auth.before.each(setUp);
Auth.after.each(tearDown);

Auth('HF_TOKEN is sent as Authorization: Bearer on every request; the token option overrides it', async () => {
  ctx.hub.addRepo('org/private', [['c', ctx.files]], { token: 'hf_secret' });
  process.env.HF_TOKEN = 'hf_secret';
  const dir = await resolveModel('org/private', ctx.opts());
  assert.ok(fs.readFileSync(path.join(dir, 'model.safetensors')).equals(ctx.files['model.safetensors']));
  assert.ok(ctx.hub.requests.length >= 7);
  for (const r of ctx.hub.requests) assert.is(r.authorization, 'Bearer hf_secret', `${r.method} ${r.path}`);

  ctx.hub.addRepo('org/org-token', [['c', { 'config.json': Buffer.from('{}'), 'model.safetensors': Buffer.from('x') }]], { token: 'api_org_0123' });
  await resolveModel('org/org-token', ctx.opts({ token: 'api_org_0123' })); // no hf_ prefix needed
  assert.is(ctx.hub.requests[ctx.hub.requests.length - 1].authorization, 'Bearer api_org_0123');
});

Auth('401 without a token, or with a wrong one, points at HF_TOKEN', async () => {
  ctx.hub.addRepo('org/private', [['c', ctx.files]], { token: 'hf_secret' });
  await rejectsCode(resolveModel('org/private', ctx.opts()), 'E_IO', [/refused access to org\/private \(HTTP 401/, /private or gated/, /set HF_TOKEN/]);
  process.env.HF_TOKEN = 'hf_wrong';
  await rejectsCode(resolveModel('org/private', ctx.opts()), 'E_IO', /refused the access token from HF_TOKEN for org\/private \(HTTP 401/);
  await rejectsCode(resolveModel('org/private', ctx.opts({ token: false })), 'E_IO', /refused access to org\/private/);
  fs.writeFileSync(process.env.HF_TOKEN_PATH!, 'hf_secret\n');
  delete process.env.HF_TOKEN;
  await resolveModel('org/private', ctx.opts()); // the saved login's token file
});

Auth('HF_ENDPOINT picks the hub; options.endpoint overrides it', async () => {
  process.env.HF_ENDPOINT = `${ctx.hub.url}/`;
  const dir = await resolveModel('org/tiny', { cacheDir: ctx.cache, progress: false });
  assert.is(dir, path.join(repoFolder(), 'snapshots', ctx.shas[1]));
  process.env.HF_ENDPOINT = 'http://127.0.0.1:9';
  assert.is(await resolveModel(`org/tiny@${ctx.shas[0]}`, ctx.opts()), path.join(repoFolder(), 'snapshots', ctx.shas[0]));
});

Auth.run();

// ---------------------------------------------------------------------------------------------
const Progress = suite('hub: progress');
Progress.before.each(setUp);
Progress.after.each(tearDown);

Progress('a bar with bytes, speed and ETA on a terminal stream; nothing on a pipe', async () => {
  const tty = Object.assign(new PassThrough(), { isTTY: true, columns: 160 }) as unknown as NodeJS.WriteStream;
  let out = '';
  (tty as unknown as PassThrough).on('data', (c) => (out += c));
  await resolveModel('org/tiny', ctx.opts({ progress: tty }));
  assert.match(out, /org\/tiny \|.*\| 100% \| 15\.1 MB\/15\.1 MB \| [\d.]+ [kMG]?B\/s \| ETA 0s \| model\.safetensors/);

  const pipe = new PassThrough();
  let piped = '';
  pipe.on('data', (c) => (piped += c));
  await resolveModel(`org/tiny@${ctx.shas[0]}`, ctx.opts({ cacheDir: path.join(ctx.cache, 'other'), progress: pipe as unknown as NodeJS.WriteStream }));
  assert.is(piped, '');
});

Progress('the bar goes to a terminal only; HF_HUB_DISABLE_PROGRESS_BARS turns the default off', () => {
  const tty = Object.assign(new PassThrough(), { isTTY: true }) as unknown as NodeJS.WriteStream;
  assert.is(progressStream(tty), tty);
  assert.is(progressStream(new PassThrough() as unknown as NodeJS.WriteStream), null);
  assert.is(progressStream(false), null);
  assert.is(progressStream(undefined), process.stderr.isTTY ? process.stderr : null);
  process.env.HF_HUB_DISABLE_PROGRESS_BARS = '1';
  assert.is(progressStream(undefined), null);
  assert.is(progressStream(tty), tty, 'an explicit stream still gets its bar');
});

Progress.run();
