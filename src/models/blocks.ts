/**
 * The pieces of a forward pass the towers share: the pre-LN transformer block of the ViT and the
 * CLIP text tower, the last layer's q for picked rows, row picking, and hidden-state collection.
 */
import { gatherRows } from '../ops/embedding';
import { linear, panelWidth } from '../ops/gemm';
import { layerNorm } from '../ops/layer_norm';
import { Tensor } from '../tensor';
import { HiddenAct } from '../loading/config';
import { OpQueue } from './op_queue';
import { PackedLinear, PackedPreNormLayer } from './packing';
import { fresh, Workspace } from './workspace';

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
