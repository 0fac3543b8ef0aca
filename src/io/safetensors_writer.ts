/**
 * safetensors writer: `[u64 LE header length][JSON header, space-padded to 8 bytes][data]`, tensors
 * laid out in the order given, each at an 8-byte-aligned offset — what our reader and the reference
 * implementation both read.
 */
import { ClipkitError } from '../errors';

export interface TensorToWrite {
  dtype: 'F32' | 'F16' | 'BF16' | 'I64' | 'I32';
  shape: readonly number[];
  /** The values (F32: Float32Array) or their little-endian bytes. */
  data: Float32Array | Uint8Array;
}

const BYTES = { F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4 } as const;

export function writeSafetensors(tensors: Record<string, TensorToWrite>, metadata: Record<string, string> = {}): Uint8Array {
  const header: Record<string, unknown> = {};
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
