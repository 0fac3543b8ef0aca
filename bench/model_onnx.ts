/**
 * ONNX graphs of the CLIP-family towers, built from the same Hugging Face tensors clipkit loads, for
 * the onnxruntime anchor of bench/model.ts. The protobuf is written by hand (a few ONNX messages,
 * opset 17), the way torch.onnx.export spells these towers: separate q/k/v MatMuls, Reshape +
 * Transpose for the heads, Softmax, LayerNormalization, QuickGELU as x·sigmoid(1.702x), GELU as
 * 0.5·x·(1 + erf(x/√2)). The full sequence runs through every layer (no class-row shortcut).
 */

/** A message being written: its chunks (kept apart, so big tensors are copied once) and length. */
class Msg {
  chunks: Uint8Array[] = [];
  len = 0;
  private push(b: Uint8Array): void {
    this.chunks.push(b);
    this.len += b.length;
  }
  private key(field: number, wire: number): void {
    this.push(varint(BigInt(field * 8 + wire)));
  }
  int(field: number, v: number): this {
    this.key(field, 0);
    this.push(varint(BigInt.asUintN(64, BigInt(v))));
    return this;
  }
  float(field: number, v: number): this {
    this.key(field, 5);
    const b = Buffer.alloc(4);
    b.writeFloatLE(v);
    this.push(b);
    return this;
  }
  bytes(field: number, b: Uint8Array): this {
    this.key(field, 2);
    this.push(varint(BigInt(b.length)));
    this.push(b);
    return this;
  }
  str(field: number, s: string): this {
    return this.bytes(field, Buffer.from(s, 'utf8'));
  }
  msg(field: number, m: Msg): this {
    this.key(field, 2);
    this.push(varint(BigInt(m.len)));
    for (const c of m.chunks) this.push(c);
    return this;
  }
  toBuffer(): Buffer {
    return Buffer.concat(this.chunks, this.len);
  }
}

function varint(v: bigint): Uint8Array {
  const out: number[] = [];
  do {
    let byte = Number(v & 0x7fn);
    v >>= 7n;
    if (v) byte |= 0x80;
    out.push(byte);
  } while (v);
  return Uint8Array.from(out);
}

// TensorProto.DataType
const FLOAT = 1, INT64 = 7;
// AttributeProto.AttributeType
const A_FLOAT = 1, A_INT = 2, A_INTS = 7;

type Attr = number | number[] | { f: number };
type Data = Float32Array | BigInt64Array;

/** A graph under construction: initializers, nodes, one or more inputs/outputs. */
export class Graph {
  private nodes: Msg[] = [];
  private inits: Msg[] = [];
  private inputs: Msg[] = [];
  private outputs: Msg[] = [];
  private n = 0;
  private consts = new Map<string, string>();

  /** A named initializer (copied as raw little-endian bytes). */
  init(name: string, data: Data, dims: readonly number[]): string {
    const t = new Msg();
    for (const d of dims) t.int(1, d);
    t.int(2, data instanceof Float32Array ? FLOAT : INT64);
    t.str(8, name);
    t.bytes(9, new Uint8Array(data.buffer, data.byteOffset, data.byteLength));
    this.inits.push(t);
    return name;
  }
  /** A small int64 constant (shared by value). */
  ints(values: number[], scalar = false): string {
    const key = `i${scalar ? 's' : ''}${values.join(',')}`;
    let name = this.consts.get(key);
    if (!name) {
      name = this.init(`c${this.consts.size}_${key}`, BigInt64Array.from(values, BigInt), scalar ? [] : [values.length]);
      this.consts.set(key, name);
    }
    return name;
  }
  /** A float scalar constant (shared by value). */
  scalar(v: number): string {
    const key = `f${v}`;
    let name = this.consts.get(key);
    if (!name) {
      name = this.init(`c${this.consts.size}_${key}`, Float32Array.of(v), []);
      this.consts.set(key, name);
    }
    return name;
  }
  node(op: string, inputs: string[], attrs: Record<string, Attr> = {}): string {
    const out = `${op.toLowerCase()}_${this.n++}`;
    const m = new Msg();
    for (const i of inputs) m.str(1, i);
    m.str(2, out);
    m.str(3, out);
    m.str(4, op);
    for (const [name, v] of Object.entries(attrs)) {
      const a = new Msg().str(1, name);
      if (typeof v === 'number') a.int(3, v).int(20, A_INT);
      else if (Array.isArray(v)) {
        for (const x of v) a.int(8, x);
        a.int(20, A_INTS);
      } else a.float(2, v.f).int(20, A_FLOAT);
      m.msg(5, a);
    }
    this.nodes.push(m);
    return out;
  }
  /** A graph input or output: elem type and dims (a string is a symbolic dim). */
  io(kind: 'input' | 'output', name: string, elem: 'float' | 'int64', dims: (number | string)[]): string {
    const shape = new Msg();
    for (const d of dims) shape.msg(1, typeof d === 'number' ? new Msg().int(1, d) : new Msg().str(2, d));
    const tensorType = new Msg().int(1, elem === 'float' ? FLOAT : INT64).msg(2, shape);
    const vi = new Msg().str(1, name).msg(2, new Msg().msg(1, tensorType));
    (kind === 'input' ? this.inputs : this.outputs).push(vi);
    return name;
  }
  /** Renames `value` to the graph output `name` (an Identity node). */
  output(name: string, value: string, dims: (number | string)[]): void {
    const m = new Msg().str(1, value).str(2, name).str(3, name).str(4, 'Identity');
    this.nodes.push(m);
    this.io('output', name, 'float', dims);
  }
  /** The serialized ModelProto (IR 8, opset 17). */
  model(name: string): Buffer {
    const g = new Msg();
    for (const n of this.nodes) g.msg(1, n);
    g.str(2, name);
    for (const t of this.inits) g.msg(5, t);
    for (const i of this.inputs) g.msg(11, i);
    for (const o of this.outputs) g.msg(12, o);
    return new Msg().int(1, 8).str(2, 'clipkit-bench').msg(7, g).msg(8, new Msg().str(1, '').int(2, 17)).toBuffer();
  }
}

/** Hugging Face tensors by name. */
export type Tensors = ReadonlyMap<string, { data: Float32Array; shape: number[] }>;

/** weight [out, in] → [in, out] for MatMul. */
function transposed(w: { data: Float32Array; shape: number[] }): { data: Float32Array; shape: number[] } {
  const [o, i] = w.shape;
  const out = new Float32Array(o * i);
  for (let r = 0; r < o; r++) for (let c = 0; c < i; c++) out[c * o + r] = w.data[r * i + c];
  return { data: out, shape: [i, o] };
}

class Builder {
  readonly g = new Graph();
  constructor(private readonly t: Tensors) {}
  w(name: string): string {
    const x = this.t.get(name);
    if (!x) throw new Error(`missing tensor ${name}`);
    return this.g.init(name, x.data, x.shape);
  }
  /** x·Wᵀ + b with W [out, in] (stored transposed). */
  linear(x: string, prefix: string, bias = true): string {
    const x0 = this.t.get(`${prefix}.weight`)!;
    const wt = transposed(x0);
    const y = this.g.node('MatMul', [x, this.g.init(`${prefix}.weight_t`, wt.data, wt.shape)]);
    return bias ? this.g.node('Add', [y, this.w(`${prefix}.bias`)]) : y;
  }
  ln(x: string, prefix: string, eps: number): string {
    return this.g.node('LayerNormalization', [x, this.w(`${prefix}.weight`), this.w(`${prefix}.bias`)], { axis: -1, epsilon: { f: eps } });
  }
  act(x: string, kind: 'gelu' | 'quick_gelu'): string {
    const g = this.g;
    if (kind === 'quick_gelu') return g.node('Mul', [x, g.node('Sigmoid', [g.node('Mul', [x, g.scalar(1.702)])])]);
    const e = g.node('Erf', [g.node('Div', [x, g.scalar(Math.SQRT2)])]);
    return g.node('Mul', [g.node('Mul', [x, g.node('Add', [e, g.scalar(1)])]), g.scalar(0.5)]);
  }
  /** Multi-head attention of q, k, v [B, S, W] → [B, S, W]; `mask` ([S, S] or [B, 1, 1, S]) is added to the scores. */
  attention(q: string, k: string, v: string, heads: number, width: number, mask?: string): string {
    const g = this.g, d = width / heads;
    const split = g.ints([0, 0, heads, d]);
    const qh = g.node('Transpose', [g.node('Reshape', [q, split])], { perm: [0, 2, 1, 3] });
    const kh = g.node('Transpose', [g.node('Reshape', [k, split])], { perm: [0, 2, 3, 1] });
    const vh = g.node('Transpose', [g.node('Reshape', [v, split])], { perm: [0, 2, 1, 3] });
    let s = g.node('Mul', [g.node('MatMul', [qh, kh]), g.scalar(1 / Math.sqrt(d))]);
    if (mask) s = g.node('Add', [s, mask]);
    const o = g.node('MatMul', [g.node('Softmax', [s], { axis: -1 }), vh]);
    return g.node('Reshape', [g.node('Transpose', [o], { perm: [0, 2, 1, 3] }), g.ints([0, 0, width])]);
  }
  /** Pre-LN layer (ViT, CLIP text). */
  preNorm(x: string, p: string, heads: number, width: number, eps: number, act: 'gelu' | 'quick_gelu', mask?: string): string {
    const g = this.g;
    const h = this.ln(x, `${p}.layer_norm1`, eps);
    const a = this.attention(this.linear(h, `${p}.self_attn.q_proj`), this.linear(h, `${p}.self_attn.k_proj`), this.linear(h, `${p}.self_attn.v_proj`), heads, width, mask);
    x = g.node('Add', [x, this.linear(a, `${p}.self_attn.out_proj`)]);
    const f = this.act(this.linear(this.ln(x, `${p}.layer_norm2`, eps), `${p}.mlp.fc1`), act);
    return g.node('Add', [x, this.linear(f, `${p}.mlp.fc2`)]);
  }
  /** Rows [0, S) of a [maxPositions, W] table, S = dim `axis` of `like`. */
  positions(table: string, like: string, axis: number): string {
    const g = this.g;
    const len = g.node('Slice', [g.node('Shape', [like]), g.ints([axis]), g.ints([axis + 1])]);
    return g.node('Slice', [table, g.ints([0]), len, g.ints([0])]);
  }
}

export interface VisionGeometry {
  width: number;
  layers: number;
  heads: number;
  patch: number;
  image: number;
  projection: number;
  eps: number;
}

/** pixel_values [B, 3, S, S] → image_embeds [B, E] (not normalised). */
export function visionOnnx(t: Tensors, c: VisionGeometry): Buffer {
  const b = new Builder(t), g = b.g, w = c.width;
  const pixels = g.io('input', 'pixel_values', 'float', ['batch', 3, c.image, c.image]);
  let x = g.node('Conv', [pixels, b.w('vision_model.embeddings.patch_embedding.weight')], { kernel_shape: [c.patch, c.patch], strides: [c.patch, c.patch] });
  x = g.node('Transpose', [g.node('Reshape', [x, g.ints([0, w, -1])])], { perm: [0, 2, 1] });
  const batch = g.node('Slice', [g.node('Shape', [pixels]), g.ints([0]), g.ints([1])]);
  const cls = t.get('vision_model.embeddings.class_embedding')!;
  const clsRow = g.init('class_embedding_1_1_w', cls.data, [1, 1, w]);
  const clsB = g.node('Expand', [clsRow, g.node('Concat', [batch, g.ints([1, w])], { axis: 0 })]);
  x = g.node('Concat', [clsB, x], { axis: 1 });
  x = g.node('Add', [x, b.w('vision_model.embeddings.position_embedding.weight')]);
  x = b.ln(x, 'vision_model.pre_layrnorm', c.eps);
  for (let i = 0; i < c.layers; i++) x = b.preNorm(x, `vision_model.encoder.layers.${i}`, c.heads, w, c.eps, 'quick_gelu');
  const pooled = b.ln(g.node('Gather', [x, g.ints([0], true)], { axis: 1 }), 'vision_model.post_layernorm', c.eps);
  g.output('image_embeds', b.linear(pooled, 'visual_projection', false), ['batch', c.projection]);
  return g.model('vision');
}

export interface TextGeometry {
  width: number;
  layers: number;
  heads: number;
  maxPositions: number;
  projection: number;
  eps: number;
  act: 'gelu' | 'quick_gelu';
}

/**
 * OpenAI CLIP text tower: input_ids [B, S] int64, each row holding one end-of-text token (the
 * largest id), zero-padded after it or not → text_embeds [B, E] (pooled at end of text).
 */
export function clipTextOnnx(t: Tensors, c: TextGeometry): Buffer {
  const b = new Builder(t), g = b.g, w = c.width, m = c.maxPositions;
  const ids = g.io('input', 'input_ids', 'int64', ['batch', 'sequence']);
  let x = g.node('Gather', [b.w('text_model.embeddings.token_embedding.weight'), ids], { axis: 0 });
  x = g.node('Add', [x, b.positions(b.w('text_model.embeddings.position_embedding.weight'), ids, 1)]);
  const causal = new Float32Array(m * m);
  for (let r = 0; r < m; r++) for (let col = r + 1; col < m; col++) causal[r * m + col] = -1e9;
  const len = g.node('Slice', [g.node('Shape', [ids]), g.ints([1]), g.ints([2])]);
  const mask = g.node('Slice', [g.init('causal_mask', causal, [m, m]), g.ints([0, 0]), g.node('Concat', [len, len], { axis: 0 }), g.ints([0, 1])]);
  for (let i = 0; i < c.layers; i++) x = b.preNorm(x, `text_model.encoder.layers.${i}`, c.heads, w, c.eps, c.act, mask);
  x = b.ln(x, 'text_model.final_layer_norm', c.eps);
  // Pooled at the end-of-text token (the largest id; rows may be zero-padded after it): one-hot · x.
  const eot = g.node('Cast', [g.node('Equal', [ids, g.node('ReduceMax', [ids], { axes: [1], keepdims: 1 })])], { to: 1 });
  const pooled = g.node('Reshape', [g.node('MatMul', [g.node('Reshape', [eot, g.ints([0, 1, -1])]), x]), g.ints([0, -1])]);
  g.output('text_embeds', b.linear(pooled, 'text_projection', false), ['batch', c.projection]);
  return g.model('clip_text');
}

/** Chinese-CLIP BERT text tower: input_ids [B, S] int64, zero-padded or not (padding keys masked) → text_embeds [B, E] ([CLS] row). */
export function bertTextOnnx(t: Tensors, c: TextGeometry): Buffer {
  const b = new Builder(t), g = b.g, w = c.width;
  const ids = g.io('input', 'input_ids', 'int64', ['batch', 'sequence']);
  let x = g.node('Gather', [b.w('text_model.embeddings.word_embeddings.weight'), ids], { axis: 0 });
  x = g.node('Add', [x, b.positions(b.w('text_model.embeddings.position_embeddings.weight'), ids, 1)]);
  const types = t.get('text_model.embeddings.token_type_embeddings.weight')!;
  x = g.node('Add', [x, g.init('token_type_0', types.data.slice(0, w), [w])]);
  x = b.ln(x, 'text_model.embeddings.LayerNorm', c.eps);
  // Padding keys (id 0) get -1e9 added to their scores: weight exactly 0, as the attention mask gives.
  const pad = g.node('Cast', [g.node('Equal', [ids, g.ints([0], true)])], { to: 1 });
  const mask = g.node('Reshape', [g.node('Mul', [pad, g.scalar(-1e9)]), g.ints([0, 1, 1, -1])]);
  for (let i = 0; i < c.layers; i++) {
    const p = `text_model.encoder.layer.${i}`;
    const a = b.attention(b.linear(x, `${p}.attention.self.query`), b.linear(x, `${p}.attention.self.key`), b.linear(x, `${p}.attention.self.value`), c.heads, w, mask);
    const h = b.ln(g.node('Add', [x, b.linear(a, `${p}.attention.output.dense`)]), `${p}.attention.output.LayerNorm`, c.eps);
    const f = b.act(b.linear(h, `${p}.intermediate.dense`), c.act);
    x = b.ln(g.node('Add', [h, b.linear(f, `${p}.output.dense`)]), `${p}.output.LayerNorm`, c.eps);
  }
  const pooled = g.node('Gather', [x, g.ints([0], true)], { axis: 1 });
  g.output('text_embeds', b.linear(pooled, 'text_projection', false), ['batch', c.projection]);
  return g.model('bert_text');
}
