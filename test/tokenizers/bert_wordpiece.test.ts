import { readFileSync } from 'node:fs';
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { BertWordPieceTokenizer } from '../../src/tokenizers/bert_wordpiece';
import { cnCases, firstDiff, path } from './fixtures';

const WordPiece = suite('bert_wordpiece (Chinese-CLIP)');
const tok = BertWordPieceTokenizer.fromVocabTxt(readFileSync(path('vocab.txt'), 'utf8'));
const { context_length, cases } = cnCases();

WordPiece('context length and special ids', () => {
  assert.is(tok.contextLength, context_length);
  assert.equal([tok.padId, tok.unkId, tok.clsId, tok.sepId], [0, 100, 101, 102]);
});

for (const c of cases)
  WordPiece(`${c.id} ${JSON.stringify(c.text.slice(0, 30))}`, () => {
    const pieces = tok.wordpieces(c.text);
    assert.is(firstDiff(pieces, c.wordpieces), '', 'wordpieces');
    assert.is(firstDiff(tok.wordpieceIds(c.text), c.wordpiece_ids), '', 'wordpiece_ids');
    const { ids, lengths } = tok.encode([c.text]);
    assert.is(firstDiff(ids, c.ids), '', 'ids');
    assert.is(lengths[0], c.num_tokens, 'num_tokens');
  });

WordPiece('a batch equals the cases one by one', () => {
  const { ids, lengths } = tok.encode(cases.map((c) => c.text));
  assert.is(ids.length, cases.length * context_length);
  cases.forEach((c, i) => {
    assert.is(firstDiff(ids.subarray(i * context_length, (i + 1) * context_length), c.ids), '', c.id);
    assert.is(lengths[i], c.num_tokens, c.id);
  });
});

WordPiece('words over 200 characters are [UNK]; 200 are split', () => {
  assert.equal(tok.wordpieces('a'.repeat(201)), ['[UNK]']);
  assert.not.equal(tok.wordpieces('a'.repeat(200)), ['[UNK]']);
});

WordPiece('special-token text is plain text', () => {
  assert.equal(tok.wordpieces('[CLS] [MASK]'), ['[', 'cl', '##s', ']', '[', 'ma', '##sk', ']']);
});

WordPiece.run();
