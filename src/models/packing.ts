/** How a tower packs its checkpoint's linear layers (q, k, v fused into one GEMM) and keeps the rest. */
import { PackedWeight, packWeight, packWeightParts, WeightDType } from '../ops/gemm';
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
