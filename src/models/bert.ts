/**
 * The Chinese-CLIP text tower: BERT with post-LayerNorm blocks, pooled at the [CLS] row.
 *
 *   x = LayerNorm(word[ids] + position[0..L-1] + token_type[0])
 *   per layer:  a = LayerNorm(dense(MHA(x, keyMask)) + x);  x = LayerNorm(output(gelu(intermediate(a))) + a)
 *   pooled = x[:, 0];  text_embeds = pooled · text_projectionᵀ
 *
 * Each text runs at its true length: texts are grouped by length, a group is padded only to its
 * longest member, and the padding keys are masked (weight exactly 0), so [CLS] equals the fully
 * padded run. The last layer computes only the [CLS] row (attention for query row 0, then its tail).
 */
import { attentionPacked } from '../ops/attention';
import { embedding } from '../ops/embedding';
import { linear, PackedWeight, packWeight, WeightDType } from '../ops/gemm';
import { layerNorm } from '../ops/layer_norm';
import { Tensor } from '../tensor';
import { encodeInGroups, own, ownNorm, PackedLinear, packLinear, packQkv, pickRows, TextOutput } from './blocks';
import { BertTextConfig } from './config';
import { BertTextWeights, Norm } from './weights';

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
    private readonly w: BertTextWeights,
    private readonly layers: PackedBertLayer[],
    private readonly projection: PackedWeight,
  ) {}

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
    // Keep only what runs unpacked; the linear weights live on in their packed form.
    const kept: BertTextWeights = {
      ...w,
      wordEmbeddings: own(w.wordEmbeddings),
      positionEmbeddings: own(w.positionEmbeddings),
      tokenTypeEmbeddings: own(w.tokenTypeEmbeddings),
      embeddingsLayerNorm: ownNorm(w.embeddingsLayerNorm),
      layers: [],
      projection: own(w.projection), // (packed below; a view here would pin the whole checkpoint)
    };
    return new BertTower(config, kept, layers, await packWeight(w.projection, { dtype }));
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
    return encodeInGroups(ids, n, context, lengths, batchSize, (longest) => longest, padTo, this.config.hiddenSize,
      this.projection.n, (groupIds, groupLengths, seq) => this.encodeGroup(groupIds, groupLengths, seq));
  }

  /** One batch: ids [B, seq], each row real up to lengths[b] (keys past it masked). */
  private async encodeGroup(ids: Int32Array, lengths: number[], seq: number): Promise<TextOutput> {
    const c = this.config, w = this.w, batch = lengths.length;
    const heads = c.numAttentionHeads, eps = c.layerNormEps;
    const keyMask = new Int32Array(batch * seq);
    lengths.forEach((len, b) => keyMask.fill(1, b * seq, b * seq + len));

    const emb = await embedding(new Tensor(ids, [batch, seq], 'int32'), {
      tokens: w.wordEmbeddings, positions: w.positionEmbeddings, types: w.tokenTypeEmbeddings,
    });
    let x = await layerNorm(emb, w.embeddingsLayerNorm.weight, w.embeddingsLayerNorm.bias, { eps });

    const last = this.layers.length - 1;
    for (let i = 0; i <= last; i++) {
      const l = this.layers[i];
      const qkv = await linear(x, l.qkv.weight, { bias: l.qkv.bias });
      let a = await attentionPacked(qkv, { heads, keyMask, qRows: i === last ? 1 : seq });
      if (i === last) {
        x = await pickRows(x, new Int32Array(batch)); // [CLS] rows only: [B, W]
        a = a.reshape(x.shape);
      }
      await linear(a, l.attentionOutput.weight, { bias: l.attentionOutput.bias, residual: x, out: x });
      x = await layerNorm(x, l.attentionLayerNorm.weight, l.attentionLayerNorm.bias, { eps });
      const f = await linear(x, l.intermediate.weight, { bias: l.intermediate.bias, activation: c.hiddenAct });
      await linear(f, l.output.weight, { bias: l.output.bias, residual: x, out: x });
      x = await layerNorm(x, l.outputLayerNorm.weight, l.outputLayerNorm.bias, { eps });
    }
    const pooled = last >= 0 ? x : await pickRows(x, new Int32Array(batch));
    return { pooled, embeds: await linear(pooled, this.projection) };
  }
}
