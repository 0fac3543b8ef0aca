/**
 * The OpenAI CLIP text tower: causal, pre-LayerNorm, pooled at the end-of-text row.
 *
 *   x = token[ids] + position[0..L-1]
 *   per layer (causal attention):  x += out_proj(MHA(layer_norm1(x)));  x += fc2(act(fc1(layer_norm2(x))))
 *   pooled = final_layer_norm(x[:, eot]);  text_embeds = pooled · text_projectionᵀ
 *
 * Attention is causal, so nothing after the end-of-text position influences its row: each text runs
 * only up to it (grouped by that length; a group's shorter members need no mask). The last layer's
 * out_proj, MLP and final norm run on the end-of-text rows alone.
 */
import { attentionPacked } from '../ops/attention';
import { embedding } from '../ops/embedding';
import { linear, PackedWeight, packWeight, WeightDType } from '../ops/gemm';
import { layerNorm } from '../ops/layer_norm';
import { Tensor } from '../tensor';
import {
  BlockSettings, collectStates, encodeInGroups, HiddenStates, own, ownNorm, PackedPreNormLayer, packPreNormLayer, pickRows, preNormMlp, preNormQkv, TextOutput, Workspace, WorkspacePool,
} from './blocks';
import { ClipTextConfig } from './config';
import { ClipTextWeights } from './weights';

/** The embedding tables and the final LayerNorm. */
type ClipTextUnpacked = Pick<ClipTextWeights, 'tokenEmbedding' | 'positionEmbedding' | 'finalLayerNorm'>;

export class ClipTextTower {
  private constructor(
    readonly config: ClipTextConfig,
    private readonly w: ClipTextUnpacked,
    private readonly layers: PackedPreNormLayer[],
    private readonly projection: PackedWeight,
  ) {}

  private readonly workspaces = new WorkspacePool();

  static async load(w: ClipTextWeights, config: ClipTextConfig, dtype: WeightDType = 'float32'): Promise<ClipTextTower> {
    const layers: PackedPreNormLayer[] = [];
    for (const l of w.layers) layers.push(await packPreNormLayer(l, dtype));
    // What runs unpacked, as copies (a view would pin the whole checkpoint); the linear weights live on packed.
    const kept: ClipTextUnpacked = {
      tokenEmbedding: own(w.tokenEmbedding),
      positionEmbedding: own(w.positionEmbedding),
      finalLayerNorm: ownNorm(w.finalLayerNorm),
    };
    return new ClipTextTower(config, kept, layers, await packWeight(w.projection, { dtype }));
  }

  /**
   * The pooled position of each row, as transformers picks it: argmax(ids) (first on ties) when
   * eos_token_id is 2 (older OpenAI configs); otherwise the first position holding eos_token_id,
   * falling back to argmax when a row has none.
   */
  eotPositions(ids: Int32Array, n: number, context: number): Int32Array {
    const eos = this.config.eosTokenId;
    const out = new Int32Array(n);
    for (let r = 0; r < n; r++) {
      const row = ids.subarray(r * context, (r + 1) * context);
      let p = eos === 2 ? -1 : row.indexOf(eos);
      if (p < 0) {
        p = 0;
        for (let j = 1; j < context; j++) if (row[j] > row[p]) p = j;
      }
      out[r] = p;
    }
    return out;
  }

  private get settings(): BlockSettings {
    const c = this.config;
    return { heads: c.numAttentionHeads, eps: c.layerNormEps, act: c.hiddenAct };
  }

  /**
   * ids [n, context] → pooled and embeds of each row, in input order, in groups of at most
   * `batchSize`; `padTo` (tests) runs every group at that length instead of up to its end tokens.
   */
  async encode(ids: Int32Array, n: number, context: number, batchSize: number, padTo?: number): Promise<TextOutput> {
    const eot = this.eotPositions(ids, n, context);
    return this.workspaces.use((ws) =>
      encodeInGroups(ids, n, context, eot, batchSize, (lastEot) => lastEot + 1, padTo, this.config.hiddenSize,
        this.projection.n, (groupIds, groupEot, seq) => this.encodeGroup(groupIds, groupEot, seq, ws)));
  }

  /**
   * Every layer's output for ids [n, context] run at the full context length, as transformers
   * runs it: `hiddenStates` [embeddings, layer 1, …] each [n, context, W], and
   * `lastHiddenState` = final_layer_norm of the last.
   */
  hiddenStates(ids: Int32Array, n: number, context: number): Promise<HiddenStates> {
    return this.workspaces.use(async (ws) => {
      const x0 = await this.embed(ids, n, context);
      const { states, x } = await collectStates(x0, this.layers, async (x, l) => {
        await this.block(x, l, ws);
        return x;
      });
      const w = this.w;
      return { hiddenStates: states, lastHiddenState: await layerNorm(x, w.finalLayerNorm.weight, w.finalLayerNorm.bias, { eps: this.config.layerNormEps }) };
    });
  }

  private embed(ids: Int32Array, batch: number, seq: number): Promise<Tensor> {
    return embedding(new Tensor(ids, [batch, seq], 'int32'), { tokens: this.w.tokenEmbedding, positions: this.w.positionEmbedding });
  }

  /** One causal pre-LN layer, in place on x [B, S, W]. */
  private async block(x: Tensor, l: PackedPreNormLayer, ws: Workspace): Promise<void> {
    const s = this.settings;
    const a = await attentionPacked(await preNormQkv(x, l, s, ws), { heads: s.heads, causal: true, out: ws.tensor('attn', x.shape) });
    await linear(a, l.out.weight, { bias: l.out.bias, residual: x, out: x });
    await preNormMlp(x, l, s, ws);
  }

  /** One batch: ids [B, seq], pooled at row eot[b]. */
  private async encodeGroup(ids: Int32Array, eot: number[], seq: number, ws: Workspace): Promise<TextOutput> {
    const s = this.settings, w = this.w, batch = eot.length;
    let x = await this.embed(ids, batch, seq);

    const last = this.layers.length - 1;
    for (let i = 0; i < last; i++) await this.block(x, this.layers[i], ws);
    if (last >= 0) {
      const l = this.layers[last];
      const a = await attentionPacked(await preNormQkv(x, l, s, ws), { heads: s.heads, causal: true, out: ws.tensor('attn', x.shape) });
      x = await pickRows(x, eot); // end-of-text rows only: [B, W]
      await linear(await pickRows(a, eot), l.out.weight, { bias: l.out.bias, residual: x, out: x });
      await preNormMlp(x, l, s, ws);
    } else {
      x = await pickRows(x, eot);
    }
    const pooled = await layerNorm(x, w.finalLayerNorm.weight, w.finalLayerNorm.bias, { eps: s.eps });
    return { pooled, embeds: await linear(pooled, this.projection) };
  }
}
