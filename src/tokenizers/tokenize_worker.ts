/**
 * The thread off_thread.ts hands long texts to: builds each tokenizer once from its recipe, then
 * encodes what it is sent. Messages: { id, key, recipe?, texts } → { id, ids, lengths } | { id, error }.
 */
import { serveRequests } from '../worker_thread';
import { fromRecipe } from './recipe';
import type { Encoded, Tokenizer, TokenizerRecipe } from './types';

const tokenizers = new Map<number, Tokenizer>();

serveRequests<{ key: number; recipe?: TokenizerRecipe; texts: string[] }, Encoded>((m) => {
  let tok = tokenizers.get(m.key);
  if (!tok) tokenizers.set(m.key, (tok = fromRecipe(m.recipe!)));
  const { ids, lengths } = tok.encode(m.texts);
  return { result: { ids, lengths }, transfer: [ids.buffer as ArrayBuffer, lengths.buffer as ArrayBuffer] };
});
