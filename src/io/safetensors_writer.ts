/**
 * safetensors writer: `[u64 LE header length][JSON header, space-padded to 8 bytes][data]`, tensors
 * laid out in the order given, each at an 8-byte-aligned offset — what our reader and the reference
 * implementation both read. writeSafetensors builds the file in memory (small outputs);
 * writeSafetensorsFile streams tensor by tensor into a file (whole models).
 */
import * as fs from 'node:fs';
import { ClipkitError } from '../errors';
import { ELEMENT_BYTES, StorageDType } from './dtype';
import { elementCount } from './tensor_entry';

export interface TensorToWrite {
  dtype: 'F32' | 'F16' | 'BF16' | 'I64' | 'I32';
  shape: readonly number[];
  /** The values (F32: Float32Array) or their little-endian bytes. */
  data: Float32Array | Uint8Array;
}

const BYTES = { F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4 } as const;

export function writeSafetensors(tensors: Record<string, TensorToWrite>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = Object.create(null); // tensor names may be any string, `__proto__` included
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const parts: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of Object.entries(tensors)) {
    if (name === '__metadata__') throw new ClipkitError('E_ARG', 'A tensor cannot be named __metadata__');
    const bytes = t.data instanceof Uint8Array ? t.data : new Uint8Array(t.data.buffer, t.data.byteOffset, t.data.byteLength);
    const want = t.shape.reduce((a, b) => a * b, 1) * BYTES[t.dtype];
    if (bytes.byteLength !== want)
      throw new ClipkitError('E_SHAPE', `Tensor ${name}: shape [${t.shape.join(', ')}] of ${t.dtype} needs ${want} bytes but its data has ${bytes.byteLength}`);
    const gap = (8 - (offset % 8)) % 8;
    if (gap) {
      parts.push(new Uint8Array(gap));
      offset += gap;
    }
    header[name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + bytes.byteLength] };
    parts.push(bytes);
    offset += bytes.byteLength;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const out = new Uint8Array(8 + json.length + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  let o = 8 + json.length;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** A tensor to stream into a file: its bytes are asked for once, when its turn comes. */
export interface TensorSource {
  readonly name: string;
  readonly dtype: StorageDType;
  readonly shape: readonly number[];
  /** Little-endian bytes, elementCount(shape) × element size long. */
  bytes(): Uint8Array;
}

/** Node refuses single writes of 2 GiB or more. */
const WRITE_CHUNK_BYTES = 1 << 30;

/**
 * Writes a safetensors file tensor by tensor, in the order given: the header is computed from the
 * shapes alone, then each tensor's bytes() is written and dropped, so memory stays at one tensor
 * whatever the file's size. Returns the file's size in bytes. Errors: E_ARG for a tensor named
 * __metadata__ or twice, E_SHAPE when bytes() disagrees with the shape, E_IO when the file cannot
 * be written (the file may then be partly written: write to a temporary name and rename).
 */
export function writeSafetensorsFile(file: string, tensors: readonly TensorSource[], metadata: Record<string, string> = {}): number {
  const header: Record<string, unknown> = Object.create(null); // tensor names may be any string, `__proto__` included
  if (Object.keys(metadata).length) header.__metadata__ = metadata;
  const gaps: number[] = [];
  let offset = 0;
  for (const t of tensors) {
    if (t.name === '__metadata__') throw new ClipkitError('E_ARG', 'A tensor cannot be named __metadata__');
    if (Object.prototype.hasOwnProperty.call(header, t.name)) throw new ClipkitError('E_ARG', `Tensor ${t.name} is listed twice`);
    const gap = (8 - (offset % 8)) % 8;
    gaps.push(gap);
    offset += gap;
    const size = elementCount(t.shape) * ELEMENT_BYTES[t.dtype];
    header[t.name] = { dtype: t.dtype, shape: [...t.shape], data_offsets: [offset, offset + size] };
    offset += size;
  }
  let json = Buffer.from(JSON.stringify(header), 'utf8');
  const pad = (8 - (json.length % 8)) % 8;
  if (pad) json = Buffer.concat([json, Buffer.alloc(pad, 0x20)]);
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(BigInt(json.length));

  let fd: number;
  try {
    fd = fs.openSync(file, 'w');
  } catch (err) {
    throw new ClipkitError('E_IO', `Cannot create ${file}: ${(err as Error).message}`);
  }
  try {
    writeAll(fd, prefix, file);
    writeAll(fd, json, file);
    tensors.forEach((t, i) => {
      if (gaps[i]) writeAll(fd, new Uint8Array(gaps[i]), file);
      const bytes = t.bytes();
      const want = elementCount(t.shape) * ELEMENT_BYTES[t.dtype];
      if (bytes.byteLength !== want)
        throw new ClipkitError('E_SHAPE', `Tensor ${t.name}: shape [${t.shape.join(', ')}] of ${t.dtype} needs ${want} bytes but its data has ${bytes.byteLength}`);
      writeAll(fd, bytes, file);
    });
  } finally {
    fs.closeSync(fd);
  }
  return 8 + json.length + offset;
}

function writeAll(fd: number, bytes: Uint8Array, file: string): void {
  for (let done = 0; done < bytes.length; ) {
    try {
      done += fs.writeSync(fd, bytes, done, Math.min(bytes.length - done, WRITE_CHUNK_BYTES));
    } catch (err) {
      throw new ClipkitError('E_IO', `Cannot write ${file}: ${(err as Error).message}`);
    }
  }
}
