/**
 * Linear layers on packed weights: y = alpha·x·Wᵀ (+ bias) then GELU / QuickGELU, or + residual.
 * A weight [N, K] is packed once (at model load) into the micro-kernel's panels, in fp32 or in bf16
 * (the opt-in fast mode: weights and activations rounded to bf16, products accumulated in fp32).
 */
import { expectFinite, expectInt, expectOneOf, expectRankAtLeast, expectShape, expectTensor, describe, rowsOf, overlaps, expectOptions, OptionKeys } from '../check';
import { rangeError, typeError } from '../errors';
import { native, PackedHandle } from '../native';
import { Tensor } from '../tensor';

export type WeightDType = 'float32' | 'bfloat16';

/** A weight [n, k] packed in native memory for `linear`. Freed when garbage-collected. */
export class PackedWeight {
  /** @internal */
  constructor(
    readonly handle: PackedHandle,
    readonly n: number, // output features
    readonly k: number, // input features
    readonly dtype: WeightDType,
    /** @internal The first of the packed rows this weight is (rows()). */
    readonly row0 = 0,
  ) {}

  /**
   * Rows [start, end) of W (output features) as a weight of their own, sharing the packed panels:
   * e.g. k | v of a fused q | k | v weight. start a multiple of panelWidth() (16), and end too unless it is n.
   */
  rows(start: number, end: number): PackedWeight {
    expectInt('start', start, 0, this.n);
    expectInt('end', end, start, this.n);
    const p = panelWidth();
    if (start % p !== 0 || (end % p !== 0 && end !== this.n))
      throw rangeError('E_ARG', `Expected rows to start and end at multiples of ${p} (or at n = ${this.n}) but received [${start}, ${end})`);
    return new PackedWeight(this.handle, end - start, this.k, this.dtype, this.row0 + start);
  }
}

/**
 * The columns (output features) of a packed weight's panel, the addon's ck::kPanelCols: row
 * ranges of a packed weight start at multiples of it, and weights whose N is one are packed in place.
 */
export function panelWidth(): number {
  return (cachedPanelWidth ??= native().gemmPanelWidth());
}
let cachedPanelWidth: number | undefined;

export interface PackOptions {
  dtype?: WeightDType;
  /**
   * float32 only: the panels overwrite w's own storage (its values are gone afterwards) and the
   * packed weight keeps that buffer alive, so packing touches no new memory. For weights read from a
   * checkpoint that nothing else reads. Copies as usual when N is not a multiple of panelWidth() or dtype is bfloat16.
   */
  inPlace?: boolean;
}

/** Packs w [N, K] (row-major, like a PyTorch nn.Linear weight) for `linear`. */
export const PACK_OPTIONS: OptionKeys<PackOptions> = { dtype: true, inPlace: true };
const LINEAR_OPTIONS: OptionKeys<LinearOptions> = { bias: true, activation: true, residual: true, inputActivation: true, alpha: true, out: true, outColumn: true };

export async function packWeight(w: Tensor, opts: PackOptions = {}): Promise<PackedWeight> {
  expectOptions('packWeight', opts, PACK_OPTIONS);
  expectTensor('w', w, 'float32');
  const [n, k] = expectShape('w', w, [-1, -1]);
  const dtype = expectOneOf('dtype', opts.dtype ?? 'float32', ['float32', 'bfloat16'] as const);
  if (opts.inPlace !== undefined && typeof opts.inPlace !== 'boolean')
    throw typeError('E_ARG', `Expected a boolean for inPlace but received ${describe(opts.inPlace)}`);
  const inPlace = opts.inPlace === true && dtype === 'float32' && n % panelWidth() === 0;
  const handle = (await native().packWeight({ w: w.data, n, k, dtype, inPlace })) as PackedHandle;
  return new PackedWeight(handle, n, k, dtype);
}

/**
 * Packs the parts [N_i, K] stacked along N (e.g. q, k, v → one [3N, K] weight, one GEMM for all
 * three) without first copying them into one array. inPlace (as for packWeight) packs each part over
 * its own storage wherever it lies when every N_i is a multiple of panelWidth(); otherwise the parts are
 * concatenated and packed as usual.
 */
export async function packWeightParts(parts: Tensor[], opts: PackOptions = {}): Promise<PackedWeight> {
  expectOptions('packWeightParts', opts, PACK_OPTIONS);
  if (!Array.isArray(parts) || parts.length === 0) throw typeError('E_ARG', `Expected a non-empty array of weights but received ${describe(parts)}`);
  const k = expectShape('parts[0]', expectTensor('parts[0]', parts[0], 'float32'), [-1, -1])[1];
  const ns = parts.map((p, i) => expectShape(`parts[${i}]`, expectTensor(`parts[${i}]`, p, 'float32'), [-1, k])[0]);
  const n = ns.reduce((a, b) => a + b, 0);
  const dtype = expectOneOf('dtype', opts.dtype ?? 'float32', ['float32', 'bfloat16'] as const);
  if (opts.inPlace === true && dtype === 'float32' && ns.every((ni) => ni % panelWidth() === 0)) {
    const handle = (await native().packWeight({ parts: parts.map((p) => p.data), ns, k, inPlace: true })) as PackedHandle;
    return new PackedWeight(handle, n, k, dtype);
  }
  return packWeight(new Tensor(stackParts(parts, ns, k), [n, k]), { dtype, inPlace: opts.inPlace });
}

/** The parts [ns[i], k] one after another as one row-major array [Σns, k]. */
function stackParts(parts: readonly Tensor[], ns: readonly number[], k: number): Float32Array {
  const w = new Float32Array(ns.reduce((a, b) => a + b, 0) * k);
  let row = 0;
  parts.forEach((p, i) => {
    w.set(p.data as Float32Array, row * k);
    row += ns[i];
  });
  return w;
}

export type Activation = 'gelu' | 'quick_gelu';

export interface LinearOptions {
  bias?: Tensor; // [N]
  /** Applied after the bias: GELU (erf form) or QuickGELU x·σ(1.702x). Not with `residual`. */
  activation?: Activation;
  /** Added after the bias: y = alpha·x·Wᵀ + bias + residual. Shape [..., N]. */
  residual?: Tensor;
  /**
   * x is read through this: y = inputActivation(x)·Wᵀ + …, x itself unchanged. For an MLP, moving
   * the first layer's activation here gives the same numbers and runs it over whole rows of x as
   * they are packed, where it does not hold up the micro-kernel at the end of each output tile.
   */
  inputActivation?: Activation;
  alpha?: number; // scales x·Wᵀ only; default 1
  /** Writes the result here instead of a new tensor; may be `residual` itself (in-place residual add). */
  out?: Tensor;
  /**
   * With `out` of shape [..., C] (C >= outColumn + N): writes y into columns [outColumn, outColumn + N)
   * of out, leaving its other columns as they are (e.g. q, k and v side by side). Not with residual.
   */
  outColumn?: number;
}

/** y[..., N] = activation(alpha · inputActivation(x[..., K]) · Wᵀ + bias) (+ residual). */
export async function linear(x: Tensor, w: PackedWeight, opts: LinearOptions = {}): Promise<Tensor> {
  expectOptions('linear', opts, LINEAR_OPTIONS);
  expectTensor('x', x, 'float32');
  expectRankAtLeast('x', x, 1);
  expectPacked('w', w);
  const k = x.shape[x.shape.length - 1];
  if (k !== w.k)
    throw rangeError('E_SHAPE', `Expected x with last dimension ${w.k} (the weight's K) but received [${x.shape.join(', ')}]`);
  const m = rowsOf(x.shape);
  const yShape = [...x.shape.slice(0, -1), w.n];
  if (opts.bias !== undefined) expectShape('bias', expectTensor('bias', opts.bias, 'float32'), [w.n]);
  const alpha = expectFinite('alpha', opts.alpha ?? 1);
  const activation = opts.activation === undefined ? undefined : expectOneOf('activation', opts.activation, ['gelu', 'quick_gelu'] as const);
  const xActivation =
    opts.inputActivation === undefined ? 'none' : expectOneOf('inputActivation', opts.inputActivation, ['gelu', 'quick_gelu'] as const);
  const residual = opts.residual;
  if (residual !== undefined) {
    expectShape('residual', expectTensor('residual', residual, 'float32'), yShape);
    if (activation) throw rangeError('E_ARG', `Expected either activation or residual but received both (activation ${activation})`);
  }
  let y: Float32Array;
  if (opts.outColumn !== undefined) {
    const out = opts.out;
    if (out === undefined) throw rangeError('E_ARG', 'Expected out with outColumn');
    if (residual) throw rangeError('E_ARG', 'Expected either outColumn or residual but received both');
    expectShape('out', expectTensor('out', out, 'float32'), [...yShape.slice(0, -1), -1]);
    const ldy = out.shape[out.shape.length - 1];
    if (ldy < w.n) throw rangeError('E_SHAPE', `Expected out with at least ${w.n} columns but received [${out.shape.join(', ')}]`);
    const col = expectInt('outColumn', opts.outColumn, 0, ldy - w.n);
    if (overlaps(out.data, x.data)) throw rangeError('E_ARG', 'Expected out not to share storage with x');
    const epilogue = activation ?? 'none';
    await native().gemm({ x: x.data, m, k, w: w.handle, wRow0: w.row0, wRows: w.n, bias: opts.bias?.data, epilogue, xActivation, y: out.data.subarray(col), ldy, alpha });
    return out;
  }
  if (opts.out !== undefined) {
    expectShape('out', expectTensor('out', opts.out, 'float32'), yShape);
    y = opts.out.data;
    if (overlaps(y, x.data)) throw rangeError('E_ARG', 'Expected out not to share storage with x');
    if (residual && residual.data !== y && overlaps(y, residual.data))
      throw rangeError('E_ARG', 'Expected out to be residual itself or not to share storage with it');
  } else {
    y = new Float32Array(m * w.n);
  }
  const epilogue = residual ? 'residual' : (activation ?? 'none');
  await native().gemm({ x: x.data, m, k, w: w.handle, wRow0: w.row0, wRows: w.n, bias: opts.bias?.data, epilogue, xActivation, residual: residual?.data, y, alpha });
  return opts.out ?? new Tensor(y, yShape);
}

function expectPacked(name: string, w: unknown): asserts w is PackedWeight {
  if (!(w instanceof PackedWeight))
    throw typeError('E_ARG', `Expected a PackedWeight (from packWeight) for ${name} but received ${describe(w)}`);
}

/** @internal */
export function checkPacked(name: string, w: unknown): PackedWeight {
  expectPacked(name, w);
  return w;
}

// ---- packed bytes: a weight's panels as one block, for weights kept in files ----

/**
 * What the packed bytes depend on on this machine: the layout version (raised whenever packing
 * changes), the panel width, the fp32 and bf16 panel layouts and the byte order. Equal ids, equal
 * bytes for equal weights. Not the ISA: the panels are the same whatever ISA packed them.
 */
export function packedLayoutId(): string {
  return (cachedLayoutId ??= native().packedLayoutId());
}
let cachedLayoutId: string | undefined;

/** The bytes packedBytes gives for a weight [n, k] of dtype (what adoptPacked expects). */
export function packedBytesFor(n: number, k: number, dtype: WeightDType = 'float32'): number {
  expectInt('n', n, 0);
  expectInt('k', k, 0);
  return native().packedWeightBytes({ n, k, dtype: expectOneOf('dtype', dtype, ['float32', 'bfloat16'] as const) });
}

/**
 * The bytes of w's panels laid out one after another: what copyPacked writes. The same for a weight
 * packed as a copy, in place or in parts. A whole weight only (not a rows() view): E_ARG.
 */
export function packedBytes(w: PackedWeight): number {
  return expectWhole('w', w);
}

/** w's panels one after another into dst (of exactly packedBytes(w) bytes, any alignment), off the JavaScript thread. */
export async function copyPacked(w: PackedWeight, dst: Uint8Array): Promise<void> {
  const bytes = expectWhole('w', w);
  if (!(dst instanceof Uint8Array)) throw typeError('E_ARG', `Expected a Uint8Array for dst but received ${describe(dst)}`);
  if (dst.length !== bytes) throw rangeError('E_SHAPE', `Expected dst of ${bytes} bytes (the packed weight's) but received ${dst.length}`);
  await native().copyPackedWeight({ w: w.handle, dst });
}

/**
 * The parts [N_i, K] stacked along N (one weight, or q, k, v) packed straight into dst: exactly the
 * bytes copyPacked gives for packWeightParts(parts, { dtype }), with no packed weight made. dst is
 * packedBytesFor(ΣN_i, K, dtype) long (E_SHAPE) and 4-byte aligned (E_ARG). For weights written to a
 * file through one reused buffer (the weight cache's streaming build). Parts whose N_i are
 * multiples of panelWidth() are packed where they lie (their panels are the stacked weight's);
 * others are stacked into one array first.
 */
export async function packInto(parts: readonly Tensor[], dst: Uint8Array, dtype: WeightDType = 'float32'): Promise<void> {
  if (!Array.isArray(parts) || parts.length === 0) throw typeError('E_ARG', `Expected a non-empty array of weights but received ${describe(parts)}`);
  if (!(dst instanceof Uint8Array)) throw typeError('E_ARG', `Expected a Uint8Array for dst but received ${describe(dst)}`);
  expectOneOf('dtype', dtype, ['float32', 'bfloat16'] as const);
  const k = expectShape('parts[0]', expectTensor('parts[0]', parts[0], 'float32'), [-1, -1])[1];
  const ns = parts.map((p, i) => expectShape(`parts[${i}]`, expectTensor(`parts[${i}]`, p, 'float32'), [-1, k])[0]);
  const n = ns.reduce((a, b) => a + b, 0);
  const bytes = packedBytesFor(n, k, dtype);
  if (dst.length !== bytes) throw rangeError('E_SHAPE', `Expected dst of ${bytes} bytes (the packed size of [${n}, ${k}] ${dtype}) but received ${dst.length}`);
  if (parts.length > 1 && ns.some((ni) => ni % panelWidth() !== 0)) {
    return native().packWeightInto({ w: stackParts(parts, ns, k), n, k, dtype, dst });
  }
  let at = 0;
  for (let i = 0; i < parts.length; i++) {
    const size = packedBytesFor(ns[i], k, dtype);
    await native().packWeightInto({ w: parts[i].data as Float32Array, n: ns[i], k, dtype, dst: dst.subarray(at, at + size) });
    at += size;
  }
}

/**
 * A packed weight [n, k] over bytes copyPacked wrote (on a machine of the same packedLayoutId()),
 * without copying them: linear() on it gives bit for bit what it gave on the weight they came from.
 * data must be 64-byte aligned in memory (E_ARG; a mapped file's bytes at an offset that is a
 * multiple of 64 are) and exactly packedBytesFor(n, k, dtype) long (E_SHAPE). The weight keeps data's
 * buffer (and a mapFile mapping it lies in) alive; data must not be written while the weight is used.
 */
export function adoptPacked(data: Uint8Array, n: number, k: number, dtype: WeightDType = 'float32'): PackedWeight {
  if (!(data instanceof Uint8Array)) throw typeError('E_ARG', `Expected a Uint8Array for data but received ${describe(data)}`);
  const bytes = packedBytesFor(n, k, dtype);
  if (data.length !== bytes)
    throw rangeError('E_SHAPE', `Expected data of ${bytes} bytes (the packed size of [${n}, ${k}] ${dtype}) but received ${data.length}`);
  return new PackedWeight(native().adoptPackedWeight({ data, n, k, dtype }), n, k, dtype);
}

/** The packed bytes of w, which must be a whole weight, not a rows() view. */
function expectWhole(name: string, w: unknown): number {
  expectPacked(name, w);
  const bytes = native().packedWeightBytes(w.handle);
  if (w.row0 !== 0 || bytes !== packedBytesFor(w.n, w.k, w.dtype))
    throw rangeError('E_ARG', `Expected a whole packed weight for ${name} but received rows [${w.row0}, ${w.row0 + w.n}) of one`);
  return bytes;
}
