/**
 * Pieces the towers share: queued ops, packed linear layers (with q, k, v fused into one GEMM), the
 * pre-LN transformer block of the ViT and the CLIP text tower, row picking, and ragged text batches.
 */
import { gatherRows } from '../ops/embedding';
import { linear, PackedWeight, packWeight, packWeightParts, panelWidth, WeightDType } from '../ops/gemm';
import { layerNorm } from '../ops/layer_norm';
import { Tensor } from '../tensor';
import { native } from '../native';
import { HiddenAct } from './config';
import { Linear, Norm, PreNormLayer } from './weights';

/** What a text tower returns for n texts, in input order. */
export interface TextOutput {
  /** The pooled row [n, W] (BERT: [CLS]; CLIP: end of text after final_layer_norm). */
  pooled: Tensor;
  /** pooled · text_projectionᵀ [n, E], not normalised. */
  embeds: Tensor;
}

/** Every layer's output, as transformers' `output_hidden_states` gives them (for checks, not speed). */
export interface HiddenStates {
  /** The embeddings (the first layer's input), then each layer's output: [B, S, W] each. */
  hiddenStates: Tensor[];
  /** The tower's last_hidden_state [B, S, ·]. */
  lastHiddenState: Tensor;
}

/**
 * Ops queued back to back, without waiting for each to finish before submitting the next. The
 * native dispatcher runs jobs one at a time in the order they were submitted (csrc/thread_pool.h),
 * and every op submits its job before its first await, so an op may be queued while the op whose
 * output it reads is still running: the worker goes straight from one op to the next instead of
 * idling through a round trip to JavaScript (70–130 µs per op on a 2-core VM, ~110 ops per text).
 * Outputs are tensors the caller created (`out`), so they are known before the ops run.
 */
/** Whether ops submitted now go quietly: the addon's setting, as OpQueue.add last left it. */
let quiet = false;

export class OpQueue {
  private pending: Promise<unknown>[] = [];

  /**
   * Queues the op `submit` starts. It is submitted quietly: its promise settles together with the
   * rest of the queue at done(), not on its own, so the JS thread is not woken once per op while
   * the kernels run (on a 2-core machine each wake-up takes a core from them: 3–8 % of a text at
   * batch 1).
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

/** A new [rows, width] tensor (results that leave a tower, which a workspace would overwrite). */
export function fresh(rows: number, width: number): Tensor {
  return new Tensor(new Float32Array(rows * width), [rows, width]);
}

/**
 * Runs `layer` over each of `layers` from x, keeping a copy of every hidden state (layers may
 * update their input in place). Returns the copies and the last output.
 */
export async function collectStates<L>(x: Tensor, layers: readonly L[], layer: (x: Tensor, l: L) => Promise<Tensor>): Promise<{ states: Tensor[]; x: Tensor }> {
  const copy = (t: Tensor) => new Tensor((t.data as Float32Array).slice(), t.shape);
  const states = [copy(x)];
  for (const l of layers) {
    x = await layer(x, l);
    states.push(copy(x));
  }
  return { states, x };
}

/**
 * Scratch activations reused from layer to layer and from call to call. A fresh multi-megabyte
 * output per op costs page faults and zeroing on every first touch (measured: 15 % of a
 * 1576×768→3072 GEMM); a tower instead writes its activations into these buffers, which grow to
 * the largest batch seen and stay. One workspace serves one forward pass at a time (WorkspacePool).
 */
export class Workspace {
  private readonly buffers = new Map<string, Float32Array>();

  /** A tensor of `shape` over the buffer called `name` (its previous contents are garbage). */
  tensor(name: string, shape: readonly number[]): Tensor {
    const size = shape.reduce((a, b) => a * b, 1);
    let buffer = this.buffers.get(name);
    if (!buffer || buffer.length < size) {
      buffer = new Float32Array(size);
      this.buffers.set(name, buffer);
    }
    return new Tensor(buffer.subarray(0, size), [...shape]);
  }

  /** Whether t lies in the buffer called `name`. */
  holds(name: string, t: Tensor): boolean {
    return this.buffers.get(name)?.buffer === t.data.buffer;
  }
}

/** Workspaces for concurrent forward passes: each pass borrows one and gives it back. */
export class WorkspacePool {
  private readonly free: Workspace[] = [];

  async use<T>(run: (ws: Workspace) => Promise<T>): Promise<T> {
    const ws = this.free.pop() ?? new Workspace();
    try {
      return await run(ws);
    } finally {
      this.free.push(ws);
    }
  }
}

/** A linear layer whose weight is packed for `linear`. */
export interface PackedLinear {
  weight: PackedWeight;
  bias?: Tensor;
}

/**
 * How a tower packs its checkpoint's weights. `inPlace`: the checkpoint's float32 arrays are the
 * loader's alone (read from a safetensors file for this model), so fp32 weights are packed over
 * their own storage (no new memory: each fresh 4 KiB page costs a fault on first touch) and the
 * tensors that run unpacked stay views into it (it is kept alive by the packed weights anyway).
 */
export interface PackSettings {
  dtype: WeightDType;
  inPlace: boolean;
}

export async function packLinear(l: Linear, s: PackSettings): Promise<PackedLinear> {
  return { weight: await packWeight(l.weight, s), bias: l.bias && keep(l.bias, s) };
}

/** q, k, v [W, W] each → one packed [3W, W] weight and a [3W] bias: one GEMM gives q | k | v per row. */
export async function packQkv(q: Linear, k: Linear, v: Linear, s: PackSettings): Promise<PackedLinear> {
  const n = q.weight.shape[0];
  const b = new Float32Array(3 * n);
  [q, k, v].forEach((l, i) => b.set(l.bias.data, i * n));
  return { weight: await packWeightParts([q.weight, k.weight, v.weight], s), bias: new Tensor(b, [3 * n]) };
}

/** What a tower keeps unpacked: a view when the checkpoint stays alive anyway (in place), else its own copy. */
export function keep(t: Tensor, s: PackSettings): Tensor {
  return s.inPlace && s.dtype === 'float32' ? t : own(t);
}

export function keepNorm(n: Norm, s: PackSettings): Norm {
  return { weight: keep(n.weight, s), bias: keep(n.bias, s) };
}

/**
 * A tensor that owns its storage. Float32 tensors of a checkpoint are views into the whole file read
 * at once; a tower that kept such a view (an embedding table, a norm) would keep the entire file alive
 * after its linear weights have been packed as copies. Views are copied; tensors that already own
 * their buffer (widened F16/BF16) are returned as they are.
 */
function own(t: Tensor): Tensor {
  const d = t.data as Float32Array;
  if (d.byteOffset === 0 && d.byteLength === d.buffer.byteLength) return t;
  return new Tensor(d.slice(), t.shape);
}

/** A pre-LayerNorm layer with packed weights. */
export interface PackedPreNormLayer {
  layerNorm1: Norm;
  qkv: PackedLinear;
  out: PackedLinear;
  layerNorm2: Norm;
  fc1: PackedLinear;
  fc2: PackedLinear;
}

export async function packPreNormLayer(l: PreNormLayer, s: PackSettings): Promise<PackedPreNormLayer> {
  return {
    layerNorm1: keepNorm(l.layerNorm1, s),
    qkv: await packQkv(l.q, l.k, l.v, s),
    out: await packLinear(l.out, s),
    layerNorm2: keepNorm(l.layerNorm2, s),
    fc1: await packLinear(l.fc1, s),
    fc2: await packLinear(l.fc2, s),
  };
}

/** How a tower runs its layers. */
export interface BlockSettings {
  heads: number;
  eps: number;
  act: HiddenAct;
}

/**
 * The MLP half of a pre-LN block, queued in place on the residual stream x [..., W]:
 * x += fc2(act(fc1(layer_norm2(x)))). Intermediates go to `ws`.
 */
export function preNormMlp(x: Tensor, l: PackedPreNormLayer, s: BlockSettings, ws: Workspace, q: OpQueue): void {
  const rows = x.shape.slice(0, -1);
  const h = ws.tensor('norm', x.shape), f = ws.tensor('mlp', [...rows, l.fc1.weight.n]);
  q.add(() => layerNorm(x, l.layerNorm2.weight, l.layerNorm2.bias, { eps: s.eps, out: h }));
  // act is applied by fc2 as it reads f (see LinearOptions.inputActivation).
  q.add(() => linear(h, l.fc1.weight, { bias: l.fc1.bias, out: f }));
  q.add(() => linear(f, l.fc2.weight, { bias: l.fc2.bias, inputActivation: s.act, residual: x, out: x }));
}

/** The attention input of a pre-LN block, queued: packed q | k | v [..., 3W] of layer_norm1(x), in `ws`. */
export function preNormQkv(x: Tensor, l: PackedPreNormLayer, s: BlockSettings, ws: Workspace, q: OpQueue): Tensor {
  const h = ws.tensor('norm', x.shape), qkv = ws.tensor('qkv', [...x.shape.slice(0, -1), l.qkv.weight.n]);
  q.add(() => layerNorm(x, l.layerNorm1.weight, l.layerNorm1.bias, { eps: s.eps, out: h }));
  q.add(() => linear(h, l.qkv.weight, { bias: l.qkv.bias, out: qkv }));
  return qkv;
}

/**
 * The attention input of a last layer that needs the output of some rows only (the class token,
 * [CLS]), queued: k and v of every row of h [..., W] into qkv [..., 3W], whose q part is left unset,
 * and q of rows `index` alone → query [n, W] (a third of the projection for the other rows saved);
 * `picked` holds those rows of h. When W is not a multiple of panelWidth() (the packed weight's panels) the
 * projection runs whole and query is undefined: attention then reads qkv's q part.
 */
export function lastLayerQkv(h: Tensor, l: PackedLinear, index: ArrayLike<number>, ws: Workspace, q: OpQueue): { qkv: Tensor; query?: Tensor; picked: Tensor } {
  const width = h.shape[h.shape.length - 1], n = l.weight.n;
  const qkv = ws.tensor('qkv', [...h.shape.slice(0, -1), n]);
  const picked = pickRows(h, index, q);
  if (width % panelWidth() !== 0 || n !== 3 * width) {
    q.add(() => linear(h, l.weight, { bias: l.bias, out: qkv }));
    return { qkv, picked };
  }
  const part = (t: Tensor | undefined, start: number, end: number) => t && new Tensor((t.data as Float32Array).subarray(start, end), [end - start]);
  const query = ws.tensor('query', [index.length, width]);
  q.add(() => linear(h, l.weight.rows(width, n), { bias: part(l.bias, width, n), out: qkv, outColumn: width }));
  q.add(() => linear(picked, l.weight.rows(0, width), { bias: part(l.bias, 0, width), out: query }));
  return { qkv, query, picked };
}

/** Rows `index` of x [R, W] (or [B, S, W], rows counted across the batch), queued → a new [n, W]. */
export function pickRows(x: Tensor, index: ArrayLike<number>, q: OpQueue): Tensor {
  const width = x.shape[x.shape.length - 1];
  const out = fresh(index.length, width);
  q.add(() => gatherRows(x.reshape([x.size / width, width]), index, { out }));
  return out;
}

/**
 * Indices of the inputs grouped into batches of at most `batchSize`, by length (sorted, stable),
 * so texts of similar length run together.
 */
export function groupByLength(lengths: ArrayLike<number>, batchSize: number): number[][] {
  const order = Array.from({ length: lengths.length }, (_, i) => i).sort((a, b) => lengths[a] - lengths[b] || a - b);
  const groups: number[][] = [];
  for (let i = 0; i < order.length; i += batchSize) groups.push(order.slice(i, i + batchSize));
  return groups;
}

/**
 * Texts of different lengths stacked row after row, without padding: text b is rows
 * [starts[b], starts[b + 1]) of `ids`. The towers run every GEMM over all the rows at once and
 * attention within each text (attentionRagged), so a batch costs the sum of its true lengths.
 */
export interface RaggedBatch {
  ids: Int32Array; // [rows]
  starts: Int32Array; // [B + 1]
  /** Each text's key (true length, or end-of-text position), as given to encodeInGroups. */
  keys: number[];
  /** Each row's position within its text: 0, 1, … */
  positions: Int32Array; // [rows]
}

/** Rows `group` of ids [n, context], each cut to its own `lengths[i]` columns and stacked. */
export function raggedBatch(ids: Int32Array, context: number, group: readonly number[], lengths: readonly number[], keys: number[]): RaggedBatch {
  const starts = new Int32Array(group.length + 1);
  group.forEach((_, b) => (starts[b + 1] = starts[b] + lengths[b]));
  const rows = starts[group.length];
  const out = new Int32Array(rows), positions = new Int32Array(rows);
  group.forEach((g, b) => {
    out.set(ids.subarray(g * context, g * context + lengths[b]), starts[b]);
    for (let j = 0; j < lengths[b]; j++) positions[starts[b] + j] = j;
  });
  return { ids: out, starts, keys, positions };
}

/**
 * Runs a text tower over ids [n, context] in ragged batches of at most `batchSize` texts of similar
 * `keys[i]` (true length, or end-of-text position), each text cut to `lengthOf(its key)` rows (or
 * to `padTo` when given: tests compare against padded runs), and puts every text's pooled output
 * and embedding back in input order.
 */
export async function encodeInGroups(
  ids: Int32Array,
  n: number,
  context: number,
  keys: ArrayLike<number>,
  batchSize: number,
  lengthOf: (key: number) => number,
  padTo: number | undefined,
  width: number,
  proj: number,
  runGroup: (batch: RaggedBatch) => Promise<TextOutput>,
): Promise<TextOutput> {
  const pooled = new Float32Array(n * width), embeds = new Float32Array(n * proj);
  for (const group of groupByLength(keys, batchSize)) {
    const groupKeys = group.map((g) => keys[g] as number);
    const lengths = groupKeys.map((k) => padTo ?? lengthOf(k));
    const out = await runGroup(raggedBatch(ids, context, group, lengths, groupKeys));
    group.forEach((g, r) => {
      pooled.set(out.pooled.data.subarray(r * width, (r + 1) * width), g * width);
      embeds.set(out.embeds.data.subarray(r * proj, (r + 1) * proj), g * proj);
    });
  }
  return { pooled: new Tensor(pooled, [n, width]), embeds: new Tensor(embeds, [n, proj]) };
}
