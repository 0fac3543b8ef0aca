/** Ops of a forward pass queued back to back and handed back together (the quiet mode of the addon). */
import { native } from '../native';

/** Whether ops submitted now go quietly: the addon's setting, as OpQueue.add last left it. */
let quiet = false;

/**
 * Ops queued back to back, without waiting for each to finish before submitting the next. The
 * native dispatcher runs jobs one at a time in the order they were submitted (csrc/thread_pool.h),
 * and every op submits its job before its first await, so an op may be queued while the op whose
 * output it reads is still running: the worker goes straight from one op to the next instead of
 * idling through a round trip to JavaScript for each of a pass's hundred-odd ops.
 * Outputs are tensors the caller created (`out`), so they are known before the ops run.
 */
export class OpQueue {
  private pending: Promise<unknown>[] = [];

  /**
   * Queues the op `submit` starts. It is submitted quietly: its promise settles together with the
   * rest of the queue at done(), not on its own, so the JS thread is not woken once per op while
   * the kernels run (on a machine with few cores each wake-up takes one from them).
   */
  add(submit: () => Promise<unknown>): void {
    const addon = native();
    // Restored, not reset: `submit` may add ops itself (q.add(() => attentionPacked(preNormQkv(…, q))))
    // and the op it submits after those must still go quietly.
    const wasQuiet = quiet;
    quiet = true;
    addon.setQuiet(true);
    let op: Promise<unknown>;
    try {
      op = submit();
    } finally {
      quiet = wasQuiet;
      addon.setQuiet(wasQuiet);
    }
    op.catch(() => undefined); // reported by done()
    this.pending.push(op);
  }

  /** Waits for every queued op; rejects with the first failure (in queue order). */
  async done(): Promise<void> {
    const ops = this.pending;
    this.pending = [];
    // The fence is handed back as soon as it runs, and every quiet op before it with it.
    if (ops.length) ops.push(native().fence({}));
    const settled = await Promise.allSettled(ops);
    const failed = settled.find((r): r is PromiseRejectedResult => r.status === 'rejected');
    if (failed) throw failed.reason;
  }
}
