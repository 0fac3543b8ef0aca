/**
 * References for the resize kernel: a plain port of Pillow 9.4's Resample.c / Geometry.c / Convert.c
 * (float64 coefficients, fixed-point passes; must match bit for bit), and a continuous float64
 * resampler without the fixed point or the uint8 intermediate (close, not equal).
 */
const PRECISION_BITS = 22;

type Filter = { fn: (x: number) => number; support: number };
const fround = Math.fround;
export const FILTERS: Record<string, Filter> = {
  box: { fn: (x) => (x > -0.5 && x <= 0.5 ? 1 : 0), support: 0.5 },
  bilinear: { fn: (x) => (Math.abs(x) < 1 ? 1 - Math.abs(x) : 0), support: 1 },
  hamming: {
    fn: (x) => {
      x = Math.abs(x);
      if (x === 0) return 1;
      if (x >= 1) return 0;
      x *= Math.PI;
      return (Math.sin(x) / x) * (fround(0.54) + fround(0.46) * Math.cos(x));
    },
    support: 1,
  },
  bicubic: {
    fn: (x) => {
      const a = -0.5;
      x = Math.abs(x);
      if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
      if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
      return 0;
    },
    support: 2,
  },
  lanczos: {
    fn: (x) => {
      const sinc = (v: number) => (v === 0 ? 1 : Math.sin(v * Math.PI) / (v * Math.PI));
      return -3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0;
    },
    support: 3,
  },
};

interface Coeffs { xmin: number[]; n: number[]; w: number[][] } // w: normalised float64 weights

function coeffs(inSize: number, outSize: number, f: Filter): Coeffs {
  const scale = inSize / outSize;
  const filterscale = Math.max(1, scale);
  const support = f.support * filterscale;
  const c: Coeffs = { xmin: [], n: [], w: [] };
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(0, Math.trunc(center - support + 0.5));
    const xmax = Math.min(inSize, Math.trunc(center + support + 0.5)) - xmin;
    const w: number[] = [];
    let ww = 0;
    for (let x = 0; x < xmax; x++) {
      w.push(f.fn((x + xmin - center + 0.5) / filterscale));
      ww += w[x];
    }
    c.xmin.push(xmin);
    c.n.push(xmax);
    c.w.push(w.map((v) => (ww !== 0 ? v / ww : v)));
  }
  return c;
}

const fixed = (v: number) => (v < 0 ? Math.trunc(-0.5 + v * (1 << PRECISION_BITS)) : Math.trunc(0.5 + v * (1 << PRECISION_BITS)));
const clip8 = (acc: number) => Math.min(255, Math.max(0, acc >> PRECISION_BITS));

/** One fixed-point pass along an axis of a [H, W, C] image. */
function pass(src: Uint8Array, h: number, w: number, C: number, c: Coeffs, horizontal: boolean): Uint8Array {
  const oh = horizontal ? h : c.n.length, ow = horizontal ? c.n.length : w;
  const out = new Uint8Array(oh * ow * C);
  const k = c.w.map((ws) => ws.map(fixed));
  for (let y = 0; y < oh; y++)
    for (let x = 0; x < ow; x++)
      for (let ch = 0; ch < C; ch++) {
        const o = horizontal ? x : y;
        let ss = 1 << (PRECISION_BITS - 1);
        for (let t = 0; t < c.n[o]; t++) {
          const sy = horizontal ? y : c.xmin[o] + t, sx = horizontal ? c.xmin[o] + t : x;
          ss = (ss + src[(sy * w + sx) * C + ch] * k[o][t]) | 0; // int32 wrap, as C
        }
        out[(y * ow + x) * C + ch] = clip8(ss);
      }
  return out;
}

const muldiv255 = (c: number, a: number) => {
  const t = c * a + 128;
  return ((t >> 8) + t) >> 8;
};

/** Pillow's Image.resize((ow, oh), filter) on [h, w, C] uint8 data, LA / RGBA premultiplied. */
export function resizePillowRef(src: Uint8Array, w: number, h: number, C: number, ow: number, oh: number, filter: string): Uint8Array {
  if (w === ow && h === oh) return src.slice();
  if (filter === 'nearest') {
    const out = new Uint8Array(ow * oh * C);
    const sx = w / ow, sy = h / oh;
    const xs: number[] = [];
    for (let x = 0, xo = sx * 0.5; x < ow; x++, xo += sx) xs.push(Math.trunc(xo));
    for (let y = 0, yo = sy * 0.5; y < oh; y++, yo += sy)
      for (let x = 0; x < ow; x++)
        for (let ch = 0; ch < C; ch++) out[(y * ow + x) * C + ch] = src[(Math.trunc(yo) * w + xs[x]) * C + ch];
    return out;
  }
  const alpha = C === 2 || C === 4;
  let img = src;
  if (alpha) {
    img = src.slice();
    for (let p = 0; p < w * h; p++) for (let ch = 0; ch < C - 1; ch++) img[p * C + ch] = muldiv255(src[p * C + ch], src[p * C + C - 1]);
  }
  const f = FILTERS[filter];
  if (ow !== w) img = pass(img, h, w, C, coeffs(w, ow, f), true);
  if (oh !== h) img = pass(img, h, ow, C, coeffs(h, oh, f), false);
  if (alpha)
    for (let p = 0; p < ow * oh; p++) {
      const a = img[p * C + C - 1];
      if (a === 0 || a === 255) continue;
      for (let ch = 0; ch < C - 1; ch++) img[p * C + ch] = Math.min(255, Math.floor((255 * img[p * C + ch]) / a));
    }
  return img;
}

/** The same separable filter in float64 throughout (no fixed point, no uint8 between passes, no alpha). */
export function resizeFloatRef(src: Uint8Array, w: number, h: number, C: number, ow: number, oh: number, filter: string): Float64Array {
  const f = FILTERS[filter];
  const ch_ = coeffs(w, ow, f), cv = coeffs(h, oh, f);
  const tmp = new Float64Array(h * ow * C);
  for (let y = 0; y < h; y++)
    for (let x = 0; x < ow; x++)
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let t = 0; t < ch_.n[x]; t++) s += src[(y * w + ch_.xmin[x] + t) * C + c] * ch_.w[x][t];
        tmp[(y * ow + x) * C + c] = s;
      }
  const out = new Float64Array(oh * ow * C);
  for (let y = 0; y < oh; y++)
    for (let x = 0; x < ow; x++)
      for (let c = 0; c < C; c++) {
        let s = 0;
        for (let t = 0; t < cv.n[y]; t++) s += tmp[((cv.xmin[y] + t) * ow + x) * C + c] * cv.w[y][t];
        out[(y * ow + x) * C + c] = s;
      }
  return out;
}
