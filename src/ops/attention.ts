/**
 * Fused multi-head attention: out = softmax(scale·Q·Kᵀ + mask)·V per (batch, head), computed with a
 * streaming softmax over key blocks (the [seq, seq] score matrix is never stored).
 */
import { describe, expectInt, expectPositive, expectShape, expectTensor, overlaps, expectOptions, OptionKeys } from '../check';
import { rangeError, typeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';

export interface AttentionOptions {
  /** Number of heads; the last axis holds heads·headDim values, head h at [h·headDim, (h+1)·headDim). */
  heads: number;
  /** Query i sees keys j <= i only. */
  causal?: boolean;
  /**
   * Key padding mask [batch, seq]: nonzero keeps key j of batch b, 0 drops it (weight exactly 0).
   * A query row whose keys are all dropped gets an output of 0, not NaN.
   */
  keyMask?: Int32Array | Uint8Array | Tensor<'int32'>;
  /** Compute only the first qRows query rows (1: the class token of a ViT's last layer). Default: seq. */
  qRows?: number;
  /** Multiplier of the scores, > 0. Default 1/sqrt(headDim). */
  scale?: number;
  /** Writes the result here ([batch, qRows, heads·headDim], not sharing storage with the inputs) instead of a new tensor. */
  out?: Tensor;
}

/** Attention on the packed output of one QKV projection. */
export interface PackedOptions extends AttentionOptions {
  /**
   * The queries of the rows computed, [batch, qRows, heads·headDim], read instead of qkv's q part
   * (which is then never read): a last layer that needs the class token alone projects q for that
   * row only.
   */
  query?: Tensor;
}

/** A ragged batch: sequences of different lengths stacked row after row, without padding. */
export interface RaggedOptions extends Omit<AttentionOptions, 'qRows'> {
  /** [batch + 1]: sequence b is rows [seqStarts[b], seqStarts[b + 1]), each at least 1 row; seqStarts[0] = 0. */
  seqStarts: Int32Array;
  /** Only each sequence's first row (out: [batch, heads·headDim]) instead of every row (out: [rows, heads·headDim]). */
  firstRowOnly?: boolean;
  /** Key mask: one entry per row ([rows]). */
  keyMask?: Int32Array | Uint8Array;
  /** With firstRowOnly: each sequence's first query row, [batch, heads·headDim], read instead of qkv's q part. */
  query?: Tensor;
}

/** Separate projections. q, k, v: [batch, seq, heads·headDim] → [batch, qRows, heads·headDim]. */
const ATTENTION_OPTIONS: OptionKeys<AttentionOptions> = { heads: true, causal: true, keyMask: true, qRows: true, scale: true, out: true };
const PACKED_OPTIONS: OptionKeys<PackedOptions> = { ...ATTENTION_OPTIONS, query: true };
const RAGGED_OPTIONS: OptionKeys<RaggedOptions> = { heads: true, causal: true, keyMask: true, scale: true, out: true, seqStarts: true, firstRowOnly: true, query: true };

export async function attention(q: Tensor, k: Tensor, v: Tensor, opts: AttentionOptions): Promise<Tensor> {
  expectOptions('attention', opts, ATTENTION_OPTIONS);
  expectTensor('q', q, 'float32');
  if (q.rank !== 3) throw rangeError('E_SHAPE', `Expected q of shape [batch, seq, heads·headDim] but received [${q.shape.join(', ')}]`);
  expectShape('k', expectTensor('k', k, 'float32'), q.shape);
  expectShape('v', expectTensor('v', v, 'float32'), q.shape);
  const [batch, seq, width] = q.shape;
  const o = attentionOptions(opts, batch, seq, width, 'q');
  const out = outputOf(opts.out, [batch, o.qRows, width], [q, k, v]);
  await native().attention({ q: q.data, k: k.data, v: v.data, out: out.data, batch, seq, ...o });
  return out;
}

/**
 * The packed output of one QKV projection. qkv: [batch, seq, 3·heads·headDim] holding q | k | v
 * along the last axis → [batch, qRows, heads·headDim]. Read in place (no copies).
 */
export async function attentionPacked(qkv: Tensor, opts: PackedOptions): Promise<Tensor> {
  expectOptions('attentionPacked', opts, PACKED_OPTIONS);
  expectTensor('qkv', qkv, 'float32');
  if (qkv.rank !== 3 || qkv.shape[2] % 3 !== 0)
    throw rangeError('E_SHAPE', `Expected qkv of shape [batch, seq, 3·heads·headDim] but received [${qkv.shape.join(', ')}]`);
  const [batch, seq, width3] = qkv.shape;
  const width = width3 / 3;
  const o = attentionOptions(opts, batch, seq, width, 'qkv');
  const query = queryOf(opts.query, [batch, o.qRows, width]);
  const out = outputOf(opts.out, [batch, o.qRows, width], query ? [qkv, query] : [qkv]);
  await native().attention({ qkv: qkv.data, query: query?.data, out: out.data, batch, seq, ...o });
  return out;
}

/**
 * Attention within each sequence of a ragged batch. qkv: [rows, 3·heads·headDim] holding q | k | v,
 * sequence b at rows [seqStarts[b], seqStarts[b + 1]) → [rows, heads·headDim], or [batch, ·] with
 * firstRowOnly. Every sequence gives exactly what it gives alone (no padding, no cross-talk).
 */
export async function attentionRagged(qkv: Tensor, opts: RaggedOptions): Promise<Tensor> {
  expectOptions('attentionRagged', opts, RAGGED_OPTIONS);
  expectTensor('qkv', qkv, 'float32');
  if (qkv.rank !== 2 || qkv.shape[1] % 3 !== 0)
    throw rangeError('E_SHAPE', `Expected qkv of shape [rows, 3·heads·headDim] but received [${qkv.shape.join(', ')}]`);
  const [rows, width3] = qkv.shape;
  const width = width3 / 3;
  const starts = opts?.seqStarts;
  if (!(starts instanceof Int32Array) || starts.length < 1)
    throw typeError('E_ARG', `Expected an Int32Array [batch + 1] for seqStarts but received ${describe(starts)}`);
  const batch = starts.length - 1;
  let seq = 0;
  for (let b = 0; b < batch; b++) {
    const len = starts[b + 1] - starts[b];
    if (!(len >= 1)) throw rangeError('E_ARG', `Expected seqStarts to increase, each sequence at least 1 row, but sequence ${b} has ${len}`);
    seq = Math.max(seq, len);
  }
  if (starts[0] !== 0 || starts[batch] !== rows)
    throw rangeError('E_SHAPE', `Expected seqStarts from 0 to the ${rows} rows of qkv but received ${starts[0]} … ${starts[batch]}`);
  const o = attentionOptions({ ...opts, keyMask: undefined, qRows: undefined }, batch, seq, width, 'qkv');
  if (opts.keyMask !== undefined && opts.keyMask !== null) {
    const m = opts.keyMask;
    if (!(m instanceof Int32Array || m instanceof Uint8Array))
      throw typeError('E_DTYPE', `Expected Int32Array or Uint8Array for keyMask but received ${describe(m)}`);
    if (m.length !== rows) throw rangeError('E_SHAPE', `Expected keyMask of length ${rows} (one per row) but received length ${m.length}`);
    o.keyMask = m;
  }
  const firstRowOnly = opts.firstRowOnly ?? false;
  if (typeof firstRowOnly !== 'boolean') throw typeError('E_ARG', `Expected a boolean for firstRowOnly but received ${describe(firstRowOnly)}`);
  const query = queryOf(opts.query, [batch, width]);
  if (query && !firstRowOnly) throw rangeError('E_ARG', 'Expected firstRowOnly with query (one query row per sequence)');
  const out = outputOf(opts.out, [firstRowOnly ? batch : rows, width], query ? [qkv, query] : [qkv]);
  await native().attention({
    qkv: qkv.data, query: query?.data, out: out.data, batch, seq, ...o, qRows: firstRowOnly ? Math.min(1, seq) : seq, seqStarts: starts,
  });
  return out;
}

/** opts.query checked against its shape, or undefined. */
function queryOf(query: Tensor | undefined, shape: number[]): Tensor | undefined {
  if (query === undefined) return undefined;
  expectShape('query', expectTensor('query', query, 'float32'), shape);
  return query;
}

/** opts.out checked against the output shape and the inputs, or a new tensor. */
function outputOf(out: Tensor | undefined, shape: number[], inputs: Tensor[]): Tensor {
  if (out === undefined) return new Tensor(new Float32Array(shape.reduce((a, b) => a * b, 1)), shape);
  expectShape('out', expectTensor('out', out, 'float32'), shape);
  if (inputs.some((t) => overlaps(out.data, t.data))) throw rangeError('E_ARG', 'Expected out not to share storage with the inputs');
  return out;
}

function attentionOptions(opts: AttentionOptions, batch: number, seq: number, width: number, input: string) {
  if (opts === null || typeof opts !== 'object') throw typeError('E_ARG', `Expected an options object with heads but received ${describe(opts)}`);
  const heads = expectInt('heads', opts.heads, 1);
  if (width % heads !== 0)
    throw rangeError('E_SHAPE', `Expected the last axis of ${input} (${width} per projection) to be a multiple of heads (${heads})`);
  const headDim = width / heads;
  const qRows = opts.qRows === undefined ? seq : expectInt('qRows', opts.qRows, Math.min(1, seq), seq);
  const scale = opts.scale === undefined ? 1 / Math.sqrt(Math.max(headDim, 1)) : expectPositive('scale', opts.scale);
  if (opts.causal !== undefined && typeof opts.causal !== 'boolean')
    throw typeError('E_ARG', `Expected a boolean for causal but received ${describe(opts.causal)}`);
  return { heads, headDim, qRows, scale, causal: opts.causal ?? false, keyMask: keyMaskData(opts.keyMask, batch, seq) };
}

function keyMaskData(m: AttentionOptions['keyMask'], batch: number, seq: number): Int32Array | Uint8Array | undefined {
  if (m === undefined || m === null) return undefined;
  let data: Int32Array | Uint8Array;
  if (m instanceof Tensor) {
    expectShape('keyMask', expectTensor('keyMask', m, 'int32'), [batch, seq]);
    data = m.data;
  } else if (m instanceof Int32Array || m instanceof Uint8Array) {
    data = m;
  } else {
    throw typeError('E_DTYPE', `Expected Int32Array, Uint8Array or an int32 Tensor for keyMask but received ${describe(m)}`);
  }
  if (data.length !== batch * seq)
    throw rangeError('E_SHAPE', `Expected keyMask of length ${batch * seq} ([batch, seq] = [${batch}, ${seq}]) but received length ${data.length}`);
  return data;
}
