// The matrix-product ops against float64 references: gemm (every input / output dtype, epilogue,
// bias, alpha, x_act, residual aliasing y, padded leading dimensions, m / n / k tails), patch_embed,
// logits and infonce (csrc/gemm.h, patch_embed.h, logits.h, infonce.h).
//
// GEMM bounds, per element, with mag = |alpha|·Σ_k |act(x)·w| and scale = mag + |bias| + |residual|
// (the sum of the magnitudes of every term the element adds up):
//   fp32 inputs (FFMA, DEFAULT or EXACT_F32): 4·√k·u32·mag — the CPU path's bound (test/ops/gemm.test.ts):
//     random-sign rounding errors of fp32 sums stay within a few √k·u32 of mag; an FFMA chain's
//     worst case, k·u32, only matters for adversarial data.
//   bf16 / f16 inputs (tensor cores): compared with the float64 product of the inputs as stored (the
//     rounding of the inputs is the caller's), so only the fp32 accumulation is left: k·2^-22·mag.
//     Products of two halves are exact in fp32; each of the ~k fp32 additions, rounding or truncating
//     as tensor-core adders may, errs by at most 2^-23 of a partial sum, itself at most mag; the other
//     factor 2 covers the alignment of a group of products inside the unit.
//   + 4·u32·scale for alpha, the bias and the residual add (one fp32 rounding each);
//   x_act: the activation of x in fp32 (8·u32·mag), then, for tensor cores, rounded back to the input
//     type for the matrix unit (2·u_in·mag);
//   GELU / QuickGELU epilogue: the error so far times 1.2 (their slopes stay under 1.13), plus
//     act_f32_err of the activation's own fp32 evaluation;
//   then the store in y_type: u_out·|ref| (+ f16's subnormal floor).
// The gaps between rows of the inputs (ld > row length) are NaN: the memory between rows belongs to no
// tensor and may hold anything, so a kernel must not read it into its result.
#include <algorithm>
#include <cmath>

#include "harness.h"

namespace ckt {

namespace {

double store_tol(ckc_dtype t, double e, double ref) {
  const double u = unit_roundoff(t);
  return e * (1.0 + u) + u * std::fabs(ref) + subnormal_floor(t);
}

// Coefficient of mag in the accumulation bound (see the top of the file).
double acc_coef(ckc_dtype in, size_t k) {
  return in == CKC_F32 ? 4.0 * std::sqrt(double(std::max<size_t>(k, 1))) * kU32 : double(std::max<size_t>(k, 1)) * 0x1p-22;
}

// ---- gemm ----

struct GemmCase {
  size_t m, n, k;
  ckc_dtype in, out;
  ckc_epilogue epi;
  bool bias;
  float alpha;
  ckc_activation act;
  ckc_precision prec;
  size_t pad_x, pad_w, pad_y;  // leading dimension = row length + pad
  bool alias;                  // the residual is y itself (ldr = ldy)
  bool quick;
};

double act_f64(ckc_activation a, double x) {
  return a == CKC_ACT_GELU ? gelu_f64(x) : a == CKC_ACT_QUICK_GELU ? quick_gelu_f64(x) : x;
}

void gemm_case(Ctx& ctx, const GemmCase& g) {
  std::string test = "gemm";
  if (g.epi == CKC_EPILOGUE_GELU) test += ".gelu";
  if (g.epi == CKC_EPILOGUE_QUICK_GELU) test += ".quick_gelu";
  if (g.epi == CKC_EPILOGUE_RESIDUAL) test += g.alias ? ".residual_in_y" : ".residual";
  if (g.act == CKC_ACT_GELU) test += ".x_gelu";
  if (g.act == CKC_ACT_QUICK_GELU) test += ".x_quick_gelu";
  if (g.pad_x || g.pad_w || g.pad_y) test += ".ld";
  if (g.prec == CKC_PRECISION_EXACT_F32) test += ".exact_f32";
  const std::string dtype = std::string(dtype_name(g.in)) + "->" + dtype_name(g.out);
  const size_t ldx = g.k + g.pad_x, ldw = g.k + g.pad_w, ldy = g.n + g.pad_y, ldr = ldy;
  std::string shape = shape_str({{"m", g.m}, {"n", g.n}, {"k", g.k}});
  if (g.pad_x || g.pad_w || g.pad_y) shape += "," + shape_str({{"ldx", ldx}, {"ldw", ldw}, {"ldy", ldy}});
  if (g.alpha != 1.0f) shape += fmt(",alpha=%g", g.alpha);
  shape += g.bias ? ",bias" : ",no_bias";
  const std::string key = test + " " + dtype + " " + shape;
  if (!ctx.selected(key, g.quick)) return;
  const double coef = acc_coef(g.in, g.k);
  std::string tol = fmt("%.3g*mag (%s) + 4u32*scale", coef, g.in == CKC_F32 ? "4*sqrt(k)*u32" : "k*2^-22");
  if (g.act != CKC_ACT_NONE) tol += g.in == CKC_F32 ? " + 8u32*mag (x_act)" : " + 2u_in*mag (x_act rounded)";
  if (g.epi == CKC_EPILOGUE_GELU || g.epi == CKC_EPILOGUE_QUICK_GELU) tol = "1.2*(" + tol + ") + act_f32_err";
  tol += " + u_out*|ref|; mag=|alpha|*sum|act(x)*w|";
  Check c(test, dtype, shape, tol);
  Rng r(seed_for(key, ctx.opt.seed));

  // Logical tensors, then their padded storage (NaN in the gaps).
  const auto xv = randn(g.in, g.m * g.k, r), wv = randn(g.in, g.n * g.k, r, 1.0 / std::sqrt(double(g.k)));
  const auto bias = randu(CKC_F32, g.n, r, -1.0, 1.0);
  const bool res = g.epi == CKC_EPILOGUE_RESIDUAL;
  const auto rv = res ? randn(g.out, g.m * g.n, r) : std::vector<double>();
  std::vector<double> xs(g.m * ldx, NAN), ws(g.n * ldw, NAN), rs(res ? g.m * ldr : 0, NAN);
  for (size_t i = 0; i < g.m; ++i)
    for (size_t j = 0; j < g.k; ++j) xs[i * ldx + j] = xv[i * g.k + j];
  for (size_t i = 0; i < g.n; ++i)
    for (size_t j = 0; j < g.k; ++j) ws[i * ldw + j] = wv[i * g.k + j];
  for (size_t i = 0; i < rs.size() / std::max<size_t>(ldr, 1); ++i)
    for (size_t j = 0; j < g.n; ++j) rs[i * ldr + j] = rv[i * g.n + j];

  const size_t is = dtype_size(g.in), os = dtype_size(g.out);
  Dev dx(ctx.s, xs.size() * is, Guard::No), dw(ctx.s, ws.size() * is, Guard::No), db(ctx.s, g.n * 4, Guard::No);
  Dev dr(ctx.s, res && !g.alias ? rs.size() * os : 0, Guard::No), dy(ctx.s, g.m * ldy * os);
  bool ok = upload(ctx.s, dx, encode(g.in, xs), c) && upload(ctx.s, dw, encode(g.in, ws), c) &&
            upload(ctx.s, db, encode(CKC_F32, bias), c);
  if (ok && res && !g.alias) ok = upload(ctx.s, dr, encode(g.out, rs), c);
  if (ok) ok = g.alias ? upload_guarded(ctx.s, dy, g.out, encode(g.out, rs), c) : upload_poisoned(ctx.s, dy, g.out, c);
  if (!ok) return ctx.report(c);

  ckc_gemm_args a{};
  a.x = dx.get();
  a.ldx = ldx;
  a.w = dw.get();
  a.ldw = ldw;
  a.in_type = g.in;
  a.bias = g.bias ? db.as<float>() : nullptr;
  a.epilogue = g.epi;
  a.residual = res ? (g.alias ? dy.get() : dr.get()) : nullptr;
  a.ldr = res ? ldr : 0;
  a.y = dy.get();
  a.ldy = ldy;
  a.y_type = g.out;
  a.m = g.m;
  a.n = g.n;
  a.k = g.k;
  a.alpha = g.alpha;
  a.x_act = g.act;
  a.precision = g.prec;
  const ckc_status st = ckc_gemm(ctx.s, &a);
  if (st != CKC_OK) c.fail("ckc_gemm: " + status_text(st));
  std::vector<uint8_t> y;
  if (st != CKC_OK || !sync(ctx.s, c, "gemm") || !download(ctx.s, dy, y, c)) return ctx.report(c);

  std::vector<double> want(g.m * g.n), tl(g.m * g.n), mg(g.m * g.n);
  const double u_in = unit_roundoff(g.in);
  parallel_for(g.m, [&](size_t i) {
    std::vector<double> ax(g.k);
    for (size_t kk = 0; kk < g.k; ++kk) ax[kk] = act_f64(g.act, xv[i * g.k + kk]);
    for (size_t j = 0; j < g.n; ++j) {
      const double* wr = &wv[j * g.k];
      double d0 = 0, d1 = 0, d2 = 0, d3 = 0, m0 = 0, m1 = 0, m2 = 0, m3 = 0;
      size_t kk = 0;
      for (; kk + 4 <= g.k; kk += 4) {
        d0 += ax[kk] * wr[kk], m0 += std::fabs(ax[kk] * wr[kk]);
        d1 += ax[kk + 1] * wr[kk + 1], m1 += std::fabs(ax[kk + 1] * wr[kk + 1]);
        d2 += ax[kk + 2] * wr[kk + 2], m2 += std::fabs(ax[kk + 2] * wr[kk + 2]);
        d3 += ax[kk + 3] * wr[kk + 3], m3 += std::fabs(ax[kk + 3] * wr[kk + 3]);
      }
      for (; kk < g.k; ++kk) d0 += ax[kk] * wr[kk], m0 += std::fabs(ax[kk] * wr[kk]);
      const double mag = std::fabs(double(g.alpha)) * ((m0 + m1) + (m2 + m3));
      double v = double(g.alpha) * ((d0 + d1) + (d2 + d3)) + (g.bias ? bias[j] : 0.0);
      double scale = mag + (g.bias ? std::fabs(bias[j]) : 0.0);
      double e = coef * mag;
      if (g.act != CKC_ACT_NONE) e += (g.in == CKC_F32 ? 8.0 * kU32 : 2.0 * u_in) * mag;
      double ref = v;
      if (g.epi == CKC_EPILOGUE_GELU || g.epi == CKC_EPILOGUE_QUICK_GELU) {
        ref = g.epi == CKC_EPILOGUE_GELU ? gelu_f64(v) : quick_gelu_f64(v);
        e = 1.2 * (e + 4.0 * kU32 * scale) + act_f32_err(g.epi == CKC_EPILOGUE_GELU ? 1 : 2, v, ref);
      } else {
        if (res) {
          ref = v + rv[i * g.n + j];
          scale += std::fabs(rv[i * g.n + j]);
        }
        e += 4.0 * kU32 * scale;
      }
      want[i * g.n + j] = ref;
      tl[i * g.n + j] = store_tol(g.out, e, ref);
      mg[i * g.n + j] = scale;
    }
  });
  std::vector<char> written(g.m * ldy, 0);
  for (size_t i = 0; i < g.m; ++i)
    for (size_t j = 0; j < g.n; ++j) {
      const size_t at = i * ldy + j;
      written[at] = 1;
      c.value(i * g.n + j, load_elem(g.out, y.data(), at), want[i * g.n + j], tl[i * g.n + j], mg[i * g.n + j]);
    }
  check_untouched(c, g.out, y, written);
  ctx.report(c);
}

// ---- patch_embed ----

struct PeCase {
  size_t batch, channels, height, width, patch, dim;
  ckc_dtype wt, yt;
  bool bias;
  ckc_precision prec;
  bool quick;
};

// y[b, 1+q] = W·patch_q + bias + pos[1+q]: a GEMM with K = channels·patch², bounded as gemm (the
// accumulation of that path, 4·u32·scale for the adds, the store); y[b, 0] = class + pos[0], one fp32
// add. With a half weight the pixels reach the matrix unit rounded to the weight's type, so that
// reference rounds them; a kernel that keeps them fp32 (no tensor cores) matches the reference on
// exact pixels instead; the better of the two is reported.
void patch_embed_case(Ctx& ctx, const PeCase& k) {
  const std::string test = std::string("patch_embed") + (k.prec == CKC_PRECISION_EXACT_F32 ? ".exact_f32" : "");
  const std::string dtype = std::string("w=") + dtype_name(k.wt) + ",y=" + dtype_name(k.yt);
  const std::string shape = shape_str({{"batch", k.batch}, {"channels", k.channels}, {"height", k.height},
                                       {"width", k.width}, {"patch", k.patch}, {"dim", k.dim}}) +
                            (k.bias ? ",bias" : ",no_bias");
  const std::string key = test + " " + dtype + " " + shape;
  if (!ctx.selected(key, k.quick)) return;
  const size_t gx = k.width / k.patch, gy = k.height / k.patch, P = gx * gy, K = k.channels * k.patch * k.patch;
  const double coef = acc_coef(k.wt, K);
  const std::string tol = fmt("%.3g*mag (%s, K=%zu) + 4u32*scale + u_out*|ref|", coef,
                              k.wt == CKC_F32 ? "4*sqrt(K)*u32" : "K*2^-22", K);
  std::vector<Check> cs;
  cs.reserve(2);  // c0 below must stay valid when the second reference's check is added
  cs.emplace_back(test, dtype, shape, tol);
  Check& c0 = cs[0];
  Rng r(seed_for(key, ctx.opt.seed));
  const auto pix = randn(CKC_F32, k.batch * k.channels * k.height * k.width, r);
  const auto w = randn(k.wt, k.dim * K, r, 1.0 / std::sqrt(double(K)));
  const auto bias = randu(CKC_F32, k.dim, r, -1.0, 1.0), cls = randn(CKC_F32, k.dim, r);
  const auto pos = randn(CKC_F32, (1 + P) * k.dim, r, 0.5);
  const size_t rows = k.batch * (1 + P);
  Dev dp(ctx.s, pix.size() * 4, Guard::No), dw(ctx.s, w.size() * dtype_size(k.wt), Guard::No);
  Dev db(ctx.s, k.dim * 4, Guard::No), dc(ctx.s, k.dim * 4, Guard::No), dpos(ctx.s, pos.size() * 4, Guard::No);
  Dev dy(ctx.s, rows * k.dim * dtype_size(k.yt));
  if (!upload(ctx.s, dp, encode(CKC_F32, pix), c0) || !upload(ctx.s, dw, encode(k.wt, w), c0) ||
      !upload(ctx.s, db, encode(CKC_F32, bias), c0) || !upload(ctx.s, dc, encode(CKC_F32, cls), c0) ||
      !upload(ctx.s, dpos, encode(CKC_F32, pos), c0) || !upload_poisoned(ctx.s, dy, k.yt, c0))
    return ctx.report(c0);
  ckc_patch_embed_args a{};
  a.pixels = dp.as<float>();
  a.batch = k.batch;
  a.channels = k.channels;
  a.height = k.height;
  a.width = k.width;
  a.patch = k.patch;
  a.w = dw.get();
  a.w_type = k.wt;
  a.dim = k.dim;
  a.bias = k.bias ? db.as<float>() : nullptr;
  a.class_emb = dc.as<float>();
  a.pos_emb = dpos.as<float>();
  a.y = dy.get();
  a.y_type = k.yt;
  a.precision = k.prec;
  const ckc_status st = ckc_patch_embed(ctx.s, &a);
  if (st != CKC_OK) c0.fail("ckc_patch_embed: " + status_text(st));
  std::vector<uint8_t> y;
  if (st != CKC_OK || !sync(ctx.s, c0, "patch_embed") || !download(ctx.s, dy, y, c0)) return ctx.report(c0);
  const size_t variants = k.wt == CKC_F32 ? 1 : 2;
  if (variants == 2) {
    cs.emplace_back(test, dtype, shape, tol);
    cs[0].note("pixels rounded to the weight type");
    cs[1].note("pixels exact (fp32)");
  }
  for (size_t variant = 0; variant < variants; ++variant) {
    Check& c = cs[variant];
    std::vector<double> want(rows * k.dim), tl(rows * k.dim), mg(rows * k.dim);
    parallel_for(rows, [&](size_t row) {
      const size_t b = row / (1 + P), t = row % (1 + P);
      std::vector<double> patch(K);
      if (t > 0) {
        const size_t q = t - 1, py = q / gx, px = q % gx;
        for (size_t ch = 0; ch < k.channels; ++ch)
          for (size_t i = 0; i < k.patch; ++i)
            for (size_t j = 0; j < k.patch; ++j) {
              const double v = pix[((b * k.channels + ch) * k.height + py * k.patch + i) * k.width + px * k.patch + j];
              patch[(ch * k.patch + i) * k.patch + j] = variant == 0 && k.wt != CKC_F32 ? round_to(k.wt, v) : v;
            }
      }
      for (size_t d = 0; d < k.dim; ++d) {
        const size_t at = row * k.dim + d;
        if (t == 0) {
          want[at] = cls[d] + pos[d];
          tl[at] = store_tol(k.yt, kU32 * (std::fabs(cls[d]) + std::fabs(pos[d])), want[at]);
          mg[at] = std::fabs(cls[d]) + std::fabs(pos[d]);
          continue;
        }
        double dot = 0, mag = 0;
        const double* wr = &w[d * K];
        for (size_t kk = 0; kk < K; ++kk) dot += wr[kk] * patch[kk], mag += std::fabs(wr[kk] * patch[kk]);
        const double bz = k.bias ? bias[d] : 0.0, pz = pos[t * k.dim + d];
        want[at] = dot + bz + pz;
        const double scale = mag + std::fabs(bz) + std::fabs(pz);
        tl[at] = store_tol(k.yt, coef * mag + 4.0 * kU32 * scale, want[at]);
        mg[at] = scale;
      }
    });
    for (size_t i = 0; i < rows * k.dim; ++i) c.value(i, load_elem(k.yt, y.data(), i), want[i], tl[i], mg[i]);
    check_untouched(c, k.yt, y, std::vector<char>(rows * k.dim, 1));
  }
  ctx.report_best(cs);
}

// ---- logits ----

struct LgCase {
  size_t n, m, d;
  float scale;
  bool norms, zero_rows;
  bool quick;
};

// logits = scale·Â·B̂ᵀ: |cos| <= 1 and Σ|â·b̂| <= 1 (Cauchy–Schwarz), so an fp32 dot product of unit
// rows, however it is normalised, is within (4√d + 16)·u32 of the float64 cosine: the dot's random-sign
// rounding plus a few ulp for each norm's sqrt and division. Absolute: |scale|·(4√d + 16)·u32.
// Norms: the sum of squares (all terms positive) halved by the sqrt, (2√d + 8)·u32·‖a‖.
// A zero row normalises to zeros: its logits are exactly 0.
double logit_err(float scale, size_t d) { return std::fabs(double(scale)) * (4.0 * std::sqrt(double(d)) + 16.0) * kU32; }

void logits_case(Ctx& ctx, const LgCase& k) {
  const std::string test = std::string("logits") + (k.zero_rows ? ".zero_rows" : "") + (k.norms ? ".norms" : "");
  const std::string shape = shape_str({{"n", k.n}, {"m", k.m}, {"d", k.d}}) + fmt(",scale=%g", k.scale);
  const std::string key = test + " f32 " + shape;
  if (!ctx.selected(key, k.quick)) return;
  Check c(test, "f32", shape, "|scale|*(4*sqrt(d)+16)*u32 + u32*|ref|; zero rows exactly 0");
  Check cn(test + ".norm", "f32", shape, "(2*sqrt(d)+8)*u32*|norm|");
  Rng r(seed_for(key, ctx.opt.seed));
  auto a = randn(CKC_F32, k.n * k.d, r), b = randn(CKC_F32, k.m * k.d, r, 2.0);
  const size_t za = k.zero_rows && k.n > 1 ? 1 : k.n, zb = k.zero_rows ? k.m - 1 : k.m;  // index of the zero row, or none
  if (za < k.n) std::fill(a.begin() + za * k.d, a.begin() + (za + 1) * k.d, 0.0);
  if (zb < k.m) std::fill(b.begin() + zb * k.d, b.begin() + (zb + 1) * k.d, 0.0);
  Dev da(ctx.s, a.size() * 4, Guard::No), db(ctx.s, b.size() * 4, Guard::No), dl(ctx.s, k.n * k.m * 4);
  Dev dan(ctx.s, k.n * 4), dbn(ctx.s, k.m * 4);
  if (!upload(ctx.s, da, encode(CKC_F32, a), c) || !upload(ctx.s, db, encode(CKC_F32, b), c) ||
      !upload_poisoned(ctx.s, dl, CKC_F32, c) || !upload_poisoned(ctx.s, dan, CKC_F32, c) || !upload_poisoned(ctx.s, dbn, CKC_F32, c))
    return ctx.report(c);
  ckc_logits_args la{};
  la.a = da.as<float>();
  la.b = db.as<float>();
  la.logits = dl.as<float>();
  la.a_norm = k.norms ? dan.as<float>() : nullptr;
  la.b_norm = k.norms ? dbn.as<float>() : nullptr;
  la.n = k.n;
  la.m = k.m;
  la.d = k.d;
  la.scale = k.scale;
  const ckc_status st = ckc_logits(ctx.s, &la);
  if (st != CKC_OK) c.fail("ckc_logits: " + status_text(st));
  std::vector<uint8_t> lh, anh, bnh;
  if (st != CKC_OK || !sync(ctx.s, c, "logits") || !download(ctx.s, dl, lh, c) || !download(ctx.s, dan, anh, c) ||
      !download(ctx.s, dbn, bnh, c))
    return ctx.report(c);
  auto norm_of = [&](const std::vector<double>& v, size_t row) {
    double s = 0;
    for (size_t j = 0; j < k.d; ++j) s += v[row * k.d + j] * v[row * k.d + j];
    return std::sqrt(s);
  };
  std::vector<double> an(k.n), bn(k.m);
  for (size_t i = 0; i < k.n; ++i) an[i] = norm_of(a, i);
  for (size_t j = 0; j < k.m; ++j) bn[j] = norm_of(b, j);
  std::vector<double> want(k.n * k.m);
  parallel_for(k.n, [&](size_t i) {
    for (size_t j = 0; j < k.m; ++j) {
      double dot = 0;
      for (size_t t = 0; t < k.d; ++t) dot += a[i * k.d + t] * b[j * k.d + t];
      want[i * k.m + j] = an[i] > 0 && bn[j] > 0 ? double(k.scale) * dot / (an[i] * bn[j]) : 0.0;
    }
  });
  const double le = logit_err(k.scale, k.d);
  for (size_t i = 0; i < k.n; ++i)
    for (size_t j = 0; j < k.m; ++j) {
      const double wv = want[i * k.m + j];
      const bool zero = an[i] == 0 || bn[j] == 0;
      c.value(i * k.m + j, load_elem(CKC_F32, lh.data(), i * k.m + j), wv, zero ? 0.0 : le + kU32 * std::fabs(wv), std::fabs(k.scale));
    }
  check_untouched(c, CKC_F32, lh, std::vector<char>(k.n * k.m, 1));
  ctx.report(c);
  if (k.norms) {
    const double ce = (2.0 * std::sqrt(double(k.d)) + 8.0) * kU32;
    for (size_t i = 0; i < k.n; ++i) cn.value(i, load_elem(CKC_F32, anh.data(), i), an[i], ce * an[i], an[i]);
    for (size_t j = 0; j < k.m; ++j) cn.value(k.n + j, load_elem(CKC_F32, bnh.data(), j), bn[j], ce * bn[j], bn[j]);
    check_untouched(cn, CKC_F32, anh, std::vector<char>(k.n, 1));
    check_untouched(cn, CKC_F32, bnh, std::vector<char>(k.m, 1));
    ctx.report(cn);
  } else {
    check_untouched(cn, CKC_F32, anh, {});  // not asked for: not written
    check_untouched(cn, CKC_F32, bnh, {});
    if (!cn.ok()) ctx.report(cn);
  }
}

// ---- infonce ----

struct IncCase {
  size_t n, d;
  float scale;
  bool grads;
  bool quick;
};

// From the logits' bound δL (logits_case) the rest follows, in float64 on the reference's values
// (p_r, p_c the row and column softmax, G = dL/dlogits, e_n = (4√n + 8)·u32 the relative error of an
// fp32 sum of n exponentials):
//   loss           2·δL + 2·e_n·(1 + |loss|)          (Σ|G| <= 2, so logits errors move it by <= 2δL)
//   d_logits[i,j]  (e_p·(p_r + p_c) + 4·u32)/(2n) + u32·|G|,  e_p = 2δL + e_n + (16 + 4|scale|)·u32
//                  (a shift of every logit by <= δL moves a softmax entry by <= 2δL relative; exp of
//                  an argument up to 2|scale| in fp32; the −2 on the diagonal cancels in fp32)
//   d_a[i, :]      |scale|·(Σ_j tolG[i,j] + ((4√n + 8)·u32 + 8·u32)·Σ_j|G[i,j]|)/‖a_i‖ + u32·|ref|,
//                  the 2-norm of the error of dÂ_i = scale·G_i·B̂ (rows of B̂ are unit), which the
//                  projection (I − â âᵀ) does not enlarge, bounding each element; d_b by columns
//   dL/dscale      Σ tolG·|cos| + Σ|G|·δL/|scale| + (4n + 8)·u32·Σ|G·cos|; dL/dlog_scale = scale times it
void infonce_case(Ctx& ctx, const IncCase& k) {
  const std::string test = k.grads ? "infonce" : "infonce.loss_only";
  const std::string shape = shape_str({{"n", k.n}, {"d", k.d}}) + fmt(",scale=%g", k.scale);
  const std::string key = test + " f32 " + shape;
  if (!ctx.selected(key, k.quick)) return;
  Check cl(test + ".logits", "f32", shape, "|scale|*(4*sqrt(d)+16)*u32 + u32*|ref|");
  Check closs(test + ".loss", "f64", shape, "2*dL + 2*e_n*(1+|loss|), e_n=(4*sqrt(n)+8)*u32");
  Check cg(test + ".d_logits", "f32", shape, "(e_p*(p_r+p_c) + 4u32)/(2n) + u32*|G|");
  Check cda(test + ".d_a", "f32", shape, "|scale|*(sum_j tolG + ((4sqrt(n)+8)u32+8u32)*sum_j|G|)/|a_i| + u32*|ref|");
  Check cdb(test + ".d_b", "f32", shape, "as d_a, by columns");
  Check cds(test + ".d_scale", "f64", shape, "sum tolG*|cos| + sum|G|*dL/|scale| + (4n+8)u32*sum|G*cos|; d_log_scale = scale*that");
  Rng r(seed_for(key, ctx.opt.seed));
  const size_t n = k.n, d = k.d;
  const auto a = randn(CKC_F32, n * d, r);
  auto b = a;  // matched pairs score higher, as in training
  for (auto& v : b) {
    do v = round_to(CKC_F32, v + r.normal(0.0, 0.7));
    while (v == 0.0);
  }
  Dev da(ctx.s, n * d * 4, Guard::No), db(ctx.s, n * d * 4, Guard::No), dl(ctx.s, n * n * 4), dg(ctx.s, n * n * 4);
  Dev dda(ctx.s, n * d * 4), ddb(ctx.s, n * d * 4), dres(ctx.s, 3 * 8);
  std::vector<uint8_t> nan_result(dres.total());
  for (size_t i = 0; i < nan_result.size() / 8; ++i) {
    const double q = NAN;
    std::memcpy(nan_result.data() + 8 * i, &q, 8);
  }
  if (!upload(ctx.s, da, encode(CKC_F32, a), cl) || !upload(ctx.s, db, encode(CKC_F32, b), cl) ||
      !upload_poisoned(ctx.s, dl, CKC_F32, cl) || !upload_poisoned(ctx.s, dg, CKC_F32, cl) ||
      !upload_poisoned(ctx.s, dda, CKC_F32, cl) || !upload_poisoned(ctx.s, ddb, CKC_F32, cl) || !upload(ctx.s, dres, nan_result, cl))
    return ctx.report(cl);
  ckc_infonce_args ia{};
  ia.a = da.as<float>();
  ia.b = db.as<float>();
  ia.n = n;
  ia.d = d;
  ia.scale = k.scale;
  ia.logits = dl.as<float>();
  ia.d_logits = k.grads ? dg.as<float>() : nullptr;
  ia.d_a = k.grads ? dda.as<float>() : nullptr;
  ia.d_b = k.grads ? ddb.as<float>() : nullptr;
  ia.result = dres.as<double>();
  const ckc_status st = ckc_infonce(ctx.s, &ia);
  if (st != CKC_OK) cl.fail("ckc_infonce: " + status_text(st));
  std::vector<uint8_t> lh, gh, dah, dbh, rh;
  if (st != CKC_OK || !sync(ctx.s, cl, "infonce") || !download(ctx.s, dl, lh, cl) || !download(ctx.s, dg, gh, cl) ||
      !download(ctx.s, dda, dah, cl) || !download(ctx.s, ddb, dbh, cl) || !download(ctx.s, dres, rh, cl))
    return ctx.report(cl);

  // Reference.
  std::vector<double> an(n), bn(n), ah(n * d), bh(n * d), cosv(n * n), L(n * n);
  for (size_t i = 0; i < n; ++i) {
    double sa = 0, sb = 0;
    for (size_t t = 0; t < d; ++t) sa += a[i * d + t] * a[i * d + t], sb += b[i * d + t] * b[i * d + t];
    an[i] = std::sqrt(sa), bn[i] = std::sqrt(sb);
    for (size_t t = 0; t < d; ++t) ah[i * d + t] = a[i * d + t] / an[i], bh[i * d + t] = b[i * d + t] / bn[i];
  }
  parallel_for(n, [&](size_t i) {
    for (size_t j = 0; j < n; ++j) {
      double dot = 0;
      for (size_t t = 0; t < d; ++t) dot += ah[i * d + t] * bh[j * d + t];
      cosv[i * n + j] = dot;
      L[i * n + j] = double(k.scale) * dot;
    }
  });
  std::vector<double> rm(n, -INFINITY), rsum(n, 0), cm(n, -INFINITY), csum(n, 0);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) rm[i] = std::max(rm[i], L[i * n + j]), cm[j] = std::max(cm[j], L[i * n + j]);
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) rsum[i] += std::exp(L[i * n + j] - rm[i]), csum[j] += std::exp(L[i * n + j] - cm[j]);
  double loss = 0;
  for (size_t i = 0; i < n; ++i) loss += (rm[i] + std::log(rsum[i]) - L[i * n + i]) + (cm[i] + std::log(csum[i]) - L[i * n + i]);
  loss /= 2.0 * double(n);
  const double dL = logit_err(k.scale, d), e_n = (4.0 * std::sqrt(double(n)) + 8.0) * kU32;
  const double e_p = 2.0 * dL + e_n + (16.0 + 4.0 * std::fabs(double(k.scale))) * kU32;
  const double as = std::fabs(double(k.scale));
  std::vector<double> G(n * n), tG(n * n);
  double d_scale = 0, tol_ds = 0, sum_gc = 0, sum_g = 0;
  for (size_t i = 0; i < n; ++i)
    for (size_t j = 0; j < n; ++j) {
      const double pr = std::exp(L[i * n + j] - rm[i]) / rsum[i], pc = std::exp(L[i * n + j] - cm[j]) / csum[j];
      const double gv = (pr + pc - (i == j ? 2.0 : 0.0)) / (2.0 * double(n));
      G[i * n + j] = gv;
      tG[i * n + j] = (e_p * (pr + pc) + 4.0 * kU32) / (2.0 * double(n)) + kU32 * std::fabs(gv);
      d_scale += gv * cosv[i * n + j];
      tol_ds += tG[i * n + j] * std::fabs(cosv[i * n + j]);
      sum_gc += std::fabs(gv * cosv[i * n + j]);
      sum_g += std::fabs(gv);
    }
  tol_ds += sum_g * dL / as + (4.0 * double(n) + 8.0) * kU32 * sum_gc;

  for (size_t i = 0; i < n * n; ++i) {
    cl.value(i, load_elem(CKC_F32, lh.data(), i), L[i], dL + kU32 * std::fabs(L[i]), as);
  }
  check_untouched(cl, CKC_F32, lh, std::vector<char>(n * n, 1));
  ctx.report(cl);
  double got[3];
  std::memcpy(got, rh.data(), sizeof got);
  closs.value(0, got[0], loss, 2.0 * dL + 2.0 * e_n * (1.0 + std::fabs(loss)), std::fabs(loss));
  ctx.report(closs);
  cds.value(0, got[1], d_scale, tol_ds, sum_gc);
  cds.value(1, got[2], double(k.scale) * d_scale, as * tol_ds + kU32 * std::fabs(double(k.scale) * d_scale), as * sum_gc);
  ctx.report(cds);
  if (!k.grads) {  // not asked for: not written
    check_untouched(cg, CKC_F32, gh, {});
    check_untouched(cg, CKC_F32, dah, {});
    check_untouched(cg, CKC_F32, dbh, {});
    if (!cg.ok()) ctx.report(cg);
    return;
  }
  for (size_t i = 0; i < n * n; ++i) cg.value(i, load_elem(CKC_F32, gh.data(), i), G[i], tG[i], std::fabs(G[i]));
  check_untouched(cg, CKC_F32, gh, std::vector<char>(n * n, 1));
  ctx.report(cg);
  // dA_i = (dÂ_i − â_i (â_i·dÂ_i)) / ‖a_i‖ with dÂ = scale·G·B̂; dB_j likewise with Gᵀ and Â.
  const double acc = (4.0 * std::sqrt(double(n)) + 8.0) * kU32 + 8.0 * kU32;
  for (int side = 0; side < 2; ++side) {
    Check& c = side ? cdb : cda;
    const std::vector<double>& own_hat = side ? bh : ah;
    const std::vector<double>& other_hat = side ? ah : bh;
    const std::vector<double>& own_norm = side ? bn : an;
    const std::vector<uint8_t>& got_h = side ? dbh : dah;
    for (size_t i = 0; i < n; ++i) {
      std::vector<double> dh(d, 0.0);
      double eg = 0, ga = 0;
      for (size_t j = 0; j < n; ++j) {
        const double gv = side ? G[j * n + i] : G[i * n + j];
        eg += side ? tG[j * n + i] : tG[i * n + j];
        ga += std::fabs(gv);
        for (size_t t = 0; t < d; ++t) dh[t] += double(k.scale) * gv * other_hat[j * d + t];
      }
      double proj = 0;
      for (size_t t = 0; t < d; ++t) proj += own_hat[i * d + t] * dh[t];
      const double row_tol = as * (eg + acc * ga) / own_norm[i];
      for (size_t t = 0; t < d; ++t) {
        const double want = (dh[t] - own_hat[i * d + t] * proj) / own_norm[i];
        c.value(i * d + t, load_elem(CKC_F32, got_h.data(), i * d + t), want, row_tol + kU32 * std::fabs(want),
                as * ga / own_norm[i]);
      }
    }
    check_untouched(c, CKC_F32, got_h, std::vector<char>(n * d, 1));
    ctx.report(c);
  }
}

}  // namespace

void gemm_tests(Ctx& ctx) {
  const ckc_epilogue N = CKC_EPILOGUE_NONE, G = CKC_EPILOGUE_GELU, Q = CKC_EPILOGUE_QUICK_GELU, R = CKC_EPILOGUE_RESIDUAL;
  const ckc_activation A0 = CKC_ACT_NONE, AG = CKC_ACT_GELU, AQ = CKC_ACT_QUICK_GELU;
  const ckc_precision D = CKC_PRECISION_DEFAULT, X = CKC_PRECISION_EXACT_F32;
  // Tensor-core cases, run with bf16 and with f16 inputs; out CKC_F32 or "same as the input" (BF16 here).
  struct HalfCase { size_t m, n, k; bool out_f32; ckc_epilogue epi; bool bias; float alpha; ckc_activation act;
                    size_t px, pw, py; bool alias, quick; };
  const HalfCase half_cases[] = {
      {1, 7, 8, true, N, true, 1.0f, A0, 0, 0, 0, false, true},          // the smallest tile tail
      {7, 63, 64, false, G, true, 0.37f, A0, 0, 0, 0, false, true},
      {63, 17, 136, false, Q, false, 1.0f, A0, 0, 0, 0, false, false},   // k = 2 tiles + 8
      {197, 769, 768, false, R, true, 1.0f, A0, 0, 0, 7, true, false},   // ViT-B/16 rows, out-proj into its residual
      {577, 2304, 768, false, N, true, 1.0f, A0, 0, 0, 0, false, false}, // ViT-L/14@336 rows, QKV
      {197, 768, 3072, true, R, true, 1.0f, A0, 0, 0, 0, false, false},  // MLP down
      {197, 3072, 768, false, Q, true, 1.0f, A0, 0, 0, 0, false, false}, // MLP up
      {50, 100, 776, true, N, true, 1.0f, AG, 0, 0, 0, false, false},    // activation on the input
      {77, 63, 200, false, R, false, 1.0f, AQ, 0, 0, 0, true, true},
      {63, 65, 72, false, Q, true, -1.5f, A0, 8, 24, 5, false, true},    // ld > row length everywhere
      {1, 769, 768, false, Q, true, 1.0f, A0, 0, 0, 0, false, false},    // one row (the class token)
      {257, 7, 8, true, N, false, 1.0f, A0, 0, 0, 0, false, false},
      {129, 257, 1024, true, G, true, 0.5f, A0, 16, 8, 3, false, false},
      {33, 40, 16, false, R, true, 2.0f, AG, 8, 0, 1, true, true},
  };
  for (ckc_dtype in : {CKC_BF16, CKC_F16})
    for (const auto& h : half_cases)
      gemm_case(ctx, {h.m, h.n, h.k, in, h.out_f32 ? CKC_F32 : in, h.epi, h.bias, h.alpha, h.act, D, h.px, h.pw, h.py,
                      h.alias, h.quick && (in == CKC_BF16 || h.m == 1)});
  // Every input type into every output type.
  const ckc_dtype types[] = {CKC_F32, CKC_BF16, CKC_F16};
  const ckc_epilogue cycle[] = {N, G, Q, R};
  int idx = 0;
  for (ckc_dtype in : types)
    for (ckc_dtype out : types) {
      gemm_case(ctx, {63, 129, 264, in, out, cycle[idx % 4], true, 1.0f, A0, D, 0, 0, 0, false, idx % 4 == 3});
      ++idx;
    }
  // fp32 inputs: FFMA, DEFAULT and EXACT_F32; any k.
  struct F32Case { size_t m, n, k; ckc_dtype out; ckc_epilogue epi; bool bias; float alpha; ckc_activation act;
                   ckc_precision prec; size_t px, pw, py; bool alias, quick; };
  const F32Case f32_cases[] = {
      {1, 7, 7, CKC_F32, N, true, 1.0f, A0, X, 0, 0, 0, false, true},
      {7, 63, 63, CKC_F32, G, true, 0.37f, A0, X, 0, 0, 0, false, true},
      {63, 17, 769, CKC_F32, R, true, 1.0f, A0, X, 0, 0, 3, true, false},
      {197, 769, 768, CKC_F32, Q, true, 1.0f, A0, X, 0, 0, 0, false, false},
      {577, 2304, 768, CKC_F32, N, true, 1.0f, A0, X, 0, 0, 0, false, false},
      {33, 65, 127, CKC_F32, N, false, -1.5f, AG, D, 1, 3, 2, false, true},
      {197, 768, 3072, CKC_BF16, R, true, 1.0f, A0, D, 0, 0, 0, false, false},
      {50, 100, 769, CKC_F32, N, true, 1.0f, AQ, D, 0, 0, 0, false, false},
      {1, 1, 1, CKC_F32, N, true, 1.0f, A0, D, 0, 0, 0, false, true},
  };
  for (const auto& f : f32_cases)
    gemm_case(ctx, {f.m, f.n, f.k, CKC_F32, f.out, f.epi, f.bias, f.alpha, f.act, f.prec, f.px, f.pw, f.py, f.alias, f.quick});
}

void patch_embed_tests(Ctx& ctx) {
  const ckc_precision D = CKC_PRECISION_DEFAULT, X = CKC_PRECISION_EXACT_F32;
  const PeCase cases[] = {
      {1, 3, 28, 42, 14, 24, CKC_F32, CKC_F32, true, D, true},          // small, non-square
      {1, 3, 32, 48, 16, 33, CKC_BF16, CKC_BF16, false, D, true},
      {2, 3, 224, 224, 16, 768, CKC_BF16, CKC_BF16, true, D, false},    // ViT-B/16
      {1, 3, 224, 224, 32, 768, CKC_F16, CKC_F32, true, D, false},      // ViT-B/32
      {1, 3, 224, 224, 14, 1024, CKC_BF16, CKC_F16, false, D, false},   // ViT-L/14 (K = 588, not a multiple of 8)
      {1, 3, 336, 336, 14, 1024, CKC_BF16, CKC_BF16, true, D, false},   // ViT-L/14@336: 577 tokens
      {2, 3, 336, 336, 16, 768, CKC_F32, CKC_F32, true, X, false},
      {2, 3, 224, 224, 16, 768, CKC_F32, CKC_BF16, true, D, false},
      {3, 3, 64, 32, 16, 17, CKC_F16, CKC_F16, true, D, false},
  };
  for (const auto& k : cases) patch_embed_case(ctx, k);
}

void logits_tests(Ctx& ctx) {
  const LgCase lg[] = {
      {1, 1, 1, 1.0f, true, false, true},     {7, 63, 512, 100.0f, true, true, true}, {63, 197, 768, 100.0f, false, false, false},
      {257, 7, 769, 14.3f, true, true, false}, {2, 1000, 512, 1.0f, false, true, false},
  };
  for (const auto& k : lg) logits_case(ctx, k);
  const IncCase inc[] = {
      {1, 7, 14.3f, true, true}, {7, 64, 14.3f, true, true}, {7, 64, 100.0f, false, true},
      {63, 512, 100.0f, true, false}, {63, 768, 1.0f, true, false}, {257, 512, 100.0f, true, false},
  };
  for (const auto& k : inc) infonce_case(ctx, k);
}

}  // namespace ckt
