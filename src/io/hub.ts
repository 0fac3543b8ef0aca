/**
 * Model names to local folders: an existing folder is returned as it is; a Hugging Face Hub id
 * (`org/name`, `org/name@revision` with a branch, tag or commit sha) is fetched into the standard
 * hub cache (hub_cache.ts: the layout Python's huggingface_hub reads and writes) and the snapshot
 * folder is returned.
 *
 *   online   model info at the revision → its commit
 *            listing at the commit → the files a model needs (config, preprocessing, tokenizer,
 *            weights: safetensors before pytorch_model.bin, an index with its shards)
 *            each missing one → blobs/<etag> (hub_download.ts: resumable, verified)
 *            → snapshots/<commit>/<file>, a symlink to the blob; then refs/<revision> ← commit
 *   offline  (HF_HUB_OFFLINE=1 or offline: true) refs/<revision> (or the commit given) → the
 *            snapshot, which must hold config.json and complete weights. The same lookup answers
 *            when the hub cannot be reached, as in Python; a commit sha already cached is
 *            returned without asking the hub at all.
 *
 * Settings come from the options, else the environment, as in Python: HF_ENDPOINT, HF_TOKEN (or
 * HUGGING_FACE_HUB_TOKEN, or the token file a hub login saved), HF_HUB_OFFLINE, and HF_HUB_CACHE /
 * HF_HOME for the cache. All requests and their errors go through hub_fetch.ts; every failure is a
 * ClipkitError E_IO that says what to do next.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { HUB_URL, listFiles, modelInfo } from '@huggingface/hub';
import { ClipkitError } from '../errors';
import { defaultCacheDir, expandHome, fileSize, RepoCache } from './hub_cache';
import { fetchBlob, RemoteFile } from './hub_download';
import { HubTarget, hubFetch, HubUnreachableError, notCachedError } from './hub_fetch';
import { DownloadProgress, progressStream } from './hub_progress';

export interface ResolveOptions {
  /** Branch, tag or commit sha (default `main`); `org/name@revision` says the same. */
  revision?: string;
  /** The hub cache (default $HF_HUB_CACHE, else $HF_HOME/hub, else ~/.cache/huggingface/hub). */
  cacheDir?: string;
  /** The hub's address, e.g. a mirror (default $HF_ENDPOINT, else the Hugging Face Hub). */
  endpoint?: string;
  /** Access token for private and gated models (default $HF_TOKEN, else the saved login); false sends none. */
  token?: string | false;
  /** Use the cache only, never the network (default: $HF_HUB_OFFLINE is 1, on, yes or true). */
  offline?: boolean;
  /**
   * Progress bar, drawn only on a terminal: on stderr (true, or by default unless
   * $HF_HUB_DISABLE_PROGRESS_BARS is set), on the given stream, or none (false).
   */
  progress?: boolean | NodeJS.WriteStream;
  signal?: AbortSignal;
}

/** Files a model may need besides its weights, fetched when the repo has them. */
const SIDE_FILES = [
  'config.json',
  'preprocessor_config.json',
  'tokenizer_config.json',
  'special_tokens_map.json',
  'vocab.txt',
  'vocab.json',
  'merges.txt',
  'sentencepiece.bpe.model',
];

/** Weight files in order of preference; an index names its shards in `weight_map`. */
const WEIGHT_FILES = ['model.safetensors', 'model.safetensors.index.json', 'pytorch_model.bin', 'pytorch_model.bin.index.json'];

const COMMIT_SHA = /^[0-9a-f]{40}$/;
/** A repo id part as the hub allows it: word characters, `-` and `.`, starting and ending with a word character. */
const ID_PART = String.raw`\w(?:[\w.-]*\w)?`;
const HUB_ID = new RegExp(String.raw`^(${ID_PART}\/${ID_PART})(?:@([\w.+\/-]+))?$`);

/** A plain name inside the model folder: no separators, not `.` or `..`. */
const isPlainFileName = (name: string) => name !== '' && name !== '.' && name !== '..' && !/[\\/\0]/.test(name);

/** Checks a branch, tag or commit name enough that it stays inside refs/ when used as a path. */
function checkRevision(revision: string): string {
  if (!/^[\w.+\/-]+$/.test(revision) || revision.split('/').some((part) => part === '' || part === '.' || part === '..'))
    throw new ClipkitError('E_ARG', `Expected a branch, tag or commit sha for revision but received ${JSON.stringify(revision)}`);
  return revision;
}

/** `org/name` or `org/name@revision` as the hub spells repo ids (at most 96 characters, no `--` or `..`). */
export function parseHubId(s: string): { repoId: string; revision?: string } | null {
  const m = HUB_ID.exec(s);
  if (!m || m[1].length > 96 || m[1].includes('--') || m[1].includes('..')) return null;
  if (m[2] !== undefined && m[2].split('/').some((part) => part === '' || part === '.' || part === '..')) return null;
  return { repoId: m[1], revision: m[2] };
}

/** True for `org/name` and `org/name@revision`. A folder that exists is still a folder to resolveModel. */
export function isHubId(s: string): boolean {
  return parseHubId(s) !== null;
}

const isTrue = (v: string | undefined) => ['1', 'ON', 'YES', 'TRUE'].includes((v ?? '').trim().toUpperCase());

/** The token and where it came from: the option, HF_TOKEN, HUGGING_FACE_HUB_TOKEN, then the saved login. */
function resolveToken(option: string | false | undefined): { token?: string; tokenFrom?: string } {
  if (option === false) return {};
  if (option) return { token: option, tokenFrom: 'the token option' };
  for (const name of ['HF_TOKEN', 'HUGGING_FACE_HUB_TOKEN']) {
    const token = process.env[name]?.trim();
    if (token) return { token, tokenFrom: name };
  }
  const hfHome = expandHome(process.env.HF_HOME ?? path.join(process.env.XDG_CACHE_HOME ?? path.join(os.homedir(), '.cache'), 'huggingface'));
  const file = process.env.HF_TOKEN_PATH ? expandHome(process.env.HF_TOKEN_PATH) : path.join(hfHome, 'token');
  try {
    const token = fs.readFileSync(file, 'utf8').trim();
    if (token) return { token, tokenFrom: file };
  } catch {
    // no saved login
  }
  return {};
}

/** The model's weight files: one file, or an index and the shards its weight_map names. */
async function weightFiles(has: (name: string) => boolean, readFile: (name: string) => Promise<string>, where: string): Promise<string[]> {
  const chosen = WEIGHT_FILES.find(has);
  if (!chosen)
    throw new ClipkitError('E_UNSUPPORTED', `${where} has no weights clipkit reads: none of ${WEIGHT_FILES.join(', ')}`);
  if (!chosen.endsWith('.index.json')) return [chosen];
  let shards: string[];
  try {
    const index = JSON.parse(await readFile(chosen)) as { weight_map?: Record<string, unknown> };
    shards = [...new Set(Object.values(index.weight_map ?? {}))] as string[];
  } catch (err) {
    if (err instanceof ClipkitError) throw err;
    throw new ClipkitError('E_FORMAT', `Invalid ${chosen} in ${where}: ${(err as Error).message}`);
  }
  if (shards.length === 0 || !shards.every((s) => typeof s === 'string' && isPlainFileName(s)))
    throw new ClipkitError('E_FORMAT', `Invalid ${chosen} in ${where}: weight_map must name shard files in the same folder`);
  return [chosen, ...shards];
}

interface Resolution {
  repoId: string;
  revision: string;
  cache: RepoCache;
  target: HubTarget;
}

/**
 * The cached snapshot of the revision when it holds config.json and complete weights; otherwise
 * the error for offline mode, saying what is missing.
 */
async function cachedSnapshot(r: Resolution): Promise<string | ClipkitError> {
  const commit = COMMIT_SHA.test(r.revision) ? r.revision : r.cache.readRef(r.revision);
  if (!commit) return notCachedError(r.target, `no ${path.join('refs', r.revision)}`);
  const dir = r.cache.snapshotDir(commit);
  const has = (name: string) => fileSize(path.join(dir, name)) >= 0;
  const missing = ['config.json'].filter((f) => !has(f));
  try {
    const weights = await weightFiles(has, (name) => fs.promises.readFile(path.join(dir, name), 'utf8'), dir);
    missing.push(...weights.filter((f) => !has(f)));
  } catch {
    missing.push(`weights (${WEIGHT_FILES[0]} or another)`);
  }
  return missing.length ? notCachedError(r.target, `snapshot ${commit} lacks ${missing.join(', ')}`) : dir;
}

/** Asks the hub for the revision's commit and files, and fetches the ones the cache lacks. */
async function fetchSnapshot(r: Resolution, options: ResolveOptions): Promise<string> {
  const { repoId, revision, cache, target } = r;
  const hub = hubFetch(target);
  const info = await modelInfo({ name: repoId, revision, hubUrl: target.endpoint, fetch: hub.fetch, additionalFields: ['sha'] });
  const commit = info.sha;
  if (typeof commit !== 'string' || !COMMIT_SHA.test(commit))
    throw new ClipkitError('E_IO', `The hub at ${target.endpoint} gave no commit for ${repoId}@${revision} (sha: ${JSON.stringify(commit)})`);
  const listing = new Map<string, RemoteFile>();
  for await (const entry of listFiles({ repo: repoId, revision: commit, hubUrl: target.endpoint, fetch: hub.fetch })) {
    const etag = entry.lfs?.oid ?? entry.oid;
    if (entry.type === 'file' && etag && isPlainFileName(entry.path)) listing.set(entry.path, { path: entry.path, etag, size: entry.lfs?.size ?? entry.size });
  }

  const where = `${repoId}@${revision}`;
  const snapshot = cache.snapshotDir(commit);
  const cached = (f: RemoteFile) => fileSize(path.join(snapshot, f.path)) === f.size;
  const blobOptions = { cache, repoId, commit, endpoint: target.endpoint, hub, signal: options.signal };
  const fetchFile = async (f: RemoteFile, onBytes?: (bytes: number) => void) => {
    if (cached(f)) return;
    await fetchBlob(f, { ...blobOptions, onBytes });
    cache.linkSnapshotFile(commit, f.path, f.etag);
  };

  if (!listing.has('config.json'))
    throw new ClipkitError('E_FORMAT', `${where} has no config.json: it is not a model clipkit can load (files: ${[...listing.keys()].join(', ') || 'none'})`);
  const preferredWeights = WEIGHT_FILES.find((f) => listing.has(f));
  const weightIndex = preferredWeights?.endsWith('.index.json') ? [preferredWeights] : []; // read before its shards are known
  for (const name of [...SIDE_FILES, ...weightIndex]) {
    const f = listing.get(name);
    if (f) await fetchFile(f);
  }
  const weights = await weightFiles(
    (name) => listing.has(name),
    (name) => fs.promises.readFile(path.join(snapshot, name), 'utf8'),
    where,
  );
  const toFetch = weights.map((name) => {
    const f = listing.get(name);
    if (!f) throw new ClipkitError('E_FORMAT', `${weights[0]} of ${where} names the shard ${name}, which the repo does not have`);
    return f;
  }).filter((f) => !cached(f));

  if (toFetch.length) {
    const progress = new DownloadProgress(progressStream(options.progress), repoId, toFetch.reduce((n, f) => n + f.size, 0));
    try {
      for (const f of toFetch) {
        await fetchFile(f, (bytes) => progress.update(f.path, bytes));
        progress.update(f.path, f.size);
      }
    } finally {
      progress.stop();
    }
  }
  // The ref moves once the snapshot is complete, so that offline use keeps finding a complete one.
  cache.writeRef(revision, commit);
  return snapshot;
}

/**
 * The local folder holding `nameOrDir`'s model files: the folder itself when it exists, else the
 * cache's snapshot of the hub id, fetched first when online.
 *
 *   await resolveModel('openai/clip-vit-base-patch32');  // ~/.cache/huggingface/hub/models--openai--clip-vit-base-patch32/snapshots/<commit>
 *   await resolveModel('org/name@v1.0');                 // a branch, a tag or a full 40-character commit sha
 *   await resolveModel('./my-model');                    // an existing folder, as it is
 */
export async function resolveModel(nameOrDir: string, options: ResolveOptions = {}): Promise<string> {
  if (typeof nameOrDir !== 'string' || nameOrDir === '')
    throw new ClipkitError('E_ARG', `Expected a model folder or a Hugging Face Hub id (org/name) for nameOrDir but received ${JSON.stringify(nameOrDir)}`);
  let stat: fs.Stats | undefined;
  try {
    stat = fs.statSync(nameOrDir);
  } catch {
    // not on disk: a hub id, or a mistake
  }
  if (stat?.isDirectory()) return nameOrDir;
  if (stat) throw new ClipkitError('E_IO', `${nameOrDir} is a file, not a model folder: give the folder that holds config.json and the weights`);
  const id = parseHubId(nameOrDir);
  if (!id)
    throw new ClipkitError('E_IO', `No model folder at ${path.resolve(nameOrDir)} (it does not exist), and ${JSON.stringify(nameOrDir)} is not a Hugging Face Hub id (org/name or org/name@revision)`);
  if (id.revision && options.revision && id.revision !== options.revision)
    throw new ClipkitError('E_ARG', `Expected one revision but received ${id.revision} in ${nameOrDir} and ${options.revision} in options.revision`);
  const revision = checkRevision(id.revision ?? options.revision ?? 'main');

  const endpoint = (options.endpoint ?? process.env.HF_ENDPOINT ?? HUB_URL).trim().replace(/\/+$/, '');
  try {
    new URL(endpoint);
  } catch {
    throw new ClipkitError('E_ARG', `Expected an http(s) address for endpoint (or HF_ENDPOINT) but received ${JSON.stringify(endpoint)}`);
  }
  const cache = new RepoCache(options.cacheDir ?? defaultCacheDir(), id.repoId);
  const target: HubTarget = { repoId: id.repoId, revision, endpoint, cacheFolder: cache.folder, signal: options.signal, ...resolveToken(options.token) };
  const r: Resolution = { repoId: id.repoId, revision, cache, target };

  const offline = options.offline ?? isTrue(process.env.HF_HUB_OFFLINE);
  if (offline || COMMIT_SHA.test(revision)) {
    const dir = await cachedSnapshot(r);
    if (typeof dir === 'string') return dir;
    if (offline) throw dir;
  }
  try {
    return await fetchSnapshot(r, options);
  } catch (err) {
    if (!(err instanceof HubUnreachableError)) throw err;
    const dir = await cachedSnapshot(r); // the hub is away: a complete cached copy still serves, as in Python
    if (typeof dir === 'string') return dir;
    throw err;
  }
}
