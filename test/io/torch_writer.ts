/**
 * Test helper: builds torch.save-style files byte by byte (pickles, stored zip archives), valid or
 * deliberately broken, so that hostile inputs need no Python.
 */
import { crc32 } from '../../src/io/zip';

/** Writes pickle opcodes; each method appends one opcode and its argument. */
export class PickleWriter {
  private readonly out: number[] = [];

  raw(...bytes: number[]): this {
    this.out.push(...bytes);
    return this;
  }
  text(s: string): this {
    return this.raw(...Buffer.from(s, 'utf8'));
  }
  private u32(n: number): this {
    return this.raw(n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff);
  }
  proto(v = 2): this { return this.raw(0x80, v); }
  stop(): this { return this.raw(0x2e); }
  mark(): this { return this.raw(0x28); }
  none(): this { return this.raw(0x4e); }
  bool(v: boolean): this { return this.raw(v ? 0x88 : 0x89); }
  int(n: number): this {
    if (n >= 0 && n < 256) return this.raw(0x4b, n); // BININT1
    if (n >= -(2 ** 31) && n < 2 ** 31) return this.raw(0x4a).u32(n); // BININT
    return this.long(BigInt(n));
  }
  /** LONG1 of a non-negative bigint. */
  long(n: bigint): this {
    const bytes: number[] = [];
    for (let v = n; v > 0n; v >>= 8n) bytes.push(Number(v & 0xffn));
    if (bytes.length && bytes[bytes.length - 1] & 0x80) bytes.push(0);
    return this.raw(0x8a, bytes.length, ...bytes);
  }
  str(s: string): this {
    const b = Buffer.from(s, 'utf8');
    return this.raw(0x58).u32(b.length).raw(...b); // BINUNICODE
  }
  global(module: string, name: string): this { return this.raw(0x63).text(`${module}\n${name}\n`); }
  stackGlobal(module: string, name: string): this { return this.str(module).str(name).raw(0x93); }
  emptyTuple(): this { return this.raw(0x29); }
  emptyDict(): this { return this.raw(0x7d); }
  emptyList(): this { return this.raw(0x5d); }
  tuple(): this { return this.raw(0x74); }
  tuple1(): this { return this.raw(0x85); }
  tuple2(): this { return this.raw(0x86); }
  tuple3(): this { return this.raw(0x87); }
  append(): this { return this.raw(0x61); }
  setitem(): this { return this.raw(0x73); }
  setitems(): this { return this.raw(0x75); }
  reduce(): this { return this.raw(0x52); }
  build(): this { return this.raw(0x62); }
  persid(): this { return this.raw(0x51); }
  put(i: number): this { return this.raw(0x71, i); }
  get(i: number): this { return this.raw(0x68, i); }
  bytes(): Uint8Array { return Uint8Array.from(this.out); }
}

export interface StorageSpec {
  type: string; // e.g. FloatStorage
  key: string;
  numel: number;
}
export interface TensorSpec {
  storage: StorageSpec;
  offset?: number;
  size: number[];
  stride?: number[];
}

function contiguousStrides(size: number[]): number[] {
  const s = new Array<number>(size.length);
  for (let k = size.length - 1, acc = 1; k >= 0; k--) {
    s[k] = acc;
    acc *= size[k];
  }
  return s;
}

/** Appends `torch._utils._rebuild_tensor_v2(<storage pid>, offset, size, stride, False, OrderedDict())`. */
export function writeTensor(p: PickleWriter, t: TensorSpec): PickleWriter {
  p.global('torch._utils', '_rebuild_tensor_v2').mark();
  p.mark().str('storage').global('torch', t.storage.type).str(t.storage.key).str('cpu').int(t.storage.numel).tuple().persid();
  p.int(t.offset ?? 0);
  p.mark();
  for (const d of t.size) p.int(d);
  p.tuple().mark();
  for (const d of t.stride ?? contiguousStrides(t.size)) p.int(d);
  p.tuple().bool(false).global('collections', 'OrderedDict').emptyTuple().reduce().tuple().reduce();
  return p;
}

/** A whole data.pkl: an OrderedDict of the given tensors. */
export function stateDictPickle(tensors: Record<string, TensorSpec>): Uint8Array {
  const p = new PickleWriter().proto(2).global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  for (const [name, t] of Object.entries(tensors)) writeTensor(p.str(name), t);
  return p.setitems().stop().bytes();
}

export interface ZipFileSpec {
  name: string;
  data: Uint8Array;
  /** Compression method written in both headers (0 = stored); the data is written as given. */
  method?: number;
}

/**
 * A zip archive as torch writes it: stored entries, data aligned to 64 bytes by an extra field, one
 * central directory. `zip64` writes every central size and offset as 0xffffffff with the real values
 * in a zip64 extra field (as archives over 4 GiB must); `zip64Extra: false` leaves that field out.
 */
export function zipBytes(files: ZipFileSpec[], o: { zip64?: boolean; zip64Extra?: boolean } = {}): Buffer {
  const parts: Buffer[] = [];
  const central: Buffer[] = [];
  let offset = 0;
  for (const f of files) {
    const name = Buffer.from(f.name, 'utf8');
    const crc = crc32(f.data);
    const pad = (64 - ((offset + 30 + name.length + 4) % 64)) % 64;
    const extra = Buffer.alloc(4 + pad);
    extra.writeUInt16LE(0x4246, 0); // 'FB', the padding block torch writes
    extra.writeUInt16LE(pad, 2);
    const local = Buffer.alloc(30);
    local.writeUInt32LE(0x04034b50, 0);
    local.writeUInt16LE(20, 4);
    local.writeUInt16LE(f.method ?? 0, 8);
    local.writeUInt32LE(crc, 14);
    local.writeUInt32LE(f.data.length, 18);
    local.writeUInt32LE(f.data.length, 22);
    local.writeUInt16LE(name.length, 26);
    local.writeUInt16LE(extra.length, 28);
    parts.push(local, name, extra, Buffer.from(f.data));
    const c = Buffer.alloc(46);
    c.writeUInt32LE(0x02014b50, 0);
    c.writeUInt16LE(20, 4);
    c.writeUInt16LE(20, 6);
    c.writeUInt16LE(f.method ?? 0, 10);
    c.writeUInt32LE(crc, 16);
    c.writeUInt32LE(o.zip64 ? 0xffffffff : f.data.length, 20);
    c.writeUInt32LE(o.zip64 ? 0xffffffff : f.data.length, 24);
    c.writeUInt16LE(name.length, 28);
    c.writeUInt32LE(o.zip64 ? 0xffffffff : offset, 42);
    const z64 = Buffer.alloc(o.zip64 && o.zip64Extra !== false ? 28 : 0);
    if (z64.length) {
      z64.writeUInt16LE(0x0001, 0);
      z64.writeUInt16LE(24, 2);
      z64.writeBigUInt64LE(BigInt(f.data.length), 4); // uncompressed, compressed, local header offset
      z64.writeBigUInt64LE(BigInt(f.data.length), 12);
      z64.writeBigUInt64LE(BigInt(offset), 20);
    }
    c.writeUInt16LE(z64.length, 30);
    central.push(c, name, z64);
    offset += 30 + name.length + extra.length + f.data.length;
  }
  const cd = Buffer.concat(central);
  const end = Buffer.alloc(22);
  end.writeUInt32LE(0x06054b50, 0);
  end.writeUInt16LE(files.length, 8);
  end.writeUInt16LE(files.length, 10);
  end.writeUInt32LE(cd.length, 12);
  end.writeUInt32LE(offset, 16);
  return Buffer.concat([...parts, cd, end]);
}

/** A torch.save zip: `<root>/data.pkl`, `<root>/data/<key>` for each storage and `<root>/version`. */
export function torchZip(pickle: Uint8Array, storages: Record<string, Uint8Array> = {}, root = 'archive', extra: ZipFileSpec[] = []): Buffer {
  return zipBytes([
    { name: `${root}/data.pkl`, data: pickle },
    ...Object.entries(storages).map(([key, data]) => ({ name: `${root}/data/${key}`, data })),
    { name: `${root}/version`, data: Buffer.from('3\n') },
    ...extra,
  ]);
}

export function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}

/** Storage class and element size of each dtype the state-dict writer stores. */
const STORAGE_OF: Record<string, [type: string, bytes: number]> = {
  F32: ['FloatStorage', 4], F16: ['HalfStorage', 2], BF16: ['BFloat16Storage', 2], F64: ['DoubleStorage', 8], I64: ['LongStorage', 8],
};

/**
 * A torch.save zip of a state dict as `torch.save(model.state_dict())` writes one: every tensor
 * contiguous, in a storage of its own, its bytes as given (little-endian).
 */
export function stateDictZip(tensors: readonly { name: string; dtype: string; shape: readonly number[]; bytes: Uint8Array }[]): Buffer {
  const specs: Record<string, TensorSpec> = {};
  const storages: Record<string, Uint8Array> = {};
  tensors.forEach((t, i) => {
    const of = STORAGE_OF[t.dtype];
    if (!of) throw new Error(`stateDictZip: no storage class for ${t.dtype}`);
    const key = String(i);
    specs[t.name] = { storage: { type: of[0], key, numel: t.bytes.length / of[1] }, size: [...t.shape] };
    storages[key] = t.bytes;
  });
  return torchZip(stateDictPickle(specs), storages);
}
