/**
 * Continuous batching for the embedding service (the design of Hugging Face's TEI): requests put
 * their items on a queue, and whenever the model is free the next batch is whatever is queued, up
 * to a batch size and a token (texts) or image budget, oldest first. There is no wait timer: a
 * lone request runs at once, and under load batches fill by themselves while the previous one runs.
 *
 * What must stay true:
 *   - one forward pass at a time (the towers share the native pool's threads; two at once would
 *     only take turns on them), and a batch is one tower's: texts or images, never mixed;
 *   - an item's embedding does not depend on what it was batched with (the towers compute each row
 *     alone: ragged texts, per-image attention), so a served embedding equals encodeText /
 *     encodeImage of the same input bit for bit;
 *   - one bad item (an image that does not decode) fails that item alone, never its batch;
 *   - the queue is bounded in items: a request that does not fit is refused at once (Overloaded,
 *     429 upstream), before any of its items is queued;
 *   - an item whose request gave up (its deadline passed, or the client went away) is dropped
 *     before it is computed;
 *   - images are decoded on the native pool ahead of their batch, as they arrive, while the batch
 *     before them runs: the first maxBatch queued at most, so decoded pixels held stay bounded.
 */
import { ClipkitError } from '../errors';
import { ClipModel } from '../models/model';
import { encodeTexts } from '../tokenizers/off_thread';

/** A text or an image (its file bytes) to embed. */
export type Input = { text: string } | { image: Uint8Array };

export interface BatcherOptions {
  /** Items per forward pass. */
  maxBatch: number;
  /** Tokens (true lengths summed) per text batch. */
  maxBatchTokens: number;
  /** Items queued at most (not counting the batch running). */
  maxQueue: number;
}

/** The queue is full: try again later (429 with Retry-After). */
export class Overloaded extends Error {
  constructor(readonly retryAfterS: number) {
    super('The embedding queue is full');
  }
}

/** The batcher was drained: it takes no more work (503 upstream). */
export class ShuttingDown extends Error {
  constructor() {
    super('The service is shutting down');
  }
}

/** An item dropped unrun because its request gave up (deadline or client gone). */
export class Abandoned extends Error {}

/** One item's failure, naming its place in its request (400 upstream). */
export class ItemError extends Error {
  constructor(readonly index: number, readonly reason: unknown) {
    super(`Input ${index}: ${reason instanceof Error ? reason.message : String(reason)}`);
  }
}

interface Item {
  index: number;
  request: RequestState;
  enqueued: number;
  resolve(v: Float32Array): void;
  reject(e: unknown): void;
}

interface TextItem extends Item {
  ids: Int32Array; // one row, contextLength ids
  length: number;
}

interface ImageItem extends Item {
  bytes: Uint8Array;
  pixels?: Promise<Float32Array>;
}

interface RequestState {
  deadline: number;
  signal?: AbortSignal;
}

/** Timings the service records (metrics.ts): each is called once per event. */
export interface BatcherObserver {
  batch?(tower: 'text' | 'image', size: number, seconds: number): void;
  queued?(seconds: number): void;
  decoded?(seconds: number): void;
}

export class Batcher {
  private readonly texts: TextItem[] = [];
  private readonly images: ImageItem[] = [];
  private running = false;
  private runningSince = 0;
  private stopped = false;
  /** Exclusive jobs (label embeddings for classify) run between batches, in order. */
  private readonly jobs: { run: () => Promise<unknown>; resolve(v: unknown): void; reject(e: unknown): void }[] = [];
  private idleWaiters: (() => void)[] = [];
  /** Seconds per item, smoothed over batches: for Retry-After. */
  private secondsPerItem = 0.05;

  constructor(
    readonly model: ClipModel,
    readonly o: BatcherOptions,
    private readonly observe: BatcherObserver = {},
  ) {}

  /** Items waiting (not counting the batch running). */
  get queued(): number {
    return this.texts.length + this.images.length;
  }

  /** When the batch running now started (performance.now() ms), or undefined when idle: for /health. */
  get busySince(): number | undefined {
    return this.running ? this.runningSince : undefined;
  }

  /**
   * Embeds `inputs` (L2-normalised), in order, with the texts' tokens (true lengths) summed. Rejects with Overloaded when they do not fit in the
   * queue, ItemError for an input that cannot be embedded (the others are computed anyway, and the
   * first failure by index is reported), Abandoned when the deadline passes or `signal` aborts first.
   */
  async embed(inputs: readonly Input[], o: { deadline: number; signal?: AbortSignal }): Promise<{ embeddings: Float32Array[]; tokens: number }> {
    if (this.stopped) throw new ShuttingDown();
    if (this.queued + inputs.length > this.o.maxQueue) throw new Overloaded(this.retryAfter());
    const request: RequestState = { deadline: o.deadline, signal: o.signal };
    // Texts are tokenized now (off the JS thread when long), so that a batch only stacks rows.
    const textInputs = inputs.map((x, i) => ['text' in x ? x.text : undefined, i] as const).filter(([t]) => t !== undefined) as [string, number][];
    const encoded = textInputs.length ? await this.tokenize(textInputs) : undefined;
    if (this.queued + inputs.length > this.o.maxQueue) throw new Overloaded(this.retryAfter()); // others came in while tokenizing
    const now = performance.now();
    const results = inputs.map((x, index) => {
      return new Promise<Float32Array>((resolve, reject) => {
        const base = { index, request, enqueued: now, resolve, reject };
        if ('text' in x) {
          const row = textInputs.findIndex(([, i]) => i === index);
          const ctx = this.model.config.contextLength;
          this.texts.push({ ...base, ids: encoded!.ids.subarray(row * ctx, (row + 1) * ctx), length: encoded!.lengths[row] });
        } else this.images.push({ ...base, bytes: x.image });
      });
    });
    // Images of the next batch start decoding as they arrive, so that those coming in while a batch
    // runs are ready when it ends.
    this.prefetch();
    this.kick();
    // Given up (deadline or client gone): its items still queued leave the queue now, unrun.
    const abandon = (why: string) => {
      for (const queue of [this.texts, this.images] as Item[][])
        for (let j = queue.length - 1; j >= 0; j--)
          if (queue[j].request === request) queue.splice(j, 1)[0].reject(new Abandoned(why));
    };
    const timer = setTimeout(() => abandon('the deadline passed'), Math.max(0, o.deadline - performance.now()));
    const onAbort = () => abandon('the client went away');
    o.signal?.addEventListener('abort', onAbort, { once: true });
    // Settled one by one: all are awaited, so that no rejection is left unhandled, and the first failure by index wins.
    const settled = await Promise.allSettled(results).finally(() => {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
    });
    const failed = settled.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed) throw failed.reason;
    let tokens = 0;
    if (encoded) for (let j = 0; j < textInputs.length; j++) tokens += encoded.lengths[j];
    return { embeddings: settled.map((r) => (r as PromiseFulfilledResult<Float32Array>).value), tokens };
  }

  /** Runs `fn` with the model to itself, between batches (e.g. label embeddings for classify). */
  exclusive<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.jobs.push({ run: fn, resolve: resolve as (v: unknown) => void, reject });
      this.kick();
    });
  }

  /** Stops taking new work; resolves once everything queued has been answered. */
  async drain(): Promise<void> {
    this.stopped = true;
    if (!this.running && this.queued === 0 && this.jobs.length === 0) return;
    await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
  }

  private async tokenize(texts: [string, number][]): Promise<{ ids: Int32Array; lengths: Int32Array | number[] }> {
    try {
      return await encodeTexts(this.model.tokenizer, texts.map(([t]) => t));
    } catch (err) {
      // Tokenizing fails for the whole list; find the first text that fails alone, to name it.
      for (const [t, i] of texts) {
        try {
          this.model.tokenizer.encode([t]);
        } catch (e) {
          throw new ItemError(i, e);
        }
      }
      throw err;
    }
  }

  private retryAfter(): number {
    return Math.max(1, Math.ceil(this.queued * this.secondsPerItem));
  }

  /** Starts the pump on the next turn when it is not running. */
  private kick(): void {
    if (this.running) return;
    this.running = true;
    setImmediate(() => void this.pump());
  }

  private async pump(): Promise<void> {
    this.runningSince = performance.now();
    try {
      for (;;) {
        this.prefetch();
        const job = this.jobs.shift();
        if (job) {
          this.runningSince = performance.now();
          await job.run().then(job.resolve, job.reject);
          continue;
        }
        const tower = this.nextTower();
        if (!tower) break;
        this.runningSince = performance.now();
        if (tower === 'text') await this.runTexts(this.take(this.texts, (items) => this.textBudget(items)));
        else await this.runImages(this.take(this.images, (items) => items.length <= this.o.maxBatch));
      }
    } finally {
      this.running = false;
      if (this.queued || this.jobs.length) this.kick();
      else for (const w of this.idleWaiters.splice(0)) w();
    }
  }

  /** The tower whose oldest live item waited longest; undefined when nothing is queued. */
  private nextTower(): 'text' | 'image' | undefined {
    this.dropAbandoned(this.texts);
    this.dropAbandoned(this.images);
    const t = this.texts[0]?.enqueued ?? Infinity, i = this.images[0]?.enqueued ?? Infinity;
    if (t === Infinity && i === Infinity) return undefined;
    return t <= i ? 'text' : 'image';
  }

  private dropAbandoned<T extends Item>(queue: T[]): void {
    const now = performance.now();
    for (let j = 0; j < queue.length; ) {
      const r = queue[j].request;
      if (r.signal?.aborted || now > r.deadline) {
        queue[j].reject(new Abandoned(r.signal?.aborted ? 'the client went away' : 'the deadline passed'));
        queue.splice(j, 1);
      } else j++;
    }
  }

  private textBudget(items: TextItem[]): boolean {
    if (items.length > this.o.maxBatch) return false;
    let tokens = 0;
    for (const x of items) tokens += x.length;
    // A batch of one always fits, however long its text.
    return items.length === 1 || tokens <= this.o.maxBatchTokens;
  }

  /** The longest prefix of `queue` that `fits`, at least one item, removed from it. */
  private take<T>(queue: T[], fits: (items: T[]) => boolean): T[] {
    let n = 1;
    while (n < queue.length && fits(queue.slice(0, n + 1))) n++;
    return queue.splice(0, n);
  }

  /** Starts decoding the images of the next batch (at most maxBatch ahead). */
  private prefetch(): void {
    for (const item of this.images.slice(0, this.o.maxBatch)) {
      if (item.pixels) continue;
      const t0 = performance.now();
      item.pixels = this.model.preprocess(item.bytes);
      item.pixels.then(() => this.observe.decoded?.((performance.now() - t0) / 1000), () => undefined);
    }
  }

  private async runTexts(items: TextItem[]): Promise<void> {
    const ctx = this.model.config.contextLength;
    const ids = new Int32Array(items.length * ctx);
    items.forEach((x, j) => ids.set(x.ids, j * ctx));
    await this.run('text', items, () => this.model.encodeTokens(ids, items.length, { normalize: true }));
  }

  private async runImages(items: ImageItem[]): Promise<void> {
    this.prefetch(); // the next batch decodes while this one runs
    const size = this.model.config.imageSize, per = 3 * size * size;
    const good: ImageItem[] = [];
    const pixels: Float32Array[] = [];
    for (const x of items) {
      try {
        const px = await (x.pixels ?? this.model.preprocess(x.bytes));
        if (px.length !== per) throw new ClipkitError('E_SHAPE', `preprocesses to ${px.length} values, not 3·${size}·${size}`);
        pixels.push(px);
        good.push(x);
      } catch (err) {
        x.reject(new ItemError(x.index, err));
      }
    }
    if (!good.length) return;
    const stacked = new Float32Array(good.length * per);
    pixels.forEach((p, j) => stacked.set(p, j * per));
    await this.run('image', good, () => this.model.encodePixels(stacked, good.length, { normalize: true }));
  }

  private async run(tower: 'text' | 'image', items: Item[], forward: () => Promise<Float32Array[]>): Promise<void> {
    const t0 = performance.now();
    for (const x of items) this.observe.queued?.((t0 - x.enqueued) / 1000);
    let rows: Float32Array[];
    try {
      rows = await forward();
    } catch (err) {
      for (const x of items) x.reject(err);
      return;
    }
    const seconds = (performance.now() - t0) / 1000;
    this.secondsPerItem = 0.8 * this.secondsPerItem + 0.2 * (seconds / items.length);
    this.observe.batch?.(tower, items.length, seconds);
    items.forEach((x, j) => x.resolve(rows[j]));
  }
}
