/**
 * The image tower of both families: a pre-LayerNorm ViT (CLIPVisionTransformer).
 *
 *   x = patchEmbed(pixels)                      conv (stride = patch) + class token + positions
 *   x = pre_layrnorm(x)
 *   per layer:  x += out_proj(MHA(layer_norm1(x)));  x += fc2(act(fc1(layer_norm2(x))))
 *   pooled = post_layernorm(x[:, 0]);  image_embeds = pooled · visual_projectionᵀ (+ bias, EasyNLP)
 *
 * Only the class row leaves the tower, so the last layer projects q and computes attention for row 0
 * alone (keys and values still come from every row) and runs its out_proj, MLP and norms on that row.
 */
import { attentionPacked } from '../ops/attention';
import { linear, PackedWeight } from '../ops/gemm';
import { layerNorm } from '../ops/layer_norm';
import { patchEmbed, PatchEmbedWeights } from '../ops/patch_embed';
import { Tensor } from '../tensor';
import { BlockSettings, collectStates, HiddenStates, preNormLastLayer, preNormMlp, preNormQkv } from './blocks';
import { OpQueue } from './op_queue';
import { expectNormState, expectPackedState, expectPreNormLayers, expectTensorState, keep, keepNorm, pack, PackedPreNormLayer, packPreNormLayer, PackSettings, stateError } from './packing';
import { fresh, Workspace, WorkspacePool } from './workspace';
import { VisionConfig } from '../loading/config';
import { Norm, VisionWeights } from '../loading/weights';

export interface VisionOutput {
  /** post_layernorm of the class row [B, W]. */
  pooled: Tensor;
  /** pooled · visual_projectionᵀ [B, E], not normalised. */
  embeds: Tensor;
}

/**
 * Everything the image tower computes with: a tree whose leaves are float32 Tensors and whole
 * PackedWeights, as packed at load or rebuilt from the weight cache (which stores exactly this tree).
 */
export interface VisionState {
  /** The conv weight packed as [W, C·patch·patch] (packPatchWeight). */
  patchEmbedding: PackedWeight;
  classEmbedding: Tensor; // [W]
  positionEmbedding: Tensor; // [1 + (S/P)^2, W]
  preLayerNorm: Norm;
  layers: PackedPreNormLayer[];
  postLayerNorm: Norm;
  projection: PackedWeight; // [E, W]
  projectionBias?: Tensor; // [E] (EasyNLP)
}

export class VisionTower {
  private readonly embed: PatchEmbedWeights;
  private readonly preLayerNorm: Norm;
  private readonly layers: PackedPreNormLayer[];
  private readonly postLayerNorm: Norm;
  private readonly projection: PackedWeight;
  private readonly projectionBias: Tensor | undefined;

  private constructor(
    readonly config: VisionConfig,
    /** @internal What the tower was built from (the weight cache writes it). */
    readonly state: VisionState,
  ) {
    this.embed = { weight: state.patchEmbedding, patch: config.patchSize, classEmbedding: state.classEmbedding, positionEmbedding: state.positionEmbedding };
    this.preLayerNorm = state.preLayerNorm;
    this.layers = state.layers;
    this.postLayerNorm = state.postLayerNorm;
    this.projection = state.projection;
    this.projectionBias = state.projectionBias;
  }

  private readonly workspaces = new WorkspacePool();

  /** Packs every weight once (fp32, or bf16 for the fast mode). */
  static async load(w: VisionWeights, config: VisionConfig, s: PackSettings): Promise<VisionTower> {
    return new VisionTower(config, await VisionTower.packState(w, s));
  }

  /** The state load() builds, leaf by leaf in a fixed order (with a sink, its stand-ins: see PackSettings). */
  static async packState(w: VisionWeights, s: PackSettings): Promise<VisionState> {
    // The conv weight [W, C, P, P] as the GEMM's [W, C·P·P] (what packPatchWeight packs).
    const [d, ...kernel] = w.patchEmbedding.shape;
    const patchEmbedding = await pack(w.patchEmbedding.reshape([d, kernel.reduce((a, b) => a * b, 1)]), s);
    const classEmbedding = await keep(w.classEmbedding, s);
    const positionEmbedding = await keep(w.positionEmbedding, s);
    const preLayerNorm = await keepNorm(w.preLayerNorm, s);
    const layers: PackedPreNormLayer[] = [];
    for (const l of w.layers) layers.push(await packPreNormLayer(l, s));
    const postLayerNorm = await keepNorm(w.postLayerNorm, s);
    const projection = await pack(w.projection, s);
    const projectionBias = w.projectionBias && (await keep(w.projectionBias, s));
    return { patchEmbedding, classEmbedding, positionEmbedding, preLayerNorm, layers, postLayerNorm, projection, ...(projectionBias && { projectionBias }) };
  }

  /** The tower over a state packed earlier (nothing is packed or copied); E_FORMAT when it does not fit the config. */
  static fromState(state: VisionState, config: VisionConfig): VisionTower {
    const c = config, w = c.hiddenSize, grid = Math.floor(c.imageSize / c.patchSize);
    if (state === null || typeof state !== 'object') throw stateError('the vision state is missing');
    expectPackedState('vision.patchEmbedding', state.patchEmbedding, w, c.numChannels * c.patchSize * c.patchSize);
    expectTensorState('vision.classEmbedding', state.classEmbedding, [w]);
    expectTensorState('vision.positionEmbedding', state.positionEmbedding, [1 + grid * grid, w]);
    expectNormState('vision.preLayerNorm', state.preLayerNorm, w);
    expectPreNormLayers('vision.layers', state.layers, c.numHiddenLayers, w, c.intermediateSize);
    expectNormState('vision.postLayerNorm', state.postLayerNorm, w);
    const projection = expectPackedState('vision.projection', state.projection, undefined, w);
    if (state.projectionBias !== undefined) expectTensorState('vision.projectionBias', state.projectionBias, [projection.n]);
    return new VisionTower(config, state);
  }

  private get settings(): BlockSettings {
    const c = this.config;
    return { heads: c.numAttentionHeads, eps: c.layerNormEps, act: c.hiddenAct };
  }

  /** pixels [B, C, S, S], preprocessed at the model's resolution. */
  encode(pixels: Tensor): Promise<VisionOutput> {
    return this.workspaces.use((ws) => this.encodeIn(pixels, ws));
  }

  private async encodeIn(pixels: Tensor, ws: Workspace): Promise<VisionOutput> {
    const s = this.settings, q = new OpQueue();
    const batch = pixels.shape[0];
    const x = this.embedPatches(pixels, ws, q);
    const width = x.shape[2];

    const last = this.layers.length - 1;
    for (let i = 0; i < last; i++) this.block(x, this.layers[i], ws, q);

    // The class row only, from here on: [B, W].
    const classRows = Array.from({ length: batch }, (_, b) => b * x.shape[1]);
    const cls = preNormLastLayer(x, this.layers[last], s, classRows, (qkv, query, out) =>
      attentionPacked(qkv, { heads: s.heads, qRows: 1, query: query.reshape([batch, 1, width]), out: out.reshape([batch, 1, width]) }), ws, q);

    const pooled = fresh(batch, width), embeds = fresh(batch, this.projection.n);
    q.add(() => layerNorm(cls, this.postLayerNorm.weight, this.postLayerNorm.bias, { eps: s.eps, out: pooled }));
    q.add(() => linear(pooled, this.projection, { bias: this.projectionBias, out: embeds }));
    await q.done();
    return { pooled, embeds };
  }

  /**
   * Every row of every layer, as transformers' `output_hidden_states`: [pre_layrnorm output, layer
   * 1, …] each [B, 1 + patches, W]; `lastHiddenState` is the last of them (before post_layernorm).
   */
  hiddenStates(pixels: Tensor): Promise<HiddenStates> {
    return this.workspaces.use(async (ws) => {
      const q = new OpQueue();
      const x0 = this.embedPatches(pixels, ws, q);
      await q.done();
      const { states } = await collectStates(x0, this.layers, async (x, l) => {
        this.block(x, l, ws, q);
        await q.done();
        return x;
      });
      return { hiddenStates: states, lastHiddenState: states[states.length - 1] };
    });
  }

  /** The residual stream after patch embedding and pre_layrnorm, queued, in `ws`. */
  private embedPatches(pixels: Tensor, ws: Workspace, q: OpQueue): Tensor {
    const c = this.config, [batch, , height, width] = pixels.shape;
    const grid = Math.floor(height / c.patchSize) * Math.floor(width / c.patchSize); // patchEmbed checks the sizes
    const tokens = ws.tensor('tokens', [batch, 1 + grid, c.hiddenSize]);
    const x = ws.tensor('x', tokens.shape);
    q.add(() => patchEmbed(pixels, this.embed, { out: tokens }));
    q.add(() => layerNorm(tokens, this.preLayerNorm.weight, this.preLayerNorm.bias, { eps: c.layerNormEps, out: x }));
    return x;
  }

  /** One pre-LN layer, queued, in place on x [B, S, W]. */
  private block(x: Tensor, l: PackedPreNormLayer, ws: Workspace, q: OpQueue): void {
    const s = this.settings;
    const a = ws.tensor('attn', x.shape);
    q.add(() => attentionPacked(preNormQkv(x, l, s, ws, q), { heads: s.heads, out: a }));
    q.add(() => linear(a, l.out.weight, { bias: l.out.bias, residual: x, out: x }));
    preNormMlp(x, l, s, ws, q);
  }
}
