/**
 * Tokenizing without blocking the event loop. The tokenizers are plain JavaScript at about a second
 * per million characters (encodeText('猫'.repeat(1e6)) once held the JS thread 1.6 s), so texts
 * that add up to more than OFF_THREAD_CHARS are encoded on a worker thread, which builds the same
 * tokenizer from its recipe once and keeps it. Short texts, the common case, stay on the calling
 * thread: a round trip to the worker costs more than they do. The worker is started on first use
 * and does not keep the process alive.
 */
import * as path from 'node:path';
import { Worker } from 'node:worker_threads';
import { ClipkitError, ErrorCode } from '../errors';
import type { Encoded, Tokenizer } from './types';
import { expectTexts } from './types';

/** Total characters above which a call is tokenized off the calling thread. */
export const OFF_THREAD_CHARS = 50_000;

interface Pending {
  resolve: (e: Encoded) => void;
  reject: (err: Error) => void;
}

let worker: Worker | undefined;
let nextId = 1;
const pending = new Map<number, Pending>();
/** A key per tokenizer, and whether the current worker has built it. */
const keys = new WeakMap<Tokenizer, number>();
let nextKey = 1;
const built = new Set<number>();

function startWorker(): Worker {
  const ts = __filename.endsWith('.ts');
  const file = path.join(__dirname, `tokenize_worker${ts ? '.ts' : '.js'}`);
  // From the sources (tests), the worker needs the TypeScript loader its parent runs under.
  const w = new Worker(file, ts ? { execArgv: [...process.execArgv, '--require', require.resolve('tsx/cjs')] } : {});
  w.unref();
  w.on('message', (m: { id: number; ids?: Int32Array; lengths?: Int32Array; error?: { code: string; message: string } }) => {
    const p = pending.get(m.id);
    if (!p) return;
    pending.delete(m.id);
    if (m.error) p.reject(new ClipkitError(m.error.code.startsWith('E_') ? (m.error.code as ErrorCode) : 'E_NATIVE', m.error.message));
    else p.resolve({ ids: m.ids!, lengths: m.lengths! });
    if (pending.size === 0) w.unref();
  });
  const fail = (err: Error) => {
    if (worker === w) {
      worker = undefined;
      built.clear();
    }
    for (const [id, p] of pending) {
      pending.delete(id);
      p.reject(new ClipkitError('E_NATIVE', `The tokenizer thread failed: ${err.message}`));
    }
  };
  w.on('error', fail);
  w.on('exit', (code) => fail(new Error(`it exited with code ${code}`)));
  return w;
}

/** tok.encode(texts), off the calling thread when the texts are long and the tokenizer has a recipe. */
export async function encodeTexts(tok: Tokenizer, texts: readonly string[]): Promise<Encoded> {
  expectTexts(texts);
  let chars = 0;
  for (const t of texts) chars += t.length;
  if (chars <= OFF_THREAD_CHARS || !tok.recipe) return tok.encode(texts);
  let key = keys.get(tok);
  if (key === undefined) keys.set(tok, (key = nextKey++));
  worker ??= startWorker();
  const w = worker;
  const id = nextId++;
  const recipe = built.has(key) ? undefined : tok.recipe;
  built.add(key);
  w.ref(); // a call in flight keeps the process alive until it settles
  return new Promise<Encoded>((resolve, reject) => {
    pending.set(id, { resolve, reject });
    w.postMessage({ id, key, recipe, texts: [...texts] });
  });
}
