/**
 * Zip archive directory reader for files already in memory (torch.save archives): the
 * end-of-central-directory record (and the zip64 one when present), the central directory and
 * each entry's local header, giving every entry's name and the byte range of its data in the file,
 * so that callers can take views instead of copies.
 *
 * Only STORED (uncompressed) entries can be read, which is all torch.save writes: storedData()
 * refuses a compressed entry by name. Compressed entries may be present as long as nobody reads them
 * (TorchScript archives deflate their code/ files). Refused for the whole archive, with ClipkitError
 * E_FORMAT naming the file and the problem: a missing or inconsistent end record, archives split
 * over disks, more than MAX_ZIP_ENTRIES entries, encrypted entries, bad signatures, names that are
 * not UTF-8 or appear twice, local headers that disagree with the central directory, and data
 * ranges that leave the file, reach into the central directory or overlap another entry. CRCs are
 * not checked here (crc32() is exported for callers that want it).
 */
import { ClipkitError } from '../errors';

/** More entries than this is refused before the central directory is walked. */
export const MAX_ZIP_ENTRIES = 1_000_000;

export interface ZipEntry {
  readonly name: string;
  /** Offset of the entry's data in the archive. */
  readonly dataOffset: number;
  /** Length of the data in the archive (stored entries: equal to `size`). */
  readonly compressedSize: number;
  /** Length of the entry's contents. */
  readonly size: number;
  /** Compression method (0 = stored). */
  readonly method: number;
  /** CRC-32 recorded in the central directory. */
  readonly crc32: number;
}

export interface ZipDirectory {
  /** Entries by name, in central-directory order. */
  readonly entries: ReadonlyMap<string, ZipEntry>;
}

const SIG_LOCAL = 0x04034b50;
const SIG_CENTRAL = 0x02014b50;
const SIG_END = 0x06054b50;
const SIG_END64 = 0x06064b50;
const SIG_END64_LOCATOR = 0x07064b50;
const END_BYTES = 22, END64_LOCATOR_BYTES = 20, END64_MIN_BYTES = 56, CENTRAL_BYTES = 46, LOCAL_BYTES = 30;
const MAX_COMMENT = 0xffff;
const METHOD_NAMES: Record<number, string> = { 8: 'deflate', 9: 'deflate64', 12: 'bzip2', 14: 'lzma', 93: 'zstd', 95: 'xz' };

/** Reads and checks the directory of the zip archive `buf`; `file` names it in errors. */
export function readZipDirectory(buf: Uint8Array, file: string): ZipDirectory {
  const fail = (problem: string) => new ClipkitError('E_FORMAT', `Invalid zip archive ${file}: ${problem}`);
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const u16 = (at: number) => view.getUint16(at, true);
  const u32 = (at: number) => view.getUint32(at, true);
  const u64 = (at: number, what: string) => {
    const v = view.getBigUint64(at, true);
    if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw fail(`${what} ${v} is larger than any file`);
    return Number(v);
  };

  // End of central directory: the last signature whose comment runs exactly to the end of the file.
  const size = buf.byteLength;
  let end = -1;
  for (let at = size - END_BYTES; at >= Math.max(0, size - END_BYTES - MAX_COMMENT); at--) {
    if (u32(at) === SIG_END && at + END_BYTES + u16(at + 20) === size) {
      end = at;
      break;
    }
  }
  if (end < 0) throw fail(`no end-of-central-directory record in its last ${Math.min(size, END_BYTES + MAX_COMMENT)} bytes (not a zip archive, or truncated)`);
  if (u16(end + 4) !== 0 || u16(end + 6) !== 0 || u16(end + 8) !== u16(end + 10)) throw fail('archives split over several disks are not supported');
  let count = u16(end + 10), cdSize = u32(end + 12), cdOffset = u32(end + 16);
  let directoryEnd = end; // the central directory must end before the record(s) that describe it

  const locator = end - END64_LOCATOR_BYTES;
  if (locator >= 0 && u32(locator) === SIG_END64_LOCATOR) {
    const at = u64(locator + 8, 'zip64 end record offset');
    if (at + END64_MIN_BYTES > locator) throw fail(`zip64 end record at ${at} runs past its locator at ${locator}`);
    if (u32(at) !== SIG_END64) throw fail(`bad signature 0x${u32(at).toString(16)} for the zip64 end record at ${at}`);
    if (u32(at + 16) !== 0 || u32(at + 20) !== 0) throw fail('archives split over several disks are not supported');
    count = u64(at + 32, 'zip64 entry count');
    cdSize = u64(at + 40, 'zip64 central directory size');
    cdOffset = u64(at + 48, 'zip64 central directory offset');
    directoryEnd = at;
  } else if (count === 0xffff || cdSize === 0xffffffff || cdOffset === 0xffffffff) {
    throw fail('the end record asks for zip64 values but there is no zip64 end record');
  }
  if (count > MAX_ZIP_ENTRIES) throw fail(`${count} entries, more than the ${MAX_ZIP_ENTRIES} allowed`);
  if (cdOffset + cdSize > directoryEnd)
    throw fail(`central directory [${cdOffset}, ${cdOffset + cdSize}) runs past its end record at ${directoryEnd}`);
  if (count * CENTRAL_BYTES > cdSize) throw fail(`${count} entries cannot fit in a central directory of ${cdSize} bytes`);

  const utf8 = new TextDecoder('utf-8', { fatal: true });
  const entries = new Map<string, ZipEntry>();
  const spans: { name: string; start: number; end: number }[] = [];
  let at = cdOffset;
  const cdEnd = cdOffset + cdSize;
  for (let i = 0; i < count; i++) {
    if (at + CENTRAL_BYTES > cdEnd) throw fail(`central directory entry ${i} at ${at} runs past the directory's end ${cdEnd}`);
    if (u32(at) !== SIG_CENTRAL) throw fail(`bad signature 0x${u32(at).toString(16)} for central directory entry ${i} at ${at}`);
    const flags = u16(at + 8), method = u16(at + 10), crc32 = u32(at + 16);
    let compressed = u32(at + 20), uncompressed = u32(at + 24), localOffset = u32(at + 42);
    const nameLen = u16(at + 28), extraLen = u16(at + 30), commentLen = u16(at + 32);
    const varEnd = at + CENTRAL_BYTES + nameLen + extraLen + commentLen;
    if (varEnd > cdEnd) throw fail(`central directory entry ${i} at ${at} runs past the directory's end ${cdEnd}`);
    const nameBytes = buf.subarray(at + CENTRAL_BYTES, at + CENTRAL_BYTES + nameLen);
    let name: string;
    try {
      name = utf8.decode(nameBytes);
    } catch {
      throw fail(`central directory entry ${i} has a name that is not valid UTF-8`);
    }
    const what = `entry ${JSON.stringify(name)}`;
    if (entries.has(name)) throw fail(`${what} appears twice`);
    if (flags & 0x1) throw fail(`${what} is encrypted`);

    // Zip64 extended information: the 64-bit values of the fields that hold 0xffffffff, in order.
    if (uncompressed === 0xffffffff || compressed === 0xffffffff || localOffset === 0xffffffff) {
      const extra = findExtra(buf, view, at + CENTRAL_BYTES + nameLen, extraLen, 0x0001);
      if (!extra) throw fail(`${what} needs a zip64 extra field but has none`);
      let p = extra.start;
      const next = (field: string) => {
        if (p + 8 > extra.end) throw fail(`${what}: zip64 extra field is too short for ${field}`);
        const v = u64(p, `${what} ${field}`);
        p += 8;
        return v;
      };
      if (uncompressed === 0xffffffff) uncompressed = next('uncompressed size');
      if (compressed === 0xffffffff) compressed = next('compressed size');
      if (localOffset === 0xffffffff) localOffset = next('local header offset');
    }
    if (method === 0 && compressed !== uncompressed) throw fail(`${what} is stored but its compressed size ${compressed} differs from its size ${uncompressed}`);

    if (localOffset + LOCAL_BYTES > cdOffset) throw fail(`${what}: local header at ${localOffset} is not before the central directory at ${cdOffset}`);
    if (u32(localOffset) !== SIG_LOCAL) throw fail(`${what}: bad local header signature 0x${u32(localOffset).toString(16)} at ${localOffset}`);
    const localFlags = u16(localOffset + 6), localMethod = u16(localOffset + 8);
    const localNameLen = u16(localOffset + 26), localExtraLen = u16(localOffset + 28);
    const dataOffset = localOffset + LOCAL_BYTES + localNameLen + localExtraLen;
    if (dataOffset > cdOffset) throw fail(`${what}: local header at ${localOffset} runs into the central directory at ${cdOffset}`);
    if (!sameBytes(buf.subarray(localOffset + LOCAL_BYTES, localOffset + LOCAL_BYTES + localNameLen), nameBytes))
      throw fail(`${what}: the local header at ${localOffset} names a different entry`);
    if (localFlags & 0x1) throw fail(`${what} is encrypted`);
    if (localMethod !== method) throw fail(`${what}: its local header says compression method ${localMethod} but the central directory says ${method}`);
    if (dataOffset + compressed > cdOffset)
      throw fail(`${what}: data [${dataOffset}, ${dataOffset + compressed}) runs into the central directory at ${cdOffset}`);
    entries.set(name, { name, dataOffset, compressedSize: compressed, size: uncompressed, method, crc32 });
    spans.push({ name, start: localOffset, end: dataOffset + compressed });
    at = varEnd;
  }

  spans.sort((a, b) => a.start - b.start);
  for (let i = 1; i < spans.length; i++)
    if (spans[i].start < spans[i - 1].end)
      throw fail(`entries ${JSON.stringify(spans[i - 1].name)} [${spans[i - 1].start}, ${spans[i - 1].end}) and ${JSON.stringify(spans[i].name)} [${spans[i].start}, ${spans[i].end}) overlap`);
  return { entries };
}

/** The bytes of a stored entry of `buf` (a view); a compressed entry is refused, naming its method. */
export function storedData(buf: Uint8Array, entry: ZipEntry, file: string): Uint8Array {
  if (entry.method !== 0) {
    const method = `${entry.method}${METHOD_NAMES[entry.method] ? ` = ${METHOD_NAMES[entry.method]}` : ''}`;
    throw new ClipkitError('E_FORMAT', `Invalid zip archive ${file}: entry ${JSON.stringify(entry.name)} is compressed (method ${method}); torch.save writes stored entries only, and clipkit reads no others`);
  }
  return buf.subarray(entry.dataOffset, entry.dataOffset + entry.size);
}

/** The data range of the extra-field block with this id, or undefined. */
function findExtra(buf: Uint8Array, view: DataView, start: number, length: number, id: number): { start: number; end: number } | undefined {
  const end = start + length;
  for (let p = start; p + 4 <= end; ) {
    const blockId = view.getUint16(p, true), blockLen = view.getUint16(p + 2, true);
    if (p + 4 + blockLen > end) return undefined;
    if (blockId === id) return { start: p + 4, end: p + 4 + blockLen };
    p += 4 + blockLen;
  }
  return undefined;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

let crcTable: Uint32Array | undefined;

/** CRC-32 (the zip / IEEE 802.3 polynomial) of `bytes`. */
export function crc32(bytes: Uint8Array): number {
  if (!crcTable) {
    crcTable = new Uint32Array(256);
    for (let n = 0; n < 256; n++) {
      let c = n;
      for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
      crcTable[n] = c >>> 0;
    }
  }
  let c = 0xffffffff;
  for (let i = 0; i < bytes.length; i++) c = crcTable[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}
