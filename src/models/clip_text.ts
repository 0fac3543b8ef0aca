/**
 * The OpenAI CLIP text tower: causal, pre-LayerNorm, pooled at the end-of-text row.
 *
 *   x = token[ids] + position[0..L-1]
 *   per layer (causal attention):  x += out_proj(MHA(layer_norm1(x)));  x += fc2(act(fc1(layer_norm2(x))))
 *   pooled = final_layer_norm(x[:, eot]);  text_embeds = pooled · text_projectionᵀ
 *
 * Attention is causal, so nothing after the end-of-text position influences its row: each text runs
 * only up to it, without padding (a ragged batch, ragged.ts). The last layer computes only the
 * end-of-text rows: q and attention for those rows alone (k and v for every row), then its out_proj,
 * MLP and the final norm.
 */
import { attentionRagged } from '../ops/attention';
import { embedding } from '../ops/embedding';
import { linear, PackedWeight } from '../ops/gemm';
import { layerNorm } from '../ops/layer_norm';
import { Tensor } from '../tensor';
import { BlockSettings, collectStates, HiddenStates, preNormLastLayer, preNormMlp, preNormQkv, TextOutput } from './blocks';
import { OpQueue } from './op_queue';
import { expectNormState, expectPackedState, expectPreNormLayers, expectTensorState, keep, keepNorm, pack, PackedPreNormLayer, packPreNormLayer, PackSettings, stateError } from './packing';
import { encodeInGroups, keyMaskOf, RaggedBatch, raggedBatch } from './ragged';
import { fresh, Workspace, WorkspacePool } from './workspace';
import { ClipTextConfig } from '../loading/config';
import { ClipTextWeights, Norm } from '../loading/weights';

/** The embedding tables and the final LayerNorm. */
type ClipTextUnpacked = Pick<ClipTextWeights, 'tokenEmbedding' | 'positionEmbedding' | 'finalLayerNorm'>;

/**
 * Everything the CLIP text tower computes with: a tree whose leaves are float32 Tensors and whole
 * PackedWeights, as packed at load or rebuilt from the weight cache (which stores exactly this tree).
 */
export interface ClipTextState {
  tokenEmbedding: Tensor; // [V, W]
  positionEmbedding: Tensor; // [maxPositions, W]
  finalLayerNorm: Norm;
  layers: PackedPreNormLayer[];
  projection: PackedWeight; // [E, W]
}

export class ClipTextTower {
  private readonly w: ClipTextUnpacked;
  private readonly layers: PackedPreNormLayer[];
  private readonly projection: PackedWeight;

  private constructor(
    readonly config: ClipTextConfig,
    /** @internal What the tower was built from (the weight cache writes it). */
    readonly state: ClipTextState,
  ) {
    this.w = { tokenEmbedding: state.tokenEmbedding, positionEmbedding: state.positionEmbedding, finalLayerNorm: state.finalLayerNorm };
    this.layers = state.layers;
    this.projection = state.projection;
  }

  private readonly workspaces = new WorkspacePool();

  static async load(w: ClipTextWeights, config: ClipTextConfig, s: PackSettings): Promise<ClipTextTower> {
    return new ClipTextTower(config, await ClipTextTower.packState(w, s));
  }

  /** The state load() builds, leaf by leaf in a fixed order (with a sink, its stand-ins: see PackSettings). */
  static async packState(w: ClipTextWeights, s: PackSettings): Promise<ClipTextState> {
    const tokenEmbedding = await keep(w.tokenEmbedding, s);
    const positionEmbedding = await keep(w.positionEmbedding, s);
    const layers: PackedPreNormLayer[] = [];
    for (const l of w.layers) layers.push(await packPreNormLayer(l, s));
    const finalLayerNorm = await keepNorm(w.finalLayerNorm, s);
    const projection = await pack(w.projection, s);
    return { tokenEmbedding, positionEmbedding, finalLayerNorm, layers, projection };
  }

  /** The tower over a state packed earlier (nothing is packed or copied); E_FORMAT when it does not fit the config. */
  static fromState(state: ClipTextState, config: ClipTextConfig): ClipTextTower {
    const c = config, w = c.hiddenSize;
    if (state === null || typeof state !== 'object') throw stateError('the text state is missing');
    expectTensorState('text.tokenEmbedding', state.tokenEmbedding, [c.vocabSize, w]);
    expectTensorState('text.positionEmbedding', state.positionEmbedding, [c.maxPositionEmbeddings, w]);
    expectNormState('text.finalLayerNorm', state.finalLayerNorm, w);
    expectPreNormLayers('text.layers', state.layers, c.numHiddenLayers, w, c.intermediateSize);
    expectPackedState('text.projection', state.projection, undefined, w);
    return new ClipTextTower(config, state);
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
   * ids [n, context] → pooled and embeds of each row, in input order, in ragged batches of at most
   * `batchSize`; `padTo` (tests) runs every text at that length instead of up to its end token.
   */
  async encode(ids: Int32Array, n: number, context: number, batchSize: number, padTo?: number): Promise<TextOutput> {
    const eot = this.eotPositions(ids, n, context);
    return this.workspaces.use((ws) =>
      encodeInGroups(ids, n, context, eot, batchSize, (eotPosition) => eotPosition + 1, padTo, this.config.hiddenSize,
        this.projection.n, (batch) => this.encodeBatch(batch, ws)));
  }

  /**
   * Every layer's output for ids [n, context] run at the full context length, as transformers
   * runs it: `hiddenStates` [embeddings, layer 1, …] each [n, context, W], and
   * `lastHiddenState` = final_layer_norm of the last.
   */
  hiddenStates(ids: Int32Array, n: number, context: number): Promise<HiddenStates> {
    return this.workspaces.use(async (ws) => {
      const all = Array.from({ length: n }, (_, i) => i);
      const batch = raggedBatch(ids, context, all, all.map(() => context), Array.from(this.eotPositions(ids, n, context)));
      const q = new OpQueue();
      const x0 = this.embed(batch, ws, q);
      await q.done();
      const { states, x } = await collectStates(x0, this.layers, async (x, l) => {
        this.block(x, l, batch.starts, ws, q);
        await q.done();
        return x;
      });
      const w = this.w, last = fresh(x.shape[0], x.shape[1]);
      q.add(() => layerNorm(x, w.finalLayerNorm.weight, w.finalLayerNorm.bias, { eps: this.config.layerNormEps, out: last }));
      await q.done();
      const shaped = (t: Tensor) => t.reshape([n, context, t.shape[1]]);
      return { hiddenStates: states.map(shaped), lastHiddenState: shaped(last) };
    });
  }

  /** token + position embeddings [rows, W], queued, in `ws`. */
  private embed(batch: RaggedBatch, ws: Workspace, q: OpQueue): Tensor {
    const rows = batch.ids.length, x = ws.tensor('x', [rows, this.config.hiddenSize]);
    q.add(() => embedding(
      new Tensor(batch.ids, [1, rows], 'int32'),
      { tokens: this.w.tokenEmbedding, positions: this.w.positionEmbedding },
      { positionIds: new Tensor(batch.positions, [1, rows], 'int32'), out: x.reshape([1, rows, x.shape[1]]) },
    ));
    return x;
  }

  /** One causal pre-LN layer, queued, in place on x [rows, W]. */
  private block(x: Tensor, l: PackedPreNormLayer, starts: Int32Array, ws: Workspace, q: OpQueue): void {
    const s = this.settings, a = ws.tensor('attn', x.shape);
    q.add(() => attentionRagged(preNormQkv(x, l, s, ws, q), { heads: s.heads, causal: true, seqStarts: starts, out: a }));
    q.add(() => linear(a, l.out.weight, { bias: l.out.bias, residual: x, out: x }));
    preNormMlp(x, l, s, ws, q);
  }

  /** One ragged batch, pooled at each text's end-of-text row. */
  private async encodeBatch(batch: RaggedBatch, ws: Workspace): Promise<TextOutput> {
    const s = this.settings, w = this.w, texts = batch.keys.length, q = new OpQueue();
    const eotRows = batch.keys.map((eot, b) => batch.starts[b] + eot);
    const x0 = this.embed(batch, ws, q);
    const last = this.layers.length - 1;
    for (let i = 0; i < last; i++) this.block(x0, this.layers[i], batch.starts, ws, q);
    // The end-of-text rows only, from here on: [B, W]. Causal attention lets such a row see the
    // keys up to it and no further, so it attends as one query over its text's keys with those
    // after it masked (there are none unless the text runs padded).
    const keyMask = keyMaskOf(batch, (eot) => eot + 1);
    const x = preNormLastLayer(x0, this.layers[last], s, eotRows, (qkv, query, out) =>
      attentionRagged(qkv, { heads: s.heads, seqStarts: batch.starts, keyMask, firstRowOnly: true, query, out }), ws, q);
    const pooled = fresh(texts, x.shape[1]), embeds = fresh(texts, this.projection.n);
    q.add(() => layerNorm(x, w.finalLayerNorm.weight, w.finalLayerNorm.bias, { eps: s.eps, out: pooled }));
    q.add(() => linear(pooled, this.projection, { out: embeds }));
    await q.done();
    return { pooled, embeds };
  }
}

