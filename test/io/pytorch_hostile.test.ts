import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ClipkitError } from '../../src/errors';
import { throwsCode } from '../helpers';
import { MAX_EXTRA_DEPTH, MAX_EXTRA_VALUES, parseTorchCheckpoint, readTorchCheckpoint } from '../../src/io/pytorch';
import { MAX_MARK_DEPTH } from '../../src/io/unpickle';
import { crc32 } from '../../src/io/zip';
import { f32Bytes, PickleWriter, stateDictPickle, TensorSpec, torchZip, writeTensor, zipBytes } from './torch_writer';
import { OWN_FIXTURES } from '../reference_fixtures';

const CASES = path.join(OWN_FIXTURES, 'checkpoints', 'cases');
const parse = (bytes: Uint8Array) => parseTorchCheckpoint(bytes, 'hostile.pt');
const FOUR: TensorSpec = { storage: { type: 'FloatStorage', key: '0', numel: 4 }, size: [2, 2] };
const FOUR_BYTES = { '0': f32Bytes([1, 2, 3, 4]) };

/** A state dict {"w": FOUR} whose top-level dict also holds `extra`, written by `writeExtra`. */
function withExtra(writeExtra: (p: PickleWriter) => void): Uint8Array {
  const p = new PickleWriter().proto(2).emptyDict().mark();
  p.str('state_dict').global('collections', 'OrderedDict').emptyTuple().reduce().mark();
  writeTensor(p.str('w'), FOUR).setitems();
  p.str('extra');
  writeExtra(p);
  return torchZip(p.setitems().stop().bytes(), FOUR_BYTES);
}

/** data.pkl calls `module.name(*args)` with string arguments inside an otherwise valid state dict. */
function callingPickle(module: string, name: string, args: string[], stackGlobal = false): Uint8Array {
  const p = new PickleWriter().proto(stackGlobal ? 4 : 2).emptyDict().mark().str('payload');
  if (stackGlobal) p.stackGlobal(module, name);
  else p.global(module, name);
  p.mark();
  for (const a of args) p.str(a);
  p.tuple().reduce().setitems().stop();
  return torchZip(p.bytes());
}

// ---------------------------------------------------------------------------------------------
const Globals = suite('pytorch: pickles that name code');

Globals('os.system, subprocess.Popen, builtins.eval and builtins.exec are refused by name, and nothing runs', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clipkit-pickle-'));
  try {
    const marker = path.join(dir, 'marker');
    const attempts: [string, string, string[]][] = [
      ['os', 'system', [`touch ${marker}`]],
      ['posix', 'system', [`touch ${marker}`]],
      ['subprocess', 'Popen', ['touch', marker]],
      ['subprocess', 'check_call', ['touch', marker]],
      ['builtins', 'eval', [`open(${JSON.stringify(marker)}, 'w')`]],
      ['builtins', 'exec', [`open(${JSON.stringify(marker)}, 'w')`]],
      ['builtins', 'open', [marker, 'w']], // would create the file if it were called
      ['torch', 'load', [marker]],
      ['torch._utils', '_rebuild_tensor_v2_not_really', []],
      ['collections', 'OrderedDictX', []],
    ];
    for (const [module, name, args] of attempts)
      for (const stackGlobal of [false, true]) {
        const err = throwsCode(() => parse(callingPickle(module, name, args, stackGlobal)), 'E_FORMAT', new RegExp(`Refusing to load global ${module.replace('.', '\\.')}\\.${name} from hostile\\.pt`));
        assert.match(err.message, /nothing is imported or called/);
      }
    assert.not.ok(fs.existsSync(marker), 'a refused global must not have run');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Globals('odd global names are refused and quoted: empty, newlines, dots, spaces', () => {
  throwsCode(() => parse(callingPickle('', 'system', [])), 'E_FORMAT', /Refusing to load global ""\."system"/);
  throwsCode(() => parse(callingPickle('os', '', [])), 'E_FORMAT', /Refusing to load global "os"\.""/);
  throwsCode(() => parse(callingPickle('torch._utils\n_x', '_rebuild_tensor_v2', [], true)), 'E_FORMAT', /Refusing to load global "torch\._utils\\n_x"\."_rebuild_tensor_v2"/);
  throwsCode(() => parse(callingPickle('collections', 'OrderedDict\nos', [], true)), 'E_FORMAT', /Refusing to load global "collections"\."OrderedDict\\nos"/);
  throwsCode(() => parse(callingPickle('collections.', 'OrderedDict', [], true)), 'E_FORMAT', /Refusing to load global "collections\."/);
  throwsCode(() => parse(callingPickle('collections', 'OrderedDict.__init__', [], true)), 'E_FORMAT', /Refusing to load global/);
  throwsCode(() => parse(callingPickle(' os', 'system', [], true)), 'E_FORMAT', /Refusing to load global " os"/);
  // GLOBAL reads two lines: "torch._utils\n_x\n" is module torch._utils, name _x.
  const p = new PickleWriter().proto(2).raw(0x63).text('torch._utils\n_x\n').stop();
  throwsCode(() => parse(torchZip(p.bytes())), 'E_FORMAT', /Refusing to load global torch\._utils\._x/);
  // A GLOBAL without its newlines runs off the end.
  throwsCode(() => parse(torchZip(new PickleWriter().proto(2).raw(0x63).text('os system').bytes())), 'E_FORMAT', /GLOBAL module is not a line/);
});

Globals('allowed globals are still checked: REDUCE on a storage type, NEWOBJ of a rebuild function, bad arguments', () => {
  const p1 = new PickleWriter().proto(2).global('torch', 'FloatStorage').emptyTuple().reduce().stop();
  throwsCode(() => parse(torchZip(p1.bytes())), 'E_FORMAT', /REDUCE needs a callable global but found a StorageType/);
  const p2 = new PickleWriter().proto(2).global('torch._utils', '_rebuild_tensor_v2').emptyTuple().raw(0x81).stop();
  throwsCode(() => parse(torchZip(p2.bytes())), 'E_FORMAT', /torch\._utils\._rebuild_tensor_v2 cannot be constructed/);
  const p3 = new PickleWriter().proto(2).global('torch._utils', '_rebuild_tensor_v2').mark().str('not a storage').int(0).tuple().reduce().stop();
  throwsCode(() => parse(torchZip(p3.bytes())), 'E_FORMAT', /_rebuild_tensor_v2 takes 6 to 7 arguments but got 2/);
  const p4 = new PickleWriter().proto(2).global('_codecs', 'encode').mark().str('x').str('rot13').tuple().reduce().stop();
  throwsCode(() => parse(torchZip(p4.bytes())), 'E_FORMAT', /_codecs\.encode is allowed only as encode\(str, 'latin1'\)/);
});

Globals('TorchScript classes are inert records, and only inside TorchScript archives', () => {
  const constants = [{ name: 'archive/constants.pkl', data: new PickleWriter().proto(2).emptyTuple().stop().bytes() }];
  const jit = (p: PickleWriter, storages: Record<string, Uint8Array> = {}) => parse(torchZip(p.bytes(), storages, 'archive', constants));
  /** `__torch__.M` with attributes written by `attrs` (a SETITEMS body). */
  const module = (p: PickleWriter, cls: string, attrs: (p: PickleWriter) => void) => {
    p.global('__torch__', cls).emptyTuple().raw(0x81).emptyDict().mark();
    attrs(p);
    return p.setitems().build();
  };
  const valid = module(new PickleWriter().proto(2), 'M', (p) => {
    writeTensor(p.str('w'), FOUR);
    p.str('training').bool(false).str('sub');
    module(p, 'Sub', (q) => writeTensor(q.str('b'), { ...FOUR, size: [4] }));
  }).stop();
  const ck = jit(valid, FOUR_BYTES);
  assert.is(ck.format, 'torchscript');
  assert.equal([...ck.tensors.keys()], ['w', 'sub.b']);
  assert.equal([...ck.tensors.get('sub.b')!.data()], [1, 2, 3, 4]);

  // The same pickle in an ordinary torch.save archive: the class is refused.
  throwsCode(() => parse(torchZip(valid.bytes(), FOUR_BYTES)), 'E_FORMAT', /Refusing to load global __torch__\.M/);
  // Calling a TorchScript class, constructing it with arguments, building it twice or with a non-dict state.
  const call = new PickleWriter().proto(2).global('__torch__.os', 'system').mark().str('true').tuple().reduce().stop();
  throwsCode(() => jit(call), 'E_FORMAT', /__torch__\.os\.system cannot be called/);
  const args = new PickleWriter().proto(2).global('__torch__', 'M').mark().str('x').tuple().raw(0x81).stop();
  throwsCode(() => jit(args), 'E_FORMAT', /TorchScript class __torch__\.M is constructed with arguments \("x"\)/);
  const twice = module(new PickleWriter().proto(2), 'M', () => {}).emptyDict().build().stop();
  throwsCode(() => jit(twice), 'E_FORMAT', /TorchScript object __torch__\.M is built twice/);
  const list = new PickleWriter().proto(2).global('__torch__', 'M').emptyTuple().raw(0x81).emptyList().build().stop();
  throwsCode(() => jit(list), 'E_FORMAT', /TorchScript object __torch__\.M has state a list, not a dict of attributes/);
  // A module that contains itself.
  const loop = new PickleWriter().proto(2).global('__torch__', 'M').emptyTuple().raw(0x81).put(9).emptyDict().str('me').get(9).setitem().build().stop();
  throwsCode(() => jit(loop), 'E_FORMAT', /TorchScript module "me\." contains itself/);
  // Other torch.jit helpers stay refused.
  const helper = new PickleWriter().proto(2).global('torch.jit._pickle', 'build_tensor_from_id').mark().int(0).tuple().reduce().stop();
  throwsCode(() => jit(helper), 'E_FORMAT', /Refusing to load global torch\.jit\._pickle\.build_tensor_from_id/);
});

// ---------------------------------------------------------------------------------------------
const Opcodes = suite('pytorch: malformed pickles');

const pickleError = (p: PickleWriter | Uint8Array, match: RegExp) =>
  throwsCode(() => parse(torchZip(p instanceof PickleWriter ? p.bytes() : p)), 'E_FORMAT', match);

Opcodes('unknown and unsupported opcodes', () => {
  pickleError(new PickleWriter().proto(2).raw(0xff), /unknown opcode 0xff \(at byte 2\)/);
  pickleError(new PickleWriter().proto(2).raw(0x69).text('os\nsystem\n'), /opcode INST \(0x69\) is not supported/);
  pickleError(new PickleWriter().proto(2).raw(0x49).text('1\n'), /opcode INT \(0x49\) is not supported/);
  pickleError(new PickleWriter().proto(2).raw(0x82, 1), /opcode EXT1 \(0x82\) is not supported/);
  pickleError(new PickleWriter().proto(5).raw(0x97), /opcode NEXT_BUFFER/);
  pickleError(new PickleWriter().proto(6), /pickle protocol 6 is newer than the 5 clipkit reads/);
});

Opcodes('stack underflow, MARK misuse and memo misuse', () => {
  pickleError(new PickleWriter().proto(2).reduce(), /stack underflow \(opcode REDUCE at byte 2\)/);
  pickleError(new PickleWriter().proto(2).append(), /stack underflow/);
  pickleError(new PickleWriter().proto(2).stop(), /stack underflow \(opcode STOP/);
  pickleError(new PickleWriter().proto(2).emptyList().mark().append(), /needs a value above the last MARK/);
  pickleError(new PickleWriter().proto(2).str('a').tuple(), /no MARK to pop to/);
  pickleError(new PickleWriter().proto(2).mark().str('k').setitems(), /stack underflow \(opcode SETITEMS/);
  pickleError(new PickleWriter().proto(2).get(5), /memo slot 5 was never set \(opcode BINGET/);
  pickleError(new PickleWriter().proto(2).put(0), /stack underflow \(opcode BINPUT/);
  pickleError(new PickleWriter().proto(2).emptyDict().mark().str('odd').setitems(), /odd number of items/);
  pickleError(new PickleWriter().proto(2).emptyList().str('k').str('v').setitem(), /SETITEM needs a dict but found a list/);
  pickleError(new PickleWriter().proto(2).emptyDict().str('v').append(), /APPEND needs a list but found a dict/);
  pickleError(new PickleWriter().proto(2).emptyList().emptyDict().build(), /BUILD on a list is not supported/);
  pickleError(new PickleWriter().proto(2).emptyDict().emptyList().emptyList().setitem(), /a list cannot be a dict key/);
});

Opcodes('truncated arguments and a pickle without STOP', () => {
  pickleError(new PickleWriter().proto(2).raw(0x58, 0xe8, 0x03, 0, 0).text('abc'), /needs 1000 bytes of argument but the pickle ends after 3/);
  pickleError(new PickleWriter().proto(2).raw(0x4a, 1, 2), /needs 4 bytes of argument/);
  pickleError(new PickleWriter().proto(2).raw(0x8d, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x7f), /length \d+ is longer than the pickle/);
  pickleError(new PickleWriter().proto(2).raw(0x8b, 0xff, 0xff, 0xff, 0x7f), /integer of 2147483647 bytes is longer than the 1024 allowed/);
  pickleError(new PickleWriter().proto(2).emptyDict(), /the pickle ends without STOP/);
  pickleError(new PickleWriter().proto(2).raw(0x8c, 2, 0xc3, 0x28).stop(), /string is not valid UTF-8/);
});

Opcodes('deep nesting: MARKs, nested lists, self-reference and a memo bomb end in errors, quickly', () => {
  const marks = new PickleWriter().proto(2);
  for (let i = 0; i <= MAX_MARK_DEPTH; i++) marks.mark();
  pickleError(marks, new RegExp(`MARKs nested deeper than ${MAX_MARK_DEPTH}`));

  // 10 000 nested lists are built without recursion; turning them into plain values stops at the limit.
  throwsCode(() => parse(withExtra((p) => {
    for (let i = 0; i < 10_000; i++) p.emptyList();
    for (let i = 0; i < 9_999; i++) p.append();
  })), 'E_FORMAT', new RegExp(`"extra(\\.0)+" is nested deeper than ${MAX_EXTRA_DEPTH} levels`));

  // A list that contains itself.
  throwsCode(() => parse(withExtra((p) => p.emptyList().put(200).get(200).append())), 'E_FORMAT', /"extra\.0" contains itself/);

  // 2^25 paths through 25 memoised lists of two references each (shallower than the depth limit):
  // refused by the value count, not walked.
  const t0 = Date.now();
  throwsCode(() => parse(withExtra((p) => {
    p.emptyList().put(0).raw(0x30); // POP: the lists live in the memo only
    for (let i = 1; i < 25; i++) p.mark().get(i - 1).get(i - 1).raw(0x6c).put(i).raw(0x30);
    p.get(24);
  })), 'E_FORMAT', new RegExp(`more than ${MAX_EXTRA_VALUES} values outside the state dict`));
  assert.ok(Date.now() - t0 < 5000, `the memo bomb took ${Date.now() - t0} ms`);
});

// ---------------------------------------------------------------------------------------------
const Storages = suite('pytorch: storages and tensors that do not fit');

Storages('a huge declared element count is refused against the entry size, before anything is allocated', () => {
  const huge = stateDictPickle({ w: { storage: { type: 'FloatStorage', key: '0', numel: 2 ** 50 }, size: [2 ** 25, 2 ** 25] } });
  throwsCode(() => parse(torchZip(huge, FOUR_BYTES)), 'E_FORMAT', /storage "0" declares 1125899906842624 F32 elements \(4503599627370496 bytes\) but archive\/data\/0 holds 16 bytes/);
  const off = stateDictPickle({ w: { storage: { type: 'FloatStorage', key: '0', numel: 5 }, size: [5] } });
  throwsCode(() => parse(torchZip(off, FOUR_BYTES)), 'E_FORMAT', /declares 5 F32 elements \(20 bytes\) but archive\/data\/0 holds 16 bytes/);
});

Storages('tensors reaching past their storage by offset, size or stride; a missing storage; a bad persistent id', () => {
  const cases: [TensorSpec, RegExp][] = [
    [{ ...FOUR, size: [5] }, /tensor "w" \(offset 0, size \[5\], stride \[1\]\) reaches element 4 of storage 0, which has 4/],
    [{ ...FOUR, offset: 3, size: [2] }, /reaches element 4/],
    [{ ...FOUR, size: [2, 2], stride: [3, 1] }, /reaches element 4/],
    [{ ...FOUR, size: [2 ** 20, 2 ** 20], stride: [0, 0] }, /tensor "w" is a strided view of 4398046511104 bytes, more than the whole file \(\d+ bytes\)/],
    [{ ...FOUR, size: [2 ** 30, 2 ** 30], stride: [0, 0] }, /strided view of more than 2\^53 bytes/],
    [{ ...FOUR, storage: { type: 'FloatStorage', key: '7', numel: 4 } }, /storage "7" \(archive\/data\/7\) is missing from the archive/],
    [{ ...FOUR, storage: { type: 'QInt8Storage', key: '0', numel: 4 } }, /Refusing to load global torch\.QInt8Storage/],
  ];
  for (const [spec, match] of cases) throwsCode(() => parse(torchZip(stateDictPickle({ w: spec }), FOUR_BYTES)), 'E_FORMAT', match);
  const pid = new PickleWriter().proto(2).emptyDict().str('w').mark().str('storage').str('FloatStorage').str('0').tuple().persid().setitem().stop();
  pickleError(pid, /persistent id must be \('storage', <storage type>, key, location, numel\) but is \("storage", "FloatStorage", "0"\)/);
  // The same key used with two dtypes.
  const two = stateDictPickle({ a: FOUR, b: { storage: { type: 'IntStorage', key: '0', numel: 4 }, size: [4] } });
  throwsCode(() => parse(torchZip(two, FOUR_BYTES)), 'E_FORMAT', /storage 0 is used as F32 and as I32/);
});

Storages('an expanded (stride 0) view within the limits is gathered; zero-size tensors read', () => {
  const ck = parse(torchZip(stateDictPickle({ e: { ...FOUR, offset: 1, size: [3, 2], stride: [0, 1] }, z: { ...FOUR, size: [0, 7] } }), FOUR_BYTES));
  assert.equal([...ck.tensors.get('e')!.data()], [2, 3, 2, 3, 2, 3]);
  assert.is(ck.tensors.get('z')!.data().length, 0);
});

Storages('torch >= 2 forms: _rebuild_tensor_v3 over an untyped storage, _rebuild_from_type_v2, parameters with state', () => {
  // v3: ('storage', torch.UntypedStorage, key, 'cpu', nbytes) reinterpreted with an explicit dtype.
  const p = new PickleWriter().proto(2).emptyDict().str('v3').global('torch._utils', '_rebuild_tensor_v3').mark();
  p.mark().str('storage').global('torch.storage', 'UntypedStorage').str('0').str('cpu').int(16).tuple().persid();
  p.int(1).mark().int(3).tuple().mark().int(1).tuple().bool(false).global('collections', 'OrderedDict').emptyTuple().reduce();
  p.global('torch', 'float32').tuple().reduce();
  // _rebuild_from_type_v2(_rebuild_tensor_v2, torch.Tensor, (args), {attributes}) and _rebuild_parameter_with_state.
  p.setitem().str('typed').global('torch._tensor', '_rebuild_from_type_v2').mark().global('torch._utils', '_rebuild_tensor_v2').global('torch', 'Tensor');
  p.mark().mark().str('storage').global('torch', 'FloatStorage').str('1').str('cpu').int(4).tuple().persid();
  p.int(0).mark().int(4).tuple().mark().int(1).tuple().bool(false).global('collections', 'OrderedDict').emptyTuple().reduce().tuple();
  p.emptyDict().tuple().reduce().setitem();
  p.str('param').global('torch._utils', '_rebuild_parameter_with_state').mark();
  writeTensor(p, { storage: { type: 'FloatStorage', key: '1', numel: 4 }, offset: 2, size: [2] });
  p.bool(true).global('collections', 'OrderedDict').emptyTuple().reduce().emptyDict().tuple().reduce().setitem().stop();
  const ck = parse(torchZip(p.bytes(), { '0': f32Bytes([1, 2, 3, 4]), '1': f32Bytes([5, 6, 7, 8]) }));
  assert.is(ck.tensors.get('v3')!.dtype, 'F32');
  assert.equal([...ck.tensors.get('v3')!.data()], [2, 3, 4]);
  assert.equal([...ck.tensors.get('typed')!.data()], [5, 6, 7, 8]);
  assert.equal([...ck.tensors.get('param')!.data()], [7, 8]);
  // A dtype that does not match a typed storage is refused.
  const q = new PickleWriter().proto(2).emptyDict().str('bad').global('torch._utils', '_rebuild_tensor_v3').mark();
  q.mark().str('storage').global('torch', 'HalfStorage').str('0').str('cpu').int(8).tuple().persid();
  q.int(0).mark().int(4).tuple().mark().int(1).tuple().bool(false).global('collections', 'OrderedDict').emptyTuple().reduce();
  q.global('torch', 'float32').tuple().reduce().setitem().stop();
  throwsCode(() => parse(torchZip(q.bytes(), FOUR_BYTES)), 'E_FORMAT', /_rebuild_tensor_v3: dtype torch\.float32 over a F16 storage/);
});

Storages('what is not a state dict: a list, a dict without tensors', () => {
  pickleError(new PickleWriter().proto(2).emptyList().stop(), /the pickled object is a list, not a dict of tensors/);
  pickleError(new PickleWriter().proto(2).emptyDict().str('epoch').int(3).setitem().stop(), /no tensors found: the top-level dict has keys "epoch"/);
});

// ---------------------------------------------------------------------------------------------
const Zip = suite('pytorch: broken zip archives');
const VALID = torchZip(stateDictPickle({ w: FOUR }), FOUR_BYTES);

Zip('the valid archive reads (and crc32 is the standard one)', () => {
  assert.equal([...parse(VALID).tensors.get('w')!.data()], [1, 2, 3, 4]);
  assert.is(crc32(Buffer.from('The quick brown fox jumps over the lazy dog')), 0x414fa339);
});

Zip('zip64 extra fields carry the sizes and offsets; a zip64 marker without them is refused', () => {
  const files = [
    { name: 'archive/data.pkl', data: stateDictPickle({ w: FOUR }) },
    { name: 'archive/data/0', data: f32Bytes([1, 2, 3, 4]) },
  ];
  assert.equal([...parse(zipBytes(files, { zip64: true })).tensors.get('w')!.data()], [1, 2, 3, 4]);
  throwsCode(() => parse(zipBytes(files, { zip64: true, zip64Extra: false })), 'E_FORMAT', /entry "archive\/data\.pkl" needs a zip64 extra field but has none/);
});

Zip('truncated archives at every cut point: always a ClipkitError, never a crash', () => {
  for (let cut = 0; cut < VALID.length; cut++) {
    const err = throwsCode(() => parse(VALID.subarray(0, cut)), 'E_FORMAT', /./);
    if (cut > 8 && cut < VALID.length - 22) assert.match(err.message, /no end-of-central-directory record/);
  }
});

Zip('every single-byte change either still reads or is a ClipkitError', () => {
  let refused = 0;
  for (let i = 0; i < VALID.length; i++) {
    const bad = Buffer.from(VALID);
    bad[i] ^= 0x5a;
    try {
      parse(bad).tensors.forEach((t) => t.data());
    } catch (err) {
      if (!(err instanceof ClipkitError)) assert.unreachable(`byte ${i}: ${(err as Error).constructor.name}: ${(err as Error).message}`);
      refused++;
    }
  }
  assert.ok(refused > VALID.length / 4, `only ${refused} of ${VALID.length} corruptions were noticed`);
});

Zip('corrupted central directory, compressed entry, overlapping entries, too many entries, missing data.pkl, bad CRC', () => {
  const cd = VALID.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  const badSig = Buffer.from(VALID);
  badSig[cd] = 0x51;
  throwsCode(() => parse(badSig), 'E_FORMAT', /Invalid zip archive hostile\.pt: bad signature 0x2014b51 for central directory entry \d/);

  const deflated = torchZip(stateDictPickle({ w: FOUR }), {}, 'archive', [{ name: 'archive/data/0', data: f32Bytes([1, 2, 3, 4]), method: 8 }]);
  throwsCode(() => parse(deflated), 'E_FORMAT', /entry "archive\/data\/0" is compressed \(method 8 = deflate\)/);

  // Point the second entry's local header offset at the first entry's header: same bytes claimed twice.
  const overlap = zipBytes([{ name: 'archive/data.pkl', data: stateDictPickle({}) }, { name: 'archive/data.pkl', data: new Uint8Array(0) }]);
  throwsCode(() => parse(overlap), 'E_FORMAT', /entry "archive\/data\.pkl" appears twice/);
  const two = zipBytes([{ name: 'archive/a', data: new Uint8Array(100) }, { name: 'archive/b', data: new Uint8Array(10) }]);
  const second = two.lastIndexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02]));
  const localA = two.readUInt32LE(two.indexOf(Buffer.from([0x50, 0x4b, 0x01, 0x02])) + 42);
  const forged = Buffer.from(two);
  forged.writeUInt32LE(localA, second + 42); // b's header offset = a's header: names differ
  throwsCode(() => parse(forged), 'E_FORMAT', /entry "archive\/b": the local header at \d+ names a different entry/);
  // b's header moved inside a's data (a real local header for b written there): b's bytes are a's bytes.
  const nested = Buffer.from(two);
  const aData = 64; // zipBytes aligns the first entry's data to 64
  const fake = Buffer.alloc(30);
  fake.writeUInt32LE(0x04034b50, 0);
  fake.writeUInt32LE(10, 18);
  fake.writeUInt32LE(10, 22);
  fake.writeUInt16LE('archive/b'.length, 26);
  fake.copy(nested, aData + 10);
  nested.write('archive/b', aData + 40);
  nested.writeUInt32LE(aData + 10, second + 42);
  throwsCode(() => parse(nested), 'E_FORMAT', /entries "archive\/a" \[0, 164\) and "archive\/b" \[74, 123\) overlap/);

  const many = Buffer.from(VALID);
  const end = many.length - 22;
  many.writeUInt16LE(0xfff0, end + 8);
  many.writeUInt16LE(0xfff0, end + 10);
  throwsCode(() => parse(many), 'E_FORMAT', /65520 entries cannot fit in a central directory of \d+ bytes/);

  const noPkl = zipBytes([{ name: 'archive/version', data: Buffer.from('3\n') }, { name: 'archive/data/0', data: f32Bytes([1]) }]);
  throwsCode(() => parse(noPkl), 'E_FORMAT', /Invalid PyTorch checkpoint hostile\.pt: no archive\/data\.pkl in the archive/);
  const flat = zipBytes([{ name: 'data.pkl', data: stateDictPickle({}) }]);
  throwsCode(() => parse(flat), 'E_FORMAT', /zip archive without a top-level folder/);

  const crc = Buffer.from(VALID);
  crc[crc.indexOf(Buffer.from('collections'))] ^= 1; // the pickle changes, its recorded CRC does not
  throwsCode(() => parse(crc), 'E_FORMAT', /archive\/data\.pkl does not match its CRC-32/);
});

Zip('not a checkpoint, tar, big-endian: each says what it is', () => {
  throwsCode(() => parse(Buffer.from('{"hello": 1}')), 'E_FORMAT', /not a torch\.save file \(it starts with bytes 7b 22 68/);
  throwsCode(() => parse(new Uint8Array(0)), 'E_FORMAT', /not a torch\.save file/);
  const tar = Buffer.alloc(1024);
  tar.write('ustar', 257);
  throwsCode(() => parse(tar), 'E_UNSUPPORTED', /tar-based format of torch < 0\.4/);
  const big = torchZip(stateDictPickle({ w: FOUR }), FOUR_BYTES, 'archive', [{ name: 'archive/byteorder', data: Buffer.from('big') }]);
  throwsCode(() => parse(big), 'E_UNSUPPORTED', /big-endian storages/);
  const plainPickle = new PickleWriter().proto(2).emptyDict().stop().bytes();
  throwsCode(() => parse(plainPickle), 'E_FORMAT', /not a torch\.save file: its first pickle is a dict, not torch's magic number/);
  throwsCode(() => readTorchCheckpoint(path.join(CASES, 'no-such-file.pt')), 'E_IO', /Cannot read PyTorch checkpoint .*no-such-file\.pt/);
});

Zip('legacy files cut short or with a wrong storage size', () => {
  const legacy = fs.readFileSync(path.join(CASES, 'legacy_protocol2.pt'));
  for (let cut = 1; cut < legacy.length; cut += 7) throwsCode(() => parse(legacy.subarray(0, cut)), 'E_FORMAT', /./);
  throwsCode(() => parse(legacy.subarray(0, legacy.length - 3)), 'E_FORMAT', /runs past the end of the file \(\d+ bytes; truncated\?\)/);
  // The first storage's element count, just after the pickled key list, changed from 4 to 5.
  const keysEnd = legacy.lastIndexOf(Buffer.from([0x65, 0x2e])) + 2; // APPENDS STOP of the key list
  const wrong = Buffer.from(legacy);
  wrong.writeBigInt64LE(wrong.readBigInt64LE(keysEnd) + 1n, keysEnd);
  throwsCode(() => parse(wrong), 'E_FORMAT', /holds \d+ elements but is declared with \d+/);
});

Zip('a checkpoint over what one buffer holds is E_LIMIT, before anything is read', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'clipkit-big-pt-'));
  try {
    const file = path.join(dir, 'big.pt');
    fs.writeFileSync(file, '');
    fs.truncateSync(file, 2 ** 32 + 1); // sparse: no disk, and never read
    throwsCode(() => readTorchCheckpoint(file), 'E_LIMIT', /big\.pt has 4294967297 bytes, more than the \d+ read into one buffer here; save it as safetensors/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

Globals.run();
Opcodes.run();
Storages.run();
Zip.run();
