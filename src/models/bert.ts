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
 * Each text runs at its true length, without padding: a batch stacks its texts row after row
 * (ragged.ts RaggedBatch), the GEMMs run over all rows at once and attention within each text. The
 * padding keys of a padded run get weight exactly 0, so [CLS] is the same as the fully padded run's.
 * The last layer computes only the [CLS] rows: q for those rows alone (k and v for every row), attention
 * for each text's first query, then its tail.
 */
import { attentionRagged } from '../ops/attention';
import { embedding } from '../ops/embedding';
import { linear } from '../ops/gemm';
import { layerNorm } from '../ops/layer_norm';
import { Tensor } from '../tensor';
import { collectStates, HiddenStates, lastLayerAttention, pickRows, TextOutput } from './blocks';
import { OpQueue } from './op_queue';
import { expectLinearState, expectNormState, expectTensorState, keep, keepNorm, pack, PackedLinear, packLinear, packQkv, PackSettings, stateError } from './packing';
import { encodeInGroups, keyMaskOf, RaggedBatch, raggedBatch } from './ragged';
import { fresh, Workspace, WorkspacePool } from './workspace';
import { BertTextConfig } from '../loading/config';
import { BertTextWeights, Norm } from '../loading/weights';

/** The input embedding tables and their LayerNorm. */
type BertEmbeddings = Pick<BertTextWeights, 'wordEmbeddings' | 'positionEmbeddings' | 'tokenTypeEmbeddings' | 'embeddingsLayerNorm'>;

export interface PackedBertLayer {
  qkv: PackedLinear;
  attentionOutput: PackedLinear;
  attentionLayerNorm: Norm;
  intermediate: PackedLinear;
  output: PackedLinear;
  outputLayerNorm: Norm;
}

/**
 * Everything the BERT-family tower computes with: a tree whose leaves are float32 Tensors and whole
 * PackedWeights, as packed at load or rebuilt from the weight cache (which stores exactly this tree).
 */
export interface BertState extends BertEmbeddings {
  layers: PackedBertLayer[];
  /** AltCLIP: pre_LN and transformation after the encoder. */
  head?: { preLayerNorm: Norm; transformation: PackedLinear };
  /** EasyNLP: BERT's pooler. */
  pooler?: PackedLinear;
  projection: PackedLinear;
}

export class BertTower {
  private readonly w: BertEmbeddings;
  private readonly layers: PackedBertLayer[];
  private readonly head: { preLayerNorm: Norm; transformation: PackedLinear } | undefined;
  private readonly pooler: PackedLinear | undefined;
  private readonly projection: PackedLinear;

  private constructor(
    readonly config: BertTextConfig,
    /** @internal What the tower was built from (the weight cache writes it). */
    readonly state: BertState,
  ) {
    this.w = {
      wordEmbeddings: state.wordEmbeddings,
      positionEmbeddings: state.positionEmbeddings,
      tokenTypeEmbeddings: state.tokenTypeEmbeddings,
      embeddingsLayerNorm: state.embeddingsLayerNorm,
    };
    this.layers = state.layers;
    this.head = state.head;
    this.pooler = state.pooler;
    this.projection = state.projection;
  }

  private readonly workspaces = new WorkspacePool();

  static async load(w: BertTextWeights, config: BertTextConfig, s: PackSettings): Promise<BertTower> {
    return new BertTower(config, await BertTower.packState(w, s));
  }

  /** The state load() builds, leaf by leaf in a fixed order (with a sink, its stand-ins: see PackSettings). */
  static async packState(w: BertTextWeights, s: PackSettings): Promise<BertState> {
    const kept: BertEmbeddings = {
      wordEmbeddings: await keep(w.wordEmbeddings, s),
      positionEmbeddings: await keep(w.positionEmbeddings, s),
      tokenTypeEmbeddings: await keep(w.tokenTypeEmbeddings, s),
      embeddingsLayerNorm: await keepNorm(w.embeddingsLayerNorm, s),
    };
    const layers: PackedBertLayer[] = [];
    for (const l of w.layers)
      layers.push({
        qkv: await packQkv(l.query, l.key, l.value, s),
        attentionOutput: await packLinear(l.attentionOutput, s),
        attentionLayerNorm: await keepNorm(l.attentionLayerNorm, s),
        intermediate: await packLinear(l.intermediate, s),
        output: await packLinear(l.output, s),
        outputLayerNorm: await keepNorm(l.outputLayerNorm, s),
      });
    const head = w.preLayerNorm && w.transformation
      ? { preLayerNorm: await keepNorm(w.preLayerNorm, s), transformation: await packLinear(w.transformation, s) }
      : undefined;
    const pooler = w.pooler && (await packLinear(w.pooler, s));
    const weight = await pack(w.projection, s);
    const projection: PackedLinear = w.projectionBias ? { weight, bias: await keep(w.projectionBias, s) } : { weight };
    return { ...kept, layers, ...(head && { head }), ...(pooler && { pooler }), projection };
  }

  /** The tower over a state packed earlier (nothing is packed or copied); E_FORMAT when it does not fit the config. */
  static fromState(state: BertState, config: BertTextConfig): BertTower {
    const c = config, w = c.hiddenSize, inter = c.intermediateSize;
    if (state === null || typeof state !== 'object') throw stateError('the text state is missing');
    expectTensorState('text.wordEmbeddings', state.wordEmbeddings, [c.vocabSize, w]);
    expectTensorState('text.positionEmbeddings', state.positionEmbeddings, [c.maxPositionEmbeddings, w]);
    expectTensorState('text.tokenTypeEmbeddings', state.tokenTypeEmbeddings, [c.typeVocabSize, w]);
    expectNormState('text.embeddingsLayerNorm', state.embeddingsLayerNorm, w);
    if (!Array.isArray(state.layers) || state.layers.length !== c.numHiddenLayers)
      throw stateError(`text.layers has ${Array.isArray(state.layers) ? state.layers.length : 'no'} layers, expected ${c.numHiddenLayers}`);
    state.layers.forEach((l, i) => {
      const p = `text.layers[${i}]`;
      expectLinearState(`${p}.qkv`, l.qkv, 3 * w, w);
      expectLinearState(`${p}.attentionOutput`, l.attentionOutput, w, w);
      expectNormState(`${p}.attentionLayerNorm`, l.attentionLayerNorm, w);
      expectLinearState(`${p}.intermediate`, l.intermediate, inter, w);
      expectLinearState(`${p}.output`, l.output, w, inter);
      expectNormState(`${p}.outputLayerNorm`, l.outputLayerNorm, w);
    });
    if ((c.pooling === 'transformation') !== (state.head !== undefined)) throw stateError(`text.head does not match pooling ${c.pooling}`);
    if (state.head) {
      expectNormState('text.head.preLayerNorm', state.head.preLayerNorm, w);
      expectLinearState('text.head.transformation', state.head.transformation, c.pooledSize, w);
    }
    if ((c.pooling === 'tanh') !== (state.pooler !== undefined)) throw stateError(`text.pooler does not match pooling ${c.pooling}`);
    if (state.pooler) expectLinearState('text.pooler', state.pooler, w, w);
    expectLinearState('text.projection', state.projection, undefined, c.pooledSize, false);
    return new BertTower(config, state);
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
   * ids [n, context] → pooled and embeds of each row, in input order. Runs ragged batches of at most
   * `batchSize` texts of similar length; `padTo` (tests) runs every text padded to that length instead.
   */
  async encode(ids: Int32Array, n: number, context: number, batchSize: number, padTo?: number): Promise<TextOutput> {
    const lengths = this.lengths(ids, n, context);
    return this.workspaces.use((ws) =>
      encodeInGroups(ids, n, context, lengths, batchSize, (length) => length, padTo, this.config.pooledSize,
        this.projection.weight.n, (batch) => this.encodeBatch(batch, ws)));
  }

  /**
   * Every layer's output for ids [n, context], each text run padded to the context length with its
   * padding keys masked, as transformers runs it: `hiddenStates` [embeddings, layer 1, …] each
   * [n, context, W], and `lastHiddenState` (AltCLIP: transformation(pre_LN(x)) on every row).
   */
  hiddenStates(ids: Int32Array, n: number, context: number): Promise<HiddenStates> {
    return this.workspaces.use(async (ws) => {
      const lengths = Array.from(this.lengths(ids, n, context));
      const all = Array.from({ length: n }, (_, i) => i);
      const batch = raggedBatch(ids, context, all, all.map(() => context), lengths);
      const keyMask = keyMaskOf(batch, (length) => length);
      const q = new OpQueue();
      const x0 = this.embed(batch, ws, q);
      await q.done();
      const shaped = (t: Tensor) => t.reshape([n, context, t.shape[1]]);
      const { states } = await collectStates(x0, this.layers, async (x, l) => {
        const y = this.block(x, l, batch.starts, keyMask, ws, q);
        await q.done();
        return y;
      });
      const x = states[states.length - 1];
      let last = x;
      const head = this.head;
      if (head) {
        const h = fresh(x.shape[0], x.shape[1]);
        last = fresh(x.shape[0], head.transformation.weight.n);
        q.add(() => layerNorm(x, head.preLayerNorm.weight, head.preLayerNorm.bias, { eps: this.config.layerNormEps, out: h }));
        q.add(() => linear(h, head.transformation.weight, { bias: head.transformation.bias, out: last }));
        await q.done();
      }
      return { hiddenStates: states.map(shaped), lastHiddenState: shaped(last) };
    });
  }

  /** The residual stream after the embeddings' LayerNorm [rows, W], queued, in `ws`. */
  private embed(batch: RaggedBatch, ws: Workspace, q: OpQueue): Tensor {
    const w = this.w, rows = batch.ids.length, width = w.wordEmbeddings.shape[1];
    const positionIds = batch.positions.map((p) => p + this.config.positionOffset);
    const emb = ws.tensor('emb', [1, rows, width]), x = ws.tensor('x', [rows, width]);
    q.add(() => embedding(
      new Tensor(batch.ids, [1, rows], 'int32'),
      { tokens: w.wordEmbeddings, positions: w.positionEmbeddings, types: w.tokenTypeEmbeddings },
      { positionIds: new Tensor(positionIds, [1, rows], 'int32'), out: emb },
    ));
    q.add(() => layerNorm(emb, w.embeddingsLayerNorm.weight, w.embeddingsLayerNorm.bias, { eps: this.config.layerNormEps, out: x.reshape(emb.shape) }));
    return x;
  }

  /**
   * One post-LN layer, queued, on x [rows, W] (modified in place as the residual; the result goes to
   * the other of the workspace's two residual buffers).
   */
  private block(x: Tensor, l: PackedBertLayer, starts: Int32Array, keyMask: Int32Array | undefined, ws: Workspace, q: OpQueue): Tensor {
    const qkv = ws.tensor('qkv', [x.shape[0], l.qkv.weight.n]), a = ws.tensor('attn', x.shape);
    q.add(() => linear(x, l.qkv.weight, { bias: l.qkv.bias, out: qkv }));
    q.add(() => attentionRagged(qkv, { heads: this.config.numAttentionHeads, seqStarts: starts, keyMask, out: a }));
    return this.afterAttention(x, a, l, (t) => ws.tensor(ws.holds('x', t) ? 'x2' : 'x', t.shape), ws, q);
  }

  /** The last layer for each text's first row ([CLS] / <s>) alone, queued → a new [B, W]. */
  private lastBlock(x: Tensor, l: PackedBertLayer, starts: Int32Array, keyMask: Int32Array | undefined, ws: Workspace, q: OpQueue): Tensor {
    const heads = this.config.numAttentionHeads;
    const { attn, picked } = lastLayerAttention(x, l.qkv, starts.subarray(0, starts.length - 1), (qkv, query, out) =>
      attentionRagged(qkv, { heads, seqStarts: starts, keyMask, firstRowOnly: true, query, out }), ws, q);
    // These rows leave the tower: they get buffers of their own.
    return this.afterAttention(picked, attn, l, (t) => fresh(t.shape[0], t.shape[1]), ws, q);
  }

  /**
   * The rest of a post-LN layer once attention gave a for the rows of x (modified in place), queued:
   * LN(dense(a) + x), then LN(output(act(intermediate(·))) + ·), each LayerNorm into stream(·).
   */
  private afterAttention(x: Tensor, a: Tensor, l: PackedBertLayer, stream: (t: Tensor) => Tensor, ws: Workspace, q: OpQueue): Tensor {
    const c = this.config, eps = c.layerNormEps;
    q.add(() => linear(a, l.attentionOutput.weight, { bias: l.attentionOutput.bias, residual: x, out: x }));
    const h = stream(x);
    q.add(() => layerNorm(x, l.attentionLayerNorm.weight, l.attentionLayerNorm.bias, { eps, out: h }));
    const f = ws.tensor('mlp', [h.shape[0], l.intermediate.weight.n]);
    // The activation is applied by the output GEMM as it reads f (see LinearOptions.inputActivation).
    q.add(() => linear(h, l.intermediate.weight, { bias: l.intermediate.bias, out: f }));
    q.add(() => linear(f, l.output.weight, { bias: l.output.bias, inputActivation: c.hiddenAct, residual: h, out: h }));
    const y = stream(h);
    q.add(() => layerNorm(h, l.outputLayerNorm.weight, l.outputLayerNorm.bias, { eps, out: y }));
    return y;
  }

  /** One ragged batch: each text at its own length (keys past its true length, if any, masked). */
  private async encodeBatch(batch: RaggedBatch, ws: Workspace): Promise<TextOutput> {
    const texts = batch.keys.length, keyMask = keyMaskOf(batch, (length) => length), q = new OpQueue();
    let x = this.embed(batch, ws, q);
    const last = this.layers.length - 1;
    for (let i = 0; i < last; i++) x = this.block(x, this.layers[i], batch.starts, keyMask, ws, q);
    let pooled = last >= 0 ? this.lastBlock(x, this.layers[last], batch.starts, keyMask, ws, q) : pickRows(x, batch.starts.subarray(0, texts), q);
    const head = this.head;
    if (head) {
      const h = fresh(texts, pooled.shape[1]);
      q.add(() => layerNorm(pooled, head.preLayerNorm.weight, head.preLayerNorm.bias, { eps: this.config.layerNormEps, out: h }));
      pooled = fresh(texts, head.transformation.weight.n);
      q.add(() => linear(h, head.transformation.weight, { bias: head.transformation.bias, out: pooled }));
    }
    const pooler = this.pooler;
    if (pooler) {
      const p = fresh(texts, pooler.weight.n);
      q.add(() => linear(pooled, pooler.weight, { bias: pooler.bias, out: p }));
      await q.done();
      tanhInPlace(p.data as Float32Array);
      pooled = p;
    }
    const embeds = fresh(texts, this.projection.weight.n);
    q.add(() => linear(pooled, this.projection.weight, { bias: this.projection.bias, out: embeds }));
    await q.done();
    return { pooled, embeds };
  }
}

/** tanh of a [B, W] pooled block: B·W values, computed in float64 and rounded once. */
function tanhInPlace(x: Float32Array): void {
  for (let i = 0; i < x.length; i++) x[i] = Math.tanh(x[i]);
}

