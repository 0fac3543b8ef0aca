/**
 * clipkit's own readers are plain JavaScript, so a large BMP or TGA would hold the event loop for
 * as long as its decode takes: images over OFF_THREAD_PIXELS are decoded on a worker thread; the
 * file's bytes are copied to it (far quicker than the decode) and the pixels come back without a
 * copy. Small images stay on the calling thread, where a round trip would cost more than the decode.
 */
import { WorkerThread } from '../../worker_thread';
import type { ImageReader, RawImage } from './types';

/** Pixels above which an image is decoded off the calling thread (where the decode starts to outweigh the round trip). */
export const OFF_THREAD_PIXELS = 1 << 20;

export type DecodeResult = { image: RawImage } | { embedded: Uint8Array };

const worker = new WorkerThread<{ format: string; bytes: Uint8Array; name: string }, DecodeResult>(__dirname, 'decode_worker', 'image decoding');

/**
 * reader.decode(bytes, name), on the worker when the image has more than OFF_THREAD_PIXELS pixels.
 * `owned`: the bytes are clipkit's own and unused after this call, so their buffer may be moved.
 */
export async function decodeOwnFormat(reader: ImageReader, bytes: Uint8Array, name: string, pixels: number, owned: boolean): Promise<RawImage | { embedded: Uint8Array }> {
  if (pixels <= OFF_THREAD_PIXELS) return reader.decode(bytes, name);
  // Only a buffer the bytes fill alone: a small Buffer is a slice of Node's shared pool.
  const movable = owned && bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength && !(bytes.buffer instanceof SharedArrayBuffer);
  const out = await worker.call({ format: reader.format, bytes, name }, movable ? [bytes.buffer as ArrayBuffer] : []);
  return 'embedded' in out ? { embedded: out.embedded } : out.image;
}
