/**
 * The thread src/image/readers/off_thread.ts hands large images to: runs the named reader's decode
 * on the bytes sent. Messages: { id, format, bytes, name } → { id, image } | { id, embedded } | { id, error }.
 */
import type { Transferable } from 'node:worker_threads';
import { serveRequests } from '../../worker_thread';
import { OWN_READERS } from './index';
import type { DecodeResult } from './off_thread';

serveRequests<{ format: string; bytes: Uint8Array; name: string }, DecodeResult>((m) => {
  const reader = OWN_READERS.find((r) => r.format === m.format);
  if (!reader) throw new Error(`no reader for ${m.format}`);
  const out = reader.decode(m.bytes, m.name);
  const data = 'embedded' in out ? out.embedded : out.data;
  // Hand the pixels over without a copy when they own their whole buffer.
  const transfer: Transferable[] = data.byteOffset === 0 && data.byteLength === data.buffer.byteLength ? [data.buffer as ArrayBuffer] : [];
  return { result: 'embedded' in out ? { embedded: out.embedded } : { image: out }, transfer };
});
