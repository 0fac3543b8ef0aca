/**
 * float64 reference: out[b,i,h] = Σ_j softmax_j(scale·q_i·k_j + mask_ij)·v_j over the keys a row may
 * see (keyMask[b,j] != 0 and, with causal, j <= i). A row that sees no key is 0.
 * q, k, v: [batch, seq, heads·headDim]; returns [batch, qRows, heads·headDim].
 */
export interface AttentionRefOptions {
  batch: number;
  seq: number;
  heads: number;
  headDim: number;
  scale?: number;
  causal?: boolean;
  keyMask?: ArrayLike<number>; // [batch, seq], nonzero = keep
  qRows?: number;
}

export function attentionRefF64(q: ArrayLike<number>, k: ArrayLike<number>, v: ArrayLike<number>, o: AttentionRefOptions): Float64Array {
  const { batch, seq, heads, headDim: d } = o;
  const width = heads * d, qRows = o.qRows ?? seq, scale = o.scale ?? 1 / Math.sqrt(d);
  const out = new Float64Array(batch * qRows * width);
  const s = new Float64Array(seq);
  for (let b = 0; b < batch; b++)
    for (let h = 0; h < heads; h++)
      for (let i = 0; i < qRows; i++) {
        let mx = -Infinity;
        const qi = (b * seq + i) * width + h * d;
        for (let j = 0; j < seq; j++) {
          const visible = (!o.keyMask || o.keyMask[b * seq + j] !== 0) && (!o.causal || j <= i);
          if (!visible) {
            s[j] = -Infinity;
            continue;
          }
          const kj = (b * seq + j) * width + h * d;
          let dot = 0;
          for (let c = 0; c < d; c++) dot += q[qi + c] * k[kj + c];
          s[j] = dot * scale;
          mx = Math.max(mx, s[j]);
        }
        if (mx === -Infinity) continue; // no visible key: the row stays 0
        let sum = 0;
        for (let j = 0; j < seq; j++) sum += s[j] = Math.exp(s[j] - mx);
        const oi = (b * qRows + i) * width + h * d;
        for (let j = 0; j < seq; j++) {
          if (s[j] === 0) continue;
          const w = s[j] / sum, vj = (b * seq + j) * width + h * d;
          for (let c = 0; c < d; c++) out[oi + c] += w * v[vj + c];
        }
      }
  return out;
}

/** Interleaves separate q, k, v [batch, seq, width] into the packed layout [batch, seq, 3·width]. */
export function packQkv(q: Float32Array, k: Float32Array, v: Float32Array, rows: number, width: number): Float32Array {
  const out = new Float32Array(rows * 3 * width);
  for (let r = 0; r < rows; r++) {
    out.set(q.subarray(r * width, (r + 1) * width), r * 3 * width);
    out.set(k.subarray(r * width, (r + 1) * width), r * 3 * width + width);
    out.set(v.subarray(r * width, (r + 1) * width), r * 3 * width + 2 * width);
  }
  return out;
}
