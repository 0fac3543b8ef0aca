/** ViT patch embedding: conv (kernel = stride = patch) + class token + position embeddings. */
import { expectInt, expectShape, expectTensor, expectOptions, OUT_ONLY } from '../check';
import { rangeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';
import { checkPacked, PACK_OPTIONS, PackOptions, packWeight, PackedWeight } from './gemm';

export interface PatchEmbedWeights {
  /** The conv weight [D, C, patch, patch] packed as [D, C·patch·patch] (see packPatchWeight). */
  weight: PackedWeight;
  patch: number;
  bias?: Tensor; // [D]
  classEmbedding: Tensor; // [D]
  positionEmbedding: Tensor; // [1 + (H/patch)·(W/patch), D]
}

/** Packs a conv weight [D, C, patch, patch] for patchEmbed. */
export async function packPatchWeight(conv: Tensor, opts: PackOptions = {}): Promise<PackedWeight> {
  expectOptions('packPatchWeight', opts, PACK_OPTIONS);
  const [d, c, ph, pw] = expectShape('conv', expectTensor('conv', conv, 'float32'), [-1, -1, -1, -1]);
  if (ph !== pw) throw rangeError('E_SHAPE', `Expected a square conv kernel but received [${conv.shape.join(', ')}]`);
  return packWeight(conv.reshape([d, c * ph * pw]), opts);
}

/**
 * pixels [B, C, H, W] -> tokens [B, 1 + (H/patch)·(W/patch), D]: class token first, positions added.
 * `out` (that shape) receives the tokens instead of a new tensor.
 */
export async function patchEmbed(pixels: Tensor, w: PatchEmbedWeights, opts: { out?: Tensor } = {}): Promise<Tensor> {
  expectOptions('patchEmbed', opts, OUT_ONLY);
  const [batch, channels, height, width] = expectShape('pixels', expectTensor('pixels', pixels, 'float32'), [-1, -1, -1, -1]);
  const weight = checkPacked('weight', w?.weight);
  if (weight.row0 !== 0) throw rangeError('E_ARG', 'Expected a whole packed weight for the patch embedding, not rows() of one');
  const patch = expectInt('patch', w.patch, 1);
  if (height % patch || width % patch)
    throw rangeError('E_SHAPE', `Expected pixels height and width to be multiples of patch ${patch} but received [${pixels.shape.join(', ')}]`);
  if (weight.k !== channels * patch * patch)
    throw rangeError('E_SHAPE', `Expected weight with K = C·patch·patch = ${channels * patch * patch} but received K = ${weight.k}`);
  const dim = weight.n, tokens = 1 + (height / patch) * (width / patch);
  if (w.bias !== undefined) expectShape('bias', expectTensor('bias', w.bias, 'float32'), [dim]);
  expectShape('classEmbedding', expectTensor('classEmbedding', w.classEmbedding, 'float32'), [dim]);
  expectShape('positionEmbedding', expectTensor('positionEmbedding', w.positionEmbedding, 'float32'), [tokens, dim]);
  let y: Float32Array;
  if (opts.out !== undefined) {
    expectShape('out', expectTensor('out', opts.out, 'float32'), [batch, tokens, dim]);
    y = opts.out.data;
  } else {
    y = new Float32Array(batch * tokens * dim);
  }
  await native().patchEmbed({
    pixels: pixels.data, batch, channels, height, width, patch, w: weight.handle, bias: w.bias?.data,
    classEmb: w.classEmbedding.data, posEmb: w.positionEmbedding.data, y,
  });
  return opts.out ?? new Tensor(y, [batch, tokens, dim]);
}
