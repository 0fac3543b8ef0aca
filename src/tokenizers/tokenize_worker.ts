/**
 * The thread off_thread.ts hands long texts to: builds each tokenizer once from its recipe, then
 * encodes what it is sent. Messages: { id, key, recipe?, texts } → { id, ids, lengths } | { id, error }.
 */
import { parentPort } from 'node:worker_threads';
import { fromRecipe } from './recipe';
import type { Tokenizer, TokenizerRecipe } from './types';

const tokenizers = new Map<number, Tokenizer>();

parentPort!.on('message', (m: { id: number; key: number; recipe?: TokenizerRecipe; texts: string[] }) => {
  try {
    let tok = tokenizers.get(m.key);
    if (!tok) tokenizers.set(m.key, (tok = fromRecipe(m.recipe!)));
    const { ids, lengths } = tok.encode(m.texts);
    parentPort!.postMessage({ id: m.id, ids, lengths }, [ids.buffer as ArrayBuffer, lengths.buffer as ArrayBuffer]);
  } catch (err) {
    const e = err as { code?: unknown; message?: unknown };
    parentPort!.postMessage({ id: m.id, error: { code: typeof e?.code === 'string' ? e.code : 'E_NATIVE', message: String(e?.message ?? err) } });
  }
});
