/**
 * indexFolder: keeps an ImageStore in step with a folder of images, incrementally.
 *
 *   const summary = await indexFolder('photos/', {
 *     db: 'photos.lancedb',
 *     modelId: 'OFA-Sys/chinese-clip-vit-base-patch16',
 *     openModel: () => loadModel(...),          // only called when some image needs embedding
 *   });
 *   // { added, updated, removed, unchanged, failed: [{ path, error }], rows, ann }
 *
 * Files are matched to rows by absolute path: a new file is embedded and added, a file whose size or
 * mtime changed is embedded again, a row whose file is gone (under this folder) is removed, and an
 * unchanged file is left alone. A file that cannot be decoded is skipped and reported (and its old
 * row, if any, removed: it no longer describes the file); the others are indexed. Rows are written
 * FLUSH_ROWS at a time, so an interrupted run keeps what it embedded. Then the ANN index is brought
 * up to date (ImageStore.updateAnnIndex).
 */
import { mkdirSync } from 'node:fs';
import { readdir, stat } from 'node:fs/promises';
import { extname, join, resolve, sep } from 'node:path';
import { describe, expectOptions, expectPath, OptionKeys } from '../check';
import { ClipkitError, typeError } from '../errors';
import { FileLock } from '../io/file_lock';
import { IMAGE_EXTENSIONS } from '../image/decode';
import type { ClipModel } from '../models';
import { AnnState, FileStamp, ImageRow, ImageStore } from './store';

/** File extensions indexed (compared case-insensitively): those of every format decodeImage reads. */
export { IMAGE_EXTENSIONS };

/** The file in a database folder whose lock an indexer holds (never removed: see src/io/file_lock.ts). */
export const INDEX_LOCK = 'clipkit-index.lock';
/** Rows buffered before a write to the table. */
const FLUSH_ROWS = 1024;
/** Images per encodeImage call, in batches: a file that fails costs at most one chunk of re-encoding. */
const CHUNK_BATCHES = 4;
/** Error codes of an image that cannot be decoded (the file is skipped; any other error stops the run). */
const UNREADABLE = new Set(['E_IO', 'E_FORMAT', 'E_UNSUPPORTED', 'E_LIMIT']);

export interface ImageFile extends FileStamp {
  /** Absolute path. */
  path: string;
}

export interface IndexFolderOptions {
  /** The LanceDB database: a folder on disk or any URI LanceDB connects to. */
  db: string;
  /** Stored with the vectors (a hub id or folder, as given); a database built with another is refused. */
  modelId: string;
  /** Loads the model; called once, and only when some image needs embedding. */
  openModel: () => Promise<ClipModel>;
  /** Called with (images done, images to embed) before the first and after each chunk. */
  onProgress?: (done: number, total: number) => void;
  /** Called for each image skipped because it cannot be decoded. */
  onFailure?: (path: string, err: Error) => void;
}

export interface IndexSummary {
  added: number;
  updated: number;
  removed: number;
  unchanged: number;
  /** Images that could not be decoded (not in the index). */
  failed: { path: string; error: string }[];
  /**
   * Rows whose stored vector was damaged (not finite, or not unit length: a data file with flipped
   * bytes). Those of files under this folder were embedded again (and counted in `updated`).
   */
  damaged: string[];
  /** Rows in the table afterwards. */
  rows: number;
  /** How the table is searched now; undefined when nothing has been indexed in this database. */
  ann?: AnnState;
}

/** Image files under `dir` (recursively; folders reached through symbolic links are not entered), sorted by path. */
export async function listImages(dir: string): Promise<ImageFile[]> {
  expectPath('dir', dir);
  const root = resolve(dir);
  const top = await stat(root).catch((err: Error) => {
    throw new ClipkitError('E_IO', `Cannot read the folder ${root}: ${err.message}`);
  });
  if (!top.isDirectory()) throw new ClipkitError('E_ARG', `Expected a folder of images but ${root} is not a folder`);
  const out: ImageFile[] = [];
  const walk = async (folder: string): Promise<void> => {
    const entries = await readdir(folder, { withFileTypes: true }).catch((err: Error) => {
      throw new ClipkitError('E_IO', `Cannot list the folder ${folder}: ${err.message}`);
    });
    for (const e of entries) {
      const path = join(folder, e.name);
      if (e.isDirectory()) await walk(path);
      else if ((e.isFile() || e.isSymbolicLink()) && IMAGE_EXTENSIONS.includes(extname(e.name).toLowerCase())) {
        const st = await stat(path).catch(() => undefined); // gone since listed, or a dangling link
        if (st?.isFile()) out.push({ path, size: st.size, mtime: st.mtimeMs });
      }
    }
  };
  await walk(root);
  return out.sort((a, b) => (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

/** Brings the image table in `opts.db` up to date with the images under `dir`. */
export async function indexFolder(dir: string, opts: IndexFolderOptions): Promise<IndexSummary> {
  if (opts === null || typeof opts !== 'object') throw typeError('E_ARG', `Expected an options object but received ${describe(opts)}`);
  expectOptions('indexFolder', opts, { db: true, modelId: true, openModel: true, onProgress: true, onFailure: true } satisfies OptionKeys<IndexFolderOptions>);
  if (typeof opts.modelId !== 'string') throw typeError('E_ARG', `Expected a model id string for modelId but received ${describe(opts.modelId)}`);
  if (typeof opts.openModel !== 'function') throw typeError('E_ARG', `Expected a function for openModel but received ${describe(opts.openModel)}`);
  const files = await listImages(dir);
  const lock = lockIndex(opts.db);
  let store: ImageStore | undefined;
  try {
    store = await ImageStore.open(opts.db);
    store?.checkModel(opts.modelId);
    const damaged = store ? await store.damaged() : [];
    const plan = planUpdate(resolve(dir), files, store ? await store.stamps() : new Map(), new Set(damaged));
    const summary: IndexSummary = { added: 0, updated: 0, removed: plan.removed.length, unchanged: plan.unchanged, failed: [], damaged, rows: 0 };
    if (store) await store.remove(plan.removed);

    const todo = [...plan.added, ...plan.updated];
    if (todo.length > 0) {
      const model = await opts.openModel();
      const identity = { model: opts.modelId, dim: model.config.projectionDim };
      if (store) store.checkModel(identity.model, identity.dim);
      else store = await ImageStore.create(opts.db, identity);
      const target = store;
      const wasIndexed = new Set(plan.updated.map((f) => f.path));
      const stale: string[] = [];
      let buffer: ImageRow[] = [];
      const chunk = model.batchSize * CHUNK_BATCHES;
      opts.onProgress?.(0, todo.length);
      for (let i = 0; i < todo.length; i += chunk) {
        const rows = await embedSkippingUnreadable(model, todo.slice(i, i + chunk), (file, err) => {
          summary.failed.push({ path: file.path, error: err.message });
          if (wasIndexed.has(file.path)) stale.push(file.path);
          opts.onFailure?.(file.path, err);
        });
        for (const r of rows) summary[wasIndexed.has(r.path) ? 'updated' : 'added']++;
        buffer.push(...rows);
        if (buffer.length >= FLUSH_ROWS) {
          await target.upsert(buffer);
          buffer = [];
        }
        opts.onProgress?.(Math.min(i + chunk, todo.length), todo.length);
      }
      await target.upsert(buffer);
      await target.remove(stale);
    }
    if (store) {
      summary.ann = await store.updateAnnIndex();
      summary.rows = summary.ann.rows;
    }
    return summary;
  } finally {
    store?.close();
    lock?.release();
  }
}

/**
 * One indexer per database: two that plan against the same rows would add the same images twice
 * and remove each other's. A database in a local folder is locked through a file in it (created
 * with the folder); a remote URI (`s3://…`) is not locked here.
 */
function lockIndex(db: string): FileLock | undefined {
  if (typeof db !== 'string' || db === '' || /^[a-z][a-z0-9+.-]*:\/\//i.test(db)) return undefined;
  const folder = resolve(db);
  try {
    mkdirSync(folder, { recursive: true });
  } catch (err) {
    throw new ClipkitError('E_IO', `Cannot create the database folder ${folder}: ${(err as Error).message}`);
  }
  return FileLock.acquire(join(folder, INDEX_LOCK), `The image index ${folder} is being updated by another process; wait for it to finish or use another --db`);
}

interface UpdatePlan {
  added: ImageFile[];
  updated: ImageFile[];
  removed: string[];
  unchanged: number;
}

/** Compares the files under `root` with the rows indexed: what to add, embed again (changed, or its row damaged) and remove. */
function planUpdate(root: string, files: readonly ImageFile[], indexed: Map<string, FileStamp>, damaged: ReadonlySet<string>): UpdatePlan {
  const plan: UpdatePlan = { added: [], updated: [], removed: [], unchanged: 0 };
  const present = new Set<string>();
  for (const f of files) {
    present.add(f.path);
    const old = indexed.get(f.path);
    if (!old) plan.added.push(f);
    else if (old.size !== f.size || old.mtime !== f.mtime || damaged.has(f.path)) plan.updated.push(f);
    else plan.unchanged++;
  }
  // Only rows under this folder: one database may index several folders.
  const prefix = root.endsWith(sep) ? root : root + sep;
  for (const path of indexed.keys()) if (path.startsWith(prefix) && !present.has(path)) plan.removed.push(path);
  return plan;
}

/**
 * Embeds the files; one that cannot be decoded is passed to `skip` and the call is repeated
 * without it (encodeImage names the failing image by its index).
 */
async function embedSkippingUnreadable(model: ClipModel, files: ImageFile[], skip: (file: ImageFile, err: Error) => void): Promise<ImageRow[]> {
  let pending = files;
  while (pending.length > 0) {
    try {
      const vectors = await model.encodeImage(pending.map((f) => f.path));
      return pending.map((f, i) => ({ ...f, vector: vectors[i] }));
    } catch (err) {
      const { index, code, cause } = err as { index?: unknown; code?: unknown; cause?: unknown };
      if (typeof index !== 'number' || typeof code !== 'string' || !UNREADABLE.has(code)) throw err;
      skip(pending[index], cause instanceof Error ? cause : (err as Error));
      pending = pending.filter((_, j) => j !== index);
    }
  }
  return [];
}
