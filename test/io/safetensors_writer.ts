/** Test helper: writes safetensors files, valid or deliberately broken, into a temp folder. */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export interface RawTensor {
  name: string;
  dtype: string;
  shape: number[];
  bytes: Uint8Array;
}

/** A fresh temp folder, removed by the returned cleanup function. */
export function tempDir(prefix: string): { dir: string; cleanup: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, cleanup: () => fs.rmSync(dir, { recursive: true, force: true }) };
}

/**
 * A valid file: tensors packed in the given order, the header padded with spaces to a multiple of
 * `align` bytes (8 in the standard).
 */
export function safetensorsBytes(tensors: RawTensor[], o: { metadata?: Record<string, string>; align?: number } = {}): Buffer {
  const header: Record<string, unknown> = {};
  if (o.metadata) header.__metadata__ = o.metadata;
  let offset = 0;
  for (const t of tensors) {
    header[t.name] = { dtype: t.dtype, shape: t.shape, data_offsets: [offset, offset + t.bytes.length] };
    offset += t.bytes.length;
  }
  let json = JSON.stringify(header);
  const align = o.align ?? 8;
  while ((8 + Buffer.byteLength(json)) % align !== 0) json += ' ';
  return rawFile(Buffer.from(json, 'utf8'), Buffer.concat(tensors.map((t) => t.bytes)));
}

/** `[u64 LE length][header][data]`; `length` overrides the stored header length. */
export function rawFile(header: Buffer | string, data: Uint8Array = new Uint8Array(0), length?: bigint): Buffer {
  const h = typeof header === 'string' ? Buffer.from(header, 'utf8') : header;
  const prefix = Buffer.alloc(8);
  prefix.writeBigUInt64LE(length ?? BigInt(h.length));
  return Buffer.concat([prefix, h, data]);
}

export function f32Bytes(values: number[]): Uint8Array {
  return new Uint8Array(Float32Array.from(values).buffer);
}
