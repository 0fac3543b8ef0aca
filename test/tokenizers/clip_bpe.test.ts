import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { ClipBpeTokenizer, cleanText, preTokenize } from '../../src/tokenizers/clip_bpe';
import { firstDiff, modelTokenizer, oaCases, path } from './fixtures';

const Bpe = suite('clip_bpe (OpenAI CLIP)');
const fromGzip = ClipBpeTokenizer.fromGzip(readFileSync(path('bpe_simple_vocab_16e6.txt.gz')));
const fromHf = ClipBpeTokenizer.fromVocabMerges(
  readFileSync(modelTokenizer('openai_clip_tiny', 'vocab.json'), 'utf8'),
  readFileSync(modelTokenizer('openai_clip_tiny', 'merges.txt'), 'utf8'),
);
const { context_length, cases } = oaCases();

Bpe('context length and special ids, both loading paths', () => {
  for (const tok of [fromGzip, fromHf]) {
    assert.is(tok.contextLength, context_length);
    assert.equal([tok.padId, tok.sotId, tok.eotId], [0, 49406, 49407]);
  }
});

for (const c of cases)
  Bpe(`${c.id} ${JSON.stringify(c.text.slice(0, 30))}`, () => {
    const cleaned = cleanText(c.text);
    assert.is(cleaned, c.cleaned_text, 'cleaned_text');
    assert.is(firstDiff(preTokenize(cleaned), c.pre_tokens), '', 'pre_tokens');
    for (const [name, tok] of [['gz', fromGzip], ['vocab.json+merges.txt', fromHf]] as const) {
      assert.is(firstDiff(tok.bpeTokens(c.text), c.bpe_tokens), '', `${name} bpe_tokens`);
      assert.is(firstDiff(tok.bpeIds(c.text), c.bpe_ids), '', `${name} bpe_ids`);
      const { ids, lengths } = tok.encode([c.text]);
      assert.is(firstDiff(ids, c.ids), '', `${name} ids`);
      assert.is(lengths[0], c.num_tokens, `${name} num_tokens`);
    }
  });

Bpe('a batch equals the cases one by one, on both loading paths', () => {
  const texts = cases.map((c) => c.text);
  const a = fromGzip.encode(texts), b = fromHf.encode(texts);
  assert.is(firstDiff(a.ids, b.ids), '');
  assert.is(firstDiff(a.lengths, b.lengths), '');
  cases.forEach((c, i) => {
    assert.is(firstDiff(a.ids.subarray(i * context_length, (i + 1) * context_length), c.ids), '', c.id);
    assert.is(a.lengths[i], c.num_tokens, c.id);
  });
});

Bpe('literal special tokens map to their ids', () => {
  const { ids, lengths } = fromGzip.encode(['hello <|endoftext|> world']);
  assert.equal(Array.from(ids.subarray(0, 5)), [49406, 3306, 49407, 1002, 49407]);
  assert.is(lengths[0], 5);
});

Bpe('id 0 is a real token: lengths count it', () => {
  // ftfy turns the full-width '！' into '!', which joins '、' in one pre-token: '!' not at a word end is id 0.
  const { ids, lengths } = fromGzip.encode(['！、']);
  assert.equal(Array.from(ids.subarray(0, 5)), [49406, 0, 45262, 49407, 0]);
  assert.is(lengths[0], 4);
});

Bpe('truncation keeps the end token', () => {
  const { ids, lengths } = fromGzip.encode(['a '.repeat(200)]);
  assert.is(lengths[0], 77);
  assert.is(ids[76], 49407);
  assert.is(ids[75], fromGzip.bpeIds('a')[0]);
});

Bpe.run();
