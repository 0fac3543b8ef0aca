/**
 * A worker thread that answers requests: the plain-JavaScript work that can hold the JS thread for
 * long (tokenizing megabytes of text, decoding a large BMP) is posted to one and awaited. The
 * thread starts on first use and does not keep the process alive between calls; when it dies,
 * every call in flight is rejected (E_NATIVE) and the next call starts a new one.
 *
 * Protocol: the parent posts { id, ...request }; the worker answers { id, ...result } or
 * { id, error: { code, message } }. serveRequests is the worker's half.
 */
import * as path from 'node:path';
import { parentPort, Transferable, Worker } from 'node:worker_threads';
import { ClipkitError, ErrorCode } from './errors';

interface Pending {
  resolve: (m: unknown) => void;
  reject: (err: Error) => void;
}

export class WorkerThread<Request extends object, Result> {
  private worker?: Worker;
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  /**
   * `file`: the worker's module beside the caller's (without extension); `what` names the thread in
   * errors; `onRestart` runs when a new thread replaces a dead one (state the old one held is gone).
   */
  constructor(
    private readonly dir: string,
    private readonly file: string,
    private readonly what: string,
    private readonly onRestart?: () => void,
  ) {}

  /** Whether the current thread has been started (and not died since). */
  get started(): boolean {
    return this.worker !== undefined;
  }

  call(request: Request, transfer: readonly Transferable[] = []): Promise<Result> {
    const w = (this.worker ??= this.start());
    const id = this.nextId++;
    w.ref(); // a call in flight keeps the process alive until it settles
    return new Promise<Result>((resolve, reject) => {
      this.pending.set(id, { resolve: resolve as (m: unknown) => void, reject });
      w.postMessage({ ...request, id }, transfer as Transferable[]);
    });
  }

  private start(): Worker {
    const ts = __filename.endsWith('.ts');
    const file = path.join(this.dir, `${this.file}${ts ? '.ts' : '.js'}`);
    // From the sources (tests), the worker needs the TypeScript loader its parent runs under.
    const w = new Worker(file, ts ? { execArgv: [...process.execArgv, '--require', require.resolve('tsx/cjs')] } : {});
    w.unref();
    w.on('message', (m: { id: number; error?: { code: string; message: string } }) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if (m.error) p.reject(new ClipkitError(m.error.code.startsWith('E_') ? (m.error.code as ErrorCode) : 'E_NATIVE', m.error.message));
      else p.resolve(m);
      if (this.pending.size === 0) w.unref();
    });
    const fail = (err: Error) => {
      if (this.worker === w) {
        this.worker = undefined;
        this.onRestart?.();
      }
      for (const [id, p] of this.pending) {
        this.pending.delete(id);
        p.reject(new ClipkitError('E_NATIVE', `The ${this.what} thread failed: ${err.message}`));
      }
    };
    w.on('error', fail);
    w.on('exit', (code) => fail(new Error(`it exited with code ${code}`)));
    return w;
  }
}

/** The worker's half: answers each request with handle's result, or with the error it threw. */
export function serveRequests<Request, Result extends object>(handle: (r: Request) => { result: Result; transfer?: Transferable[] }): void {
  parentPort!.on('message', (m: Request & { id: number }) => {
    try {
      const { result, transfer } = handle(m);
      parentPort!.postMessage({ ...result, id: m.id }, transfer ?? []);
    } catch (err) {
      const e = err as { code?: unknown; message?: unknown };
      parentPort!.postMessage({ id: m.id, error: { code: typeof e?.code === 'string' ? e.code : 'E_NATIVE', message: String(e?.message ?? err) } });
    }
  });
}
