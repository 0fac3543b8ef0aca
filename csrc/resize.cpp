// resize: Pillow 9.4's Image.resize on uint8 images (src/libImaging/Resample.c, Geometry.c, Convert.c),
// reproduced bit for bit.
//
// Convolution filters: separable, horizontal pass first, then vertical. For each output pixel the
// filter is centred at (x + 0.5)·scale in input coordinates; its support grows with the downscale
// factor (antialiasing). Weights are computed in double, normalised to sum 1, then turned into fixed
// point with PRECISION_BITS = 22 fractional bits (rounded half away from zero). Each pass accumulates
// in int32 from 1 << 21 (rounding), shifts right by 22 and clips to [0, 255], so the intermediate
// image is uint8. A pass whose axis keeps its size is skipped.
// Nearest: Pillow's affine scale, source x = int(x0 + (x + 0.5)·scale) with the position accumulated by
// repeated addition as Pillow does.
// Row-parallel on the pool; scalar code (the work is a small share of a forward pass).
#include "resize.h"

#include <algorithm>
#include <cmath>
#include <new>
#include <vector>

#include "thread_pool.h"

namespace ck {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;

double box_filter(double x) { return (x > -0.5 && x <= 0.5) ? 1.0 : 0.0; }
double bilinear_filter(double x) {
  if (x < 0.0) x = -x;
  return x < 1.0 ? 1.0 - x : 0.0;
}
double hamming_filter(double x) {
  if (x < 0.0) x = -x;
  if (x == 0.0) return 1.0;
  if (x >= 1.0) return 0.0;
  x = x * M_PI;
  return std::sin(x) / x * (0.54f + 0.46f * std::cos(x));  // float constants, as Pillow writes them
}
double bicubic_filter(double x) {
  const double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
double sinc_filter(double x) {
  if (x == 0.0) return 1.0;
  x = x * M_PI;
  return std::sin(x) / x;
}
double lanczos_filter(double x) {
  if (-3.0 <= x && x < 3.0) return sinc_filter(x) * sinc_filter(x / 3);
  return 0.0;
}

struct Filter {
  double (*fn)(double);
  double support;
};

bool filter_for(ResizeFilter f, Filter* out) {
  switch (f) {
    case ResizeFilter::Box: *out = {box_filter, 0.5}; return true;
    case ResizeFilter::Bilinear: *out = {bilinear_filter, 1.0}; return true;
    case ResizeFilter::Hamming: *out = {hamming_filter, 1.0}; return true;
    case ResizeFilter::Bicubic: *out = {bicubic_filter, 2.0}; return true;
    case ResizeFilter::Lanczos: *out = {lanczos_filter, 3.0}; return true;
    default: return false;
  }
}

// Per output position: the first input index, the tap count, and ksize fixed-point weights.
struct Coeffs {
  int ksize = 0;
  std::vector<int> bounds;  // [out, 2]: xmin, count
  std::vector<int32_t> k;   // [out, ksize]
};

// precompute_coeffs + normalize_coeffs_8bpc, for the box [0, in_size).
void precompute_coeffs(int in_size, int out_size, const Filter& f, Coeffs* c) {
  const double scale = static_cast<double>(static_cast<float>(in_size) - 0.0f) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = f.support * filterscale;
  const int ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  c->ksize = ksize;
  c->bounds.assign(static_cast<size_t>(out_size) * 2, 0);
  c->k.assign(static_cast<size_t>(out_size) * ksize, 0);
  std::vector<double> w(ksize);
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = 0.0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      w[x] = f.fn((x + xmin - center + 0.5) * ss);
      ww += w[x];
    }
    int32_t* k = &c->k[static_cast<size_t>(xx) * ksize];
    for (int x = 0; x < xmax; ++x) {
      const double v = ww != 0.0 ? w[x] / ww : w[x];
      k[x] = v < 0 ? static_cast<int32_t>(-0.5 + v * (1 << kPrecisionBits))
                   : static_cast<int32_t>(0.5 + v * (1 << kPrecisionBits));
    }
    c->bounds[xx * 2] = xmin;
    c->bounds[xx * 2 + 1] = xmax;
  }
}

inline uint8_t clip8(int32_t acc) {
  const int32_t v = acc >> kPrecisionBits;
  return static_cast<uint8_t>(v < 0 ? 0 : (v > 255 ? 255 : v));
}

// MULDIV255: round(c·a/255) the way Pillow's Convert.c computes it.
inline uint8_t muldiv255(unsigned c, unsigned a) {
  const unsigned t = c * a + 128;
  return static_cast<uint8_t>(((t >> 8) + t) >> 8);
}

// Rows per task so each task touches at least ~64 KiB.
size_t rows_per_task(size_t row_bytes) { return std::max<size_t>(1, 65536 / std::max<size_t>(1, row_bytes)); }

template <class Fn>
void for_rows(size_t rows, size_t row_bytes, Fn fn) {
  const size_t per = rows_per_task(row_bytes);
  const size_t tasks = (rows + per - 1) / per;
  pool().parallel_for(tasks, [&](size_t t, int) {
    const size_t r0 = t * per, r1 = std::min(rows, r0 + per);
    for (size_t r = r0; r < r1; ++r) fn(r);
  });
}

ck_status resize_nearest(const ResizeArgs& a) {
  const size_t C = a.channels;
  const double sx = static_cast<double>(static_cast<float>(a.width)) / a.out_width;
  const double sy = static_cast<double>(static_cast<float>(a.height)) / a.out_height;
  auto coord = [](double v) { return v < 0.0 ? -1 : static_cast<int>(v); };
  std::vector<int> xin(a.out_width, 0);
  std::vector<int> yin(a.out_height, 0);
  double xo = 0.0 + sx * 0.5;
  for (size_t x = 0; x < a.out_width; ++x, xo += sx) xin[x] = coord(xo);
  double yo = 0.0 + sy * 0.5;
  for (size_t y = 0; y < a.out_height; ++y, yo += sy) yin[y] = coord(yo);
  for_rows(a.out_height, a.out_width * C, [&](size_t y) {
    uint8_t* out = a.dst + y * a.out_width * C;
    const int yi = yin[y];
    if (yi < 0 || static_cast<size_t>(yi) >= a.height) {  // cannot happen for the full box; Pillow fills 0
      std::fill(out, out + a.out_width * C, 0);
      return;
    }
    const uint8_t* in = a.src + static_cast<size_t>(yi) * a.width * C;
    for (size_t x = 0; x < a.out_width; ++x) {
      const int xi = xin[x];
      if (xi < 0 || static_cast<size_t>(xi) >= a.width) {
        std::fill(out + x * C, out + x * C + C, 0);
        continue;
      }
      std::copy(in + xi * C, in + xi * C + C, out + x * C);
    }
  });
  return CK_OK;
}

// One output row of the horizontal pass: in_row [width, C] -> out_row [out_width, C].
void horizontal_row(const uint8_t* in, uint8_t* out, size_t out_width, size_t C, const Coeffs& c) {
  for (size_t xx = 0; xx < out_width; ++xx) {
    const int xmin = c.bounds[xx * 2], n = c.bounds[xx * 2 + 1];
    const int32_t* k = &c.k[xx * c.ksize];
    const uint8_t* p = in + static_cast<size_t>(xmin) * C;
    for (size_t ch = 0; ch < C; ++ch) {
      int32_t ss = 1 << (kPrecisionBits - 1);
      for (int x = 0; x < n; ++x) ss += static_cast<int32_t>(p[x * C + ch]) * k[x];
      out[xx * C + ch] = clip8(ss);
    }
  }
}

// One output row of the vertical pass: rows [ymin, ymin + n) of in [*, width, C] -> out_row.
void vertical_row(const uint8_t* in, size_t row_elems, uint8_t* out, int ymin, int n, const int32_t* k) {
  const uint8_t* base = in + static_cast<size_t>(ymin) * row_elems;
  for (size_t i = 0; i < row_elems; ++i) {
    int32_t ss = 1 << (kPrecisionBits - 1);
    for (int y = 0; y < n; ++y) ss += static_cast<int32_t>(base[y * row_elems + i]) * k[y];
    out[i] = clip8(ss);
  }
}

ck_status resize_conv(const ResizeArgs& a, const Filter& f) {
  const size_t C = a.channels;
  const bool need_h = a.out_width != a.width, need_v = a.out_height != a.height;
  Coeffs ch, cv;
  precompute_coeffs(static_cast<int>(a.width), static_cast<int>(a.out_width), f, &ch);
  precompute_coeffs(static_cast<int>(a.height), static_cast<int>(a.out_height), f, &cv);

  // La / RGBa: premultiplied copy of the source (Convert.c rgbA2rgba, lA2la).
  std::vector<uint8_t> premul;
  const uint8_t* src = a.src;
  if (a.premultiply_alpha) {
    premul.resize(a.width * a.height * C);
    for_rows(a.height, a.width * C, [&](size_t y) {
      const uint8_t* in = a.src + y * a.width * C;
      uint8_t* out = premul.data() + y * a.width * C;
      for (size_t x = 0; x < a.width; ++x, in += C, out += C) {
        const unsigned alpha = in[C - 1];
        for (size_t i = 0; i + 1 < C; ++i) out[i] = muldiv255(in[i], alpha);
        out[C - 1] = static_cast<uint8_t>(alpha);
      }
    });
    src = premul.data();
  }

  // Horizontal pass over the source rows the vertical pass reads.
  const int ybox_first = cv.bounds[0];
  const int ybox_last = cv.bounds[(a.out_height - 1) * 2] + cv.bounds[(a.out_height - 1) * 2 + 1];
  std::vector<uint8_t> tmp;
  const uint8_t* vin = src;
  size_t vin_width = a.width;
  int yshift = 0;
  if (need_h) {
    const size_t rows = static_cast<size_t>(ybox_last - ybox_first);
    uint8_t* hout = need_v ? (tmp.resize(rows * a.out_width * C), tmp.data()) : a.dst;
    for_rows(rows, a.out_width * C, [&](size_t r) {
      horizontal_row(src + (r + ybox_first) * a.width * C, hout + r * a.out_width * C, a.out_width, C, ch);
    });
    vin = hout;
    vin_width = a.out_width;
    yshift = ybox_first;
  }
  if (need_v) {
    const size_t row_elems = vin_width * C;
    for_rows(a.out_height, row_elems, [&](size_t yy) {
      vertical_row(vin, row_elems, a.dst + yy * row_elems, cv.bounds[yy * 2] - yshift, cv.bounds[yy * 2 + 1],
                   &cv.k[yy * cv.ksize]);
    });
  } else if (!need_h) {
    std::copy(src, src + a.width * a.height * C, a.dst);
  }

  // Back to straight alpha (Convert.c rgba2rgbA, la2lA).
  if (a.premultiply_alpha) {
    for_rows(a.out_height, a.out_width * C, [&](size_t y) {
      uint8_t* p = a.dst + y * a.out_width * C;
      for (size_t x = 0; x < a.out_width; ++x, p += C) {
        const unsigned alpha = p[C - 1];
        if (alpha == 255 || alpha == 0) continue;
        for (size_t i = 0; i + 1 < C; ++i) p[i] = static_cast<uint8_t>(std::min(255u, (255u * p[i]) / alpha));
      }
    });
  }
  return CK_OK;
}

}  // namespace

ck_status resize_u8(const ResizeArgs& a) {
  if (!a.src || !a.dst || a.channels < 1 || a.channels > 4 || a.width == 0 || a.height == 0 || a.out_width == 0 ||
      a.out_height == 0 || a.width > INT32_MAX / 4 || a.height > INT32_MAX / 4 || a.out_width > INT32_MAX / 4 ||
      a.out_height > INT32_MAX / 4)
    return CK_ERR_ARG;
  if (a.premultiply_alpha && a.channels != 2 && a.channels != 4) return CK_ERR_ARG;
  // Image.resize returns a copy when the size does not change (before any mode conversion).
  if (a.width == a.out_width && a.height == a.out_height) {
    std::copy(a.src, a.src + a.width * a.height * a.channels, a.dst);
    return CK_OK;
  }
  try {
    if (a.filter == ResizeFilter::Nearest) return resize_nearest(a);
    Filter f;
    if (!filter_for(a.filter, &f)) return CK_ERR_ARG;
    return resize_conv(a, f);
  } catch (const std::bad_alloc&) {
    return CK_ERR_NOMEM;
  }
}

}  // namespace ck
