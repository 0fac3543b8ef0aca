/**
 * The pieces of a forward pass the towers share: the pre-LN transformer block of the ViT and the
 * CLIP text tower, the last layer computed for the pooled rows alone (all three towers), row
 * picking, and hidden-state collection.
 */
import { gatherRows } from '../ops/embedding';
import { linear, panelWidth } from '../ops/gemm';
import { layerNorm } from '../ops/layer_norm';
import { rangeError } from '../errors';
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
 * [CLS], the end of text), queued: k and v of every row of h [..., W] into qkv [..., 3W], and q of
 * rows `index` alone → query [n, W] (a third of the projection for the other rows saved); `picked`
 * holds those rows of h. Every value is the one the whole projection gives, bit for bit. When W is
 * not a multiple of panelWidth() (the packed weight's panels) the k | v columns cannot be split off:
 * the projection runs whole, and query is the q part of the picked rows' own projection.
 */
export function lastLayerQkv(h: Tensor, l: PackedLinear, index: ArrayLike<number>, ws: Workspace, q: OpQueue): { qkv: Tensor; query: Tensor; picked: Tensor } {
  const width = h.shape[h.shape.length - 1], n = l.weight.n, picks = index.length;
  const qkv = ws.tensor('qkv', [...h.shape.slice(0, -1), n]);
  if (n !== 3 * width) throw rangeError('E_SHAPE', `Expected a q | k | v weight of ${3 * width} rows for width ${width} but received ${n}`);
  const picked = pickRows(h, index, q), query = ws.tensor('query', [picks, width]);
  if (width % panelWidth() !== 0) {
    q.add(() => linear(h, l.weight, { bias: l.bias, out: qkv }));
    // The picked rows' q | k | v, read as 3·picks rows of W: row 3i is q of pick i.
    const full = ws.tensor('pickedQkv', [picks, n]), qRows = Array.from({ length: picks }, (_, i) => 3 * i);
    q.add(() => linear(picked, l.weight, { bias: l.bias, out: full }));
    q.add(() => gatherRows(full.reshape([(picks * n) / width, width]), qRows, { out: query }));
    return { qkv, query, picked };
  }
  const part = (t: Tensor | undefined, start: number, end: number) => t && new Tensor((t.data as Float32Array).subarray(start, end), [end - start]);
  q.add(() => linear(h, l.weight.rows(width, n), { bias: part(l.bias, width, n), out: qkv, outColumn: width }));
  q.add(() => linear(picked, l.weight.rows(0, width), { bias: part(l.bias, 0, width), out: query }));
  return { qkv, query, picked };
}

/** A tower's attention for one query per picked row: qkv [rows, 3W] and query [n, W] → out [n, W]. */
export type PickedAttention = (qkv: Tensor, query: Tensor, out: Tensor) => Promise<Tensor>;

/**
 * The attention of a last layer computed for rows `index` alone, queued: lastLayerQkv, then
 * `attend` (the tower's attention op) → attn [n, W], in `ws`. `picked`: those rows of h.
 */
export function lastLayerAttention(h: Tensor, l: PackedLinear, index: ArrayLike<number>, attend: PickedAttention, ws: Workspace, q: OpQueue): { attn: Tensor; picked: Tensor } {
  const { qkv, query, picked } = lastLayerQkv(h, l, index, ws, q);
  const attn = ws.tensor('attn', query.shape);
  q.add(() => attend(qkv, query, attn));
  return { attn, picked };
}

/**
 * A pre-LN layer (ViT, CLIP text) for rows `index` of x [..., W] alone, queued → a new [n, W]: the
 * rows the tower pools, after the layer (with no layer, the rows themselves).
 */
export function preNormLastLayer(x: Tensor, l: PackedPreNormLayer | undefined, s: BlockSettings, index: ArrayLike<number>, attend: PickedAttention, ws: Workspace, q: OpQueue): Tensor {
  const rows = pickRows(x, index, q);
  if (!l) return rows;
  const h = ws.tensor('norm', x.shape);
  q.add(() => layerNorm(x, l.layerNorm1.weight, l.layerNorm1.bias, { eps: s.eps, out: h }));
  const { attn } = lastLayerAttention(h, l.qkv, index, attend, ws, q);
  q.add(() => linear(attn, l.out.weight, { bias: l.out.bias, residual: rows, out: rows }));
  preNormMlp(rows, l, s, ws, q);
  return rows;
}

/** Rows `index` of x [R, W] (or [B, S, W], rows counted across the batch), queued → a new [n, W]. */
export function pickRows(x: Tensor, index: ArrayLike<number>, q: OpQueue): Tensor {
  const width = x.shape[x.shape.length - 1];
  const out = fresh(index.length, width);
  q.add(() => gatherRows(x.reshape([x.size / width, width]), index, { out }));
  return out;
}
