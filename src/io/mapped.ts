/**
 * Files mapped into memory, and a hash to check bytes before trusting them: the pieces the
 * packed-weight cache stands on (a file of packed panels written once, then mapped at later loads
 * and used where it lies).
 */
import { describe, expectOptions, expectPath } from '../check';
import { ClipkitError, typeError } from '../errors';
import { native } from '../native';

export interface MapFileOptions {
  /**
   * Fault every page in now (from the page cache, reading the file where it is not cached) instead
   * of on first touch, so that the first use of the bytes does not wait on the disk page by page.
   */
  populate?: boolean;
}
const MAP_FILE_OPTIONS = { populate: true } as const;

/**
 * The whole file as an ArrayBuffer over a copy-on-write mapping of it (off the JavaScript thread).
 * The pages are the page cache's, shared with every process mapping the file, until written; a write
 * through a view copies that page and never reaches the file.
 *
 * Lifetime: the mapping lasts while the ArrayBuffer, or any view of it, or any weight adopted from
 * it (adoptPacked) is alive; it is unmapped once all are gone (garbage-collected).
 * The file must not be truncated or rewritten in place while mapped (a read of a page past its new
 * end kills the process with SIGBUS): write a new file and rename it over the old one.
 * Errors: E_IO (missing, unreadable, a folder or another non-regular file), E_FORMAT (an empty file).
 */
export async function mapFile(file: string, opts: MapFileOptions = {}): Promise<ArrayBuffer> {
  expectOptions('mapFile', opts, MAP_FILE_OPTIONS);
  expectPath('file', file);
  const populate = opts.populate ?? false;
  if (typeof populate !== 'boolean') throw typeError('E_ARG', `Expected a boolean for populate but received ${describe(populate)}`);
  try {
    return await native().mapFile({ path: file, populate });
  } catch (err) {
    const code = (err as { code?: string }).code;
    throw new ClipkitError(code === 'E_FORMAT' || code === 'E_NOMEM' ? code : 'E_IO', (err as Error).message);
  }
}

/**
 * A 64-bit hash of the bytes as 16 lowercase hex digits, computed on the native threads. The same for
 * the same bytes whatever the thread count, the ISA or where they lie. Any change within one 8-byte
 * word (counted from the start of data; a flipped bit, say) always changes it; other damage (a zeroed
 * range) goes unseen with odds of about 2^-64. Not cryptographic: it detects damage, not tampering.
 */
export async function hashBytes(data: Uint8Array): Promise<string> {
  if (!(data instanceof Uint8Array)) throw typeError('E_ARG', `Expected a Uint8Array for data but received ${describe(data)}`);
  return native().hashBytes({ data });
}

/**
 * Lets go of the whole pages inside `data`, bytes of a mapFile mapping (E_ARG otherwise): the
 * process's resident set no longer counts them, the page cache keeps them, and a later read faults
 * them in again. Bytes written through the mapping on those pages are lost (a later read sees the
 * file's), so only for bytes that were read and never written: a checkpoint streamed into the
 * weight cache, let go of tensor by tensor once packed. Returns the bytes let go.
 */
export function dropMappedPages(data: Uint8Array): number {
  if (!(data instanceof Uint8Array)) throw typeError('E_ARG', `Expected a Uint8Array for data but received ${describe(data)}`);
  try {
    return native().dropMappedPages({ data });
  } catch (err) {
    throw new ClipkitError('E_ARG', (err as Error).message);
  }
}

/**
 * dropMappedPages for a typed array that may or may not lie in a mapping (a tensor of a checkpoint
 * read from a mapped file, or a widened copy of one): 0 for one that does not.
 */
export function dropIfMapped(data: ArrayBufferView): number {
  try {
    return native().dropMappedPages({ data: new Uint8Array(data.buffer, data.byteOffset, data.byteLength) });
  } catch {
    return 0; // not mapped: the collector frees it
  }
}
