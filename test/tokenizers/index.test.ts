import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BertWordPieceTokenizer, ClipBpeTokenizer, loadTokenizer } from '../../src/tokenizers';
import { throwsCode } from '../helpers';
import { cnCases, firstDiff, modelTokenizer, oaCases, path } from './fixtures';

const Load = suite('loadTokenizer');
const tmp = mkdtempSync(join(tmpdir(), 'clipkit-tok-'));
const folder = (name: string, files: Record<string, string>) => {
  const dir = join(tmp, name);
  mkdirSync(dir);
  for (const [to, from] of Object.entries(files)) copyFileSync(from, join(dir, to));
  return dir;
};
const cn = cnCases().cases, oa = oaCases().cases;

Load('CLIPTokenizer folder (vocab.json + merges.txt)', () => {
  const tok = loadTokenizer(modelTokenizer('openai_clip_tiny'));
  assert.instance(tok, ClipBpeTokenizer);
  assert.is(tok.contextLength, 77);
  const { ids, lengths } = tok.encode(oa.map((c) => c.text));
  oa.forEach((c, i) => {
    assert.is(firstDiff(ids.subarray(i * 77, (i + 1) * 77), c.ids), '', c.id);
    assert.is(lengths[i], c.num_tokens, c.id);
  });
  assert.equal(tok.tokenize(['a photo']), tok.encode(['a photo']).ids);
});

Load('BertTokenizer folder (tokenizer_config.json + vocab.txt)', () => {
  const dir = folder('cn', { 'tokenizer_config.json': modelTokenizer('chinese_clip_tiny', 'tokenizer_config.json'), 'vocab.txt': path('vocab.txt') });
  const tok = loadTokenizer(dir);
  assert.instance(tok, BertWordPieceTokenizer);
  assert.is(tok.contextLength, 52);
  const { ids, lengths } = tok.encode(cn.map((c) => c.text));
  cn.forEach((c, i) => {
    assert.is(firstDiff(ids.subarray(i * 52, (i + 1) * 52), c.ids), '', c.id);
    assert.is(lengths[i], c.num_tokens, c.id);
  });
});

Load('chosen by the files present when there is no tokenizer_config.json', () => {
  const gz = folder('gz', { 'bpe_simple_vocab_16e6.txt.gz': path('bpe_simple_vocab_16e6.txt.gz') });
  assert.instance(loadTokenizer(gz), ClipBpeTokenizer);
  assert.is(firstDiff(loadTokenizer(gz).tokenize([oa[0].text]), oa[0].ids), '');
  const vt = folder('vt', { 'vocab.txt': path('vocab.txt') });
  assert.instance(loadTokenizer(vt), BertWordPieceTokenizer);
});

Load('context length override', () => {
  const tok = loadTokenizer(modelTokenizer('openai_clip_tiny'), { contextLength: 5 });
  const { ids, lengths } = tok.encode(['a photo of a cat']);
  assert.is(ids.length, 5);
  assert.is(lengths[0], 5);
  assert.is(ids[4], 49407);
});

Load('unknown tokenizer_class is refused, naming it', () => {
  const dir = folder('unknown', { 'vocab.txt': path('vocab.txt') });
  writeFileSync(join(dir, 'tokenizer_config.json'), JSON.stringify({ tokenizer_class: 'T5Tokenizer' }));
  throwsCode(() => loadTokenizer(dir), 'E_UNSUPPORTED', /T5Tokenizer/);
});

Load('missing or broken files give clear errors', () => {
  throwsCode(() => loadTokenizer(join(tmp, 'nope')), 'E_IO', /tokenizer files/);
  const broken = join(tmp, 'broken');
  mkdirSync(broken);
  writeFileSync(join(broken, 'tokenizer_config.json'), '{not json');
  throwsCode(() => loadTokenizer(broken), 'E_FORMAT', /JSON/);
  throwsCode(() => ClipBpeTokenizer.fromGzip(new Uint8Array([1, 2, 3])), 'E_FORMAT', /gzip/);
  throwsCode(() => BertWordPieceTokenizer.fromVocabTxt('a\nb\n'), 'E_FORMAT', /\[UNK\]/);
  throwsCode(() => loadTokenizer(42 as unknown as string), 'E_ARG', /dir/, TypeError);
});

Load('non-string input is a TypeError naming the argument', () => {
  const tok = loadTokenizer(modelTokenizer('openai_clip_tiny'));
  throwsCode(() => tok.encode('a cat' as unknown as string[]), 'E_ARG', /texts/, TypeError);
  throwsCode(() => tok.encode(['a', 3 as unknown as string]), 'E_ARG', /texts\[1\]/, TypeError);
  throwsCode(() => tok.tokenize([null as unknown as string]), 'E_ARG', /texts\[0\]/, TypeError);
});

Load('empty batch and empty string', () => {
  const tok = loadTokenizer(modelTokenizer('openai_clip_tiny'));
  assert.is(tok.encode([]).ids.length, 0);
  assert.equal(Array.from(tok.encode(['']).ids.subarray(0, 3)), [49406, 49407, 0]);
});

Load('lone surrogates and odd Unicode never throw', () => {
  const odd = ['\ud800', 'a\udfffb', '\udbff\ud800', '\u0000\u200d\ufeff\ufffd', '\u{10ffff}\u{e0001}\u{30000}', 'x\u0301'.repeat(300),
    '&#xd800;&#x110000;&#0;&', 'Ã'.repeat(500), '\r\n\u2028\u2029\u0085', ' '.repeat(1000), 'ﷺ'.repeat(100)];
  const bpe = loadTokenizer(modelTokenizer('openai_clip_tiny'));
  const bert = BertWordPieceTokenizer.fromVocabTxt(readFileSync(path('vocab.txt'), 'utf8'));
  const t0 = Date.now();
  for (const tok of [bpe, bert]) {
    const { ids, lengths } = tok.encode(odd);
    assert.is(ids.length, odd.length * tok.contextLength);
    for (const n of lengths) assert.ok(n >= 2 && n <= tok.contextLength);
  }
  assert.ok(Date.now() - t0 < 2000, `took ${Date.now() - t0} ms`);
});

Load.after(() => rmSync(tmp, { recursive: true, force: true }));
Load.run();
