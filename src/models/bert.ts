/**
 * The BERT-family text towers: Chinese-CLIP's BERT and AltCLIP's XLM-R RoBERTa, post-LayerNorm
 * blocks pooled at the first ([CLS] / <s>) row.
 *
 *   x = LayerNorm(word[ids] + position[offset + 0..L-1] + token_type[0])
 *   per layer:  a = LayerNorm(dense(MHA(x, keyMask)) + x);  x = LayerNorm(output(gelu(intermediate(a))) + a)
 *   pooled = x[:, 0]                                  Chinese-CLIP
 *   pooled = transformation(pre_LN(x[:, 0]))           AltCLIP (both act row by row, so row 0 suffices)
 *   pooled = tanh(pooler(x[:, 0]))                     EasyNLP (BERT's pooler)
 *   text_embeds = pooled · text_projectionᵀ (+ bias, EasyNLP)
 *
 * The position offset is 0 for BERT and pad + 1 for the RoBERTa numbering (cumsum(ids != pad) + pad:
 * real tokens of a right-padded text sit at pad + 1, pad + 2, …).
 *
 * Each text runs at its true length: texts are grouped by length, a group is padded only to its
 * longest member, and the padding keys are masked (weight exactly 0), so [CLS] equals the fully
 * padded run. The last layer computes only the [CLS] row (attention for query row 0, then its tail).
 */
import { attentionPacked } from '../ops/attention';
import { embedding } from '../ops/embedding';
import { linear, packWeight, WeightDType } from '../ops/gemm';
import { layerNorm } from '../ops/layer_norm';
import { Tensor } from '../tensor';
import { collectStates, encodeInGroups, HiddenStates, own, ownNorm, PackedLinear, packLinear, packQkv, pickRows, TextOutput, Workspace, WorkspacePool } from './blocks';
import { BertTextConfig } from './config';
import { BertTextWeights, Norm } from './weights';

/** The input embedding tables and their LayerNorm. */
type BertEmbeddings = Pick<BertTextWeights, 'wordEmbeddings' | 'positionEmbeddings' | 'tokenTypeEmbeddings' | 'embeddingsLayerNorm'>;

interface PackedBertLayer {
  qkv: PackedLinear;
  attentionOutput: PackedLinear;
  attentionLayerNorm: Norm;
  intermediate: PackedLinear;
  output: PackedLinear;
  outputLayerNorm: Norm;
}

export class BertTower {
  private constructor(
    readonly config: BertTextConfig,
    private readonly w: BertEmbeddings,
    private readonly layers: PackedBertLayer[],
    private readonly head: { preLayerNorm: Norm; transformation: PackedLinear } | undefined,
    private readonly pooler: PackedLinear | undefined,
    private readonly projection: PackedLinear,
  ) {}

  private readonly workspaces = new WorkspacePool();

  static async load(w: BertTextWeights, config: BertTextConfig, dtype: WeightDType = 'float32'): Promise<BertTower> {
    const layers: PackedBertLayer[] = [];
    for (const l of w.layers)
      layers.push({
        qkv: await packQkv(l.query, l.key, l.value, dtype),
        attentionOutput: await packLinear(l.attentionOutput, dtype),
        attentionLayerNorm: ownNorm(l.attentionLayerNorm),
        intermediate: await packLinear(l.intermediate, dtype),
        output: await packLinear(l.output, dtype),
        outputLayerNorm: ownNorm(l.outputLayerNorm),
      });
    // What runs unpacked, as copies (a view would pin the whole checkpoint); the linear weights live on packed.
    const kept: BertEmbeddings = {
      wordEmbeddings: own(w.wordEmbeddings),
      positionEmbeddings: own(w.positionEmbeddings),
      tokenTypeEmbeddings: own(w.tokenTypeEmbeddings),
      embeddingsLayerNorm: ownNorm(w.embeddingsLayerNorm),
    };
    const head = w.preLayerNorm && w.transformation
      ? { preLayerNorm: ownNorm(w.preLayerNorm), transformation: await packLinear(w.transformation, dtype) }
      : undefined;
    const pooler = w.pooler && (await packLinear(w.pooler, dtype));
    const projection = { weight: await packWeight(w.projection, { dtype }), bias: w.projectionBias && own(w.projectionBias) };
    return new BertTower(config, kept, layers, head, pooler, projection);
  }

  /** Real tokens per row: up to the last id that is not [PAD] (cn_clip's mask is ids != pad). At least 1. */
  lengths(ids: Int32Array, n: number, context: number): Int32Array {
    const pad = this.config.padTokenId;
    const out = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      let len = context;
      while (len > 1 && ids[r * context + len - 1] === pad) len--;
      out[r] = len;
    }
    return out;
  }

  /**
   * ids [n, context] → pooled and embeds of each row, in input order. Runs groups of at most
   * `batchSize` texts of similar length; `padTo` (tests) pads every group to that length instead.
   */
  async encode(ids: Int32Array, n: number, context: number, batchSize: number, padTo?: number): Promise<TextOutput> {
    const lengths = this.lengths(ids, n, context);
    return this.workspaces.use((ws) =>
      encodeInGroups(ids, n, context, lengths, batchSize, (longest) => longest, padTo, this.config.pooledSize,
        this.projection.weight.n, (groupIds, groupLengths, seq) => this.encodeGroup(groupIds, groupLengths, seq, ws)));
  }

  /**
   * Every layer's output for ids [n, context], each text run padded to the context length with its
   * padding keys masked, as transformers runs it: `hiddenStates` [embeddings, layer 1, …] each
   * [n, context, W], and `lastHiddenState` (AltCLIP: transformation(pre_LN(x)) on every row).
   */
  hiddenStates(ids: Int32Array, n: number, context: number): Promise<HiddenStates> {
    return this.workspaces.use(async (ws) => {
      const lengths = Array.from(this.lengths(ids, n, context));
      const keyMask = keyMaskOf(lengths, context);
      const x0 = await this.embed(ids, n, context, ws);
      const { states } = await collectStates(x0, this.layers, (x, l) => this.block(x, l, keyMask, false, ws));
      const x = states[states.length - 1];
      if (!this.head) return { hiddenStates: states, lastHiddenState: x };
      const h = await layerNorm(x, this.head.preLayerNorm.weight, this.head.preLayerNorm.bias, { eps: this.config.layerNormEps });
      return { hiddenStates: states, lastHiddenState: await linear(h, this.head.transformation.weight, { bias: this.head.transformation.bias }) };
    });
  }

  /** The residual stream after the embeddings' LayerNorm, in `ws`. */
  private async embed(ids: Int32Array, batch: number, seq: number, ws: Workspace): Promise<Tensor> {
    const w = this.w;
    const emb = await embedding(
      new Tensor(ids, [batch, seq], 'int32'),
      { tokens: w.wordEmbeddings, positions: w.positionEmbeddings, types: w.tokenTypeEmbeddings },
      { positionOffset: this.config.positionOffset },
    );
    return layerNorm(emb, w.embeddingsLayerNorm.weight, w.embeddingsLayerNorm.bias, { eps: this.config.layerNormEps, out: ws.tensor('x', emb.shape) });
  }

  /**
   * One post-LN layer on x [B, S, W] (modified in place as the residual; the result goes to the
   * other of the workspace's two residual buffers). `firstRowOnly`: attention for query row 0 alone
   * and the rest of the layer on that row, returning a new [B, W] tensor.
   */
  private async block(x: Tensor, l: PackedBertLayer, keyMask: Int32Array, firstRowOnly: boolean, ws: Workspace): Promise<Tensor> {
    const c = this.config, eps = c.layerNormEps;
    const [batch, seq, width] = x.shape;
    const qkv = await linear(x, l.qkv.weight, { bias: l.qkv.bias, out: ws.tensor('qkv', [batch, seq, l.qkv.weight.n]) });
    let a = await attentionPacked(qkv, { heads: c.numAttentionHeads, keyMask, qRows: firstRowOnly ? 1 : seq, out: ws.tensor('attn', [batch, firstRowOnly ? 1 : seq, width]) });
    if (firstRowOnly) {
      x = await pickRows(x, new Int32Array(batch)); // [CLS] rows only: [B, W]
      a = a.reshape(x.shape);
    }
    // The last layer's rows leave the tower: they get buffers of their own.
    const stream = (t: Tensor) => (firstRowOnly ? undefined : ws.tensor(ws.holds('x', t) ? 'x2' : 'x', t.shape));
    await linear(a, l.attentionOutput.weight, { bias: l.attentionOutput.bias, residual: x, out: x });
    x = await layerNorm(x, l.attentionLayerNorm.weight, l.attentionLayerNorm.bias, { eps, out: stream(x) });
    const f = await linear(x, l.intermediate.weight, { bias: l.intermediate.bias, activation: c.hiddenAct, out: ws.tensor('mlp', [...x.shape.slice(0, -1), l.intermediate.weight.n]) });
    await linear(f, l.output.weight, { bias: l.output.bias, residual: x, out: x });
    return layerNorm(x, l.outputLayerNorm.weight, l.outputLayerNorm.bias, { eps, out: stream(x) });
  }

  /** One batch: ids [B, seq], each row real up to lengths[b] (keys past it masked). */
  private async encodeGroup(ids: Int32Array, lengths: number[], seq: number, ws: Workspace): Promise<TextOutput> {
    const batch = lengths.length, keyMask = keyMaskOf(lengths, seq);
    let x = await this.embed(ids, batch, seq, ws);
    const last = this.layers.length - 1;
    for (let i = 0; i <= last; i++) x = await this.block(x, this.layers[i], keyMask, i === last, ws);
    let pooled = last >= 0 ? x : await pickRows(x, new Int32Array(batch));
    if (this.head) {
      const h = await layerNorm(pooled, this.head.preLayerNorm.weight, this.head.preLayerNorm.bias, { eps: this.config.layerNormEps });
      pooled = await linear(h, this.head.transformation.weight, { bias: this.head.transformation.bias });
    }
    if (this.pooler) {
      pooled = await linear(pooled, this.pooler.weight, { bias: this.pooler.bias });
      tanhInPlace(pooled.data as Float32Array);
    }
    return { pooled, embeds: await linear(pooled, this.projection.weight, { bias: this.projection.bias }) };
  }
}

/** tanh of a [B, W] pooled block: B·W values, computed in float64 and rounded once. */
function tanhInPlace(x: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] = Math.tanh(x[i]);
}

/** 1 on each row's first lengths[b] keys of seq, 0 on its padding. */
function keyMaskOf(lengths: readonly number[], seq: number): Int32Array {
  const mask = new Int32Array(lengths.length * seq);
  lengths.forEach((len, b) => mask.fill(1, b * seq, b * seq + len));
  return mask;
}
