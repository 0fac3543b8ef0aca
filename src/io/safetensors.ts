/**
 * safetensors reader: `[u64 LE header length N][N bytes of JSON header][data section]`.
 *
 * The header is checked before anything large is allocated: its length is bounded by the file and by
 * MAX_HEADER_BYTES, the JSON must be valid UTF-8 with no duplicate keys, and every entry's
 * `data_offsets` must lie inside the data section, match `shape` × element size and not overlap any
 * other entry. The data section is then read once and tensors are views into it (tensor by tensor
 * above 4 GiB, see readRange): an F32 tensor at a 4-byte-aligned data offset is a Float32Array over
 * those bytes (no copy); F16 and BF16 are widened to float32 on first use, bit-exactly (subnormals,
 * ±inf, NaN payloads).
 *
 * Every problem with a file throws ClipkitError E_FORMAT (or E_IO when the file cannot be read),
 * naming the file and what is wrong.
 */
import { constants as bufferConstants } from 'node:buffer';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { ClipkitError } from '../errors';
import { expectPath, setOwn } from '../check';
import { native, NativeAddon } from '../native';
import { Tensor } from '../tensor';
import { bf16ToF32, copyF32, ELEMENT_BYTES, f16ToF32, FLOAT_DTYPES, LITTLE_ENDIAN, StorageDType, u16View } from './dtype';
import { openRegularFile } from './read_file';
import { readJson } from './read_json';

/** Same bound as the reference implementation: a larger header is refused before it is read. */
export const MAX_HEADER_BYTES = 100_000_000;

/** Storage dtype as written in a safetensors header. */
export type SafetensorsDType = StorageDType;

export interface SafetensorsTensor {
  readonly name: string;
  /** Storage dtype as written in the file. */
  readonly dtype: SafetensorsDType;
  readonly shape: readonly number[];
  readonly byteLength: number;
  /** The tensor's raw little-endian bytes (a view into the file's data; do not modify). */
  bytes(): Uint8Array;
  /**
   * The values as float32: a view into the file for aligned F32, otherwise a widened copy made
   * on the first call and reused. Throws E_DTYPE for dtypes other than F32, F16 and BF16.
   */
  data(): Float32Array;
  /** data() wrapped in a Tensor with this entry's shape. */
  tensor(): Tensor<'float32'>;
}

export interface SafetensorsFile {
  readonly path: string;
  readonly tensors: Map<string, SafetensorsTensor>;
  /** `__metadata__` (string to string), empty when absent. */
  readonly metadata: Record<string, string>;
}

export interface SafetensorsCheckpoint {
  /** Every tensor listed in the index's `weight_map`, from its shard. */
  readonly tensors: Map<string, SafetensorsTensor>;
  /** The index's `metadata` object (e.g. `total_size`), empty when absent. */
  readonly metadata: Record<string, unknown>;
  /** The shard files read, in the order first listed. */
  readonly files: readonly string[];
}

const formatError = (file: string, problem: string) => new ClipkitError('E_FORMAT', `Invalid safetensors file ${file}: ${problem}`);

/**
 * Files already in memory, by absolute path (path.resolve): whole-file mappings (io/mapped.ts
 * mapFile) that a reader takes its bytes from instead of reading the file, so that tensors are
 * views into the page cache's pages (the weight cache's build streams a checkpoint so, letting go
 * of each tensor's pages once it is packed).
 */
export type MappedFiles = ReadonlyMap<string, ArrayBuffer>;

export interface ReadOptions {
  mapped?: MappedFiles;
}

/**
 * Reads a safetensors file: one read of the header, one of the data section, views into it; or,
 * for a file in `o.mapped`, views into its mapping, checked as a read file is.
 */
export function readSafetensors(file: string, o: ReadOptions = {}): SafetensorsFile {
  expectPath('file', file);
  const { fd } = openRegularFile(file, 'safetensors file');
  try {
    return readOpen(fd, file, mappedBytes(o.mapped, file, fs.fstatSync(fd).size));
  } finally {
    fs.closeSync(fd);
  }
}

/** `file`'s mapping in `mapped`, if any, once its length is the file's size (E_IO when the file changed since it was mapped). */
export function mappedBytes(mapped: MappedFiles | undefined, file: string, size: number): ArrayBuffer | undefined {
  const m = mapped?.get(path.resolve(file));
  if (m && m.byteLength !== size)
    throw new ClipkitError('E_IO', `${file} has ${size} bytes, but ${m.byteLength} when it was mapped: it changed while being read`);
  return m;
}

function readOpen(fd: number, file: string, mapped: ArrayBuffer | undefined): SafetensorsFile {
  const size = fs.fstatSync(fd).size;
  if (size < 8) throw formatError(file, `file is ${size} bytes, shorter than the 8-byte header length`);
  const prefix = Buffer.alloc(8);
  if (mapped) prefix.set(new Uint8Array(mapped, 0, 8));
  else readExactly(fd, prefix, 0, file);
  const headerLen = prefix.readBigUInt64LE(0);
  if (headerLen === 0n) throw formatError(file, 'header length is 0');
  if (headerLen > BigInt(size - 8))
    throw formatError(file, `header length ${headerLen} runs past the end of the file (${size - 8} bytes follow the length)`);
  if (headerLen > BigInt(MAX_HEADER_BYTES))
    throw formatError(file, `header length ${headerLen} exceeds the limit of ${MAX_HEADER_BYTES} bytes`);
  const n = Number(headerLen);
  const headerBytes = Buffer.allocUnsafe(n);
  if (mapped) headerBytes.set(new Uint8Array(mapped, 8, n));
  else readExactly(fd, headerBytes, 8, file);
  const dataStart = 8 + n;
  const dataLen = size - dataStart;
  const header = parseHeader(headerBytes, file, dataLen);
  if (mapped) {
    const tensors = new Map(header.entries.map((e) => [e.name, makeTensor(e, mapped, dataStart + e.begin, file)]));
    return { path: file, tensors, metadata: header.metadata };
  }

  const addon = loadAddon();
  const tensors = new Map<string, SafetensorsTensor>();
  if (dataLen <= MAX_VIEW_BYTES) {
    // One read of the whole section, tensors as views into it.
    const section = readRange(fd, file, dataStart, dataLen, addon);
    for (const e of header.entries) tensors.set(e.name, makeTensor(e, section, e.begin, file));
  } else {
    for (const e of header.entries) {
      const length = e.end - e.begin;
      if (length > MAX_VIEW_BYTES)
        throw new ClipkitError('E_LIMIT', `Tensor ${JSON.stringify(e.name)} in ${file} has ${length} bytes, more than the ${MAX_VIEW_BYTES} this platform holds in one array`);
      tensors.set(e.name, makeTensor(e, readRange(fd, file, dataStart + e.begin, length, addon), 0, file));
    }
  }
  return { path: file, tensors, metadata: header.metadata };
}

function loadAddon(): NativeAddon | undefined {
  try {
    return native();
  } catch {
    return undefined; // reading needs no kernels: fall back to fs
  }
}

/** The most bytes one typed array views here (Node 20: 4 GiB); a larger section is read tensor by tensor. */
export const MAX_VIEW_BYTES = bufferConstants.MAX_LENGTH;

/**
 * Bytes [offset, offset + length) of the file in memory of their own, 64-byte aligned. A data
 * section up to MAX_VIEW_BYTES is read whole, and its tensors are views into it; a larger one is
 * read tensor by tensor, since Node 20 views at most 4 GiB as one array (a single-file ViT-bigG or
 * fp32 H/14 checkpoint once failed with "Cannot create a Buffer larger than 0x100000000 bytes"), and
 * bytes between tensors are then not read at all. The addon reads with two threads (filling fresh
 * memory is bound by page faults, which two threads take side by side); without it, fs reads.
 */
function readRange(fd: number, file: string, offset: number, length: number, addon: NativeAddon | undefined): ArrayBuffer {
  if (length === 0) return new ArrayBuffer(0);
  if (addon) {
    try {
      return addon.readFile({ path: file, offset, length });
    } catch (err) {
      const code = (err as { code?: string }).code;
      throw new ClipkitError(code === 'E_FORMAT' || code === 'E_NOMEM' ? code : 'E_IO', `Cannot read safetensors file ${file}: ${(err as Error).message}`);
    }
  }
  const data = new ArrayBuffer(length);
  readExactly(fd, Buffer.from(data), offset, file);
  return data;
}

function readExactly(fd: number, buf: Buffer, position: number, file: string): void {
  let done = 0;
  while (done < buf.length) {
    let got: number;
    try {
      got = fs.readSync(fd, buf, done, buf.length - done, position + done);
    } catch (err) {
      throw new ClipkitError('E_IO', `Cannot read safetensors file ${file}: ${(err as Error).message}`);
    }
    if (got === 0) throw formatError(file, `file ended after ${position + done} bytes while reading (changed while being read?)`);
    done += got;
  }
}

interface Entry {
  name: string;
  dtype: SafetensorsDType;
  shape: number[];
  begin: number;
  end: number;
}

/** Parses and validates the JSON header against a data section of `dataLen` bytes. */
function parseHeader(bytes: Buffer, file: string, dataLen: number): { entries: Entry[]; metadata: Record<string, string> } {
  let text: string;
  try {
    text = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    throw formatError(file, 'header is not valid UTF-8');
  }
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (err) {
    throw formatError(file, `header is not valid JSON (${(err as Error).message})`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json))
    throw formatError(file, `header must be a JSON object but is ${Array.isArray(json) ? 'an array' : json === null ? 'null' : typeof json}`);
  const dup = firstDuplicateKey(text);
  if (dup !== undefined) throw formatError(file, `header has the key ${JSON.stringify(dup.key)} twice${dup.inside}`);

  let metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, value] of Object.entries(json as Record<string, unknown>)) {
    if (name === '__metadata__') {
      metadata = parseMetadata(value, file);
      continue;
    }
    entries.push(parseEntry(name, value, file, dataLen));
  }

  // Non-empty ranges must not overlap (sorted by start, each must begin at or after the previous end).
  const ranges = entries.filter((e) => e.end > e.begin).sort((a, b) => a.begin - b.begin);
  for (let i = 1; i < ranges.length; i++) {
    const a = ranges[i - 1], b = ranges[i];
    if (b.begin < a.end)
      throw formatError(file, `tensors ${JSON.stringify(a.name)} [${a.begin}, ${a.end}) and ${JSON.stringify(b.name)} [${b.begin}, ${b.end}) overlap`);
  }
  return { entries, metadata };
}

function parseMetadata(value: unknown, file: string): Record<string, string> {
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw formatError(file, '__metadata__ must be an object of strings');
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(value as Record<string, unknown>)) {
    if (typeof v !== 'string') throw formatError(file, `__metadata__.${k} must be a string but is ${jsonKind(v)}`);
    setOwn(out, k, v); // a name from the file: `__proto__` stays a key
  }
  return out;
}

function parseEntry(name: string, value: unknown, file: string, dataLen: number): Entry {
  const where = `tensor ${JSON.stringify(name)}`;
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw formatError(file, `${where} must be an object with dtype, shape and data_offsets but is ${jsonKind(value)}`);
  const v = value as Record<string, unknown>;
  const dtype = v.dtype;
  if (typeof dtype !== 'string' || !Object.prototype.hasOwnProperty.call(ELEMENT_BYTES, dtype))
    throw formatError(file, `${where} has unknown dtype ${JSON.stringify(dtype)} (the format defines ${Object.keys(ELEMENT_BYTES).join(', ')})`);
  const elemBytes = ELEMENT_BYTES[dtype as SafetensorsDType];

  if (!Array.isArray(v.shape)) throw formatError(file, `${where}: shape must be an array but is ${jsonKind(v.shape)}`);
  const shape = v.shape.map((d, i) => {
    if (typeof d !== 'number' || !Number.isSafeInteger(d) || d < 0)
      throw formatError(file, `${where}: shape[${i}] must be a non-negative integer but is ${JSON.stringify(d)}`);
    return d;
  });

  const offs = v.data_offsets;
  if (!Array.isArray(offs) || offs.length !== 2)
    throw formatError(file, `${where}: data_offsets must be [begin, end] but is ${JSON.stringify(offs)?.slice(0, 80)}`);
  const [begin, end] = offs as unknown[];
  for (const [label, o] of [['begin', begin], ['end', end]] as const)
    if (typeof o !== 'number' || !Number.isSafeInteger(o) || o < 0)
      throw formatError(file, `${where}: data_offsets ${label} must be a non-negative integer but is ${JSON.stringify(o)}`);
  const b = begin as number, e = end as number;
  if (b > e) throw formatError(file, `${where}: data_offsets begin ${b} is after end ${e}`);
  if (e > dataLen)
    throw formatError(file, `${where}: data_offsets [${b}, ${e}] run past the data section of ${dataLen} bytes (truncated file?)`);

  // Element count without overflow: a product beyond 2^53 bytes can never match a real range.
  const limit = Number.MAX_SAFE_INTEGER / elemBytes;
  let count = shape.includes(0) ? 0 : 1;
  for (const d of count ? shape : []) {
    if (count > limit / d) { count = Infinity; break; }
    count *= d;
  }
  if (count * elemBytes !== e - b)
    throw formatError(
      file,
      `${where}: shape [${shape.join(', ')}] of ${dtype} needs ${count === Infinity ? 'more than 2^53' : count * elemBytes} bytes but data_offsets [${b}, ${e}] hold ${e - b}`,
    );
  return { name, dtype: dtype as SafetensorsDType, shape, begin: b, end: e };
}

function jsonKind(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (v === undefined) return 'missing';
  return typeof v === 'object' ? 'an object' : `${typeof v} ${JSON.stringify(v)}`;
}

/**
 * First key that occurs twice in one object of already-valid JSON text. JSON.parse keeps the last
 * of duplicate keys silently; a header with two entries of one name is ambiguous, so it is refused.
 */
function firstDuplicateKey(text: string): { key: string; inside: string } | undefined {
  type Frame = { keys: Set<string> | null; expectKey: boolean; owner: string };
  const stack: Frame[] = [];
  let lastKey = '';
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === 0x22 /* " */) {
      let j = i + 1;
      while (text.charCodeAt(j) !== 0x22) j += text.charCodeAt(j) === 0x5c /* \ */ ? 2 : 1;
      const top = stack[stack.length - 1];
      if (top?.keys && top.expectKey) {
        const key = JSON.parse(text.slice(i, j + 1)) as string;
        if (top.keys.has(key)) return { key, inside: top.owner ? ` inside ${JSON.stringify(top.owner)}` : '' };
        top.keys.add(key);
        top.expectKey = false;
        lastKey = key;
      }
      i = j;
    } else if (c === 0x7b /* { */) stack.push({ keys: new Set(), expectKey: true, owner: stack.length ? lastKey : '' });
    else if (c === 0x5b /* [ */) stack.push({ keys: null, expectKey: false, owner: '' });
    else if (c === 0x7d /* } */ || c === 0x5d /* ] */) stack.pop();
    else if (c === 0x2c /* , */) {
      const top = stack[stack.length - 1];
      if (top?.keys) top.expectKey = true;
    }
  }
  return undefined;
}

/** A tensor whose bytes start at `byteOffset` of `data`. */
function makeTensor(e: Entry, data: ArrayBuffer, byteOffset: number, file: string): SafetensorsTensor {
  const byteLength = e.end - e.begin;
  const bytes = () => new Uint8Array(data, byteOffset, byteLength);
  let cached: Float32Array | undefined;
  const decode = (): Float32Array => {
    if (cached) return cached;
    switch (e.dtype) {
      case 'F32':
        cached = byteOffset % 4 === 0 && LITTLE_ENDIAN ? new Float32Array(data, byteOffset, byteLength / 4) : copyF32(bytes());
        break;
      case 'F16':
        cached = f16ToF32(u16View(bytes()));
        break;
      case 'BF16':
        cached = bf16ToF32(u16View(bytes()));
        break;
      default:
        throw new ClipkitError(
          'E_DTYPE',
          `Tensor ${JSON.stringify(e.name)} in ${file} has dtype ${e.dtype}; clipkit reads only ${FLOAT_DTYPES.join(', ')} tensors`,
        );
    }
    return cached;
  };
  return {
    name: e.name,
    dtype: e.dtype,
    shape: Object.freeze(e.shape.slice()),
    byteLength,
    bytes,
    data: decode,
    tensor: () => new Tensor(decode(), e.shape, 'float32'),
  };
}

/**
 * A sharded checkpoint: `<dir>/model.safetensors.index.json` maps each tensor name to its shard
 * (`weight_map`). Every shard is read once; every listed name must be in its shard.
 */
export function readSafetensorsIndex(dir: string, indexName = 'model.safetensors.index.json', o: ReadOptions = {}): SafetensorsCheckpoint {
  expectPath('dir', dir);
  expectPath('indexName', indexName);
  const indexPath = path.join(dir, indexName);
  const bad = (problem: string) => new ClipkitError('E_FORMAT', `Invalid safetensors index ${indexPath}: ${problem}`);
  const { weight_map: map, metadata = {} } = readJson(indexPath, 'safetensors index');
  if (typeof map !== 'object' || map === null || Array.isArray(map)) throw bad(`weight_map must be an object but is ${jsonKind(map)}`);
  if (typeof metadata !== 'object' || metadata === null || Array.isArray(metadata)) throw bad(`metadata must be an object but is ${jsonKind(metadata)}`);

  const byShard = new Map<string, string[]>();
  for (const [name, shard] of Object.entries(map as Record<string, unknown>)) {
    if (typeof shard !== 'string' || shard === '' || shard !== path.basename(shard) || shard === '.' || shard === '..')
      throw bad(`weight_map[${JSON.stringify(name)}] must be a file name in the same folder but is ${JSON.stringify(shard)}`);
    const names = byShard.get(shard) ?? [];
    names.push(name);
    byShard.set(shard, names);
  }

  const tensors = new Map<string, SafetensorsTensor>();
  for (const [shard, names] of byShard) {
    const shardPath = path.join(dir, shard);
    if (!fs.existsSync(shardPath))
      throw new ClipkitError('E_IO', `Shard ${shard} listed in ${indexPath} (for ${names.length} tensors, e.g. ${JSON.stringify(names[0])}) does not exist`);
    const f = readSafetensors(shardPath, o);
    for (const name of names) {
      const t = f.tensors.get(name);
      if (!t) throw bad(`tensor ${JSON.stringify(name)} is listed in shard ${shard} but ${shardPath} does not contain it`);
      tensors.set(name, t);
    }
  }
  return { tensors, metadata: metadata as Record<string, unknown>, files: [...byShard.keys()] };
}
