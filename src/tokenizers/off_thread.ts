/**
 * Tokenizing without blocking the event loop. The tokenizers are plain JavaScript, so a very long
 * text (encodeText('猫'.repeat(1e6))) would hold the JS thread for as long as it takes; texts
 * that add up to more than OFF_THREAD_CHARS are encoded on a worker thread, which builds the same
 * tokenizer from its recipe once and keeps it. Short texts, the common case, stay on the calling
 * thread: a round trip to the worker costs more than they do. The worker is started on first use
 * and does not keep the process alive.
 */
import { WorkerThread } from '../worker_thread';
import type { Encoded, Tokenizer, TokenizerRecipe } from './types';
import { expectTexts } from './types';

/** Total characters above which a call is tokenized off the calling thread. */
export const OFF_THREAD_CHARS = 50_000;

/** A key per tokenizer, and whether the current worker has built it. */
const keys = new WeakMap<Tokenizer, number>();
let nextKey = 1;
const built = new Set<number>();

const worker = new WorkerThread<{ key: number; recipe?: TokenizerRecipe; texts: string[] }, Encoded>(
  __dirname, 'tokenize_worker', 'tokenizer', () => built.clear(),
);

/** tok.encode(texts), off the calling thread when the texts are long and the tokenizer has a recipe. */
export async function encodeTexts(tok: Tokenizer, texts: readonly string[]): Promise<Encoded> {
  expectTexts(texts);
  let chars = 0;
  for (const t of texts) chars += t.length;
  if (chars <= OFF_THREAD_CHARS || !tok.recipe) return tok.encode(texts);
  let key = keys.get(tok);
  if (key === undefined) keys.set(tok, (key = nextKey++));
  const recipe = built.has(key) ? undefined : tok.recipe;
  built.add(key);
  const { ids, lengths } = await worker.call({ key, recipe, texts: [...texts] });
  return { ids, lengths };
}
