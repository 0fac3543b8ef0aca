/** A tokenizer from its recipe (what its from* factory was given). */
import { BertWordPieceTokenizer } from './bert_wordpiece';
import { ClipBpeTokenizer } from './clip_bpe';
import type { Tokenizer, TokenizerRecipe } from './types';
import { XlmRobertaTokenizer } from './xlm_roberta';

export function fromRecipe(r: TokenizerRecipe): Tokenizer {
  switch (r.from) {
    case 'vocab.txt':
      return BertWordPieceTokenizer.fromVocabTxt(r.text, r.contextLength);
    case 'bpe.gz':
      return ClipBpeTokenizer.fromGzip(r.bytes, r.contextLength);
    case 'vocab.json+merges.txt':
      return ClipBpeTokenizer.fromVocabMerges(r.vocabJson, r.merges, r.contextLength);
    case 'sentencepiece':
      return XlmRobertaTokenizer.fromModelProto(r.bytes, r.contextLength, r.source);
  }
}
