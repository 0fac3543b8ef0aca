/**
 * How a tower packs its checkpoint's linear layers (q, k, v fused into one GEMM) and keeps the rest,
 * and the checks a tower's state passes when it is built from one (see the towers' fromState).
 */
import { ClipkitError } from '../errors';
import { PackedWeight, packWeight, packWeightParts, WeightDType } from '../ops/gemm';
import { dropIfMapped } from '../io/mapped';
import { Tensor } from '../tensor';
import { Linear, Norm, PreNormLayer } from '../loading/weights';

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
 *
 * `sink`: every leaf goes to the sink, one at a time, and the state holds what the sink returns:
 * the weight cache's CacheWriter (its stand-ins, for the file's index: no tower's state), or
 * memorySink (the leaves in memory). inPlace is ignored with a sink.
 */
export interface PackSettings {
  dtype: WeightDType;
  inPlace: boolean;
  sink?: WeightSink;
}

/** Where a streaming build puts each leaf of a tower's state (weight_cache.ts CacheWriter). */
export interface WeightSink {
  /** The parts [N_i, K] stacked along N, packed and stored; resolves to the weight's stand-in. */
  packed(parts: readonly Tensor[], dtype: WeightDType): Promise<PackedWeight>;
  /** t stored as it is; resolves to its stand-in. */
  tensor(t: Tensor): Promise<Tensor>;
  /** t's values were used some other way (copied into a leaf of another shape) and are not needed again. */
  consumed(t: Tensor): void;
}

/**
 * Every leaf kept in memory (packed weights in the addon's, tensors as copies of their own), each
 * source tensor's pages in a mapped checkpoint let go of once used (dropIfMapped): a load that
 * packs a mapped checkpoint holds about one weight of it at a time besides what it keeps.
 */
export const memorySink: WeightSink = {
  async packed(parts, dtype) {
    const w = parts.length === 1 ? await packWeight(parts[0], { dtype }) : await packWeightParts([...parts], { dtype });
    for (const p of parts) dropIfMapped(p.data);
    return w;
  },
  async tensor(t) {
    const copy = new Tensor((t.data as Float32Array).slice(), t.shape);
    dropIfMapped(t.data);
    return copy;
  },
  consumed: (t) => void dropIfMapped(t.data),
};

/** w [N, K] packed for `linear`, or stored by the sink. */
export function pack(w: Tensor, s: PackSettings): Promise<PackedWeight> {
  return s.sink ? s.sink.packed([w], s.dtype) : packWeight(w, { dtype: s.dtype, inPlace: s.inPlace });
}

export async function packLinear(l: Linear, s: PackSettings): Promise<PackedLinear> {
  return { weight: await pack(l.weight, s), bias: l.bias && (await keep(l.bias, s)) };
}

/** q, k, v [W, W] each → one packed [3W, W] weight and a [3W] bias: one GEMM gives q | k | v per row. */
export async function packQkv(q: Linear, k: Linear, v: Linear, s: PackSettings): Promise<PackedLinear> {
  const n = q.weight.shape[0];
  const b = new Float32Array(3 * n);
  [q, k, v].forEach((l, i) => b.set(l.bias.data, i * n));
  const parts = [q.weight, k.weight, v.weight];
  if (s.sink) {
    const weight = await s.sink.packed(parts, s.dtype);
    for (const l of [q, k, v]) s.sink.consumed(l.bias);
    return { weight, bias: await s.sink.tensor(new Tensor(b, [3 * n])) };
  }
  return { weight: await packWeightParts(parts, { dtype: s.dtype, inPlace: s.inPlace }), bias: new Tensor(b, [3 * n]) };
}

/**
 * What a tower keeps unpacked: a view when the checkpoint stays alive anyway (in place), else its
 * own copy; with a sink, the sink's stand-in.
 */
export async function keep(t: Tensor, s: PackSettings): Promise<Tensor> {
  if (s.sink) return s.sink.tensor(t);
  return s.inPlace && s.dtype === 'float32' ? t : own(t);
}

export async function keepNorm(n: Norm, s: PackSettings): Promise<Norm> {
  return { weight: await keep(n.weight, s), bias: await keep(n.bias, s) };
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
    layerNorm1: await keepNorm(l.layerNorm1, s),
    qkv: await packQkv(l.q, l.k, l.v, s),
    out: await packLinear(l.out, s),
    layerNorm2: await keepNorm(l.layerNorm2, s),
    fc1: await packLinear(l.fc1, s),
    fc2: await packLinear(l.fc2, s),
  };
}

/**
 * Checks of a tower's state against its config, for towers built from a stored state (the weight
 * cache): a state the forward pass would trip over is refused here, at construction, with E_FORMAT.
 * Packed weights must be whole (row0 0): row views are derived from them, never stored.
 */
export function expectPackedState(what: string, w: unknown, n: number | undefined, k: number): PackedWeight {
  if (!(w instanceof PackedWeight)) throw stateError(`${what} is not a packed weight`);
  if (w.row0 !== 0) throw stateError(`${what} is a row range of a packed weight, not a whole one`);
  if ((n !== undefined && w.n !== n) || w.k !== k) throw stateError(`${what} is [${w.n}, ${w.k}], expected [${n ?? '*'}, ${k}]`);
  return w;
}

export function expectTensorState(what: string, t: unknown, shape: readonly (number | undefined)[]): Tensor {
  if (!(t instanceof Tensor) || t.dtype !== 'float32') throw stateError(`${what} is not a float32 tensor`);
  if (t.shape.length !== shape.length || shape.some((d, i) => d !== undefined && d !== t.shape[i]))
    throw stateError(`${what} is [${t.shape.join(', ')}], expected [${shape.map((d) => d ?? '*').join(', ')}]`);
  return t;
}

export function expectNormState(what: string, n: Norm | undefined, width: number): void {
  if (n === null || typeof n !== 'object') throw stateError(`${what} is missing`);
  expectTensorState(`${what}.weight`, n.weight, [width]);
  expectTensorState(`${what}.bias`, n.bias, [width]);
}

export function expectLinearState(what: string, l: PackedLinear | undefined, n: number | undefined, k: number, bias = true): void {
  if (l === null || typeof l !== 'object') throw stateError(`${what} is missing`);
  const w = expectPackedState(`${what}.weight`, l.weight, n, k);
  if (bias) expectTensorState(`${what}.bias`, l.bias, [w.n]);
  else if (l.bias !== undefined) expectTensorState(`${what}.bias`, l.bias, [w.n]);
}

/** layers: `count` pre-LN layers of width W and MLP width I. */
export function expectPreNormLayers(what: string, layers: PackedPreNormLayer[], count: number, width: number, inter: number): void {
  if (!Array.isArray(layers) || layers.length !== count) throw stateError(`${what} has ${Array.isArray(layers) ? layers.length : 'no'} layers, expected ${count}`);
  layers.forEach((l, i) => {
    const p = `${what}[${i}]`;
    expectNormState(`${p}.layerNorm1`, l.layerNorm1, width);
    expectLinearState(`${p}.qkv`, l.qkv, 3 * width, width);
    expectLinearState(`${p}.out`, l.out, width, width);
    expectNormState(`${p}.layerNorm2`, l.layerNorm2, width);
    expectLinearState(`${p}.fc1`, l.fc1, inter, width);
    expectLinearState(`${p}.fc2`, l.fc2, width, inter);
  });
}

export function stateError(problem: string): ClipkitError {
  return new ClipkitError('E_FORMAT', `Invalid tower state: ${problem}`);
}
