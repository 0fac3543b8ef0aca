/** Memory-bound ops at CLIP shapes: layer norm (plain and fused residual), GELU, QuickGELU, add, softmax, L2 norm, embedding. */
import { native } from '../src/native';
import { BenchCase } from './case';

function filled(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) a[i] = ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  return a;
}

/** layer_norm, layer_norm_residual and add on a [tokens, dim] residual stream; returns its x and y for more cases. */
function residualCases(cases: BenchCase[], tokens: number, dim: number, shape: string, seed: number): { x: Float32Array; y: Float32Array } {
  const n = tokens * dim;
  const x = filled(n, seed), r = filled(n, seed + 1), g = filled(dim, seed + 2), b = filled(dim, seed + 3), y = new Float32Array(n), s = new Float32Array(n);
  cases.push({ op: 'layer_norm', shape, bytes: 8 * n, run: (repeat) => native().layerNorm({ x, gamma: g, beta: b, y, rows: tokens, dim, eps: 1e-5, repeat }) as Promise<void> });
  cases.push({
    op: 'layer_norm_residual',
    shape,
    bytes: 16 * n,
    run: (repeat) => native().layerNorm({ x, residual: r, gamma: g, beta: b, y, sum: s, rows: tokens, dim, eps: 1e-5, repeat }) as Promise<void>,
  });
  cases.push({ op: 'add', shape, bytes: 12 * n, run: (repeat) => native().add({ a: x, b: r, y, repeat }) as Promise<void> });
  return { x, y };
}

export function elementwiseCases(): BenchCase[] {
  const cases: BenchCase[] = [];
  for (const [tokens, dim, label] of [[197, 768, 'vit-b/16 b1'], [197 * 8, 768, 'vit-b/16 b8'], [52 * 8, 512, 'text b8']] as const) {
    const n = tokens * dim;
    const { x, y } = residualCases(cases, tokens, dim, `${tokens}x${dim} (${label})`, 1);
    cases.push({ op: 'l2_normalize', shape: `${tokens}x${dim} (${label})`, bytes: 8 * n, run: (repeat) => native().l2Normalize({ x, y, rows: tokens, dim, repeat }) as Promise<void> });
    // The MLP's hidden activation is 4× wider.
    const h = filled(4 * n, 5), hy = new Float32Array(4 * n);
    cases.push({ op: 'gelu', shape: `${tokens}x${4 * dim} (${label})`, bytes: 32 * n, run: (repeat) => native().unary({ op: 'gelu', x: h, y: hy, repeat }) as Promise<void> });
    cases.push({ op: 'quick_gelu', shape: `${tokens}x${4 * dim} (${label})`, bytes: 32 * n, run: (repeat) => native().unary({ op: 'quick_gelu', x: h, y: hy, repeat }) as Promise<void> });
  }
  // Past every cache: 64 images' residual stream (39 MB per tensor), where memory bandwidth is the bar.
  {
    const tokens = 197 * 64, dim = 768, n = tokens * dim;
    const shape = `${tokens}x${dim} (vit-b/16 b64)`;
    const { x, y } = residualCases(cases, tokens, dim, shape, 11);
    cases.push({ op: 'quick_gelu', shape, bytes: 8 * n, run: (repeat) => native().unary({ op: 'quick_gelu', x, y, repeat }) as Promise<void> });
    cases.push({ op: 'gelu', shape, bytes: 8 * n, run: (repeat) => native().unary({ op: 'gelu', x, y, repeat }) as Promise<void> });
  }
  // Attention-probability-sized softmax: 12 heads × 197 × 197.
  {
    const rows = 12 * 197, dim = 197, x = filled(rows * dim, 6), y = new Float32Array(rows * dim);
    cases.push({ op: 'softmax', shape: `${rows}x${dim}`, bytes: 8 * rows * dim, run: (repeat) => native().softmax({ x, y, rows, dim, repeat }) as Promise<void> });
  }
  // Text-tower input: 8 × 52 tokens of a 21128-word vocabulary, width 768, with positions and types.
  {
    const batch = 8, seq = 52, dim = 768, vocab = 21128;
    const tokens = filled(vocab * dim, 7), positions = filled(512 * dim, 8), types = filled(2 * dim, 9);
    const ids = Int32Array.from({ length: batch * seq }, (_, i) => (i * 7919) % vocab);
    const y = new Float32Array(batch * seq * dim);
    cases.push({
      op: 'embedding',
      shape: `${batch}x${seq}x${dim}`,
      bytes: 3 * batch * seq * dim * 4,
      run: (repeat) =>
        native().embedding({ ids, tokens, vocab, positions, maxPositions: 512, types, nTypes: 2, y, batch, seq, dim, repeat }) as Promise<void>,
    });
  }
  return cases;
}
