/**
 * Attention, normalised logits and InfoNCE at CLIP shapes.
 * Run with `npx clipkit bench --op attention` (or logits, infonce): `benchCases()` feeds the bench
 * harness (bench/index.ts).
 * FLOPs counted: attention 4·batch·heads·qRows·seq·headDim (Q·Kᵀ and P·V over every key, masked or
 * not; a causal mask halves it; the softmax's exps are not counted), logits 2·n·m·d (the GEMM),
 * InfoNCE 6·n²·d (its three GEMMs).
 * Why attention sits below the FMA peak: the softmax's v_exp costs ~30 vector ops per 8 scores
 * next to 128 FMAs, 197 queries fill 208 lanes, Qᵀ is packed per block, and at seq 769 a head's
 * K and V (~400 KB) no longer stay in L2 across query blocks. The padding-mask case counts masked keys' FLOPs although they are skipped.
 * On a 2-core machine shared with other work, 2-thread timings mostly measure preemption.
 */
import { native } from '../src/native';
import type { BenchCase } from './case';

function filled(n: number, seed: number): Float32Array {
  const a = new Float32Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) a[i] = ((s = (s * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  return a;
}

interface AttnShape {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  packed?: boolean;
  pad?: boolean; // a key-padding mask with real lengths spread over 25–100 % of seq
  causal?: boolean;
  qRows?: number;
}

function attentionCase(s: AttnShape): BenchCase {
  const { batch, seq, heads, headDim } = s;
  const width = heads * headDim, qRows = s.qRows ?? seq;
  const inputs = s.packed
    ? { qkv: filled(batch * seq * 3 * width, 1) }
    : { q: filled(batch * seq * width, 1), k: filled(batch * seq * width, 2), v: filled(batch * seq * width, 3) };
  let keyMask: Int32Array | undefined;
  if (s.pad) {
    keyMask = new Int32Array(batch * seq);
    for (let b = 0; b < batch; b++) keyMask.fill(1, b * seq, b * seq + Math.max(1, Math.round(seq * (0.25 + (0.75 * (b + 1)) / batch))));
  }
  const out = new Float32Array(batch * qRows * width);
  const args = { ...inputs, keyMask, out, batch, seq, heads, headDim, qRows, scale: 1 / Math.sqrt(headDim), causal: !!s.causal };
  const tags = [s.packed && 'packed qkv', s.pad && 'padding mask', s.causal && 'causal', s.qRows && `qRows ${s.qRows}`].filter(Boolean);
  return {
    op: 'attention',
    shape: `b${batch} s${seq} ${heads}x${headDim}${tags.length ? ` (${tags.join(', ')})` : ''}`,
    flops: 4 * batch * heads * qRows * seq * headDim * (s.causal ? 0.5 : 1),
    run: (repeat) => native().attention({ ...args, repeat }) as Promise<void>,
  };
}

export function benchCases(): BenchCase[] {
  const n = 1024, d = 512;
  const a = filled(n * d, 5), b = filled(n * d, 6);
  const logits = new Float32Array(n * n), dLogits = new Float32Array(n * n), dA = new Float32Array(n * d), dB = new Float32Array(n * d);
  return [
    attentionCase({ batch: 1, seq: 197, heads: 12, headDim: 64 }),
    attentionCase({ batch: 1, seq: 197, heads: 12, headDim: 64, packed: true }),
    attentionCase({ batch: 8, seq: 197, heads: 12, headDim: 64 }),
    attentionCase({ batch: 8, seq: 197, heads: 12, headDim: 64, packed: true }),
    attentionCase({ batch: 1, seq: 197, heads: 12, headDim: 64, packed: true, qRows: 1 }),
    attentionCase({ batch: 8, seq: 52, heads: 8, headDim: 64, pad: true }),
    attentionCase({ batch: 8, seq: 52, heads: 8, headDim: 64, pad: true, causal: true }),
    attentionCase({ batch: 1, seq: 769, heads: 12, headDim: 64 }),
    {
      op: 'logits',
      shape: `${n}x${n} d${d}`,
      flops: 2 * n * n * d,
      run: (repeat) => native().logits({ a, b, out: logits, n, m: n, dim: d, scale: 100, repeat }) as Promise<void>,
    },
    {
      op: 'infonce',
      shape: `n${n} d${d} (loss and every gradient)`,
      flops: 6 * n * n * d,
      run: (repeat) => native().infonce({ a, b, logits, dLogits, dA, dB, n, dim: d, scale: 100, repeat }) as Promise<void>,
    },
  ];
}
