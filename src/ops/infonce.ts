/**
 * Symmetric softmax-InfoNCE (CLIP's contrastive loss). Row i of the logits should pick column i and
 * column j should pick row j:
 *   loss = ½ (mean_i CE(logits[i, :], i) + mean_j CE(logits[:, j], j))
 * computed with a max-subtracted log-sum-exp, sums in double.
 */
import { describe, expectFinite, expectShape, expectTensor } from '../check';
import { rangeError, typeError } from '../errors';
import { native } from '../native';
import { Tensor } from '../tensor';
import { expectMatrix, expectScale } from './logits';

/** From square logits [n, n] (n >= 1): the loss and dL/dlogits [n, n]. */
export async function infonceLoss(logits: Tensor): Promise<{ loss: number; dLogits: Tensor }> {
  const [n, m] = expectMatrix('logits', logits);
  if (n !== m || n === 0) throw rangeError('E_SHAPE', `Expected logits of shape [n, n] with n >= 1 but received [${n}, ${m}]`);
  const dLogits = new Float32Array(n * n);
  const r = (await native().infonceLoss({ logits: logits.data, dLogits, n })) as { loss: number };
  return { loss: r.loss, dLogits: new Tensor(dLogits, [n, n]) };
}

export interface InfonceResult {
  loss: number;
  logits: Tensor; // [n, n] = scale · Â·B̂ᵀ
  dLogits: Tensor; // [n, n]
  dA: Tensor; // [n, d], through the L2 normalisation of a's rows
  dB: Tensor; // [n, d]
  dScale: number; // ∂loss/∂scale, scale being the multiplier
  dLogScale: number; // ∂loss/∂logScale = scale · dScale (CLIP stores logit_scale = log(scale))
}

/**
 * The loss from paired embeddings a[i] ↔ b[i] ([n, d] each, n >= 1): logits = scale · Â·B̂ᵀ, then the
 * loss above, with every gradient. `scale` is the multiplier of the cosine similarities; pass
 * `{ logScale }` to give its logarithm instead (CLIP's logit_scale; scale = exp(logScale)).
 */
export async function infonce(a: Tensor, b: Tensor, scale: number | { scale: number } | { logScale: number }): Promise<InfonceResult> {
  const [n, d] = expectMatrix('a', a);
  expectShape('b', expectTensor('b', b, 'float32'), [n, d]);
  if (n === 0) throw rangeError('E_SHAPE', 'Expected a and b with at least one row but received [0, ' + d + ']');
  const s = scaleOf(scale);
  const logits = new Float32Array(n * n), dLogits = new Float32Array(n * n);
  const dA = new Float32Array(n * d), dB = new Float32Array(n * d);
  const r = (await native().infonce({ a: a.data, b: b.data, logits, dLogits, dA, dB, n, dim: d, scale: s })) as {
    loss: number;
    dScale: number;
    dLogScale: number;
  };
  return {
    loss: r.loss,
    logits: new Tensor(logits, [n, n]),
    dLogits: new Tensor(dLogits, [n, n]),
    dA: new Tensor(dA, [n, d]),
    dB: new Tensor(dB, [n, d]),
    dScale: r.dScale,
    dLogScale: r.dLogScale,
  };
}

function scaleOf(v: unknown): number {
  if (typeof v === 'number') return expectScale('scale', v);
  if (v !== null && typeof v === 'object') {
    const o = v as { scale?: unknown; logScale?: unknown };
    if ('scale' in o && 'logScale' in o) throw typeError('E_ARG', 'Expected one of scale or logScale but received both');
    if ('scale' in o) return expectScale('scale', o.scale);
    if ('logScale' in o) return expectScale('exp(logScale)', Math.exp(expectFinite('logScale', o.logScale)));
  }
  throw typeError('E_ARG', `Expected a number (the scale) or { scale } or { logScale } for scale but received ${describe(v)}`);
}
