/** float64 reference for patch embedding: direct convolution (kernel = stride = patch), class token, positions. */
export function patchEmbedRefF64(
  pixels: ArrayLike<number>, // [B, C, H, W]
  conv: ArrayLike<number>, // [D, C, p, p]
  bias: ArrayLike<number> | null,
  cls: ArrayLike<number>, // [D]
  pos: ArrayLike<number>, // [1 + P, D]
  B: number, C: number, H: number, W: number, p: number, D: number,
): { y: Float64Array; scale: Float64Array } {
  const gh = H / p, gw = W / p, T = 1 + gh * gw;
  const y = new Float64Array(B * T * D), scale = new Float64Array(B * T * D);
  for (let b = 0; b < B; b++)
    for (let d = 0; d < D; d++) {
      y[b * T * D + d] = cls[d] + pos[d];
      scale[b * T * D + d] = Math.abs(cls[d]) + Math.abs(pos[d]);
      for (let py = 0; py < gh; py++)
        for (let px = 0; px < gw; px++) {
          let s = bias ? bias[d] : 0, a = Math.abs(s);
          for (let c = 0; c < C; c++)
            for (let dy = 0; dy < p; dy++)
              for (let dx = 0; dx < p; dx++) {
                const v = pixels[((b * C + c) * H + py * p + dy) * W + px * p + dx] * conv[((d * C + c) * p + dy) * p + dx];
                s += v;
                a += Math.abs(v);
              }
          const t = 1 + py * gw + px;
          y[(b * T + t) * D + d] = s + pos[t * D + d];
          scale[(b * T + t) * D + d] = a + Math.abs(pos[t * D + d]);
        }
    }
  return { y, scale };
}
