/**
 * PyTorch checkpoint reader (files written by torch.save), without Python and without running
 * anything the file names.
 *
 * Formats:
 * - zip (torch >= 1.6): `<root>/data.pkl` (the pickled object), `<root>/data/<key>` (one raw
 *   little-endian storage per key, stored uncompressed) and `<root>/version`, read by zip.ts.
 * - legacy (torch < 1.6, or `_use_new_zipfile_serialization=False`): five things in a row, the
 *   magic number 0x1950a86a20f9469cfc6c, protocol version 1001 and a sys_info dict as three small
 *   pickles, then the object pickle, then a pickled list of storage keys, then for each key in
 *   that order an int64 element count and the raw storage.
 * Tensors are pickled as `torch._utils._rebuild_tensor_v2(storage, offset, size, stride, ...)`
 * whose storage is a persistent id `('storage', torch.<Type>Storage, key, location, numel)`
 * (legacy: plus a view-metadata item). unpickle.ts reads the pickle with a table of the only globals
 * allowed: OrderedDict, set/frozenset, torch.Size, _codecs.encode (bytes), the tensor and parameter
 * rebuild functions, storage types, dtypes and the Tensor/Parameter classes. Anything else (a
 * pickled class, os.system, ...) is refused by name.
 *
 * The file is read once into one buffer. A contiguous tensor is a view of its storage's bytes
 * (aligned F32: a Float32Array over the file buffer; F16/BF16 widened on first use); several
 * tensors may share a storage at different offsets. Non-contiguous tensors (transposes, strided
 * slices, expanded dims) are materialised by gathering along their strides on first use, up to the
 * size of the file itself. F64 and integer tensors (int64 position_ids buffers) are entries too:
 * bytes() gives their values, data() refuses them with E_DTYPE (F64 is not narrowed silently).
 *
 * TorchScript archives (torch.jit.save; OpenAI's released CLIP .pt files are these) have the same
 * zip layout plus `constants.pkl` and `code/`. The code is never looked at: data.pkl pickles the
 * module tree as objects of `__torch__.*` classes, which become inert records of their attributes
 * (only in TorchScript archives), and the state dict is their tensor attributes under dotted paths,
 * as `module.state_dict()` names them (plus any plain tensor attributes the module kept).
 *
 * The state dict is the top-level dict, or its `state_dict` / `model` / `model_state_dict` entry
 * when that is a dict holding tensors (training checkpoints such as Chinese-CLIP's `{epoch, step,
 * name, state_dict}`). The other top-level entries are returned as plain values in `extra`.
 *
 * Refused with ClipkitError (E_FORMAT naming the file and the problem, E_UNSUPPORTED for formats
 * recognised but not read): zip problems (see zip.ts), a missing data.pkl, big-endian files, the tar format of torch < 0.4, persistent ids of the wrong shape, storages
 * missing from the archive or whose size differs from the declared element count, tensors whose
 * offset/size/stride reach past their storage, storage dtypes torch does not define, values nested
 * deeper than MAX_EXTRA_DEPTH, and everything unpickle.ts refuses.
 */
import { constants as bufferConstants } from 'node:buffer';
import * as fs from 'node:fs';
import { ClipkitError } from '../errors';
import { expectPath, setOwn } from '../check';
import { PickleGlobal, PyCallable, PyTuple, PyValue, kindOf, unpickle } from './unpickle';
import { ELEMENT_BYTES, StorageDType } from './dtype';
import { TensorEntry, elementCount, gatherStrided, lazyTensorEntry } from './tensor_entry';
import { crc32, readZipDirectory, storedData } from './zip';
import { openRegularFile } from './read_file';
import { mappedBytes, ReadOptions } from './safetensors';

export type TorchFormat = 'zip' | 'legacy' | 'torchscript';

export interface TorchCheckpoint {
  readonly path: string;
  readonly format: TorchFormat;
  /** The state dict's tensors by name, in the file's order. */
  readonly tensors: Map<string, TensorEntry>;
  /** Where the state dict was found: '' for the top-level object, else its key (`state_dict`, `model`, ...). */
  readonly stateDictKey: string;
  /**
   * Everything else as plain values: the other top-level entries (e.g. epoch, step), and entries of
   * the state dict that are not tensors. dict → object (Map when a key is not a string), list and
   * tuple → array, int beyond 2^53 → bigint, bytes → Uint8Array, tensor → TensorEntry.
   */
  readonly extra: Record<string, unknown>;
}

/** Keys under which training checkpoints keep their state dict, tried in this order. */
export const STATE_DICT_KEYS = ['state_dict', 'model', 'model_state_dict'] as const;
/** Values in `extra` nested deeper than this are refused. */
export const MAX_EXTRA_DEPTH = 32;
/** More values than this in `extra` are refused (shared references count each time they are reached). */
export const MAX_EXTRA_VALUES = 1_000_000;

const MAGIC_NUMBER = 0x1950a86a20f9469cfc6cn;
/** One read call reads at most this much (Node refuses reads of 2 GiB or more). */
const READ_CHUNK_BYTES = 1 << 30;
const LEGACY_PROTOCOL_VERSION = 1001;

/** Storage classes (torch.<Name>, also torch.cuda.<Name> in old files) and their element dtype. */
const STORAGE_DTYPES: Record<string, StorageDType> = {
  FloatStorage: 'F32', HalfStorage: 'F16', BFloat16Storage: 'BF16', DoubleStorage: 'F64', LongStorage: 'I64',
  IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
};
/** dtype objects (torch.float32, ...) as pickled by name, for _rebuild_tensor_v3. */
const TORCH_DTYPES: Record<string, StorageDType> = {
  float32: 'F32', float16: 'F16', bfloat16: 'BF16', float64: 'F64', int64: 'I64', int32: 'I32', int16: 'I16',
  int8: 'I8', uint8: 'U8', bool: 'BOOL', uint16: 'U16', uint32: 'U32', uint64: 'U64', float8_e5m2: 'F8_E5M2',
  float8_e4m3fn: 'F8_E4M3',
};

class StorageType {
  constructor(readonly qualifiedName: string, readonly dtype: StorageDType, readonly untyped: boolean) {}
}
class TorchDType {
  constructor(readonly qualifiedName: string, readonly dtype: StorageDType) {}
}
class TorchClass {
  constructor(readonly qualifiedName: string) {}
}
/** A storage: its dtype and element count from the persistent id, its bytes once located. */
class StorageRef {
  bytes: Uint8Array | undefined;
  constructor(readonly key: string, readonly dtype: StorageDType, readonly numel: number) {}
}
/** A tensor as _rebuild_tensor_* describes it (offset and strides in elements of `dtype`). */
class TensorRef {
  constructor(
    readonly storage: StorageRef,
    readonly dtype: StorageDType,
    readonly offset: number,
    readonly shape: number[],
    readonly strides: number[],
  ) {}
}

/**
 * Reads a torch.save file (zip or legacy format) into memory once and returns its state dict's
 * tensors; a file in `o.mapped` is parsed where it is mapped instead of read.
 */
export function readTorchCheckpoint(file: string, o: ReadOptions = {}): TorchCheckpoint {
  expectPath('file', file);
  const { fd, size: fileSize } = openRegularFile(file, 'PyTorch checkpoint');
  let mapped: ArrayBuffer | undefined;
  try {
    mapped = mappedBytes(o.mapped, file, fileSize);
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
  if (mapped) {
    fs.closeSync(fd);
    return parseTorchCheckpoint(new Uint8Array(mapped), file);
  }
  // The whole file is one Buffer (the zip directory and the tensors are views into it): at most what
  // this platform holds in one (4 GiB on Node 20). A limit of the platform, said as one.
  if (fileSize > bufferConstants.MAX_LENGTH) {
    fs.closeSync(fd);
    throw new ClipkitError('E_LIMIT', `The PyTorch checkpoint ${file} has ${fileSize} bytes, more than the ${bufferConstants.MAX_LENGTH} read into one buffer here; save it as safetensors, which is read tensor by tensor at any size`);
  }
  let buf: Buffer;
  try {
    const size = fs.fstatSync(fd).size;
    buf = Buffer.allocUnsafeSlow(size); // its own ArrayBuffer, so file offsets keep their alignment
    let done = 0;
    while (done < size) {
      const got = fs.readSync(fd, buf, done, Math.min(size - done, READ_CHUNK_BYTES), done);
      if (got === 0) throw new ClipkitError('E_IO', `Cannot read PyTorch checkpoint ${file}: it ended after ${done} of ${size} bytes (changed while being read?)`);
      done += got;
    }
  } catch (err) {
    if (err instanceof ClipkitError) throw err;
    throw new ClipkitError('E_IO', `Cannot read PyTorch checkpoint ${file}: ${(err as Error).message}`);
  } finally {
    fs.closeSync(fd);
  }
  return parseTorchCheckpoint(buf, file);
}

/** Reads a torch.save file already in memory; tensors are views into `bytes`. `file` names it in errors. */
export function parseTorchCheckpoint(data: Uint8Array, file: string): TorchCheckpoint {
  // A plain Uint8Array over the same memory: views handed out must not be Buffers, whose slice() does not copy.
  const bytes = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  const fail = (problem: string) => new ClipkitError('E_FORMAT', `Invalid PyTorch checkpoint ${file}: ${problem}`);
  const isZip = bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && (bytes[2] === 0x03 || bytes[2] === 0x05);
  if (isZip) return readZipFormat(bytes, file, fail);
  if (bytes.length >= 2 && bytes[0] === 0x80 && bytes[1] <= 5) return readLegacyFormat(bytes, file, fail);
  if (bytes.length >= 262 && String.fromCharCode(...bytes.subarray(257, 262)) === 'ustar')
    throw new ClipkitError('E_UNSUPPORTED', `${file} is in the tar-based format of torch < 0.4, which clipkit does not read; load it with torch and torch.save it again`);
  throw fail(`not a torch.save file (it starts with bytes ${hex(bytes.subarray(0, 8))}; expected a zip archive or a pickle)`);
}

function readZipFormat(bytes: Uint8Array, file: string, fail: (p: string) => ClipkitError): TorchCheckpoint {
  const { entries } = readZipDirectory(bytes, file);
  // torch's archive reader takes the folder of the first entry as the archive's root.
  const first = entries.keys().next().value as string | undefined;
  const slash = first?.indexOf('/') ?? -1;
  if (first === undefined || slash <= 0) throw fail(`zip archive without a top-level folder (first entry ${JSON.stringify(first ?? null)})`);
  const root = first.slice(0, slash + 1);
  const record = (name: string) => entries.get(root + name);

  const torchScript = record('constants.pkl') !== undefined || [...entries.keys()].some((n) => n.startsWith(root + 'code/'));
  const order = record('byteorder');
  if (order) {
    const text = String.fromCharCode(...storedData(bytes, order, file).subarray(0, 16));
    if (text === 'big') throw new ClipkitError('E_UNSUPPORTED', `${file} holds big-endian storages (byteorder record "big"); clipkit reads little-endian checkpoints only`);
    if (text !== 'little') throw fail(`byteorder record is ${JSON.stringify(text)}, expected "little" or "big"`);
  }
  const pkl = record('data.pkl');
  if (!pkl) throw fail(`no ${root}data.pkl in the archive (entries: ${[...entries.keys()].slice(0, 5).join(', ')}${entries.size > 5 ? ', ...' : ''})`);
  const pickle = storedData(bytes, pkl, file);
  if (crc32(pickle) !== pkl.crc32) throw fail(`${root}data.pkl does not match its CRC-32 (corrupt file)`);

  const storages = new Map<string, StorageRef>();
  const persistentLoad = (pid: PyValue): PyValue => {
    const [, type, key, , numel] = persistentId(pid, 5, fail);
    const existing = storages.get(key);
    if (existing) {
      if (existing.dtype !== type.dtype) throw fail(`storage ${key} is used as ${existing.dtype} and as ${type.dtype}`);
      return existing;
    }
    const entry = record(`data/${key}`);
    if (!entry) throw fail(`storage ${JSON.stringify(key)} (${root}data/${key}) is missing from the archive`);
    const nbytes = numel * ELEMENT_BYTES[type.dtype];
    if (nbytes !== entry.size)
      throw fail(`storage ${JSON.stringify(key)} declares ${numel} ${type.dtype} elements (${nbytes} bytes) but ${root}data/${key} holds ${entry.size} bytes`);
    const storage = new StorageRef(key, type.dtype, numel);
    storage.bytes = storedData(bytes, entry, file);
    storages.set(key, storage);
    return storage;
  };
  const globals = torchGlobals(fail);
  const lookup = (name: string) => globals.get(name) ?? (torchScript ? torchScriptGlobal(name, fail) : undefined);
  const { value } = unpickle(pickle, 0, { source: `${file} (${root}data.pkl)`, globals: lookup, persistentLoad, build: buildScriptObject(fail) });
  return collect(value, torchScript ? 'torchscript' : 'zip', file, bytes.length, fail);
}

function readLegacyFormat(bytes: Uint8Array, file: string, fail: (p: string) => ClipkitError): TorchCheckpoint {
  const plain = { source: `${file} (legacy header)`, globals: new Map<string, PickleGlobal>() };
  let magic: PyValue, end: number;
  try {
    ({ value: magic, end } = unpickle(bytes, 0, plain));
  } catch (err) {
    throw fail(`not a torch.save file: it starts with a pickle but not with torch's magic number (${(err as Error).message})`);
  }
  if (typeof magic !== 'bigint' || magic !== MAGIC_NUMBER) throw fail(`not a torch.save file: its first pickle is ${kindOf(magic)}, not torch's magic number`);
  let version: PyValue;
  ({ value: version, end } = unpickle(bytes, end, plain));
  if (version !== LEGACY_PROTOCOL_VERSION) throw fail(`legacy protocol version ${String(version)}, expected ${LEGACY_PROTOCOL_VERSION}`);
  let sysInfo: PyValue;
  ({ value: sysInfo, end } = unpickle(bytes, end, plain));
  if (!(sysInfo instanceof Map)) throw fail(`sys_info is ${kindOf(sysInfo)}, expected a dict`);
  if (sysInfo.get('little_endian') !== true)
    throw new ClipkitError('E_UNSUPPORTED', `${file} was written on a big-endian machine; clipkit reads little-endian checkpoints only`);

  const roots = new Map<string, StorageRef>();
  const views = new Map<string, { root: StorageRef; offset: number; storage: StorageRef }>();
  const persistentLoad = (pid: PyValue): PyValue => {
    const [, type, key, , numel, viewMetadata] = persistentId(pid, 6, fail);
    let root = roots.get(key);
    if (!root) roots.set(key, (root = new StorageRef(key, type.dtype, numel)));
    else if (root.dtype !== type.dtype || root.numel !== numel)
      throw fail(`storage ${key} is declared as ${root.numel} ${root.dtype} and as ${numel} ${type.dtype}`);
    if (viewMetadata === null) return root;
    const [viewKey, offset, size] = viewMetadata instanceof PyTuple ? viewMetadata.items : [];
    if (typeof viewKey !== 'string' || !isCount(offset) || !isCount(size)) throw fail(`storage view metadata of ${key} is not (key, offset, size)`);
    if (offset + size > numel) throw fail(`storage view ${viewKey} [${offset}, ${offset + size}) runs past storage ${key} of ${numel} elements`);
    let view = views.get(viewKey);
    if (!view) views.set(viewKey, (view = { root, offset, storage: new StorageRef(viewKey, type.dtype, size) }));
    return view.storage;
  };
  let value: PyValue;
  ({ value, end } = unpickle(bytes, end, { source: `${file} (legacy object pickle)`, globals: torchGlobals(fail), persistentLoad }));
  let keys: PyValue;
  ({ value: keys, end } = unpickle(bytes, end, plain));
  if (!Array.isArray(keys) || keys.some((k) => typeof k !== 'string')) throw fail(`the storage key list is ${kindOf(keys)}, expected a list of str`);

  // The raw storages follow, in the order of the key list: int64 element count, then the bytes.
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let pos = end;
  for (const key of keys as string[]) {
    const storage = roots.get(key);
    if (!storage) throw fail(`storage ${JSON.stringify(key)} is listed but no tensor uses it`);
    if (storage.bytes) throw fail(`storage ${JSON.stringify(key)} is listed twice`);
    if (pos + 8 > bytes.length) throw fail(`file ends at byte ${bytes.length} before the size of storage ${JSON.stringify(key)}`);
    const count = view.getBigInt64(pos, true);
    if (count !== BigInt(storage.numel)) throw fail(`storage ${JSON.stringify(key)} holds ${count} elements but is declared with ${storage.numel}`);
    const nbytes = storage.numel * ELEMENT_BYTES[storage.dtype];
    if (pos + 8 + nbytes > bytes.length)
      throw fail(`storage ${JSON.stringify(key)} of ${nbytes} bytes at byte ${pos + 8} runs past the end of the file (${bytes.length} bytes; truncated?)`);
    storage.bytes = bytes.subarray(pos + 8, pos + 8 + nbytes);
    pos += 8 + nbytes;
  }
  for (const [key, storage] of roots) if (!storage.bytes) throw fail(`storage ${JSON.stringify(key)} is used but its data is not in the file`);
  for (const { root, offset, storage } of views.values()) {
    const es = ELEMENT_BYTES[root.dtype];
    storage.bytes = root.bytes!.subarray(offset * es, (offset + storage.numel) * es);
  }
  return collect(value, 'legacy', file, bytes.length, fail);
}

/** Checks a persistent id `('storage', type, key, location, numel[, view_metadata])`. */
function persistentId(pid: PyValue, length: number, fail: (p: string) => ClipkitError): [string, StorageType, string, string, number, PyValue] {
  const items = pid instanceof PyTuple ? pid.items : [];
  const [tag, type, key, location, numel] = items;
  if (items.length !== length || tag !== 'storage' || !(type instanceof StorageType) || typeof key !== 'string' || typeof location !== 'string' || !isCount(numel))
    throw fail(
      `persistent id must be ('storage', <storage type>, key, location, numel${length === 6 ? ', view' : ''}) but is ${describe(pid)}`,
    );
  return [tag, type, key, location, numel, items[5] ?? null];
}

function isCount(v: PyValue): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
}

/** A short description of a pickled value for messages. */
function describe(v: PyValue): string {
  if (v instanceof PyTuple) return `(${v.items.map(describe).join(', ')})`;
  if (typeof v === 'string') return JSON.stringify(v.length > 40 ? v.slice(0, 40) + '...' : v);
  if (typeof v === 'number' || typeof v === 'bigint' || typeof v === 'boolean') return String(v);
  if (v instanceof StorageType || v instanceof TorchDType || v instanceof TorchClass || v instanceof ScriptObject) return v.qualifiedName;
  return kindOf(v);
}

/** The globals a checkpoint may name, with what REDUCE / NEWOBJ on them build. */
function torchGlobals(fail: (p: string) => ClipkitError): Map<string, PickleGlobal> {
  const g = new Map<string, PickleGlobal>();
  const dict = (args: readonly PyValue[]) => {
    const d = new Map<PyValue, PyValue>();
    if (args.length === 0) return d;
    const items = args.length === 1 ? iterable(args[0]) : undefined;
    if (!items) throw fail(`OrderedDict() takes at most one list of pairs but got ${args.map(describe).join(', ')}`);
    for (const pair of items) {
      const kv = pair instanceof PyTuple ? pair.items : Array.isArray(pair) ? pair : [];
      if (kv.length !== 2) throw fail(`OrderedDict() needs (key, value) pairs but got ${describe(pair)}`);
      d.set(kv[0], kv[1]);
    }
    return d;
  };
  g.set('collections.OrderedDict', { call: dict, construct: dict });
  const set = (args: readonly PyValue[]) => {
    const items = args.length === 0 ? [] : args.length === 1 ? iterable(args[0]) : undefined;
    if (!items) throw fail(`set() takes at most one iterable but got ${args.map(describe).join(', ')}`);
    return new Set(items);
  };
  g.set('builtins.set', { call: set, construct: set });
  g.set('builtins.frozenset', { call: set, construct: set });
  g.set('torch.Size', {
    call: (args) => {
      const items = args.length === 1 ? iterable(args[0]) : undefined;
      if (!items || !items.every(isCount)) throw fail(`torch.Size() needs one sequence of sizes but got ${args.map(describe).join(', ')}`);
      return new PyTuple(items);
    },
  });
  g.set('_codecs.encode', {
    call: (args) => {
      // Protocol 2 pickles bytes as _codecs.encode(<str of the bytes as latin-1 code points>, 'latin1').
      const [text, encoding] = args;
      if (args.length !== 2 || typeof text !== 'string' || (encoding !== 'latin1' && encoding !== 'latin-1'))
        throw fail(`_codecs.encode is allowed only as encode(str, 'latin1') but got ${args.map(describe).join(', ')}`);
      const out = new Uint8Array(text.length);
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i);
        if (c > 0xff) throw fail(`_codecs.encode: character U+${c.toString(16)} is not latin-1`);
        out[i] = c;
      }
      return out;
    },
  });

  for (const [name, dtype] of Object.entries(STORAGE_DTYPES))
    for (const module of ['torch', 'torch.cuda']) g.set(`${module}.${name}`, { value: new StorageType(`${module}.${name}`, dtype, false) });
  for (const q of ['torch.UntypedStorage', 'torch.storage.UntypedStorage']) g.set(q, { value: new StorageType(q, 'U8', true) });
  for (const [name, dtype] of Object.entries(TORCH_DTYPES)) g.set(`torch.${name}`, { value: new TorchDType(`torch.${name}`, dtype) });
  for (const q of ['torch.Tensor', 'torch._tensor.Tensor', 'torch.nn.parameter.Parameter']) g.set(q, { value: new TorchClass(q) });

  const rebuild = (name: string, withDType: boolean) => (args: readonly PyValue[]): TensorRef => {
    const [storage, offset, size, stride] = args;
    const min = withDType ? 7 : name === '_rebuild_tensor' ? 4 : 6;
    const max = withDType ? 8 : name === '_rebuild_tensor' ? 4 : 7;
    const what = `torch._utils.${name}`;
    if (args.length < min || args.length > max) throw fail(`${what} takes ${min === max ? min : `${min} to ${max}`} arguments but got ${args.length}`);
    if (!(storage instanceof StorageRef)) throw fail(`${what}: the storage argument is ${describe(storage)}, not a storage`);
    const shape = sizes(size), strides = sizes(stride);
    if (!isCount(offset) || !shape || !strides || shape.length !== strides.length)
      throw fail(`${what}: offset ${describe(offset)}, size ${describe(size)} and stride ${describe(stride)} must be a count and two tuples of counts of one length`);
    let dtype = storage.dtype;
    if (withDType) {
      const d = args[6];
      if (!(d instanceof TorchDType)) throw fail(`${what}: the dtype argument is ${describe(d)}, not a torch dtype`);
      if (d.dtype !== dtype) {
        // torch >= 2 writes dtypes without a storage class of their own over an untyped (byte) storage
        if (dtype !== 'U8') throw fail(`${what}: dtype ${d.qualifiedName} over a ${storage.dtype} storage`);
        dtype = d.dtype;
      }
    }
    return new TensorRef(storage, dtype, offset, shape, strides);
  };
  for (const name of ['_rebuild_tensor', '_rebuild_tensor_v2']) g.set(`torch._utils.${name}`, { call: rebuild(name, false) });
  g.set('torch._utils._rebuild_tensor_v3', { call: rebuild('_rebuild_tensor_v3', true) });
  const parameter = (name: string, count: number) => (args: readonly PyValue[]) => {
    if (args.length !== count || !(args[0] instanceof TensorRef)) throw fail(`torch._utils.${name} needs a tensor and ${count - 1} more arguments but got ${args.map(describe).join(', ')}`);
    return args[0];
  };
  g.set('torch._utils._rebuild_parameter', { call: parameter('_rebuild_parameter', 3) });
  g.set('torch._utils._rebuild_parameter_with_state', { call: parameter('_rebuild_parameter_with_state', 4) });
  g.set('torch._tensor._rebuild_from_type_v2', {
    // (func, new_type, args, state): a plain tensor or parameter with Python attributes (which are dropped).
    call: (args) => {
      const [func, type, inner] = args;
      if (args.length !== 4 || !(func instanceof PyCallable) || !func.qualifiedName.startsWith('torch._utils._rebuild_') || !(type instanceof TorchClass) || !(inner instanceof PyTuple))
        throw fail(`torch._tensor._rebuild_from_type_v2 needs (rebuild function, Tensor or Parameter, args, state) but got ${args.map(describe).join(', ')}`);
      return func.spec.call!(inner.items);
    },
  });
  return g;
}

/** An object of a TorchScript class (`__torch__.*`): a record of the attributes BUILD gave it. */
class ScriptObject {
  attributes: Map<string, PyValue> | undefined;
  constructor(readonly qualifiedName: string) {}
}

/** A TorchScript archive's classes (inert records) and the list helpers its pickler uses. */
function torchScriptGlobal(name: string, fail: (p: string) => ClipkitError): PickleGlobal | undefined {
  if (name.startsWith('__torch__.'))
    return {
      construct: (args) => {
        if (args.length) throw fail(`TorchScript class ${name} is constructed with arguments (${args.map(describe).join(', ')}); only attribute records are read`);
        return new ScriptObject(name);
      },
    };
  const helper = /^torch\.jit\._pickle\.(build_intlist|build_doublelist|build_boollist|build_tensorlist|restore_type_tag)$/.exec(name);
  if (!helper) return undefined;
  return {
    call: (args) => {
      // build_*list(list) and restore_type_tag(value, type_str) return their first argument.
      if (args.length !== (helper[1] === 'restore_type_tag' ? 2 : 1)) throw fail(`${name} got ${args.length} arguments`);
      return args[0];
    },
  };
}

function buildScriptObject(fail: (p: string) => ClipkitError) {
  return (obj: PyValue, state: PyValue): boolean => {
    if (!(obj instanceof ScriptObject)) return false;
    if (obj.attributes) throw fail(`TorchScript object ${obj.qualifiedName} is built twice`);
    if (!(state instanceof Map) || [...state.keys()].some((k) => typeof k !== 'string'))
      throw fail(`TorchScript object ${obj.qualifiedName} has state ${describe(state)}, not a dict of attributes`);
    obj.attributes = state as Map<string, PyValue>;
    return true;
  };
}

/** The tensor attributes of a TorchScript module tree by dotted path (submodules first-seen order). */
function moduleTensors(root: ScriptObject, fail: (p: string) => ClipkitError): Map<PyValue, PyValue> {
  const out = new Map<PyValue, PyValue>();
  const open = new Set<ScriptObject>();
  let visited = 0;
  const visit = (obj: ScriptObject, prefix: string, depth: number) => {
    if (depth > MAX_EXTRA_DEPTH) throw fail(`TorchScript modules nested deeper than ${MAX_EXTRA_DEPTH} levels at ${JSON.stringify(prefix)}`);
    if (open.has(obj)) throw fail(`TorchScript module ${JSON.stringify(prefix)} contains itself`);
    open.add(obj);
    for (const [name, v] of obj.attributes ?? []) {
      if (++visited > MAX_EXTRA_VALUES) throw fail(`more than ${MAX_EXTRA_VALUES} TorchScript attributes`);
      if (v instanceof TensorRef) out.set(prefix + name, v);
      else if (v instanceof ScriptObject) visit(v, `${prefix}${name}.`, depth + 1);
    }
    open.delete(obj);
  };
  visit(root, '', 0);
  return out;
}

function iterable(v: PyValue): PyValue[] | undefined {
  if (Array.isArray(v)) return v;
  if (v instanceof PyTuple) return [...v.items];
  if (v instanceof Set) return [...v];
  return undefined;
}

function sizes(v: PyValue): number[] | undefined {
  const items = v instanceof PyTuple ? v.items : undefined;
  return items && items.every(isCount) ? (items as number[]) : undefined;
}

/** Finds the state dict in the unpickled object and turns tensors into entries, the rest into `extra`. */
function collect(value: PyValue, format: TorchFormat, file: string, fileBytes: number, fail: (p: string) => ClipkitError): TorchCheckpoint {
  const top = value instanceof ScriptObject ? moduleTensors(value, fail) : value;
  if (!(top instanceof Map)) throw fail(`the pickled object is ${kindOf(top)}, not a dict of tensors`);
  const hasTensors = (d: PyValue | undefined) => d instanceof Map && [...d.values()].some((v) => v instanceof TensorRef);
  const key = STATE_DICT_KEYS.find((k) => hasTensors(top.get(k))) ?? '';
  const stateDict = key ? (top.get(key) as Map<PyValue, PyValue>) : top;
  if (!key && !hasTensors(top))
    throw fail(`no tensors found: the top-level dict has keys ${[...top.keys()].slice(0, 10).map(describe).join(', ') || '(none)'} and none of ${STATE_DICT_KEYS.join(', ')} holds a dict of tensors`);

  const entries = new Map<TensorRef, TensorEntry>(); // one entry per pickled tensor, however often it is named
  const entryFor = (t: TensorRef, name: string): TensorEntry => {
    let e = entries.get(t);
    if (!e) entries.set(t, (e = tensorEntry(t, name, file, fileBytes, fail)));
    return e;
  };
  const tensors = new Map<string, TensorEntry>();
  const extra: Record<string, unknown> = {}; // keys are names from the file: set with setOwn
  const plain = new PlainConverter(entryFor, fail);
  for (const [k, v] of stateDict) {
    if (typeof k === 'string' && v instanceof TensorRef) tensors.set(k, entryFor(v, k));
    else setOwn(extra, String(k), plain.convert(v, String(k)));
  }
  if (key) for (const [k, v] of top) if (k !== key) setOwn(extra, String(k), plain.convert(v, String(k)));
  return { path: file, format, tensors, stateDictKey: key, extra };
}

/** Checks a tensor against its storage and makes its entry: a view when contiguous, else a gather. */
function tensorEntry(t: TensorRef, name: string, file: string, fileBytes: number, fail: (p: string) => ClipkitError): TensorEntry {
  const what = `tensor ${JSON.stringify(name)}`;
  const es = ELEMENT_BYTES[t.dtype];
  const count = elementCount(t.shape);
  const storageBytes = t.storage.bytes!;
  const storageElems = Math.floor(storageBytes.length / es);
  if (t.storage.dtype !== t.dtype && (storageBytes.byteOffset % es !== 0 || storageBytes.length % es !== 0))
    throw fail(`${what}: ${storageBytes.length} bytes of storage ${t.storage.key} do not hold whole ${t.dtype} elements`);
  if (count > 0) {
    let last = t.offset;
    for (let k = 0; k < t.shape.length; k++) last += (t.shape[k] - 1) * t.strides[k];
    if (!Number.isSafeInteger(last) || last >= storageElems)
      throw fail(
        `${what} (offset ${t.offset}, size [${t.shape.join(', ')}], stride [${t.strides.join(', ')}]) reaches element ${last} of storage ${t.storage.key}, which has ${storageElems}`,
      );
  }
  if (count === 0) return lazyTensorEntry(name, t.dtype, t.shape, () => new Uint8Array(0), file);
  if (isContiguous(t.shape, t.strides))
    return lazyTensorEntry(name, t.dtype, t.shape, () => storageBytes.subarray(t.offset * es, (t.offset + count) * es), file);
  if (count * es > fileBytes)
    throw fail(`${what} is a strided view of ${count === Infinity ? 'more than 2^53' : count * es} bytes, more than the whole file (${fileBytes} bytes); refusing to materialise it`);
  return lazyTensorEntry(name, t.dtype, t.shape, () => gatherStrided(storageBytes, es, t.offset, t.shape, t.strides), file);
}

/** Row-major strides (dims of size 1 may have any stride). */
function isContiguous(shape: readonly number[], strides: readonly number[]): boolean {
  let expected = 1;
  for (let k = shape.length - 1; k >= 0; k--) {
    if (shape[k] !== 1 && strides[k] !== expected) return false;
    expected *= shape[k];
  }
  return true;
}

/**
 * Converts unpickled values to plain ones, refusing cycles, nesting deeper than MAX_EXTRA_DEPTH and
 * more than MAX_EXTRA_VALUES values (a pickle can share one list many times over through its memo).
 */
class PlainConverter {
  private readonly open = new Set<object>();
  private visited = 0;
  constructor(
    private readonly entryFor: (t: TensorRef, name: string) => TensorEntry,
    private readonly fail: (p: string) => ClipkitError,
  ) {}

  convert(v: PyValue, path: string, depth = 0): unknown {
    if (++this.visited > MAX_EXTRA_VALUES) throw this.fail(`more than ${MAX_EXTRA_VALUES} values outside the state dict (at ${JSON.stringify(path)})`);
    if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
    if (v instanceof TensorRef) return this.entryFor(v, path);
    if (v instanceof StorageType || v instanceof TorchDType || v instanceof TorchClass || v instanceof PyCallable || v instanceof ScriptObject) return v.qualifiedName;
    if (v instanceof StorageRef) return `storage ${v.key}`;
    if (depth >= MAX_EXTRA_DEPTH) throw this.fail(`${JSON.stringify(path)} is nested deeper than ${MAX_EXTRA_DEPTH} levels`);
    if (this.open.has(v)) throw this.fail(`${JSON.stringify(path)} contains itself`);
    this.open.add(v);
    try {
      const child = (x: PyValue, key: string | number) => this.convert(x, `${path}.${key}`, depth + 1);
      if (Array.isArray(v)) return v.map(child);
      if (v instanceof PyTuple) return v.items.map(child);
      if (v instanceof Set) return [...v].map(child);
      if (v instanceof Map) {
        const pairs = [...v].map(([k, x]) => [k instanceof PyTuple ? this.convert(k, path, depth + 1) : k, child(x, String(k))] as const);
        return pairs.every(([k]) => typeof k === 'string') ? Object.fromEntries(pairs) : new Map(pairs);
      }
      return kindOf(v);
    } finally {
      this.open.delete(v);
    }
  }
}

function hex(b: Uint8Array): string {
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(' ');
}
