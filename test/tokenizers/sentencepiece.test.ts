import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writer } from 'protobufjs/minimal';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { loadTokenizer, SentencePieceUnigram, XlmRobertaTokenizer } from '../../src/tokenizers';
import { parseModelProto } from '../../src/tokenizers/sentencepiece_model';
import { throwsCode } from '../helpers';
import { firstDiff, modelTokenizer, path, xrCases } from './fixtures';

const MODEL = modelTokenizer('altclip_tiny', 'sentencepiece.bpe.model');
const modelBytes = readFileSync(MODEL);
const tok = XlmRobertaTokenizer.fromModelProto(modelBytes);
const { context_length, spm_vocab_size, mask_id, cases } = xrCases();

const Spm = suite('sentencepiece unigram + XLMRobertaTokenizer (AltCLIP)');

Spm('sizes and special ids', () => {
  assert.is(tok.kind, 'altclip_xlm_roberta_spm');
  assert.is(tok.contextLength, context_length);
  assert.is(tok.spm.size, spm_vocab_size);
  assert.equal([tok.clsId, tok.padId, tok.sepId, tok.unkId, tok.maskId], [0, 1, 2, 3, mask_id]);
});

for (const c of cases)
  Spm(`${c.id} ${JSON.stringify(c.text.slice(0, 30))}`, () => {
    const { pieces, ids } = tok.spm.encode(c.text);
    assert.is(firstDiff(pieces, c.pieces), '', 'pieces');
    assert.is(firstDiff(ids, c.spm_ids), '', 'spm_ids');
    assert.is(firstDiff(tok.tokenIds(c.text), c.piece_ids), '', 'piece_ids');
    const enc = tok.encode([c.text]);
    assert.is(firstDiff(enc.ids, c.ids), '', 'ids');
    assert.is(enc.lengths[0], c.num_tokens, 'num_tokens');
    assert.is(firstDiff(c.ids.map((_, i) => (i < enc.lengths[0] ? 1 : 0)), c.attention_mask), '', 'attention_mask');
  });

Spm('a batch equals the cases one by one, in milliseconds', () => {
  const texts = cases.map((c) => c.text);
  tok.encode(texts); // warm-up
  const t0 = performance.now();
  const { ids, lengths } = tok.encode(texts);
  const ms = performance.now() - t0;
  cases.forEach((c, i) => {
    assert.is(firstDiff(ids.subarray(i * context_length, (i + 1) * context_length), c.ids), '', c.id);
    assert.is(lengths[i], c.num_tokens, c.id);
  });
  assert.ok(ms < 200, `encoding ${cases.length} texts took ${ms.toFixed(1)} ms`);
});

Spm('normalisation examples from the fixture README (nmt_nfkc charsmap)', () => {
  assert.is(tok.spm.normalize('ＡＢＣ１２３，'), '▁ABC123,');
  assert.is(tok.spm.normalize('ﬁ①½'), '▁fi11⁄2');
  assert.is(tok.spm.normalize('a\u0001\u007fb'), '▁ab');
  assert.is(tok.spm.normalize('a\u00a0\u3000\u200b\ufeffb'), '▁a▁b');
  assert.is(tok.spm.normalize('  a   b  '), '▁a▁b');
  assert.is(tok.spm.normalize('a\u0000\u00adb'), '▁a\u0000\u00adb');
  assert.is(tok.spm.normalize(' \t\n'), '');
});

// Special-token literals: the fixture has none. The expectations below come from reading
// transformers' PreTrainedTokenizer.tokenize (tokens_trie.split, AddedToken lstrip/rstrip) and
// XLMRobertaTokenizer (<mask> is lstrip=True; the others strip nothing; each text chunk is
// encoded by SentencePiece separately).
Spm('special-token literals become their ids', () => {
  const ids = (t: string) => tok.tokenIds(t);
  assert.equal(ids('<s>'), [0]);
  assert.equal(ids('<s><mask></s>'), [0, mask_id, 2]);
  assert.equal(ids('<pad><unk>'), [1, 3]);
  assert.equal(ids('a <mask> cat'), [...ids('a'), mask_id, ...ids('cat')]);
  // Each chunk gets its own dummy prefix: 'dog' after <s> is '▁dog', unlike inside 'catdog'.
  assert.equal(ids('cat<s>dog'), [...ids('cat'), 0, ...ids('dog')]);
  assert.not.equal(ids('catdog').slice(1), ids('dog'));
  assert.equal(Array.from(tok.encode(['<s>']).ids.subarray(0, 4)), [0, 0, 2, 1]);
  assert.equal(tok.encode(['<pad>']).lengths[0], 3);
});

Spm('<mask> swallows the Python whitespace before it; the other special tokens do not', () => {
  const ids = (t: string) => tok.tokenIds(t);
  // U+0085 is whitespace to Python's str.rstrip but SentencePiece keeps it as an unknown piece.
  assert.equal(ids('a\u0085'), [...ids('a'), 3]);
  assert.equal(ids('a\u0085<mask>'), [...ids('a'), mask_id]);
  assert.equal(ids('a\u0085<s>'), [...ids('a'), 3, 0]);
  assert.equal(ids('\u0085'), [4, 3]); // '▁' (the dummy prefix) + unknown
  assert.equal(ids('a\u0085</s>\u0085'), [...ids('a'), 3, 2, 4, 3]);
});

Spm('near-misses of special tokens are ordinary text', () => {
  const hfId = (piece: string) => {
    const spmId = tok.spm.pieceToId(piece);
    return spmId ? spmId + 1 : 3;
  };
  for (const t of ['<mask', '< s>', '<S>', '<masks', '＜s＞']) assert.equal(tok.tokenIds(t), tok.spm.encode(t).pieces.map(hfId), t);
  assert.not.ok(tok.tokenIds('<mask').includes(mask_id));
});

Spm('special tokens count towards truncation', () => {
  const { ids, lengths } = tok.encode(['<mask>'.repeat(100)]);
  assert.is(lengths[0], 77);
  assert.equal([ids[0], ids[1], ids[75], ids[76]], [0, mask_id, mask_id, 2]);
});

Spm('lone surrogates become U+FFFD, which this charsmap maps to a space', () => {
  assert.equal(tok.tokenIds('a\udfffb'), tok.tokenIds('a b'));
  assert.equal(tok.tokenIds('\ud800'), []);
  assert.equal(tok.tokenIds('\udbff\ud800x'), tok.tokenIds('x'));
  assert.equal(tok.tokenIds('\ud83d\ude00'), tok.tokenIds('😀'));
});

Spm('odd Unicode never throws or hangs', () => {
  const odd = ['\u0000\u200d\ufeff\ufffd', '\u{10ffff}\u{e0001}\u{30000}', 'x\u0301'.repeat(300), '\r\n\u2028\u2029\u0085',
    ' '.repeat(100000) + 'x<mask>', 'ﷺ'.repeat(1000), '𠀀'.repeat(5000), '▁'.repeat(50), '<mask>'.repeat(2000)];
  const t0 = Date.now();
  const { ids, lengths } = tok.encode(odd);
  assert.is(ids.length, odd.length * 77);
  for (const n of lengths) assert.ok(n >= 2 && n <= 77);
  assert.equal(tok.spm.encode('𠀀'.repeat(5000)).pieces.length, 2); // '▁' + one merged unknown run
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
});

const Load = suite('loadTokenizer (XLM-RoBERTa SentencePiece)');
const tmp = mkdtempSync(join(tmpdir(), 'clipkit-spm-'));
const folder = (name: string, files: Record<string, string | Uint8Array>) => {
  const dir = join(tmp, name);
  mkdirSync(dir);
  for (const [to, from] of Object.entries(files))
    if (typeof from === 'string') copyFileSync(from, join(dir, to));
    else writeFileSync(join(dir, to), from);
  return dir;
};

Load('XLMRobertaTokenizer folder', () => {
  const t = loadTokenizer(modelTokenizer('altclip_tiny'));
  assert.instance(t, XlmRobertaTokenizer);
  assert.is(t.contextLength, 77);
  const { ids, lengths } = t.encode(cases.map((c) => c.text));
  cases.forEach((c, i) => {
    assert.is(firstDiff(ids.subarray(i * 77, (i + 1) * 77), c.ids), '', c.id);
    assert.is(lengths[i], c.num_tokens, c.id);
  });
});

Load('model_max_length, the contextLength option, and the "no limit" sentinel', () => {
  const config = (extra: object) => JSON.stringify({ tokenizer_class: 'XLMRobertaTokenizerFast', ...extra });
  const dir32 = folder('ctx32', { 'sentencepiece.bpe.model': MODEL, 'tokenizer_config.json': Buffer.from(config({ model_max_length: 32 })) });
  assert.is(loadTokenizer(dir32).contextLength, 32);
  assert.is(loadTokenizer(dir32, { contextLength: 5 }).contextLength, 5);
  const { ids, lengths } = loadTokenizer(dir32, { contextLength: 5 }).encode([cases[0].text]);
  assert.equal([lengths[0], ids[0], ids[4]], [5, 0, 2]);
  const big = folder('ctxbig', { 'sentencepiece.bpe.model': MODEL, 'tokenizer_config.json': Buffer.from(config({ model_max_length: 1e30 })) });
  assert.is(loadTokenizer(big).contextLength, 77);
});

Load('chosen by sentencepiece.bpe.model when there is no tokenizer_config.json', () => {
  const dir = folder('bare', { 'sentencepiece.bpe.model': MODEL });
  const t = loadTokenizer(dir);
  assert.instance(t, XlmRobertaTokenizer);
  assert.is(firstDiff(t.tokenize([cases[0].text]), cases[0].ids), '');
});

Load('a fast-only folder is refused by name', () => {
  const dir = folder('fast', { 'tokenizer.json': Buffer.from('{}'), 'tokenizer_config.json': Buffer.from('{"tokenizer_class":"XLMRobertaTokenizerFast"}') });
  throwsCode(() => loadTokenizer(dir), 'E_UNSUPPORTED', /XLMRobertaTokenizerFast.*sentencepiece\.bpe\.model.*tokenizer\.json/);
  writeFileSync(join(dir, 'tokenizer_config.json'), '{"tokenizer_class":"XLMRobertaTokenizer"}');
  throwsCode(() => loadTokenizer(dir), 'E_IO', /sentencepiece\.bpe\.model/);
});

Load('a corrupt model file is E_FORMAT naming the file', () => {
  const dir = folder('corrupt', { 'sentencepiece.bpe.model': modelBytes.subarray(0, 5000), 'tokenizer_config.json': modelTokenizer('altclip_tiny', 'tokenizer_config.json') });
  const err = throwsCode(() => loadTokenizer(dir), 'E_FORMAT', /truncated or corrupt/);
  assert.ok(err.message.includes(join(dir, 'sentencepiece.bpe.model')), err.message);
});

Load.after(() => rmSync(tmp, { recursive: true, force: true }));

// Small models written here, for what the fixture model cannot show.
interface TestModel {
  pieces: [piece: string, score: number, type?: number][];
  modelType?: number;
  byteFallback?: boolean;
  treatWhitespaceAsSuffix?: boolean;
  charsmap?: Uint8Array;
  addDummyPrefix?: boolean;
  removeExtraWhitespaces?: boolean;
}
const NORMAL = 1, UNKNOWN = 2, CONTROL = 3, USER_DEFINED = 4, UNUSED = 5, BYTE = 6;
const realCharsmap = parseModelProto(modelBytes, MODEL).precompiledCharsmap;

/** Serialises a ModelProto (field numbers from sentencepiece_model.proto). */
function writeModel(m: TestModel): Uint8Array {
  const w = Writer.create();
  for (const [piece, score, type] of m.pieces) {
    w.uint32((1 << 3) | 2).fork();
    w.uint32((1 << 3) | 2).string(piece).uint32((2 << 3) | 5).float(score);
    if (type !== undefined) w.uint32(3 << 3).int32(type);
    w.ldelim();
  }
  w.uint32((2 << 3) | 2).fork();
  if (m.modelType !== undefined) w.uint32(3 << 3).int32(m.modelType);
  if (m.treatWhitespaceAsSuffix) w.uint32(24 << 3).bool(true);
  if (m.byteFallback) w.uint32(35 << 3).bool(true);
  w.ldelim();
  w.uint32((3 << 3) | 2).fork().uint32((1 << 3) | 2).string('nmt_nfkc');
  if (m.charsmap) w.uint32((2 << 3) | 2).bytes(m.charsmap);
  if (m.addDummyPrefix !== undefined) w.uint32(3 << 3).bool(m.addDummyPrefix);
  if (m.removeExtraWhitespaces !== undefined) w.uint32(4 << 3).bool(m.removeExtraWhitespaces);
  w.ldelim();
  return w.finish();
}

const BASE: TestModel['pieces'] = [['<unk>', 0, UNKNOWN], ['<s>', 0, CONTROL], ['</s>', 0, CONTROL], ['▁', -1], ['a', -2], ['b', -2]];
const small = (m: Partial<TestModel> = {}) => SentencePieceUnigram.fromModelProto(writeModel({ pieces: BASE, charsmap: realCharsmap, ...m }), 'small.model');

const Model = suite('sentencepiece model files');

Model('user-defined pieces are matched whole and never normalised; unused pieces are skipped', () => {
  const spm = small({ pieces: [...BASE, ['ab', 0, UNUSED], ['ﬁ', 0, USER_DEFINED], ['f', -3], ['i', -3], ['fi', -1]] });
  assert.is(spm.normalize('ﬁ fi'), '▁ﬁ▁fi');
  assert.equal(spm.encode('ﬁ fi'), { pieces: ['▁', 'ﬁ', '▁', 'fi'], ids: [3, 7, 3, 10] });
  assert.equal(spm.encode('ab').pieces, ['▁', 'a', 'b']);
  assert.is(spm.pieceToId('ab'), 6);
});

Model('unknown runs merge into one piece; an exact tie keeps the earlier start', () => {
  const spm = small({ pieces: [...BASE, ['ab', -4]] });
  assert.equal(spm.encode('axyzb'), { pieces: ['▁', 'a', 'xyz', 'b'], ids: [3, 4, 0, 5] });
  // '▁' + 'ab' and '▁' + 'a' + 'b' both score -5: EncodeOptimized keeps the first one found.
  assert.equal(spm.encode('ab').pieces, ['▁', 'ab']);
});

Model('pieceToId: reserved pieces, normal pieces, and <unk> for anything else', () => {
  const spm = small();
  assert.equal(['<s>', '</s>', '<unk>', '▁', 'b', 'zz', ''].map((p) => spm.pieceToId(p)), [1, 2, 0, 3, 5, 0, 0]);
});

Model('normaliser options (read from normalizer.cc)', () => {
  assert.is(small({ removeExtraWhitespaces: false }).normalize('  a  b '), '▁▁▁a▁▁b▁');
  assert.is(small({ addDummyPrefix: false }).normalize('  a  b '), 'a▁b');
  assert.is(small({ treatWhitespaceAsSuffix: true }).normalize(' a b'), 'a▁b▁');
  assert.is(small({ charsmap: undefined }).normalize('ＡＢ\u00a0a'), '▁ＡＢ\u00a0a');
});

Model('non-unigram models and byte fallback are E_UNSUPPORTED', () => {
  throwsCode(() => small({ modelType: 2 }), 'E_UNSUPPORTED', /model_type BPE in small\.model.*UNIGRAM/);
  throwsCode(() => small({ modelType: 4 }), 'E_UNSUPPORTED', /CHAR/);
  throwsCode(() => small({ byteFallback: true, pieces: [...BASE, ['<0x00>', 0, BYTE]] }), 'E_UNSUPPORTED', /byte_fallback/);
});

Model('truncated and corrupt model files are E_FORMAT', () => {
  for (const n of [1, 3, 100, 5000, modelBytes.length >> 1, modelBytes.length - 1])
    throwsCode(() => SentencePieceUnigram.fromModelProto(modelBytes.subarray(0, n), 'cut.model'), 'E_FORMAT', /cut\.model/);
  throwsCode(() => SentencePieceUnigram.fromModelProto(new Uint8Array(0), 'empty.model'), 'E_FORMAT', /no.*pieces|pieces.*none/);
  throwsCode(() => SentencePieceUnigram.fromModelProto(new Uint8Array(64), 'zeros.model'), 'E_FORMAT', /zeros\.model/);
  throwsCode(() => SentencePieceUnigram.fromModelProto(readFileSync(path('vocab.txt')), 'vocab.txt'), 'E_FORMAT', /vocab\.txt/);
  throwsCode(() => small({ pieces: BASE.slice(1) }), 'E_FORMAT', /UNKNOWN/);
  throwsCode(() => small({ pieces: [...BASE, ['a', -1]] }), 'E_FORMAT', /"a" is defined twice/);
  throwsCode(() => small({ pieces: [...BASE, ['', -1]] }), 'E_FORMAT', /pieces\[6\].*empty/);
  throwsCode(() => small({ pieces: [...BASE, ['c', -1, 9]] }), 'E_FORMAT', /piece type.*9/);
  throwsCode(() => small({ pieces: [...BASE, ['<0x00>', 0, BYTE]] }), 'E_FORMAT', /BYTE/);
});

Model('a precompiled_charsmap that points outside itself is E_FORMAT', () => {
  const u32 = (...v: number[]) => new Uint8Array(new Uint32Array(v).buffer);
  const concat = (...parts: Uint8Array[]) => Uint8Array.from(parts.flatMap((p) => Array.from(p)));
  const trieSize = new DataView(realCharsmap.buffer, realCharsmap.byteOffset).getUint32(0, true);
  const broken = (charsmap: Uint8Array, re: RegExp) => throwsCode(() => small({ charsmap }), 'E_FORMAT', re);
  broken(new Uint8Array([1, 0, 0]), /precompiled_charsmap.*3 bytes/);
  broken(concat(u32(1 << 20), new Uint8Array(8)), /trie size 1048576 exceeds the 8 bytes/);
  broken(concat(u32(0), new Uint8Array([0])), /trie is empty/);
  const rootOffsetFar = new Uint32Array(256);
  rootOffsetFar[0] = 4096 << 10; // the root's children would lie at units 4096..4351
  broken(concat(u32(1024), new Uint8Array(rootOffsetFar.buffer), new Uint8Array([0])), /children at unit 4096 lie outside its 256 units/);
  broken(realCharsmap.subarray(0, 4 + trieSize + 10), /replacement offset \d+ lies outside its 10 bytes/);
});

Spm.run();
Load.run();
Model.run();
