/**
 * Every file clipkit reads from a path given to it is opened here: only a regular file is read, and
 * never more than a stated number of bytes. `/dev/zero` as an image once read forever while memory
 * grew without bound, and a FIFO as a config blocked in open() until a writer came. So a path is
 * opened with O_NONBLOCK (open() on a FIFO then returns at once; reads of regular files are not
 * affected), checked to be a regular file on the descriptor itself (no race with a rename between
 * a stat and the open), and read up to its size, refused when that is over the limit.
 */
import * as fs from 'node:fs';
import { ClipkitError } from '../errors';

/** The limit for configs, tokenizer files and other small side files: 256 MiB. */
export const MAX_SIDE_FILE_BYTES = 256 * 2 ** 20;

const OPEN_FLAGS = fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0);

/** Refuses what is not a regular file, or is over maxBytes. */
function checkStat(st: fs.Stats, file: string, what: string, maxBytes: number): void {
  if (!st.isFile()) throw new ClipkitError('E_IO', `Cannot read ${what} ${file}: it is ${kindOf(st)}, not a regular file`);
  if (st.size > maxBytes) throw new ClipkitError('E_LIMIT', `The ${what} ${file} has ${st.size} bytes, over the limit of ${maxBytes}`);
}

/** What a stat says the path is, for the error. */
function kindOf(st: fs.Stats): string {
  if (st.isDirectory()) return 'a folder';
  if (st.isFIFO()) return 'a FIFO (named pipe)';
  if (st.isCharacterDevice()) return 'a character device';
  if (st.isBlockDevice()) return 'a block device';
  if (st.isSocket()) return 'a socket';
  return 'not a regular file';
}

/**
 * Opens `file` for reading: its descriptor and size. `what` names it in errors ("image", "config").
 * E_IO when it cannot be opened or is not a regular file; E_LIMIT when it is over `maxBytes`.
 */
export function openRegularFile(file: string, what: string, maxBytes = Infinity): { fd: number; size: number } {
  let fd: number;
  try {
    fd = fs.openSync(file, OPEN_FLAGS);
  } catch (err) {
    throw new ClipkitError('E_IO', `Cannot read ${what} ${file}: ${(err as Error).message}`);
  }
  try {
    const st = fs.fstatSync(fd);
    checkStat(st, file, what, maxBytes);
    return { fd, size: st.size };
  } catch (err) {
    fs.closeSync(fd);
    throw err;
  }
}

/** The bytes of a regular file of at most `maxBytes` (the size it had when opened). */
export function readFileBounded(file: string, what: string, maxBytes: number = MAX_SIDE_FILE_BYTES): Buffer {
  const { fd, size } = openRegularFile(file, what, maxBytes);
  try {
    const out = Buffer.allocUnsafe(size);
    let at = 0;
    while (at < size) {
      const n = fs.readSync(fd, out, at, size - at, at);
      if (n === 0) break; // cut short while being read: what is there is what the file holds now
      at += n;
    }
    return at === size ? out : out.subarray(0, at);
  } catch (err) {
    if (err instanceof ClipkitError) throw err;
    throw new ClipkitError('E_IO', `Cannot read ${what} ${file}: ${(err as Error).message}`);
  } finally {
    fs.closeSync(fd);
  }
}

/** readFileBounded as UTF-8 text. */
export function readTextBounded(file: string, what: string, maxBytes: number = MAX_SIDE_FILE_BYTES): string {
  return readFileBounded(file, what, maxBytes).toString('utf8');
}

/** readFileBounded off the JavaScript thread: open, stat and read on libuv's pool. */
export async function readFileBoundedAsync(file: string, what: string, maxBytes: number): Promise<Buffer> {
  let handle: fs.promises.FileHandle;
  try {
    handle = await fs.promises.open(file, OPEN_FLAGS);
  } catch (err) {
    throw new ClipkitError('E_IO', `Cannot read ${what} ${file}: ${(err as Error).message}`);
  }
  try {
    const st = await handle.stat();
    checkStat(st, file, what, maxBytes);
    const out = Buffer.allocUnsafe(st.size);
    let at = 0;
    while (at < st.size) {
      const { bytesRead } = await handle.read(out, at, st.size - at, at);
      if (bytesRead === 0) break;
      at += bytesRead;
    }
    return at === st.size ? out : out.subarray(0, at);
  } catch (err) {
    if (err instanceof ClipkitError) throw err;
    throw new ClipkitError('E_IO', `Cannot read ${what} ${file}: ${(err as Error).message}`);
  } finally {
    await handle.close();
  }
}
