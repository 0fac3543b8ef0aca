/**
 * mapFile: a whole file as a copy-on-write mapping (its bytes exactly, writes never reaching the
 * file, populate sharing the page cache's pages instead of copying them) and its refusals; hashBytes:
 * the same value whatever the thread count, the ISA or the buffer, a fixed value for fixed bytes, and
 * a different one after any bit flip or a zeroed range; dropMappedPages: pages let go of, read back
 * as the file's.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { setThreads } from '../../src';
import { dropMappedPages, hashBytes, mapFile } from '../../src/io/mapped';
import { isas, onIsa, rejectsCode, rng, tempDir, throwsCode } from '../helpers';

const Mapped = suite('mapFile');
const Hash = suite('hashBytes');
const dir = tempDir('clipkit-mapped-');

/** Random bytes, none zero (so that zeroing any of them is a change). */
function bytesOf(n: number, seed: number): Uint8Array {
  const r = rng(seed), out = new Uint8Array(n);
  for (let i = 0; i < n; i++) out[i] = 1 + Math.floor(r() * 255);
  return out;
}

/** A file of `mib` MiB written 1 MiB at a time (no large buffer in this process). */
function bigFile(name: string, mib: number): string {
  const file = join(dir, name), fd = openSync(file, 'w'), block = bytesOf(1 << 20, 3);
  for (let i = 0; i < mib; i++) writeSync(fd, block);
  closeSync(fd);
  return file;
}

const CHUNK = 1 << 20; // hash.h's kHashChunkBytes: chunks are hashed independently, then combined

Mapped('the mapping holds the file\'s bytes exactly, with or without populate', async () => {
  for (const n of [1, 7, 4095, 4096, 4097, 3 * CHUNK + 11]) {
    const file = join(dir, `bytes-${n}.bin`), want = bytesOf(n, n);
    writeFileSync(file, want);
    for (const populate of [false, true]) {
      const ab = await mapFile(file, { populate });
      assert.instance(ab, ArrayBuffer);
      assert.is(ab.byteLength, n);
      assert.ok(Buffer.from(ab).equals(Buffer.from(want)), `${n} bytes, populate ${populate}`);
    }
  }
});

Mapped('writes through a view are copy-on-write: the file and other mappings keep the old bytes', async () => {
  const file = join(dir, 'cow.bin'), want = bytesOf(3 * 4096 + 5, 9);
  writeFileSync(file, want);
  const a = new Uint8Array(await mapFile(file, { populate: true })), b = new Uint8Array(await mapFile(file));
  for (const at of [0, 4096, want.length - 1]) a[at] ^= 0xff;
  assert.is(a[4096], want[4096] ^ 0xff, 'the write is seen through the mapping that made it');
  assert.ok(Buffer.from(b).equals(Buffer.from(want)), 'another mapping of the file is unchanged');
  assert.ok(readFileSync(file).equals(Buffer.from(want)), 'the file is unchanged');
});

// Linux: /proc/self/smaps gives each mapping's resident pages, and how many of those are anonymous
// (private copies). A writable private mapping populated with write faults would copy every page.
const hasSmaps = existsSync('/proc/self/smaps');

/** Rss and Anonymous (KiB) summed over the mappings of `file`. */
function smapsOf(file: string): { rss: number; anonymous: number } {
  const out = { rss: 0, anonymous: 0 };
  let inFile = false;
  for (const line of readFileSync('/proc/self/smaps', 'utf8').split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inFile = line.endsWith(file);
    else if (inFile && line.startsWith('Rss:')) out.rss += parseInt(line.slice(4), 10);
    else if (inFile && line.startsWith('Anonymous:')) out.anonymous += parseInt(line.slice(10), 10);
  }
  return out;
}

(hasSmaps ? Mapped : Mapped.skip)('populate maps the page cache\'s pages without copying them; a write copies one page', async () => {
  const file = bigFile('populate.bin', 64); // just written: in the page cache
  const ab = await mapFile(file, { populate: true });
  const before = smapsOf(file);
  assert.ok(before.rss >= 60 * 1024, `populate faulted the pages in (Rss ${before.rss} KiB)`);
  assert.is(before.anonymous, 0, 'the pages are the page cache\'s, not copies');
  new Uint8Array(ab)[5 << 20] ^= 1;
  const after = smapsOf(file);
  assert.ok(after.anonymous > 0 && after.anonymous <= 2048, `one page (or one huge page) copied on write: ${after.anonymous} KiB`);
  assert.is(ab.byteLength, 64 << 20);
});

/** This process's resident file-backed pages, in bytes (Linux: /proc/self/status RssFile). */
function rssFile(): number {
  const m = /RssFile:\s+(\d+) kB/.exec(readFileSync('/proc/self/status', 'utf8'));
  return m ? Number(m[1]) * 1024 : NaN;
}

Mapped('dropMappedPages: the whole pages inside the range are let go of (the resident set shrinks) and read back as the file\'s bytes', async () => {
  const file = bigFile('drop.bin', 64), want = readFileSync(file);
  const mapped = await mapFile(file, { populate: true });
  const bytes = new Uint8Array(mapped);
  const before = rssFile();
  // A range starting one byte into a page: that page and the partial last one stay.
  assert.is(dropMappedPages(bytes.subarray(1, 4096 * 5 + 7)), 4096 * 4);
  assert.is(dropMappedPages(bytes.subarray(4096, 4096 + 100)), 0);
  const dropped = dropMappedPages(bytes);
  assert.is(dropped, 64 << 20);
  if (process.platform === 'linux') assert.ok(before - rssFile() > 48 << 20, `RssFile ${before} → ${rssFile()}`);
  assert.ok(Buffer.from(bytes).equals(want), 'the bytes read after dropping are not the file\'s');
  if (process.platform === 'linux') assert.ok(rssFile() - before > -(16 << 20), 'reading them again did not fault them back in');
  throwsCode(() => dropMappedPages(new Uint8Array(8192)), 'E_ARG', /mapped file/);
  throwsCode(() => dropMappedPages([] as never), 'E_ARG', /Uint8Array/, TypeError);
});

Mapped('refusals: a missing file, a folder, an empty file, a FIFO, bad arguments', async () => {
  const missing = join(dir, 'no-such-file.bin');
  await rejectsCode(mapFile(missing), 'E_IO', [/no-such-file\.bin/, /No such file or directory/]);
  const folder = join(dir, 'a-folder');
  mkdirSync(folder);
  await rejectsCode(mapFile(folder), 'E_IO', [/a-folder/, /Is a directory/]);
  const empty = join(dir, 'empty.bin');
  writeFileSync(empty, '');
  await rejectsCode(mapFile(empty, { populate: true }), 'E_FORMAT', [/empty\.bin/, /empty/]);
  const fifo = join(dir, 'pipe');
  if (spawnSync('mkfifo', [fifo]).status === 0) await rejectsCode(mapFile(fifo), 'E_IO', [/pipe/, /not a regular file/]); // at once, not waiting for a writer
  if (process.getuid?.() !== 0) {
    const locked = join(dir, 'locked.bin');
    writeFileSync(locked, 'x', { mode: 0o000 });
    await rejectsCode(mapFile(locked), 'E_IO', [/locked\.bin/, /Permission denied/]);
  }
  await rejectsCode(() => mapFile(''), 'E_ARG', /path/, TypeError);
  await rejectsCode(() => mapFile(7 as never), 'E_ARG', /path/, TypeError);
  await rejectsCode(() => mapFile(empty, { populate: 'yes' as never }), 'E_ARG', /boolean for populate/, TypeError);
  await rejectsCode(() => mapFile(empty, { popluate: true } as never), 'E_ARG', /popluate/, TypeError);
});

Hash('fixed bytes give fixed values (the files that were hashed before still verify)', async () => {
  const pattern = (n: number) => Uint8Array.from({ length: n }, (_, i) => (i * 131 + 7) & 255);
  const known: [number, string][] = [
    [0, 'ef46db3751d8e999'],
    [1, '3fa211b885376790'],
    [7, 'a2ff6ecb7a9a004e'],
    [8, 'e6a0ee417672d016'],
    [31, 'f94292d9edbaa826'],
    [32, '32eac41239c5d538'],
    [33, '98f2206b8a045329'],
    [4096, 'f26b3915e3e3d62f'],
    [CHUNK - 1, '704782b37e0bb606'],
    [CHUNK, 'e24af24ca112f0ad'],
    [CHUNK + 1, 'a839e40d1b3f91b6'],
    [3 * CHUNK + 5, '3898d8f709bfd327'],
  ];
  for (const [n, want] of known) assert.is(await hashBytes(pattern(n)), want, `${n} bytes`);
});

Hash('the same for the same bytes whatever the thread count, the ISA or the buffer they lie in', async () => {
  for (const n of [0, 1, 7, CHUNK - 1, CHUNK, CHUNK + 1, 5 * CHUNK + 3]) {
    const data = bytesOf(n, n + 1);
    const want = await hashBytes(data);
    assert.match(want, /^[0-9a-f]{16}$/);
    try {
      for (const threads of [1, 2, 3]) {
        setThreads(threads);
        assert.is(await hashBytes(data), want, `${n} bytes, ${threads} threads`);
      }
    } finally {
      setThreads(0);
    }
    for (const isa of isas) assert.is(await onIsa(isa, () => hashBytes(data)), want, `${n} bytes on ${isa}`);
    // A copy at an odd offset of another buffer, and a Buffer.
    const other = new Uint8Array(n + 3);
    other.set(data, 3);
    assert.is(await hashBytes(other.subarray(3)), want, `${n} bytes at offset 3`);
    assert.is(await hashBytes(Buffer.from(data)), want);
  }
});

Hash('a different value after any one bit flips, a range is zeroed, a byte is added or chunks swap', async () => {
  const n = 3 * CHUNK + 77, data = bytesOf(n, 5), want = await hashBytes(data), seen = new Set([want]);
  const r = rng(11);
  const positions = [0, 7, 8, CHUNK - 1, CHUNK, n - 1, ...Array.from({ length: 24 }, () => Math.floor(r() * n))];
  for (const at of positions)
    for (const bit of [0, Math.floor(r() * 8), 7]) {
      data[at] ^= 1 << bit;
      const h = await hashBytes(data);
      data[at] ^= 1 << bit;
      assert.is.not(h, want, `bit ${bit} of byte ${at}`);
      seen.add(h);
    }
  assert.ok(seen.size > positions.length, 'distinct flips give distinct values');
  for (const [a, b] of [[0, 1], [5, 13], [4096, 8192], [CHUNK - 3, CHUNK + 3], [CHUNK, 2 * CHUNK], [n - 9, n]]) {
    const zeroed = data.slice();
    zeroed.fill(0, a, b);
    assert.is.not(await hashBytes(zeroed), want, `zeroed [${a}, ${b})`);
  }
  const longer = new Uint8Array(n + 1);
  longer.set(data);
  assert.is.not(await hashBytes(longer), want, 'a zero byte appended');
  assert.is.not(await hashBytes(data.subarray(0, n - 1)), want, 'the last byte dropped');
  const swapped = data.slice();
  swapped.set(data.subarray(0, CHUNK), CHUNK);
  swapped.set(data.subarray(CHUNK, 2 * CHUNK), 0);
  assert.is.not(await hashBytes(swapped), want, 'the first two chunks swapped');
  assert.is(await hashBytes(data), want, 'the data itself is unchanged');
});

Hash('a mapped file hashes as its bytes in memory do; refuses what is not a Uint8Array', async () => {
  const data = bytesOf(2 * CHUNK + 4099, 21), file = join(dir, 'hashed.bin');
  writeFileSync(file, data);
  const mapped = await mapFile(file);
  assert.is(await hashBytes(new Uint8Array(mapped)), await hashBytes(data));
  assert.is(await hashBytes(new Uint8Array(mapped, 4096, CHUNK)), await hashBytes(data.subarray(4096, 4096 + CHUNK)));
  await rejectsCode(() => hashBytes(new Float32Array(4) as never), 'E_ARG', /Uint8Array for data/, TypeError);
  await rejectsCode(() => hashBytes(undefined as never), 'E_ARG', /Uint8Array/, TypeError);
});

Mapped.run();
Hash.run();
