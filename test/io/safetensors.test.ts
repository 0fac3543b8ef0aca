import * as fs from 'node:fs';
import * as path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ClipkitError } from '../../src/errors';
import { throwsCode } from '../helpers';
import { f16ToF32Bits } from '../../src/io/dtype';
import { MAX_HEADER_BYTES, MAX_VIEW_BYTES, readSafetensors, readSafetensorsIndex } from '../../src/io/safetensors';
import { f32Bytes, rawFile, safetensorsBytes, tempDir } from './safetensors_writer';
import { REF_MODELS, refPath } from '../reference_fixtures';

const DTYPES = refPath('safetensors_dtypes', 'dtypes.safetensors');
const CN_MODEL = path.join(REF_MODELS, 'chinese_clip_tiny', 'model.safetensors');


/** float64 decodings written from the IEEE definitions, independent of the reader's bit tricks. */
function f16RefF64(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}
function bf16RefF64(h: number): number {
  const s = h & 0x8000 ? -1 : 1, e = (h >> 7) & 0xff, m = h & 0x7f;
  if (e === 0) return s * (m / 128) * 2 ** -126;
  if (e === 255) return m ? NaN : s * Infinity;
  return s * (1 + m / 128) * 2 ** (e - 127);
}
function u16s(b: Uint8Array): number[] {
  const out: number[] = [];
  for (let i = 0; i < b.length; i += 2) out.push(b[i] | (b[i + 1] << 8));
  return out;
}
function sameBits(got: Float32Array, want: Float32Array, name: string): void {
  assert.is(got.length, want.length, `${name} length`);
  const g = new Uint32Array(got.buffer, got.byteOffset, got.length), w = new Uint32Array(want.buffer, want.byteOffset, want.length);
  for (let i = 0; i < g.length; i++)
    if (g[i] !== w[i]) assert.unreachable(`${name}[${i}]: bits ${g[i].toString(16)} (${got[i]}) want ${w[i].toString(16)} (${want[i]})`);
}

// ---------------------------------------------------------------------------------------------
const Decode = suite('safetensors: dtypes fixture');

Decode('header, shapes and metadata', () => {
  const f = readSafetensors(DTYPES);
  assert.equal(f.metadata, { format: 'pt' });
  assert.equal([...f.tensors.keys()].sort(), [
    'decoded.bf16_as_f32', 'decoded.f16_as_f32', 'ints.i64', 'matrix.bf16', 'scalar.f32', 'values.bf16', 'values.f16', 'values.f32',
  ]);
  assert.equal(f.tensors.get('values.f16')!.shape, [316]);
  assert.equal(f.tensors.get('matrix.bf16')!.shape, [3, 5]);
  const scalar = f.tensors.get('scalar.f32')!;
  assert.equal(scalar.shape, []);
  assert.is(scalar.data().length, 1);
  assert.equal(scalar.tensor().shape, []);
  assert.equal(f.tensors.get('matrix.bf16')!.tensor().shape, [3, 5]);
});

Decode('F16 widening is bit-exact against the stored float32 decodings and the IEEE definition', () => {
  const f = readSafetensors(DTYPES);
  const t = f.tensors.get('values.f16')!;
  const got = t.data();
  sameBits(got, f.tensors.get('decoded.f16_as_f32')!.data(), 'values.f16');
  const raw = u16s(t.bytes());
  let subnormals = 0, infs = 0, nans = 0, negZero = 0;
  raw.forEach((h, i) => {
    const want = f16RefF64(h);
    if (Number.isNaN(want)) { nans++; assert.ok(Number.isNaN(got[i]), `[${i}] NaN`); return; }
    assert.ok(Object.is(got[i], want), `[${i}] f16 ${h.toString(16)}: got ${got[i]} want ${want}`);
    if ((h & 0x7c00) === 0 && (h & 0x3ff) !== 0) subnormals++;
    if (!Number.isFinite(want)) infs++;
    if (Object.is(want, -0)) negZero++;
  });
  assert.ok(subnormals > 0 && infs >= 2 && nans > 0 && negZero > 0, `edge cases present: ${subnormals} ${infs} ${nans} ${negZero}`);
  // Every one of the 65536 half values against the float64 definition.
  for (let h = 0; h < 65536; h++) {
    const want = f16RefF64(h), bits = new Uint32Array([f16ToF32Bits(h)]), g = new Float32Array(bits.buffer)[0];
    if (Number.isNaN(want)) assert.ok(Number.isNaN(g) && (bits[0] & 0x1fff) === 0, `half ${h.toString(16)} NaN`);
    else if (!Object.is(g, want)) assert.unreachable(`half ${h.toString(16)}: got ${g} want ${want}`);
  }
});

Decode('BF16 widening is bit-exact (bits << 16)', () => {
  const f = readSafetensors(DTYPES);
  const t = f.tensors.get('values.bf16')!;
  const got = t.data();
  sameBits(got, f.tensors.get('decoded.bf16_as_f32')!.data(), 'values.bf16');
  u16s(t.bytes()).forEach((h, i) => {
    const want = bf16RefF64(h);
    if (Number.isNaN(want)) assert.ok(Number.isNaN(got[i]), `[${i}] NaN`);
    else assert.ok(Object.is(got[i], want), `[${i}] bf16 ${h.toString(16)}: got ${got[i]} want ${want}`);
  });
  const m = f.tensors.get('matrix.bf16')!;
  assert.equal(Array.from(m.data()), u16s(m.bytes()).map(bf16RefF64));
});

Decode('F32 is a view into the file data, and the widened copies are made once', () => {
  const f = readSafetensors(DTYPES);
  const v = f.tensors.get('values.f32')!;
  const d = v.data();
  assert.is(d.buffer, v.bytes().buffer, 'same ArrayBuffer as the file bytes');
  assert.is(d.byteOffset, v.bytes().byteOffset);
  assert.is(f.tensors.get('scalar.f32')!.data().buffer, d.buffer);
  const w = f.tensors.get('values.f16')!;
  assert.is(w.data(), w.data(), 'cached');
  // The F32 values, decoded by hand from the bytes.
  const dv = new DataView(v.bytes().buffer, v.bytes().byteOffset, v.byteLength);
  for (let i = 0; i < d.length; i++) {
    const want = dv.getFloat32(4 * i, true);
    assert.ok(Number.isNaN(want) ? Number.isNaN(d[i]) : Object.is(d[i], want), `values.f32[${i}]`);
  }
});

Decode('an I64 tensor is listed but reading it as float32 names the tensor and the supported dtypes', () => {
  const f = readSafetensors(DTYPES);
  const t = f.tensors.get('ints.i64')!;
  assert.is(t.dtype, 'I64');
  assert.equal(t.shape, [7]);
  assert.is(t.bytes().length, 56);
  throwsCode(() => t.data(), 'E_DTYPE', /"ints\.i64".*I64.*F32, F16, BF16/);
});

Decode.run();

// ---------------------------------------------------------------------------------------------
const Layout = suite('safetensors: layout');

Layout('misaligned F32 data is copied and still exact; F16 at an odd offset too', () => {
  const { dir, cleanup } = tempDir('clipkit-st-');
  try {
    const vals = [1.5, -0, Infinity, 3e38, 1e-45, -2.25, 65504];
    const half = new Uint8Array([0x00, 0x3c, 0x01, 0x00, 0x00, 0x7c, 0x00, 0xfe]); // 1, min subnormal, inf, NaN
    const bf = new Uint8Array([0x80, 0x3f, 0x80, 0xbf]); // 1, -1
    const file = path.join(dir, 'odd.safetensors');
    // Data offsets: u 0, g 1 (odd), h 9 (odd), a 13 and b 41 (not multiples of 4).
    fs.writeFileSync(
      file,
      safetensorsBytes([
        { name: 'u', dtype: 'U8', shape: [1], bytes: new Uint8Array([7]) },
        { name: 'g', dtype: 'F16', shape: [2, 2], bytes: half },
        { name: 'h', dtype: 'BF16', shape: [2], bytes: bf },
        { name: 'a', dtype: 'F32', shape: [7], bytes: f32Bytes(vals) },
        { name: 'b', dtype: 'F32', shape: [1, 1], bytes: f32Bytes([7]) },
      ]),
    );
    const f = readSafetensors(file);
    const at = f.tensors.get('a')!;
    assert.is(at.bytes().byteOffset % 4, 1);
    const a = at.data();
    assert.is.not(a.buffer, at.bytes().buffer, 'a misaligned F32 tensor is copied');
    assert.equal(Array.from(a), Array.from(Float32Array.from(vals)));
    assert.ok(Object.is(a[1], -0));
    assert.equal(Array.from(f.tensors.get('h')!.data()), [1, -1]);
    const g = Array.from(f.tensors.get('g')!.data());
    assert.equal(g.slice(0, 3), [1, 2 ** -24, Infinity]);
    assert.ok(Number.isNaN(g[3]));
    assert.equal(Array.from(f.tensors.get('b')!.data()), [7]);
    throwsCode(() => f.tensors.get('u')!.data(), 'E_DTYPE', /"u" .* has dtype U8/);
  } finally {
    cleanup();
  }
});

Layout('empty tensors and a file with no tensors', () => {
  const { dir, cleanup } = tempDir('clipkit-st-');
  try {
    const file = path.join(dir, 'e.safetensors');
    fs.writeFileSync(file, safetensorsBytes([
      { name: 'z', dtype: 'F32', shape: [0, 4], bytes: new Uint8Array(0) },
      { name: 'y', dtype: 'BF16', shape: [3, 0], bytes: new Uint8Array(0) },
    ]));
    const f = readSafetensors(file);
    assert.is(f.tensors.get('z')!.data().length, 0);
    assert.equal(f.tensors.get('y')!.tensor().shape, [3, 0]);
    const none = path.join(dir, 'none.safetensors');
    fs.writeFileSync(none, rawFile('{}      '));
    assert.is(readSafetensors(none).tensors.size, 0);
  } finally {
    cleanup();
  }
});

Layout('a missing file is E_IO naming it', () => {
  throwsCode(() => readSafetensors('/nonexistent/clipkit/x.safetensors'), 'E_IO', /\/nonexistent\/clipkit\/x\.safetensors/);
});

Layout.run();

// ---------------------------------------------------------------------------------------------
const Hostile = suite('safetensors: hostile and corrupt files');

const ok = (extra = {}) => ({ dtype: 'F32', shape: [2], data_offsets: [0, 8], ...extra });
const hdr = (o: unknown) => JSON.stringify(o);
const DATA8 = f32Bytes([1, 2]);

const cases: [string, Buffer, RegExp][] = [
  ['empty file', Buffer.alloc(0), /shorter than the 8-byte header length/],
  ['7 bytes', Buffer.alloc(7), /shorter than the 8-byte/],
  ['header length 0', rawFile('', DATA8, 0n), /header length is 0/],
  ['header length 2^64-1', rawFile(hdr({}), DATA8, 2n ** 64n - 1n), /header length 18446744073709551615 runs past the end/],
  ['header length 2^53+1', rawFile(hdr({}), DATA8, 2n ** 53n + 1n), /runs past the end/],
  ['header length one past the file', rawFile('{}', new Uint8Array(0), 3n), /runs past the end/],
  ['invalid UTF-8', rawFile(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])), /not valid UTF-8/],
  ['invalid JSON', rawFile('{"a": {"dtype": "F32",'), /not valid JSON/],
  ['JSON array', rawFile('[1, 2, 3]'), /must be a JSON object but is an array/],
  ['JSON null', rawFile('null'), /must be a JSON object but is null/],
  ['JSON number', rawFile('12345678'), /must be a JSON object but is number/],
  ['JSON string', rawFile('"abc"'), /must be a JSON object but is string/],
  ['deep nesting', rawFile('['.repeat(200000) + ']'.repeat(200000)), /not valid JSON|must be a JSON object/],
  ['metadata not an object', rawFile(hdr({ __metadata__: ['x'] })), /__metadata__ must be an object of strings/],
  ['metadata value a number', rawFile(hdr({ __metadata__: { format: 1 } })), /__metadata__\.format must be a string but is number 1/],
  ['entry not an object', rawFile(hdr({ w: [0, 8] }), DATA8), /tensor "w" must be an object/],
  ['unknown dtype', rawFile(hdr({ w: ok({ dtype: 'F42' }) }), DATA8), /tensor "w" has unknown dtype "F42"/],
  ['dtype missing', rawFile(hdr({ w: { shape: [2], data_offsets: [0, 8] } }), DATA8), /tensor "w" has unknown dtype undefined/],
  ['shape not an array', rawFile(hdr({ w: ok({ shape: 2 }) }), DATA8), /"w": shape must be an array but is number 2/],
  ['negative dimension', rawFile(hdr({ w: ok({ shape: [-2] }) }), DATA8), /"w": shape\[0\] must be a non-negative integer but is -2/],
  ['fractional dimension', rawFile(hdr({ w: ok({ shape: [1, 2.5] }) }), DATA8), /shape\[1\] must be a non-negative integer but is 2\.5/],
  ['string dimension', rawFile(hdr({ w: ok({ shape: ['2'] }) }), DATA8), /shape\[0\] must be a non-negative integer but is "2"/],
  ['unsafe dimension', rawFile('{"w":{"dtype":"F32","shape":[9007199254740993],"data_offsets":[0,8]}}', DATA8), /shape\[0\] must be a non-negative integer/],
  ['data_offsets missing', rawFile(hdr({ w: { dtype: 'F32', shape: [2] } }), DATA8), /data_offsets must be \[begin, end\]/],
  ['data_offsets of 3', rawFile(hdr({ w: ok({ data_offsets: [0, 4, 8] }) }), DATA8), /data_offsets must be \[begin, end\]/],
  ['negative offset', rawFile(hdr({ w: ok({ data_offsets: [-8, 0] }) }), DATA8), /begin must be a non-negative integer but is -8/],
  ['fractional offset', rawFile(hdr({ w: ok({ data_offsets: [0, 7.5] }) }), DATA8), /end must be a non-negative integer but is 7\.5/],
  ['huge offset', rawFile('{"w":{"dtype":"F32","shape":[2],"data_offsets":[0,1e300]}}', DATA8), /end must be a non-negative integer/],
  ['begin after end', rawFile(hdr({ w: ok({ data_offsets: [8, 0] }) }), DATA8), /begin 8 is after end 0/],
  ['offsets past the data', rawFile(hdr({ w: ok({ data_offsets: [0, 16], shape: [4] }) }), DATA8), /run past the data section of 8 bytes/],
  ['size mismatch', rawFile(hdr({ w: ok({ shape: [3] }) }), DATA8), /shape \[3\] of F32 needs 12 bytes but data_offsets \[0, 8\] hold 8/],
  ['dtype size mismatch', rawFile(hdr({ w: ok({ dtype: 'F16' }) }), DATA8), /shape \[2\] of F16 needs 4 bytes but .* hold 8/],
  ['shape product overflow', rawFile(hdr({ w: ok({ shape: [2 ** 40, 2 ** 40, 2 ** 40] }) }), DATA8), /needs more than 2\^53 bytes but data_offsets \[0, 8\] hold 8/],
  ['overlap', rawFile(hdr({ a: ok({ data_offsets: [0, 8] }), b: ok({ shape: [1], data_offsets: [4, 8] }) }), DATA8), /"a" \[0, 8\) and "b" \[4, 8\) overlap/],
  ['duplicate name', rawFile('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"w":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', DATA8), /key "w" twice/],
  ['duplicate escaped name', rawFile('{"w":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"\\u0077":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}', DATA8), /key "w" twice/],
  ['duplicate field', rawFile('{"w":{"dtype":"F32","dtype":"F16","shape":[2],"data_offsets":[0,8]}}', DATA8), /key "dtype" twice inside "w"/],
];

for (const [label, bytes, match] of cases)
  Hostile(label, () => {
    const { dir, cleanup } = tempDir('clipkit-st-');
    try {
      const file = path.join(dir, 'bad.safetensors');
      fs.writeFileSync(file, bytes);
      const err = throwsCode(() => readSafetensors(file), 'E_FORMAT', match);
      assert.ok(err.message.includes(file), `message names the file: ${err.message}`);
    } finally {
      cleanup();
    }
  });

Hostile('a header length above the limit is refused before it is read (sparse file)', () => {
  const { dir, cleanup } = tempDir('clipkit-st-');
  try {
    const file = path.join(dir, 'big.safetensors');
    fs.writeFileSync(file, rawFile('{}', new Uint8Array(0), BigInt(MAX_HEADER_BYTES + 1)));
    fs.truncateSync(file, MAX_HEADER_BYTES + 64); // sparse: takes no disk space
    throwsCode(() => readSafetensors(file), 'E_FORMAT', /exceeds the limit of 100000000 bytes/);
  } finally {
    cleanup();
  }
});

Hostile('zero-size tensors may share an offset; braces inside names do not confuse the duplicate check', () => {
  const { dir, cleanup } = tempDir('clipkit-st-');
  try {
    const file = path.join(dir, 'ok.safetensors');
    const h = { '{"a":[': ok({ shape: [0], data_offsets: [4, 4] }), 'x,"}': ok({ shape: [0], data_offsets: [4, 4] }), w: ok() };
    fs.writeFileSync(file, rawFile(hdr(h), DATA8));
    assert.equal(Array.from(readSafetensors(file).tensors.get('w')!.data()), [1, 2]);
  } finally {
    cleanup();
  }
});

Hostile('truncated copies of real files at many cut points', () => {
  const { dir, cleanup } = tempDir('clipkit-st-');
  try {
    for (const src of [DTYPES, CN_MODEL]) {
      const whole = fs.readFileSync(src);
      const headerEnd = 8 + Number(whole.readBigUInt64LE(0));
      const cuts = [0, 1, 7, 8, 9, 16, headerEnd - 1, headerEnd, headerEnd + 1, headerEnd + 2, (headerEnd + whole.length) >> 1, whole.length - 2, whole.length - 1];
      for (const cut of cuts) {
        const file = path.join(dir, `cut${cut}.safetensors`);
        fs.writeFileSync(file, whole.subarray(0, cut));
        throwsCode(() => readSafetensors(file), 'E_FORMAT', /Invalid safetensors file .*cut\d+\.safetensors/);
        fs.rmSync(file);
      }
    }
  } finally {
    cleanup();
  }
});

Hostile('corrupted header bytes never crash: every single-byte change is either read or E_FORMAT', () => {
  const { dir, cleanup } = tempDir('clipkit-st-');
  try {
    const whole = fs.readFileSync(DTYPES);
    const headerEnd = 8 + Number(whole.readBigUInt64LE(0));
    const file = path.join(dir, 'flip.safetensors');
    let refused = 0;
    for (let i = 0; i < headerEnd; i += 3) {
      const copy = Buffer.from(whole);
      copy[i] = copy[i] ^ (i < 8 ? 0x40 : 0x11);
      fs.writeFileSync(file, copy);
      try {
        readSafetensors(file);
      } catch (err) {
        assert.instance(err, ClipkitError, `byte ${i}: ${(err as Error).message}`);
        refused++;
      }
    }
    assert.ok(refused > 100, `refused ${refused}`);
  } finally {
    cleanup();
  }
});

Hostile.run();

// ---------------------------------------------------------------------------------------------
const Index = suite('safetensors: sharded index');

/** Splits the chinese_clip_tiny file into `n` shards plus an index. */
function writeShards(dir: string, n: number): Map<string, Uint8Array> {
  const whole = readSafetensors(CN_MODEL);
  const names = [...whole.tensors.keys()];
  const weightMap: Record<string, string> = {};
  const want = new Map<string, Uint8Array>();
  for (let s = 0; s < n; s++) {
    const shard = `model-0000${s + 1}-of-0000${n}.safetensors`;
    const mine = names.filter((_, i) => i % n === s);
    fs.writeFileSync(
      path.join(dir, shard),
      safetensorsBytes(mine.map((name) => {
        const t = whole.tensors.get(name)!;
        weightMap[name] = shard;
        want.set(name, t.bytes());
        return { name, dtype: t.dtype, shape: [...t.shape], bytes: t.bytes() };
      }), { metadata: { format: 'pt' } }),
    );
  }
  fs.writeFileSync(path.join(dir, 'model.safetensors.index.json'), JSON.stringify({ metadata: { total_size: 7367170 }, weight_map: weightMap }, null, 2));
  return want;
}

Index('three shards give back every tensor with the same bytes and values', () => {
  const { dir, cleanup } = tempDir('clipkit-idx-');
  try {
    const want = writeShards(dir, 3);
    const ck = readSafetensorsIndex(dir);
    assert.is(ck.files.length, 3);
    assert.equal(ck.metadata, { total_size: 7367170 });
    assert.is(ck.tensors.size, want.size);
    const whole = readSafetensors(CN_MODEL);
    for (const [name, bytes] of want) {
      const t = ck.tensors.get(name)!;
      assert.equal(t.shape, whole.tensors.get(name)!.shape, name);
      assert.ok(Buffer.from(t.bytes()).equals(Buffer.from(bytes)), `${name} bytes`);
    }
    const w = ck.tensors.get('text_model.embeddings.word_embeddings.weight')!.data();
    const ref = whole.tensors.get('text_model.embeddings.word_embeddings.weight')!.data();
    assert.ok(Buffer.from(w.buffer, w.byteOffset, w.byteLength).equals(Buffer.from(ref.buffer, ref.byteOffset, ref.byteLength)));
  } finally {
    cleanup();
  }
});

Index('a missing shard, a name absent from its shard, a path outside the folder and a bad index', () => {
  const { dir, cleanup } = tempDir('clipkit-idx-');
  try {
    writeShards(dir, 2);
    const indexPath = path.join(dir, 'model.safetensors.index.json');
    const index = JSON.parse(fs.readFileSync(indexPath, 'utf8'));

    fs.renameSync(path.join(dir, 'model-00002-of-00002.safetensors'), path.join(dir, 'moved.safetensors'));
    throwsCode(() => readSafetensorsIndex(dir), 'E_IO', /Shard model-00002-of-00002\.safetensors listed in .*index\.json .* does not exist/);
    fs.renameSync(path.join(dir, 'moved.safetensors'), path.join(dir, 'model-00002-of-00002.safetensors'));

    fs.writeFileSync(indexPath, JSON.stringify({ weight_map: { ...index.weight_map, 'ghost.weight': 'model-00001-of-00002.safetensors' } }));
    throwsCode(() => readSafetensorsIndex(dir), 'E_FORMAT', /"ghost\.weight" is listed in shard model-00001-of-00002\.safetensors but .* does not contain it/);

    fs.writeFileSync(indexPath, JSON.stringify({ weight_map: { a: '../model-00001-of-00002.safetensors' } }));
    throwsCode(() => readSafetensorsIndex(dir), 'E_FORMAT', /weight_map\["a"\] must be a file name in the same folder/);

    fs.writeFileSync(indexPath, JSON.stringify({ weight_map: [] }));
    throwsCode(() => readSafetensorsIndex(dir), 'E_FORMAT', /weight_map must be an object but is an array/);

    fs.writeFileSync(indexPath, '{"weight_map": ');
    throwsCode(() => readSafetensorsIndex(dir), 'E_FORMAT', /not valid JSON/);

    fs.rmSync(indexPath);
    throwsCode(() => readSafetensorsIndex(dir), 'E_IO', /Cannot read safetensors index/);
  } finally {
    cleanup();
  }
});

Index.run();

const NativeRead = suite('safetensors: native parallel read');

NativeRead('readFile gives the file\'s bytes at any offset and length, 64-byte aligned; errors name the file', () => {
  const { native } = require('../../src/native') as typeof import('../../src/native');
  const { dir, cleanup } = tempDir('clipkit-read-');
  const file = path.join(dir, 'bytes.bin');
  const bytes = new Uint8Array(20 * 2 ** 20 + 77); // several 8 MiB chunks and a ragged end
  for (let i = 0; i < bytes.length; i++) bytes[i] = (i * 2654435761) >>> 24;
  fs.writeFileSync(file, bytes);
  for (const [offset, length, threads] of [[0, bytes.length, 2], [13, bytes.length - 13, 3], [5, 1000, 1], [bytes.length, 0, 2]]) {
    const got = new Uint8Array(native().readFile({ path: file, offset, length, threads }));
    assert.is(got.length, length);
    assert.ok(Buffer.from(got).equals(Buffer.from(bytes.subarray(offset, offset + length))), `offset ${offset} length ${length}`);
    assert.is(new Float32Array(got.buffer, 0, 0).byteOffset % 4, 0);
  }
  const code = (f: () => unknown) => {
    try {
      f();
    } catch (err) {
      return `${(err as { code?: string }).code}: ${(err as Error).message}`;
    }
    return 'no error';
  };
  assert.match(code(() => native().readFile({ path: path.join(dir, 'missing.bin'), offset: 0, length: 1 })), /^E_IO: Cannot open .*missing\.bin/);
  assert.match(code(() => native().readFile({ path: file, offset: 10, length: bytes.length })), /^E_FORMAT: .*bytes\.bin.*fewer than/);
  assert.match(code(() => native().readFile({ path: dir, offset: 0, length: 1 })), /^E_(IO|FORMAT): .*/);
  assert.match(code(() => native().readFile({ path: file, offset: 0, length: 1, threads: 0 })), /threads/);
  cleanup();
});

NativeRead.run();

const Big = suite('safetensors: a data section over 4 GiB');

Big('a single file whose data section passes 4 GiB loads, tensor by tensor, without reading the gap', () => {
  const { dir, cleanup } = tempDir('clipkit-st-big-');
  try {
    const far = 2 ** 32 + 64; // past what one typed array views on Node 20
    const header = JSON.stringify({
      __metadata__: { format: 'pt' },
      near: { dtype: 'F32', shape: [2], data_offsets: [0, 8] },
      far: { dtype: 'F16', shape: [2], data_offsets: [far, far + 4] },
    });
    const padded = header.padEnd(Math.ceil(header.length / 8) * 8, ' ');
    const file = path.join(dir, 'big.safetensors');
    const dataStart = 8 + padded.length;
    // A sparse file: its 4 GiB of zeros take no disk and are never read.
    const fd = fs.openSync(file, 'w');
    try {
      fs.writeSync(fd, rawFile(padded, f32Bytes([1.5, -2])));
      fs.writeSync(fd, new Uint8Array([0x00, 0x3c, 0x00, 0xc0]), 0, 4, dataStart + far); // F16 1, -2
      fs.ftruncateSync(fd, dataStart + far + 4);
    } finally {
      fs.closeSync(fd);
    }
    assert.ok(far > MAX_VIEW_BYTES - 1024, 'the data section is over the one-array limit');
    const st = readSafetensors(file);
    assert.equal(Array.from(st.tensors.get('near')!.data()), [1.5, -2]);
    assert.equal(Array.from(st.tensors.get('far')!.data()), [1, -2]);
    assert.is(st.metadata.format, 'pt');
  } finally {
    cleanup();
  }
});

Big.run();

const Mapped = suite('safetensors: read from a mapping');

Mapped('a mapped file gives the same tensors as a read one, as views into the mapping; a file changed since it was mapped is E_IO', async () => {
  const { mapFile } = require('../../src/io/mapped') as typeof import('../../src/io/mapped');
  const { dir, cleanup } = tempDir('clipkit-st-mapped-');
  const file = path.join(dir, 'w.safetensors');
  const values = Array.from({ length: 63 }, (_, i) => Math.sin(i + 1) * 3);
  const half = new Uint8Array(new Uint16Array(values.slice(0, 7).map((v) => f16Bits(v))).buffer);
  // align 4: the F32 tensor starts 4-byte aligned (a view); the second one follows an F16 of 7 values (14 bytes), so it is not (a copy).
  fs.writeFileSync(file, safetensorsBytes([
    { name: 'a', dtype: 'F32', shape: [7, 9], bytes: f32Bytes(values) },
    { name: 'h', dtype: 'F16', shape: [7], bytes: half },
    { name: 'b', dtype: 'F32', shape: [3], bytes: f32Bytes(values.slice(0, 3)) },
  ], { align: 4 }));
  const read = readSafetensors(file);
  const mapped = await mapFile(file);
  const viaMap = readSafetensors(file, { mapped: new Map([[path.resolve(file), mapped]]) });
  for (const name of ['a', 'h', 'b']) {
    assert.equal([...viaMap.tensors.get(name)!.data()], [...read.tensors.get(name)!.data()], name);
    assert.equal(viaMap.tensors.get(name)!.shape, read.tensors.get(name)!.shape, name);
  }
  assert.is(viaMap.tensors.get('a')!.data().buffer, mapped, 'an aligned F32 tensor is a view into the mapping');
  fs.appendFileSync(file, Buffer.alloc(8));
  throwsCode(() => readSafetensors(file, { mapped: new Map([[path.resolve(file), mapped]]) }), 'E_IO', /changed while being read/);
  cleanup();
});

/** float16 bits of a value (round to nearest even is not needed: any f16 values do here). */
function f16Bits(v: number): number {
  const f = new Float32Array([v]), u = new Uint32Array(f.buffer)[0];
  const sign = (u >>> 16) & 0x8000, exp = ((u >>> 23) & 0xff) - 127 + 15, mant = (u >>> 13) & 0x3ff;
  return exp <= 0 ? sign : exp >= 31 ? sign | 0x7c00 : sign | (exp << 10) | mant;
}

Mapped.run();
