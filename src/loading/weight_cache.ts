/**
 * The weight cache: a model's prepared weights (packed GEMM panels, and every tensor the towers keep)
 * written once to a file, and mapped on later loads, where the towers compute on views into the
 * mapping: nothing is read into fresh memory, copied or packed.
 *
 * Where: $CLIPKIT_CACHE (a folder; `off` disables), else `<$XDG_CACHE_HOME or ~/.cache>/clipkit/weights/`
 * (beside the Hugging Face cache); loadModel's `weightCache` option overrides both.
 *
 * The key (CacheKey) covers everything that changes the bytes: each weight file (realpath, size,
 * mtimeMs, a hash of its header: see SourceFile), the config.json beside it as parsed, the load
 * dtype, the checkpoint options, the addon's packed layout (packedLayoutId: packing version, panel
 * geometry, byte order) and CACHE_FORMAT_VERSION. The file is named by the key's hash (keyFileName)
 * and holds the key itself, compared on load: any difference is a miss, and the model is packed and
 * written anew. Nothing large is read to compute it, so a load that finds its file reads no weights.
 *
 * File layout (little-endian):
 *
 *   [0, 4096)         header page: magic "CLIPKITW", format u32, index length u32, index sha256
 *                     (32 bytes), data offset u64 (4096), data length u64, data hash (hashBytes:
 *                     16 hex digits as ASCII), index offset u64, zeros to the end of the page
 *   [4096, +data)     the data region: each leaf 64-byte aligned, 4096 from one page up
 *   [index offset, …) right after the data, the index, UTF-8 JSON: { key, meta, state }: meta what
 *                     the caller keeps besides the weights (loadModel: the config and logit scale),
 *                     state the towers' state tree with each Tensor / PackedWeight replaced by a leaf
 *                       { kind: 'tensor', offset, byteLength, shape, dtype: 'float32' }
 *                       { kind: 'packed', offset, byteLength, n, k, dtype: 'float32' | 'bfloat16' }
 *                     (offsets relative to the data region); the file ends where the index does
 *
 * The index comes last so that the file is written front to back as the model is packed, leaf by
 * leaf (CacheWriter), without knowing the tree first: a first load holds about one weight at a time
 * besides what it keeps, and lets go of each checkpoint tensor's pages once it is written.
 *
 * A file is trusted only after every check passes: the magic and format, the file size (index
 * offset + length, the index right after the data), the header's zero padding, the index sha256,
 * the key, the data hash over the whole mapped data region, and each leaf inside the region and of
 * its stated size. Anything else (a truncated, zero-filled or bit-flipped file, or one from
 * another build) is a miss, never an error.
 *
 * Writes go to `.<name>.<pid>.<random>.tmp` in the same folder, are fsync'd and renamed over the
 * final name, so no reader ever sees a half-written file: processes that build the same model at
 * once each rename a complete file, and the last one stays. A write that fails (a read-only folder,
 * a full disk) leaves the model packed in memory instead, with one warning.
 */
import { createHash, randomBytes } from 'node:crypto';
import * as fs from 'node:fs';
import * as fsp from 'node:fs/promises';
import * as os from 'node:os';
import * as path from 'node:path';
import { ClipkitError } from '../errors';
import { expandHome } from '../io/hub_cache';
import { dropIfMapped, hashBytes, mapFile } from '../io/mapped';
import { MAX_HEADER_BYTES } from '../io/safetensors';
import { adoptPacked, copyPacked, packedBytes, packedBytesFor, packedLayoutId, PackedWeight, packInto, WeightDType } from '../ops/gemm';
import { Tensor } from '../tensor';
import { parseClipConfig } from './config';
import { weightFileList } from './read_weights';

/**
 * The version of what this module writes: the file layout, the key, and the state trees the towers
 * store (vit.ts, bert.ts, clip_text.ts). Bump it whenever any of them changes shape or meaning, so
 * that files written before are rebuilt instead of misread.
 */
export const CACHE_FORMAT_VERSION = 2;

const MAGIC = 'CLIPKITW';
const PAGE = 4096;
/** Leaves of at least a page start on a page; smaller ones on a cache line (what adoptPacked needs). */
const LEAF_ALIGN = 64;
export const CACHE_EXTENSION = '.ckw';
/** Bytes of a file's head and of its tail hashed for files without a safetensors header. */
const ENDS_BYTES = 64 * 1024;
/** The most bytes one write() call is given (the OS takes at most ~2 GiB at once). */
const WRITE_CHUNK = 1 << 30;

// Header fields, at these byte offsets of the first page.
const H_MAGIC = 0, H_FORMAT = 8, H_INDEX_LENGTH = 12, H_INDEX_SHA = 16, H_DATA_OFFSET = 48, H_DATA_LENGTH = 56, H_DATA_HASH = 64, H_INDEX_OFFSET = 80, H_END = 88;

/** One weight file as the key records it. */
export interface SourceFile {
  /** Its realpath (a hub snapshot's symlink resolved to the blob). */
  path: string;
  size: number;
  mtimeMs: number;
  /**
   * `safetensors:<sha256 of the 8-byte header length and the header JSON>` (names, dtypes, shapes,
   * offsets), or for any other file (pytorch_model.bin, .pt; a safetensors file whose header length
   * is not plausible) `ends:<sha256 of its size, first 64 KiB and last 64 KiB>`. The tensor data is
   * covered by the size and mtime alone: rewritten values that keep both (and the header) are not seen.
   */
  header: string;
}

/** What a cache file's bytes depend on; two loads with equal keys prepare identical weights. */
export interface CacheKey {
  format: number;
  /** packedLayoutId() of the addon that packed the weights. */
  layout: string;
  dtype: WeightDType;
  /** The model folder or checkpoint file, as an absolute path. */
  location: string;
  files: SourceFile[];
  /**
   * The config.json beside the weights as clipkit parses it (parseClipConfig), or its raw JSON when
   * it does not parse as a CLIP config alone (EasyNLP's, read together with the shapes), or null
   * when there is none (an original checkpoint: the geometry comes from its shapes, which the
   * files' fingerprints cover).
   */
  config: unknown;
  /** The loadModel checkpoint options (geometry and activation of an original checkpoint). */
  checkpoint: { model?: string; text?: string; hiddenAct?: string };
}

export interface KeyOptions {
  dtype: WeightDType;
  checkpoint?: { model?: string; text?: string; hiddenAct?: string };
  /** Defaults to the addon's packedLayoutId(). */
  layoutId?: string;
  /** Defaults to CACHE_FORMAT_VERSION. */
  formatVersion?: number;
}

/** A tree of the towers' state: objects and arrays whose leaves are float32 Tensors and whole PackedWeights. */
export type StateTree = Tensor | PackedWeight | readonly StateTree[] | { readonly [key: string]: StateTree | undefined };

/** The folder the options and environment name, or undefined when the cache is off. */
export function weightCacheFolder(option?: string | false, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (option === false) return undefined;
  if (typeof option === 'string') return path.resolve(expandHome(option));
  const v = env.CLIPKIT_CACHE?.trim();
  if (v) return v.toLowerCase() === 'off' ? undefined : path.resolve(expandHome(v));
  return defaultWeightCacheFolder(env);
}

/** `<$XDG_CACHE_HOME or ~/.cache>/clipkit/weights`: beside `huggingface/`, the hub cache's default root. */
export function defaultWeightCacheFolder(env: NodeJS.ProcessEnv = process.env): string {
  const base = env.XDG_CACHE_HOME ? path.resolve(expandHome(env.XDG_CACHE_HOME)) : path.join(os.homedir(), '.cache');
  return path.join(base, 'clipkit', 'weights');
}

const sha256 = (...parts: (string | Uint8Array)[]) => {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return h.digest();
};

/** Reads up to `length` bytes at `position` (fewer only at the end of the file). */
async function readAt(fh: fsp.FileHandle, position: number, length: number): Promise<Buffer> {
  const buf = Buffer.alloc(length);
  let done = 0;
  while (done < length) {
    const { bytesRead } = await fh.read(buf, done, length - done, position + done);
    if (bytesRead === 0) break;
    done += bytesRead;
  }
  return done === length ? buf : buf.subarray(0, done);
}

/** A weight file's identity for the key (see SourceFile). */
export async function fingerprintFile(file: string): Promise<SourceFile> {
  const real = await fsp.realpath(file);
  const fh = await fsp.open(real, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0));
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new ClipkitError('E_IO', `${file} is not a regular file`);
    const size = st.size;
    let header: string | undefined;
    if (real.toLowerCase().endsWith('.safetensors') && size >= 8) {
      const prefix = await readAt(fh, 0, 8);
      const n = prefix.readBigUInt64LE(0);
      if (n > 0n && n <= BigInt(Math.min(size - 8, MAX_HEADER_BYTES))) {
        const json = await readAt(fh, 8, Number(n));
        header = `safetensors:${sha256(prefix, json).toString('hex')}`;
      }
    }
    if (header === undefined) {
      const head = await readAt(fh, 0, Math.min(size, ENDS_BYTES));
      const tail = await readAt(fh, Math.max(0, size - ENDS_BYTES), Math.min(size, ENDS_BYTES));
      header = `ends:${sha256(String(size), head, tail).toString('hex')}`;
    }
    return { path: real, size, mtimeMs: st.mtimeMs, header };
  } finally {
    await fh.close();
  }
}

/**
 * The key of the model at `location` (a folder or a checkpoint file, as loadModel reads it), from
 * the weight files' fingerprints and the config.json beside them: nothing large is read. Throws
 * when the weights cannot be found (the load itself then says why).
 */
export async function modelKey(location: string, o: KeyOptions): Promise<CacheKey> {
  const abs = path.resolve(location);
  const files = await Promise.all(weightFileList(abs).map(fingerprintFile));
  const dir = (await fsp.stat(abs)).isFile() ? path.dirname(abs) : abs;
  const configPath = path.join(dir, 'config.json');
  let config: unknown = null;
  let text: string | undefined;
  try {
    text = await fsp.readFile(configPath, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') throw err;
  }
  if (text !== undefined) {
    const json: unknown = JSON.parse(text);
    try {
      config = JSON.parse(JSON.stringify(parseClipConfig(json, configPath)));
    } catch {
      config = json;
    }
  }
  const c = o.checkpoint ?? {};
  const checkpoint = {
    ...(c.model !== undefined && { model: c.model }),
    ...(c.text !== undefined && { text: c.text }),
    ...(c.hiddenAct !== undefined && { hiddenAct: c.hiddenAct }),
  };
  return {
    format: o.formatVersion ?? CACHE_FORMAT_VERSION,
    layout: o.layoutId ?? packedLayoutId(),
    dtype: o.dtype,
    location: abs,
    files,
    config,
    checkpoint,
  };
}

/** The cache file's name for a key: 32 hex digits of sha256(key JSON), then `.ckw`. */
export function keyFileName(key: CacheKey): string {
  return sha256(JSON.stringify(key)).toString('hex').slice(0, 32) + CACHE_EXTENSION;
}

const alignUp = (n: number, a: number) => Math.ceil(n / a) * a;

/**
 * A leaf already written to a cache file being built, standing in for its Tensor or PackedWeight in
 * the state tree handed to CacheWriter.finish. Its fields are what the index records for it.
 */
export class StoredLeaf {
  constructor(
    readonly kind: 'tensor' | 'packed',
    readonly offset: number,
    readonly byteLength: number,
    readonly shape: readonly number[] | undefined,
    readonly n: number | undefined,
    readonly k: number | undefined,
    readonly dtype: WeightDType,
  ) {}

  toJSON(): unknown {
    const { kind, offset, byteLength, shape, n, k, dtype } = this;
    return kind === 'tensor' ? { kind, offset, byteLength, shape, dtype } : { kind, offset, byteLength, n, k, dtype };
  }
}

/** The index tree of a state whose leaves are StoredLeaf (objects and arrays as they are, undefined left out). */
function encodeState(state: unknown, where = 'state'): unknown {
  if (state instanceof StoredLeaf) return state.toJSON();
  if (state instanceof Tensor || state instanceof PackedWeight) throw new ClipkitError('E_ARG', `Cannot index ${where}: it was not written (CacheWriter.tensor / packed)`);
  if (Array.isArray(state)) return state.map((x, i) => encodeState(x, `${where}[${i}]`));
  if (state !== null && typeof state === 'object' && Object.getPrototypeOf(state) === Object.prototype) {
    const out: Record<string, unknown> = {};
    for (const [k, x] of Object.entries(state)) {
      if (x === undefined) continue;
      // Leaves are told apart from inner objects by their `kind`.
      if (k === 'kind') throw new ClipkitError('E_ARG', `Cannot store ${where}: an inner object may not have a key named kind`);
      out[k] = encodeState(x, `${where}.${k}`);
    }
    return out;
  }
  throw new ClipkitError('E_ARG', `Cannot store ${where}: expected a Tensor, a PackedWeight, an array or a plain object`);
}

async function writeAll(fh: fsp.FileHandle, bytes: Uint8Array, position: number): Promise<void> {
  for (let done = 0; done < bytes.byteLength; ) {
    const n = Math.min(WRITE_CHUNK, bytes.byteLength - done);
    const { bytesWritten } = await fh.write(bytes, done, n, position + done);
    if (bytesWritten <= 0) throw new ClipkitError('E_IO', 'write() wrote nothing');
    done += bytesWritten;
  }
}

/** `.<name>.<pid>.<random>.tmp`: a writer's temporary file for `name`. */
const TEMP = /^\.(.+)\.(\d+)\.[0-9a-f]+\.tmp$/;
const tempName = (name: string) => `.${name}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;

export interface WriteOptions {
  /** Written in the header; defaults to CACHE_FORMAT_VERSION (tests write others). */
  formatVersion?: number;
  /** Called once the temporary file is complete, before the rename (tests stop a writer here). */
  beforeRename?: (tempFile: string) => Promise<void>;
}

const asBytes = (d: ArrayBufferView) => new Uint8Array(d.buffer, d.byteOffset, d.byteLength);

/**
 * A cache file being written, leaf by leaf: each Tensor or packed weight goes to the file as it
 * comes (packed through one reused buffer, its checkpoint pages let go of once written), and
 * finish() writes the index of the state tree made of the returned StoredLeafs, the header, syncs,
 * renames and maps the file. So a model's first load holds, besides what it keeps, about one
 * weight at a time. Also the sink of PackSettings (see packing.ts).
 */
export class CacheWriter {
  private end = 0; // data bytes placed so far
  private scratch = new Uint8Array(0);
  private open = true;

  private constructor(
    readonly folder: string,
    readonly key: CacheKey,
    readonly tempFile: string,
    private readonly fh: fsp.FileHandle,
    private readonly o: WriteOptions,
  ) {}

  /** A new temporary file in `folder` (created if need be). Throws when the folder cannot be written. */
  static async create(folder: string, key: CacheKey, o: WriteOptions = {}): Promise<CacheWriter> {
    await fsp.mkdir(folder, { recursive: true });
    const tmp = path.join(folder, tempName(keyFileName(key)));
    return new CacheWriter(folder, key, tmp, await fsp.open(tmp, 'wx', 0o644), o);
  }

  private place(byteLength: number): number {
    if (!this.open) throw new ClipkitError('E_ARG', 'The cache file is already finished');
    const offset = alignUp(this.end, byteLength >= PAGE ? PAGE : LEAF_ALIGN);
    this.end = offset + byteLength;
    return offset;
  }

  private scratchOf(bytes: number): Uint8Array {
    if (this.scratch.byteLength < bytes) this.scratch = new Uint8Array(bytes);
    return this.scratch.subarray(0, bytes);
  }

  /** t (float32) as it is. */
  async tensor(t: Tensor): Promise<Tensor> {
    if (!(t instanceof Tensor) || t.dtype !== 'float32') throw new ClipkitError('E_ARG', `Cannot store a ${t instanceof Tensor ? t.dtype : describeValue(t)} tensor (only float32 ones are stored)`);
    const bytes = asBytes(t.data);
    const offset = this.place(bytes.byteLength);
    await writeAll(this.fh, bytes, PAGE + offset);
    dropIfMapped(t.data);
    return new StoredLeaf('tensor', offset, bytes.byteLength, [...t.shape], undefined, undefined, 'float32') as unknown as Tensor;
  }

  /** The parts [N_i, K] stacked along N, packed as dtype (packInto). */
  async packed(parts: readonly Tensor[], dtype: WeightDType): Promise<PackedWeight> {
    const k = parts[0].shape[1], n = parts.reduce((a, p) => a + p.shape[0], 0);
    const byteLength = packedBytesFor(n, k, dtype);
    const offset = this.place(byteLength);
    const bytes = this.scratchOf(byteLength);
    await packInto(parts, bytes, dtype);
    await writeAll(this.fh, bytes, PAGE + offset);
    for (const p of parts) dropIfMapped(p.data);
    return new StoredLeaf('packed', offset, byteLength, undefined, n, k, dtype) as unknown as PackedWeight;
  }

  /** A weight packed earlier, its panels copied out (whole weights only). */
  async packedWeight(w: PackedWeight): Promise<PackedWeight> {
    if (w.row0 !== 0) throw new ClipkitError('E_ARG', 'Cannot store a row range of a packed weight (the state holds whole weights)');
    const byteLength = packedBytes(w);
    const offset = this.place(byteLength);
    const bytes = this.scratchOf(byteLength);
    await copyPacked(w, bytes);
    await writeAll(this.fh, bytes, PAGE + offset);
    return new StoredLeaf('packed', offset, byteLength, undefined, w.n, w.k, w.dtype) as unknown as PackedWeight;
  }

  consumed(t: Tensor): void {
    dropIfMapped(t.data);
  }

  /**
   * Every Tensor and PackedWeight of `state` written, in tree order; the same tree with StoredLeafs
   * in their places.
   */
  async writeState(state: StateTree): Promise<unknown> {
    const walk = async (v: unknown): Promise<unknown> => {
      if (v instanceof Tensor) return this.tensor(v);
      if (v instanceof PackedWeight) return this.packedWeight(v);
      if (Array.isArray(v)) {
        const out: unknown[] = [];
        for (const x of v) out.push(await walk(x));
        return out;
      }
      if (v !== null && typeof v === 'object' && Object.getPrototypeOf(v) === Object.prototype) {
        const out: Record<string, unknown> = {};
        for (const [k, x] of Object.entries(v)) if (x !== undefined) out[k] = await walk(x);
        return out;
      }
      return v; // encodeState says what is wrong with it
    };
    return walk(state);
  }

  /**
   * Writes the index of `state` (whose leaves are this writer's StoredLeafs) and `meta` (any JSON)
   * and the header, syncs and closes the file, maps it and returns what it holds over the mapping.
   * `publish` (the default): renamed to keyFileName(key) in the folder, whose path is returned;
   * otherwise removed once mapped (the towers use it; no later load finds it).
   */
  async finish(meta: unknown, state: unknown, o: { publish?: boolean } = {}): Promise<{ file?: string; hit: CacheHit }> {
    this.place(0);
    this.open = false;
    const index = Buffer.from(JSON.stringify({ key: this.key, meta, state: encodeState(state) }), 'utf8');
    if (index.length > 0xffffffff) throw new ClipkitError('E_LIMIT', `The weight cache index has ${index.length} bytes, more than its u32 length field holds`);
    const dataLength = this.end, indexOffset = PAGE + dataLength;
    await writeAll(this.fh, index, indexOffset);
    await this.fh.truncate(indexOffset + index.length);
    // The data hash over the bytes as they are in the file, read back through a mapping of it (the
    // page cache), not a copy; the same mapping then holds the towers' weights.
    const mapped = await mapFile(this.tempFile, { populate: true });
    const h: CacheHeader = {
      format: this.o.formatVersion ?? CACHE_FORMAT_VERSION,
      dataOffset: PAGE,
      dataLength,
      dataHash: await hashBytes(new Uint8Array(mapped, PAGE, dataLength)),
      indexOffset,
      indexLength: index.length,
      indexSha256: sha256(index),
    };
    await writeAll(this.fh, headerPage(h), 0);
    await this.fh.sync();
    await this.fh.close();
    const hit = { meta, state: decodeState(JSON.parse(index.toString('utf8')).state, mapped, h) };
    if (o.publish === false) {
      await fsp.rm(this.tempFile, { force: true });
      return { hit };
    }
    await this.o.beforeRename?.(this.tempFile);
    const file = path.join(this.folder, keyFileName(this.key));
    try {
      await fsp.rename(this.tempFile, file);
    } catch (err) {
      // Where a file in use cannot be replaced (Windows), another process's file is in place:
      // keep it (its reader verifies it like any other).
      if (process.platform !== 'win32' || !fs.existsSync(file)) throw err;
      await fsp.rm(this.tempFile, { force: true });
      return { file, hit };
    }
    await syncFolder(this.folder);
    return { file, hit };
  }

  /** Closes and removes the temporary file (after a failure); never throws. */
  async abort(): Promise<void> {
    this.open = false;
    await this.fh.close().catch(() => undefined);
    await fsp.rm(this.tempFile, { force: true }).catch(() => undefined);
  }
}

const describeValue = (v: unknown) => (v === null ? 'null' : typeof v);

/** The header page of `h` (see the file comment). */
function headerPage(h: CacheHeader): Buffer {
  const header = Buffer.alloc(PAGE);
  header.write(MAGIC, H_MAGIC, 'latin1');
  header.writeUInt32LE(h.format, H_FORMAT);
  header.writeUInt32LE(h.indexLength, H_INDEX_LENGTH);
  h.indexSha256.copy(header, H_INDEX_SHA);
  header.writeBigUInt64LE(BigInt(h.dataOffset), H_DATA_OFFSET);
  header.writeBigUInt64LE(BigInt(h.dataLength), H_DATA_LENGTH);
  header.write(h.dataHash, H_DATA_HASH, 'latin1');
  header.writeBigUInt64LE(BigInt(h.indexOffset), H_INDEX_OFFSET);
  return header;
}

/**
 * Writes `state` (and `meta`, any JSON) under `key` into `folder`: a temporary file, fsync'd,
 * renamed to keyFileName(key). Returns the file's path. Throws on any failure, leaving no file
 * under the final name and removing its temporary file.
 */
export async function writeCacheFile(folder: string, key: CacheKey, meta: unknown, state: StateTree, o: WriteOptions = {}): Promise<string> {
  const w = await CacheWriter.create(folder, key, o);
  try {
    return (await w.finish(meta, await w.writeState(state))).file!;
  } catch (err) {
    await w.abort();
    throw err;
  }
}

/** fsync of the folder, so that the rename itself survives a crash; best effort (not every platform opens folders). */
async function syncFolder(folder: string): Promise<void> {
  try {
    const fh = await fsp.open(folder, 'r');
    try {
      await fh.sync();
    } finally {
      await fh.close();
    }
  } catch {
    // the file is complete either way; at worst a crash forgets the rename
  }
}

/** Why a cache file was not used. */
export class CacheMiss extends Error {}

export interface CacheHeader {
  format: number;
  indexOffset: number;
  indexLength: number;
  indexSha256: Buffer;
  dataOffset: number;
  dataLength: number;
  dataHash: string;
}

/** The header page's fields, checked against the file's size (see the file comment). Throws CacheMiss. */
export function parseHeader(page: Uint8Array, fileSize: number, formatVersion = CACHE_FORMAT_VERSION): CacheHeader {
  if (page.byteLength < PAGE || fileSize < PAGE) throw new CacheMiss(`shorter than its ${PAGE}-byte header (${fileSize} bytes)`);
  const b = Buffer.from(page.buffer, page.byteOffset, PAGE);
  if (b.toString('latin1', H_MAGIC, H_MAGIC + 8) !== MAGIC) throw new CacheMiss('no CLIPKITW magic');
  const format = b.readUInt32LE(H_FORMAT);
  if (format !== formatVersion) throw new CacheMiss(`format ${format}, not ${formatVersion}`);
  const indexLength = b.readUInt32LE(H_INDEX_LENGTH);
  const dataOffset = Number(b.readBigUInt64LE(H_DATA_OFFSET));
  const dataLength = Number(b.readBigUInt64LE(H_DATA_LENGTH));
  const dataHash = b.toString('latin1', H_DATA_HASH, H_DATA_HASH + 16);
  if (!/^[0-9a-f]{16}$/.test(dataHash)) throw new CacheMiss('the data hash is not 16 hex digits');
  for (let i = H_END; i < PAGE; i++) if (b[i] !== 0) throw new CacheMiss(`header byte ${i} is not zero`);
  const indexOffset = Number(b.readBigUInt64LE(H_INDEX_OFFSET));
  if (indexLength === 0 || dataOffset !== PAGE || indexOffset !== dataOffset + dataLength || !Number.isSafeInteger(indexOffset + indexLength))
    throw new CacheMiss(`data offset ${dataOffset}, data length ${dataLength} and index offset ${indexOffset} do not fit together`);
  if (fileSize !== indexOffset + indexLength) throw new CacheMiss(`${fileSize} bytes, but the header says ${indexOffset} + ${indexLength}`);
  return { format, indexOffset, indexLength, indexSha256: Buffer.from(b.subarray(H_INDEX_SHA, H_INDEX_SHA + 32)), dataOffset, dataLength, dataHash };
}

interface CacheIndex {
  key: CacheKey;
  meta: unknown;
  state: unknown;
}

/** The index JSON (its h.indexLength bytes) after its sha256 is checked. Throws CacheMiss. */
function parseIndex(bytes: Uint8Array, h: CacheHeader): CacheIndex {
  if (bytes.byteLength !== h.indexLength || !sha256(bytes).equals(h.indexSha256)) throw new CacheMiss('the index does not match its sha256');
  let index: CacheIndex;
  try {
    index = JSON.parse(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8'));
  } catch (err) {
    throw new CacheMiss(`the index is not JSON (${(err as Error).message})`);
  }
  if (index === null || typeof index !== 'object' || typeof index.key !== 'object' || index.key === null) throw new CacheMiss('the index has no key');
  return index;
}

/** The state tree over views of `buffer` (the mapped file), each leaf checked against the data region. */
function decodeState(tree: unknown, buffer: ArrayBuffer, h: CacheHeader): StateTree {
  const decode = (v: unknown, where: string): StateTree => {
    if (Array.isArray(v)) return v.map((x, i) => decode(x, `${where}[${i}]`));
    if (v === null || typeof v !== 'object') throw new CacheMiss(`${where} is not a leaf, an array or an object`);
    const o = v as Record<string, unknown>;
    if (o.kind === undefined) {
      const out: Record<string, StateTree> = {};
      for (const [k, x] of Object.entries(o)) Object.defineProperty(out, k, { value: decode(x, `${where}.${k}`), enumerable: true, writable: true, configurable: true });
      return out;
    }
    const { offset, byteLength } = o;
    if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(byteLength) || (offset as number) < 0 || (byteLength as number) < 0 ||
      (offset as number) % LEAF_ALIGN !== 0 || (offset as number) + (byteLength as number) > h.dataLength)
      throw new CacheMiss(`${where} lies outside the data region`);
    const at = h.dataOffset + (offset as number);
    if (o.kind === 'tensor') {
      const shape = o.shape;
      if (o.dtype !== 'float32' || !Array.isArray(shape) || !shape.every((d) => Number.isSafeInteger(d) && d >= 0)) throw new CacheMiss(`${where} is not a float32 tensor leaf`);
      const count = (shape as number[]).reduce((a, d) => a * d, 1);
      if (count * 4 !== byteLength) throw new CacheMiss(`${where} has ${byteLength} bytes for shape [${shape.join(', ')}]`);
      return new Tensor(new Float32Array(buffer, at, count), shape as number[]);
    }
    if (o.kind === 'packed') {
      if ((o.dtype !== 'float32' && o.dtype !== 'bfloat16') || !Number.isSafeInteger(o.n) || !Number.isSafeInteger(o.k)) throw new CacheMiss(`${where} is not a packed leaf`);
      try {
        return adoptPacked(new Uint8Array(buffer, at, byteLength as number), o.n as number, o.k as number, o.dtype);
      } catch (err) {
        throw new CacheMiss(`${where}: ${(err as Error).message}`);
      }
    }
    throw new CacheMiss(`${where} has an unknown kind`);
  };
  return decode(tree, 'state');
}

export interface CacheHit {
  meta: unknown;
  state: StateTree;
}

/**
 * The state stored under `key` in `file`, mapped and verified (see the file comment), or a
 * CacheMiss saying why not: the file is absent, from another key, or damaged. Never throws.
 */
export async function readCacheFile(file: string, key: CacheKey, formatVersion = CACHE_FORMAT_VERSION): Promise<CacheHit | CacheMiss> {
  try {
    let size: number;
    try {
      size = (await fsp.stat(file)).size;
    } catch (err) {
      return new CacheMiss((err as NodeJS.ErrnoException).code === 'ENOENT' ? 'absent' : `cannot stat: ${(err as Error).message}`);
    }
    if (size < PAGE) return new CacheMiss(`shorter than its ${PAGE}-byte header (${size} bytes)`);
    let buffer: ArrayBuffer;
    try {
      buffer = await mapFile(file, { populate: true });
    } catch (err) {
      return new CacheMiss(`cannot map: ${(err as Error).message}`);
    }
    const bytes = new Uint8Array(buffer);
    // Checked on the mapping itself: a rename between the stat and the map gives another (whole) file.
    const h = parseHeader(bytes, buffer.byteLength, formatVersion);
    const index = parseIndex(bytes.subarray(h.indexOffset, h.indexOffset + h.indexLength), h);
    if (JSON.stringify(index.key) !== JSON.stringify(key)) return new CacheMiss('written for another key');
    if ((await hashBytes(new Uint8Array(buffer, h.dataOffset, h.dataLength))) !== h.dataHash) return new CacheMiss('the data does not match its hash');
    const state = decodeState(index.state, buffer, h);
    // Last used, for `clipkit cache ls` and prune --older-than; a failure changes nothing else.
    const now = new Date();
    await fsp.utimes(file, now, now).catch(() => undefined);
    return { meta: index.meta, state };
  } catch (err) {
    return err instanceof CacheMiss ? err : new CacheMiss(`unreadable: ${(err as Error).message}`);
  }
}

/** A cache file's header and index as `clipkit cache` lists them (read with plain reads, no mapping). */
export interface CacheEntry {
  /** The file name without `.ckw`. */
  id: string;
  file: string;
  size: number;
  /** Last used (the file's mtime, set on every load that maps it). */
  lastUsed: Date;
  /** The key, when the header and index are intact. */
  key?: CacheKey;
  meta?: unknown;
  /** Why the file cannot be used, when its header or index is damaged. */
  invalid?: string;
}

export async function readCacheEntry(file: string): Promise<CacheEntry> {
  const st = await fsp.stat(file);
  const base = { id: path.basename(file, CACHE_EXTENSION), file, size: st.size, lastUsed: st.mtime };
  try {
    const fh = await fsp.open(file, 'r');
    try {
      const page = await readAt(fh, 0, PAGE);
      const h = parseHeader(page, st.size);
      const index = parseIndex(await readAt(fh, h.indexOffset, h.indexLength), h);
      return { ...base, key: index.key, meta: index.meta };
    } finally {
      await fh.close();
    }
  } catch (err) {
    return { ...base, invalid: err instanceof CacheMiss ? err.message : `unreadable: ${(err as Error).message}` };
  }
}

/** The cache files (`*.ckw`) in `folder`, by name; an absent folder has none. */
export async function listCacheFiles(folder: string): Promise<CacheEntry[]> {
  const names = await readFolder(folder);
  const out: CacheEntry[] = [];
  for (const name of names.filter((n) => n.endsWith(CACHE_EXTENSION) && !n.startsWith('.')).sort()) {
    try {
      out.push(await readCacheEntry(path.join(folder, name)));
    } catch {
      // removed while listing
    }
  }
  return out;
}

async function readFolder(folder: string): Promise<string[]> {
  try {
    return await fsp.readdir(folder);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new ClipkitError('E_IO', `Cannot list the weight cache ${folder}: ${(err as Error).message}`);
  }
}

/** A temporary file left by a writer is stale once its process is gone, or after this long whatever the pid says (pids are reused). */
const TEMP_STALE_MS = 60 * 60 * 1000;

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'; // alive, someone else's
  }
}

export interface Removed {
  file: string;
  bytes: number;
  reason: string;
}

/**
 * Removes `*.ckw` files from `folder`: those whose id (file name without `.ckw`) starts with one of
 * `ids` (each must match exactly one file: E_ARG otherwise), or every one with `all` (and every
 * temporary file too).
 */
export async function removeCacheFiles(folder: string, o: { ids?: readonly string[]; all?: boolean }): Promise<Removed[]> {
  const names = await readFolder(folder);
  const cache = names.filter((n) => n.endsWith(CACHE_EXTENSION) && !n.startsWith('.'));
  let chosen: string[];
  if (o.all) chosen = [...cache, ...names.filter((n) => TEMP.test(n))];
  else {
    chosen = [];
    for (const raw of o.ids ?? []) {
      const id = raw.endsWith(CACHE_EXTENSION) ? raw.slice(0, -CACHE_EXTENSION.length) : raw;
      const hits = id ? cache.filter((n) => n.startsWith(id)) : [];
      if (hits.length !== 1)
        throw new ClipkitError('E_ARG', hits.length ? `${raw} matches ${hits.length} cache files; give more of the key` : `No cache file ${raw} in ${folder}`);
      chosen.push(hits[0]);
    }
  }
  const out: Removed[] = [];
  for (const name of [...new Set(chosen)]) {
    const r = await removeFile(path.join(folder, name), o.all ? 'all' : 'named');
    if (r) out.push(r);
  }
  return out;
}

async function removeFile(file: string, reason: string): Promise<Removed | undefined> {
  try {
    const { size } = await fsp.stat(file);
    await fsp.rm(file, { force: true });
    return { file, bytes: size, reason };
  } catch {
    return undefined; // already gone
  }
}

export interface PruneOptions {
  /** Also remove files not used for this long. */
  olderThanMs?: number;
  now?: number;
}

/**
 * Removes what can no longer be used: temporary files of writers that are gone, files whose header
 * or index is damaged or of another format version, and files whose model changed or vanished (its
 * key, recomputed from the files and config.json it names, differs); with `olderThanMs`, also those
 * not used for that long. A mapped file may be removed: its mapping stays valid.
 */
export async function pruneWeightCache(folder: string, o: PruneOptions = {}): Promise<Removed[]> {
  const now = o.now ?? Date.now();
  const out: Removed[] = [];
  const push = (r: Removed | undefined) => r && out.push(r);
  for (const name of (await readFolder(folder)).sort()) {
    const file = path.join(folder, name);
    const temp = TEMP.exec(name);
    if (temp) {
      const st = await fsp.stat(file).catch(() => undefined);
      if (st && (!processAlive(Number(temp[2])) || now - st.mtimeMs > TEMP_STALE_MS)) push(await removeFile(file, 'unfinished write'));
      continue;
    }
    if (!name.endsWith(CACHE_EXTENSION) || name.startsWith('.')) continue;
    let entry: CacheEntry;
    try {
      entry = await readCacheEntry(file);
    } catch {
      continue;
    }
    if (entry.invalid || !entry.key) {
      push(await removeFile(file, invalidReason(entry)));
      continue;
    }
    const why = await staleness(entry.key);
    if (why) push(await removeFile(file, why));
    else if (o.olderThanMs !== undefined && now - entry.lastUsed.getTime() > o.olderThanMs) push(await removeFile(file, 'not used recently'));
  }
  return out;
}

/** Why an entry whose header or index did not pass cannot be used. */
export function invalidReason(e: CacheEntry): string {
  return e.invalid?.startsWith('format ') ? `another cache format (${e.invalid})` : `damaged: ${e.invalid}`;
}

/** Why a key no longer describes its model (undefined when it still does). */
async function staleness(key: CacheKey): Promise<string | undefined> {
  for (const f of key.files ?? []) if (!fs.existsSync(f.path)) return `source vanished: ${f.path}`;
  let now: CacheKey;
  try {
    now = await modelKey(key.location, { dtype: key.dtype, checkpoint: key.checkpoint, layoutId: key.layout, formatVersion: key.format });
  } catch (err) {
    return `source unreadable: ${(err as Error).message}`;
  }
  return JSON.stringify(now) === JSON.stringify(key) ? undefined : 'source changed';
}

/** Sum of the entries' sizes. */
export const totalBytes = (entries: readonly { size?: number; bytes?: number }[]) => entries.reduce((s, e) => s + (e.size ?? e.bytes ?? 0), 0);
