import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import { packPatchWeight, packWeight, patchEmbed, Tensor } from '../../src';
import { isas, normal, onIsa, rejects, uniform } from '../helpers';
import { assertScaledClose, roundBf16 } from '../ref/gemm';
import { patchEmbedRefF64 } from '../ref/patch_embed';

const PatchEmbed = suite('patch_embed');
// Bound: as gemm, |y - ref| <= 4·√K·2^-24·scale with K = C·p·p and scale the sum of |terms|.
const tol = (k: number) => 4 * Math.sqrt(k) * 2 ** -24;

const CASES = [
  { B: 1, C: 3, H: 28, W: 42, p: 14, D: 24, bias: true },
  { B: 3, C: 3, H: 32, W: 16, p: 16, D: 17, bias: false },
  { B: 3, C: 2, H: 64, W: 32, p: 32, D: 9, bias: true },
  { B: 2, C: 1, H: 5, W: 10, p: 5, D: 7, bias: true },
  { B: 1, C: 3, H: 3, W: 2, p: 1, D: 5, bias: false },
  { B: 1, C: 3, H: 224, W: 224, p: 16, D: 768, bias: false }, // ViT-B/16
];

for (const c of CASES)
  PatchEmbed(`B=${c.B} C=${c.C} ${c.H}x${c.W} patch ${c.p} D=${c.D}${c.bias ? ' +bias' : ''}`, async () => {
    const seed = c.H * 31 + c.W + c.p * 1000 + c.D;
    const P = (c.H / c.p) * (c.W / c.p), K = c.C * c.p * c.p;
    const pixels = normal(c.B * c.C * c.H * c.W, seed), conv = normal(c.D * K, seed + 1, 1 / Math.sqrt(K));
    const bias = c.bias ? uniform(c.D, seed + 2) : null;
    const cls = normal(c.D, seed + 3), pos = normal((1 + P) * c.D, seed + 4, 0.1);
    const ref = patchEmbedRefF64(pixels, conv, bias, cls, pos, c.B, c.C, c.H, c.W, c.p, c.D);
    const weight = await packPatchWeight(new Tensor(conv, [c.D, c.C, c.p, c.p]));
    for (const isa of isas)
      await onIsa(isa, async () => {
        const y = await patchEmbed(new Tensor(pixels, [c.B, c.C, c.H, c.W]), {
          weight, patch: c.p, bias: bias ? new Tensor(bias, [c.D]) : undefined,
          classEmbedding: new Tensor(cls, [c.D]), positionEmbedding: new Tensor(pos, [1 + P, c.D]),
        });
        assert.equal(y.shape, [c.B, 1 + P, c.D]);
        assertScaledClose(y.data, ref.y, ref.scale, tol(K), 0, `y (${isa})`);
      });
  });

PatchEmbed('bf16 weight: matches the reference on bf16-rounded pixels and weights', async () => {
  const B = 2, C = 3, H = 32, W = 48, p = 16, D = 33, P = 6, K = C * p * p;
  const pixels = normal(B * C * H * W, 7), conv = normal(D * K, 8, 0.05), cls = normal(D, 9), pos = normal((1 + P) * D, 10);
  const ref = patchEmbedRefF64(roundBf16(pixels), roundBf16(conv), null, cls, pos, B, C, H, W, p, D);
  const weight = await packPatchWeight(new Tensor(conv, [D, C, p, p]), { dtype: 'bfloat16' });
  for (const isa of isas)
    await onIsa(isa, async () => {
      const y = await patchEmbed(new Tensor(pixels, [B, C, H, W]), {
        weight, patch: p, classEmbedding: new Tensor(cls, [D]), positionEmbedding: new Tensor(pos, [1 + P, D]),
      });
      assertScaledClose(y.data, ref.y, ref.scale, tol(K), 0, `y (${isa})`);
    });
});

PatchEmbed('bad arguments name the argument', async () => {
  const weight = await packWeight(new Tensor(normal(4 * 12, 1), [4, 12]));
  const ok = { weight, patch: 2, classEmbedding: new Tensor(normal(4, 2), [4]), positionEmbedding: new Tensor(normal(5 * 4, 3), [5, 4]) };
  const px = new Tensor(normal(3 * 4 * 4, 4), [1, 3, 4, 4]);
  assert.equal((await patchEmbed(px, ok)).shape, [1, 5, 4]);
  await rejects(patchEmbed(new Tensor(normal(3 * 5 * 4, 4), [1, 3, 5, 4]), ok), RangeError, /multiples of patch 2/);
  await rejects(patchEmbed(new Tensor(normal(48, 4), [3, 4, 4]), ok), RangeError, /pixels of shape/);
  await rejects(patchEmbed(new Tensor(normal(2 * 16, 4), [1, 2, 4, 4]), ok), RangeError, /K = C·patch·patch = 8/);
  await rejects(patchEmbed(px, { ...ok, patch: 0 }), RangeError, /patch/);
  await rejects(patchEmbed(px, { ...ok, weight: {} as never }), TypeError, /PackedWeight .* for weight/);
  await rejects(patchEmbed(px, { ...ok, positionEmbedding: new Tensor(normal(16, 3), [4, 4]) }), RangeError, /positionEmbedding of shape \[5, 4\]/);
  await rejects(patchEmbed(px, { ...ok, classEmbedding: new Tensor(normal(3, 3), [3]) }), RangeError, /classEmbedding of shape \[4\]/);
  await rejects(patchEmbed(px, { ...ok, bias: new Tensor(normal(3, 3), [3]) }), RangeError, /bias of shape \[4\]/);
  await rejects(packPatchWeight(new Tensor(normal(24, 1), [2, 3, 2, 2]).reshape([2, 3, 4, 1])), RangeError, /square/);
});

PatchEmbed.run();
