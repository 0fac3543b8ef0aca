// The memory-bound ops against float64 references: convert, add, unary (GELU / QuickGELU), softmax,
// l2_normalize, layer_norm, embedding and gather_rows. Their CPU contracts are csrc/elementwise.h,
// softmax.h, l2_normalize.h, layer_norm.h and embedding.h.
//
// Tolerances, per element, all in units of the fp32 unit roundoff u32 = 2^-24 and the output type's
// u_out (f32 2^-24, bf16 2^-8, f16 2^-11) plus f16's subnormal floor 2^-25:
//   convert, gather_rows   exact bits (round to nearest even; NaN stays NaN)
//   add                    one fp32 add, then the store: (2·u32 + u_out)·|ref|
//   unary                  act_f32_err (harness.h): the argument's rounding through erfc's or exp's
//                          log-derivative plus 16 ulp, then the store
//   softmax                exp of (x − max): (16 + 2|x − max|)·u32, the row sum (4√dim + 8)·u32,
//                          relative to p; then the store; an entry of −inf gives exactly 0
//   l2_normalize           the sum of squares (statistically 4√dim·u32, halved by the sqrt) + 8·u32
//                          for the scale, relative; a zero row stays exactly zero
//   layer_norm             see layer_norm_case
//   embedding              two fp32 adds: 2·u32·(|tok| + |type| + |pos|), then the store
// "Statistically" bounds (√n) hold for random-sign rounding errors, with a factor 4 over what float
// sums of this length show; the worst case (n·u32) would hide nothing a real bug does either.
#include <algorithm>
#include <cmath>

#include "harness.h"

namespace ckt {

namespace {

const ckc_dtype kTypes[] = {CKC_F32, CKC_BF16, CKC_F16};

std::string key_of(const std::string& test, const std::string& dtype, const std::string& shape) {
  return test + " " + dtype + " " + shape;
}

// The store of an fp32 result v into t: |stored − v| <= u·|v| + floor, with |v| <= |ref| + e.
double store_tol(ckc_dtype t, double e, double ref) {
  const double u = unit_roundoff(t);
  return e * (1.0 + u) + u * std::fabs(ref) + subnormal_floor(t);
}

// ---- convert ----

void convert_case(Ctx& ctx, ckc_dtype src, ckc_dtype dst, size_t n, bool specials, size_t offset, bool quick) {
  const std::string test = specials ? "convert.specials" : "convert.random";
  const std::string dtype = std::string(dtype_name(src)) + "->" + dtype_name(dst);
  const std::string shape = shape_str({{"n", n}, {"offset", offset}});
  const std::string key = key_of(test, dtype, shape);
  if (!ctx.selected(key, quick)) return;
  Check c(test, dtype, shape, "exact: round to nearest even, NaN stays NaN, overflow to inf");
  Rng r(seed_for(key, ctx.opt.seed));
  const size_t ss = dtype_size(src);
  std::vector<uint8_t> in((n + offset) * ss);
  poison(src, in.data(), 0, offset);
  if (src == CKC_F32) {
    const uint32_t special_bits[] = {
        0x00000000u, 0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00000u, 0x477fe000u /*65504*/,
        0x477fefffu, 0x477ff000u /*65520: f16 tie to inf*/, 0x7149f2cau /*1e30*/, 0x8ca2ef36u /*-1e-30*/,
        0x33800000u /*2^-24*/, 0x33000000u /*2^-25: tie to 0*/, 0x33400000u /*1.5·2^-25*/, 0x33c00000u /*1.5·2^-24: tie to 2*/,
        0x00000001u /*smallest f32 subnormal*/, 0x00008000u /*bf16 tie to 0*/, 0x00018000u /*bf16 tie to 2*/,
        0x3f808000u, 0x3f818000u, 0x3f808001u /*bf16 ties and just past one*/, 0x3f801000u, 0x3f803000u /*f16 ties*/,
        0x7f7fffffu, 0xff7fffffu, 0x387fc000u /*f16 subnormal tie to the smallest normal*/};
    for (size_t i = 0; i < n; ++i) {
      uint32_t u;
      if (specials && i < sizeof special_bits / 4) u = special_bits[i];
      else {
        const float f = static_cast<float>(std::ldexp(r.normal(), static_cast<int>(r.below(52)) - 30));
        std::memcpy(&u, &f, 4);
      }
      std::memcpy(in.data() + (offset + i) * 4, &u, 4);
    }
  } else {
    for (size_t i = 0; i < n; ++i) {  // every encoding when specials (n = 65536), else random ones
      const uint16_t h = specials ? static_cast<uint16_t>(i) : static_cast<uint16_t>(r.next() >> 48);
      std::memcpy(in.data() + (offset + i) * 2, &h, 2);
    }
  }
  Dev din(ctx.s, in.size(), Guard::No), dout(ctx.s, (n + offset) * dtype_size(dst));
  if (!upload(ctx.s, din, in, c) || !upload_poisoned(ctx.s, dout, dst, c)) return ctx.report(c);
  const ckc_status st = ckc_convert(ctx.s, static_cast<char*>(din.get()) + offset * ss, src,
                                    static_cast<char*>(dout.get()) + offset * dtype_size(dst), dst, n);
  if (st != CKC_OK) c.fail("ckc_convert: " + status_text(st));
  std::vector<uint8_t> out;
  if (st == CKC_OK && sync(ctx.s, c, "convert") && download(ctx.s, dout, out, c)) {
    std::vector<char> written(n + offset, 0);
    for (size_t i = 0; i < n; ++i) {
      const double v = load_elem(src, in.data(), offset + i);
      c.bits(i, load_elem(dst, out.data(), offset + i), src == dst ? v : round_to(dst, v));
      written[offset + i] = 1;
    }
    check_untouched(c, dst, out, written);
  }
  ctx.report(c);
}

// ---- add ----

void add_case(Ctx& ctx, ckc_dtype t, size_t n, size_t period, bool alias, size_t offset, bool quick) {
  const std::string test = alias ? "add.alias" : "add";
  const std::string shape = shape_str({{"n", n}, {"b_period", period}, {"offset", offset}});
  const std::string key = key_of(test, dtype_name(t), shape);
  if (!ctx.selected(key, quick)) return;
  Check c(test, dtype_name(t), shape, "(2*u32 + u_out)*|ref| + f16 floor");
  Rng r(seed_for(key, ctx.opt.seed));
  std::vector<double> a(offset, NAN), b(offset, NAN);
  const auto av = randn(t, n, r), bv = randn(t, period, r);
  a.insert(a.end(), av.begin(), av.end());
  b.insert(b.end(), bv.begin(), bv.end());
  const size_t es = dtype_size(t);
  Dev da(ctx.s, a.size() * es, alias ? Guard::Yes : Guard::No), db(ctx.s, b.size() * es, Guard::No);
  Dev dy(ctx.s, alias ? 0 : a.size() * es);
  Dev& out = alias ? da : dy;
  if (!upload_guarded(ctx.s, da, t, encode(t, a), c) || !upload(ctx.s, db, encode(t, b), c)) return ctx.report(c);
  if (!alias && !upload_poisoned(ctx.s, dy, t, c)) return ctx.report(c);
  const ckc_status st = ckc_add(ctx.s, da.as<char>(offset * es), db.as<char>(offset * es), period, out.as<char>(offset * es), n, t);
  if (st != CKC_OK) c.fail("ckc_add: " + status_text(st));
  std::vector<uint8_t> y;
  if (st == CKC_OK && sync(ctx.s, c, "add") && download(ctx.s, out, y, c)) {
    std::vector<char> written(a.size(), 0);
    for (size_t i = 0; i < n; ++i) {
      const double want = av[i] + bv[i % period];
      c.value(i, load_elem(t, y.data(), offset + i), want, store_tol(t, 2 * kU32 * std::fabs(want), want), std::fabs(want));
      written[offset + i] = 1;
    }
    // With the alias, the offset's gap is a's poison, untouched as well.
    check_untouched(c, t, y, written);
  }
  ctx.report(c);
}

// ---- unary ----

void unary_case(Ctx& ctx, ckc_unary op, ckc_dtype t, size_t n, bool alias, size_t offset, bool quick) {
  const std::string test = std::string(op == CKC_UNARY_GELU ? "unary.gelu" : "unary.quick_gelu") + (alias ? ".alias" : "");
  const std::string shape = shape_str({{"n", n}, {"offset", offset}});
  const std::string key = key_of(test, dtype_name(t), shape);
  if (!ctx.selected(key, quick)) return;
  Check c(test, dtype_name(t), shape, "act_f32_err(x) (erfc/exp argument rounding + 16 ulp + u32*|x|) + u_out*|ref|");
  Rng r(seed_for(key, ctx.opt.seed));
  std::vector<double> x(offset, NAN);
  // Half the inputs across [−10, 10] (both tails of the activation), half near the origin.
  for (size_t i = 0; i < n; ++i) {
    double v;
    do v = round_to(t, i % 2 ? r.uniform(-10.0, 10.0) : r.normal(0.0, 1.5));
    while (v == 0.0);
    x.push_back(v);
  }
  const size_t es = dtype_size(t);
  Dev dx(ctx.s, x.size() * es, alias ? Guard::Yes : Guard::No), dy(ctx.s, alias ? 0 : x.size() * es);
  Dev& out = alias ? dx : dy;
  if (!upload_guarded(ctx.s, dx, t, encode(t, x), c)) return ctx.report(c);
  if (!alias && !upload_poisoned(ctx.s, dy, t, c)) return ctx.report(c);
  const ckc_status st = ckc_unary_op(ctx.s, op, dx.as<char>(offset * es), out.as<char>(offset * es), n, t);
  if (st != CKC_OK) c.fail("ckc_unary_op: " + status_text(st));
  std::vector<uint8_t> y;
  if (st == CKC_OK && sync(ctx.s, c, "unary") && download(ctx.s, out, y, c)) {
    std::vector<char> written(x.size(), 0);
    for (size_t i = 0; i < n; ++i) {
      const double xi = x[offset + i];
      const double want = op == CKC_UNARY_GELU ? gelu_f64(xi) : quick_gelu_f64(xi);
      const double e = act_f32_err(op == CKC_UNARY_GELU ? 1 : 2, xi, want);
      c.value(i, load_elem(t, y.data(), offset + i), want, store_tol(t, e, want), std::fabs(want));
      written[offset + i] = 1;
    }
    check_untouched(c, t, y, written);
  }
  ctx.report(c);
}

// ---- row ops: softmax, l2_normalize ----

enum class RowOp { Softmax, L2 };

void row_case(Ctx& ctx, RowOp op, ckc_dtype t, size_t rows, size_t dim, bool alias, bool special, bool quick) {
  const std::string base = op == RowOp::Softmax ? (special ? "softmax.neg_inf" : "softmax") : (special ? "l2_normalize.zero_row" : "l2_normalize");
  const std::string test = base + (alias ? ".alias" : "");
  const std::string shape = shape_str({{"rows", rows}, {"dim", dim}});
  const std::string key = key_of(test, dtype_name(t), shape);
  if (!ctx.selected(key, quick)) return;
  Check c(test, dtype_name(t), shape,
          op == RowOp::Softmax ? "((16 + 2|x-max|)*u32 + (4*sqrt(dim) + 8)*u32)*p + u_out*p; -inf -> exactly 0"
                               : "((2*sqrt(dim) + 8)*u32)*|ref| + u_out*|ref|; zero row -> exactly 0");
  Rng r(seed_for(key, ctx.opt.seed));
  std::vector<double> x = randn(t, rows * dim, r, op == RowOp::Softmax ? 3.0 : 1.0);
  if (special && op == RowOp::Softmax) {
    // Row 0: every third entry −inf; row 1 (if any): all −inf, which gives zeros.
    for (size_t j = 0; j < dim; j += 3) x[j] = -INFINITY;
    if (rows > 1)
      for (size_t j = 0; j < dim; ++j) x[dim + j] = -INFINITY;
  }
  if (special && op == RowOp::L2 && rows > 1)
    for (size_t j = 0; j < dim; ++j) x[dim + j] = 0.0;  // a zero row on purpose: it must stay zero
  const size_t es = dtype_size(t);
  Dev dx(ctx.s, x.size() * es, alias ? Guard::Yes : Guard::No), dy(ctx.s, alias ? 0 : x.size() * es);
  Dev& out = alias ? dx : dy;
  if (!upload_guarded(ctx.s, dx, t, encode(t, x), c)) return ctx.report(c);
  if (!alias && !upload_poisoned(ctx.s, dy, t, c)) return ctx.report(c);
  const ckc_status st = op == RowOp::Softmax ? ckc_softmax(ctx.s, dx.get(), out.get(), rows, dim, t)
                                             : ckc_l2_normalize(ctx.s, dx.get(), out.get(), rows, dim, t);
  if (st != CKC_OK) c.fail(std::string(op == RowOp::Softmax ? "ckc_softmax: " : "ckc_l2_normalize: ") + status_text(st));
  std::vector<uint8_t> y;
  if (st == CKC_OK && sync(ctx.s, c, "row op") && download(ctx.s, out, y, c)) {
    std::vector<double> want(rows * dim), tol(rows * dim);
    parallel_for(rows, [&](size_t row) {
      const double* xr = &x[row * dim];
      if (op == RowOp::Softmax) {
        double m = -INFINITY;
        for (size_t j = 0; j < dim; ++j) m = std::max(m, xr[j]);
        double sum = 0;
        for (size_t j = 0; j < dim; ++j) sum += m == -INFINITY ? 0.0 : std::exp(xr[j] - m);
        for (size_t j = 0; j < dim; ++j) {
          const double p = m == -INFINITY || xr[j] == -INFINITY ? 0.0 : std::exp(xr[j] - m) / sum;
          want[row * dim + j] = p;
          const double e = ((16.0 + 2.0 * std::fabs(xr[j] - m)) + (4.0 * std::sqrt(double(dim)) + 8.0)) * kU32 * p;
          tol[row * dim + j] = p == 0.0 ? 0.0 : store_tol(t, e, p);
        }
      } else {
        double ss = 0;
        for (size_t j = 0; j < dim; ++j) ss += xr[j] * xr[j];
        const double norm = std::sqrt(ss);
        for (size_t j = 0; j < dim; ++j) {
          const double v = norm > 0 ? xr[j] / norm : 0.0;
          want[row * dim + j] = v;
          tol[row * dim + j] = norm > 0 ? store_tol(t, (2.0 * std::sqrt(double(dim)) + 8.0) * kU32 * std::fabs(v), v) : 0.0;
        }
      }
    });
    std::vector<char> written(x.size(), 1);
    for (size_t i = 0; i < rows * dim; ++i) c.value(i, load_elem(t, y.data(), i), want[i], tol[i], std::fabs(want[i]));
    check_untouched(c, t, y, written);
  }
  ctx.report(c);
}

// ---- layer_norm ----

enum class LnAlias { None, YIsX, YIsResidual, SumIsX };

struct LnCase {
  size_t rows, dim;
  ckc_dtype xt, yt;
  bool residual, sum;
  LnAlias alias;
  float eps;
  double mean, sd;  // of x (the residual is N(0, 1))
  bool quick;
};

// Bound for y, per element (s the row's sum x + residual, ŝ = (s − μ)/σ, σ = sqrt(var + eps)):
//   |γ|·(δμ/σ + |ŝ|·δσ/σ + 4·u32·(1 + |ŝ|)) + u32·|β|, then the store of y,
// with δμ = c·mean|s| and δσ/σ = c + 2^-22 (the reciprocal square root), c = (4√dim + 4)·u32: fp32
// sums of the row (statistically) and a variance of centred values, as two passes or Welford give.
// A one-pass E[s²] − μ² cancels and fails the large-mean case, as it would on real activations.
// When the residual is added in a half type, a kernel may normalise the sum as stored (rounded to x's
// type) or as computed in fp32; both are valid, so y is compared with both references and the better
// is reported. sum: the fp32 add stored in x's type, u32·|s| then the store.
void layer_norm_case(Ctx& ctx, const LnCase& k) {
  const char* alias_name[] = {"", ".y_is_x", ".y_is_residual", ".sum_is_x"};
  const std::string test = std::string("layer_norm") + (k.residual ? ".residual" : "") + alias_name[static_cast<int>(k.alias)];
  const std::string dtype = std::string(dtype_name(k.xt)) + "->" + dtype_name(k.yt);
  std::string shape = shape_str({{"rows", k.rows}, {"dim", k.dim}});
  if (k.mean != 0.5) shape += fmt(",mean=%g,sd=%g", k.mean, k.sd);
  if (k.sum) shape += ",sum";
  shape += fmt(",eps=%g", k.eps);
  const std::string key = key_of(test, dtype, shape);
  if (!ctx.selected(key, k.quick)) return;
  const std::string tol = "|g|*(dmu/sigma + |s^|*dsigma/sigma + 4u32(1+|s^|)) + u32|b|, c=(4sqrt(dim)+4)u32; + u_out*|ref|";
  std::vector<Check> ys;
  ys.reserve(2);  // c0 below must stay valid when the second reference's check is added
  ys.emplace_back(test, dtype, shape, tol);
  Check& c0 = ys[0];
  Rng r(seed_for(key, ctx.opt.seed));
  const size_t n = k.rows * k.dim;
  const auto x = randn(k.xt, n, r, k.sd, k.mean);
  const auto res = k.residual ? randn(k.xt, n, r) : std::vector<double>();
  const auto gamma = randu(CKC_F32, k.dim, r, 0.5, 1.5), beta = randu(CKC_F32, k.dim, r, -1.0, 1.0);
  const size_t xs = dtype_size(k.xt), ys_ = dtype_size(k.yt);
  const bool x_out = k.alias == LnAlias::YIsX || k.alias == LnAlias::SumIsX, r_out = k.alias == LnAlias::YIsResidual;
  Dev dx(ctx.s, n * xs, x_out ? Guard::Yes : Guard::No), dr(ctx.s, k.residual ? n * xs : 0, r_out ? Guard::Yes : Guard::No);
  Dev dg(ctx.s, k.dim * 4, Guard::No), db(ctx.s, k.dim * 4, Guard::No);
  Dev dy(ctx.s, n * ys_), dsum(ctx.s, k.sum && k.alias != LnAlias::SumIsX ? n * xs : 0);
  bool ok = upload_guarded(ctx.s, dx, k.xt, encode(k.xt, x), c0) && upload(ctx.s, dg, encode(CKC_F32, gamma), c0) &&
            upload(ctx.s, db, encode(CKC_F32, beta), c0);
  if (ok && k.residual) ok = upload_guarded(ctx.s, dr, k.xt, encode(k.xt, res), c0);
  if (ok && k.alias != LnAlias::YIsX && k.alias != LnAlias::YIsResidual) ok = upload_poisoned(ctx.s, dy, k.yt, c0);
  if (ok && k.sum && k.alias != LnAlias::SumIsX) ok = upload_poisoned(ctx.s, dsum, k.xt, c0);
  if (!ok) return ctx.report(c0);
  Dev& yb = k.alias == LnAlias::YIsX ? dx : k.alias == LnAlias::YIsResidual ? dr : dy;
  Dev& sb = k.alias == LnAlias::SumIsX ? dx : dsum;
  ckc_layer_norm_args a{};
  a.x = dx.get();
  a.residual = k.residual ? dr.get() : nullptr;
  a.x_type = k.xt;
  a.gamma = dg.as<float>();
  a.beta = db.as<float>();
  a.y = yb.get();
  a.y_type = k.yt;
  a.sum = k.sum ? sb.get() : nullptr;
  a.rows = k.rows;
  a.dim = k.dim;
  a.eps = k.eps;
  const ckc_status st = ckc_layer_norm(ctx.s, &a);
  if (st != CKC_OK) c0.fail("ckc_layer_norm: " + status_text(st));
  std::vector<uint8_t> yh, sh;
  if (st != CKC_OK || !sync(ctx.s, c0, "layer_norm") || !download(ctx.s, yb, yh, c0) ||
      (k.sum && !download(ctx.s, sb, sh, c0)))
    return ctx.report(c0);

  const bool two_refs = k.residual && k.xt != CKC_F32;
  if (two_refs) {
    ys.emplace_back(test, dtype, shape, tol);
    ys[0].note("y against the float64 sum x + residual");
    ys[1].note("y against the sum rounded to the type of x, as stored");
  }
  Check sc(test + ".sum", dtype_name(k.xt), shape, "u32*|s| (the fp32 add) + u_x*|s| (its store) + f16 floor");
  for (size_t variant = 0; variant < ys.size(); ++variant) {
    Check& c = ys[variant];
    std::vector<double> want(n), tl(n), mag(n);
    parallel_for(k.rows, [&](size_t row) {
      std::vector<double> s(k.dim);
      double mean = 0, mean_abs = 0;
      for (size_t j = 0; j < k.dim; ++j) {
        const size_t i = row * k.dim + j;
        s[j] = x[i] + (k.residual ? res[i] : 0.0);
        if (variant == 1) s[j] = round_to(k.xt, s[j]);
        mean += s[j];
        mean_abs += std::fabs(s[j]);
      }
      mean /= double(k.dim);
      mean_abs /= double(k.dim);
      double var = 0;
      for (size_t j = 0; j < k.dim; ++j) var += (s[j] - mean) * (s[j] - mean);
      var /= double(k.dim);
      const double sigma = std::sqrt(var + double(k.eps));
      const double cst = (4.0 * std::sqrt(double(k.dim)) + 4.0) * kU32;
      for (size_t j = 0; j < k.dim; ++j) {
        const size_t i = row * k.dim + j;
        const double sh_ = (s[j] - mean) / sigma;
        want[i] = sh_ * gamma[j] + beta[j];
        const double e = std::fabs(gamma[j]) * (cst * mean_abs / sigma + std::fabs(sh_) * (cst + 0x1p-22) +
                                                4.0 * kU32 * (1.0 + std::fabs(sh_))) +
                         kU32 * std::fabs(beta[j]);
        tl[i] = store_tol(k.yt, e, want[i]);
        mag[i] = std::fabs(gamma[j]) * (1.0 + std::fabs(sh_)) + std::fabs(beta[j]);
      }
    });
    for (size_t i = 0; i < n; ++i) c.value(i, load_elem(k.yt, yh.data(), i), want[i], tl[i], mag[i]);
  }
  // What lies beyond the output in y's buffer: only the guard (every buffer here is exactly [rows, dim]).
  std::vector<char> written(n, 1);
  for (auto& c : ys) check_untouched(c, k.yt, yh, written);
  ctx.report_best(ys);
  if (k.sum) {
    for (size_t i = 0; i < n; ++i) {
      const double s = x[i] + (k.residual ? res[i] : 0.0);
      sc.value(i, load_elem(k.xt, sh.data(), i), s, store_tol(k.xt, kU32 * std::fabs(s), s), std::fabs(s));
    }
    check_untouched(sc, k.xt, sh, written);
    ctx.report(sc);
  }
}

// ---- embedding, gather_rows ----

struct EmbCase {
  size_t batch, seq, dim, vocab, max_pos;
  bool types, type_ids, position_ids;
  size_t offset;
  ckc_dtype table, yt;
  bool quick;
};

// y[r] = tokens[id] (+ types[type]) + positions[pos]: two fp32 adds, 2·u32·(|tok| + |type| + |pos|),
// then the store.
void embedding_case(Ctx& ctx, const EmbCase& k) {
  const std::string test = std::string("embedding") + (k.types ? (k.type_ids ? ".types" : ".type0") : "") +
                           (k.position_ids ? ".position_ids" : "");
  const std::string dtype = std::string(dtype_name(k.table)) + "->" + dtype_name(k.yt);
  const std::string shape = shape_str({{"batch", k.batch}, {"seq", k.seq}, {"dim", k.dim}, {"vocab", k.vocab},
                                       {"max_positions", k.max_pos}, {"position_offset", k.offset}});
  const std::string key = key_of(test, dtype, shape);
  if (!ctx.selected(key, k.quick)) return;
  Check c(test, dtype, shape, "2*u32*(|tok|+|type|+|pos|) + u_out*|ref|");
  Rng r(seed_for(key, ctx.opt.seed));
  const size_t rows = k.batch * k.seq, n_types = 2;
  const auto tok = randn(k.table, k.vocab * k.dim, r), pos = randn(k.table, k.max_pos * k.dim, r, 0.3);
  const auto typ = randn(k.table, n_types * k.dim, r, 0.5);
  std::vector<int32_t> ids(rows), pids(rows), tids(rows);
  for (size_t i = 0; i < rows; ++i) {
    ids[i] = static_cast<int32_t>(r.below(k.vocab));
    pids[i] = static_cast<int32_t>(r.below(k.max_pos));
    tids[i] = static_cast<int32_t>(r.below(n_types));
  }
  auto bytes_of = [](const std::vector<int32_t>& v) {
    std::vector<uint8_t> b(v.size() * 4);
    std::memcpy(b.data(), v.data(), b.size());
    return b;
  };
  const size_t ts = dtype_size(k.table);
  Dev dids(ctx.s, rows * 4, Guard::No), dpids(ctx.s, rows * 4, Guard::No), dtids(ctx.s, rows * 4, Guard::No);
  Dev dtok(ctx.s, tok.size() * ts, Guard::No), dpos(ctx.s, pos.size() * ts, Guard::No), dtyp(ctx.s, typ.size() * ts, Guard::No);
  Dev dy(ctx.s, rows * k.dim * dtype_size(k.yt));
  if (!upload(ctx.s, dids, bytes_of(ids), c) || !upload(ctx.s, dpids, bytes_of(pids), c) ||
      !upload(ctx.s, dtids, bytes_of(tids), c) || !upload(ctx.s, dtok, encode(k.table, tok), c) ||
      !upload(ctx.s, dpos, encode(k.table, pos), c) || !upload(ctx.s, dtyp, encode(k.table, typ), c) ||
      !upload_poisoned(ctx.s, dy, k.yt, c))
    return ctx.report(c);
  ckc_embedding_args a{};
  a.ids = dids.as<int32_t>();
  a.rows = rows;
  a.seq = k.seq;
  a.dim = k.dim;
  a.tokens = dtok.get();
  a.vocab = k.vocab;
  a.positions = dpos.get();
  a.max_positions = k.max_pos;
  a.position_ids = k.position_ids ? dpids.as<int32_t>() : nullptr;
  a.position_offset = k.offset;
  a.types = k.types ? dtyp.get() : nullptr;
  a.n_types = k.types ? n_types : 0;
  a.type_ids = k.types && k.type_ids ? dtids.as<int32_t>() : nullptr;
  a.table_type = k.table;
  a.y = dy.get();
  a.y_type = k.yt;
  const ckc_status st = ckc_embedding(ctx.s, &a);
  if (st != CKC_OK) c.fail("ckc_embedding: " + status_text(st));
  std::vector<uint8_t> y;
  if (st == CKC_OK && sync(ctx.s, c, "embedding") && download(ctx.s, dy, y, c)) {
    for (size_t row = 0; row < rows; ++row) {
      const size_t p = k.position_ids ? size_t(pids[row]) : k.offset + row % k.seq;
      const size_t ty = k.type_ids ? size_t(tids[row]) : 0;
      for (size_t j = 0; j < k.dim; ++j) {
        const double tv = tok[size_t(ids[row]) * k.dim + j], yv = k.types ? typ[ty * k.dim + j] : 0.0, pv = pos[p * k.dim + j];
        const double want = tv + yv + pv;
        const double e = 2 * kU32 * (std::fabs(tv) + std::fabs(yv) + std::fabs(pv));
        const size_t i = row * k.dim + j;
        c.value(i, load_elem(k.yt, y.data(), i), want, store_tol(k.yt, e, want), std::fabs(tv) + std::fabs(yv) + std::fabs(pv));
      }
    }
    check_untouched(c, k.yt, y, std::vector<char>(rows * k.dim, 1));
  }
  ctx.report(c);
}

void gather_case(Ctx& ctx, ckc_dtype t, size_t rows, size_t dim, size_t n, bool quick) {
  const std::string test = "gather_rows";
  const std::string shape = shape_str({{"rows", rows}, {"dim", dim}, {"n", n}});
  const std::string key = key_of(test, dtype_name(t), shape);
  if (!ctx.selected(key, quick)) return;
  Check c(test, dtype_name(t), shape, "exact bits");
  Rng r(seed_for(key, ctx.opt.seed));
  const auto x = randn(t, rows * dim, r);
  std::vector<int32_t> idx(n);
  for (auto& i : idx) i = static_cast<int32_t>(r.below(rows));  // repeats included
  std::vector<uint8_t> ib(n * 4);
  std::memcpy(ib.data(), idx.data(), ib.size());
  const size_t es = dtype_size(t);
  Dev dx(ctx.s, x.size() * es, Guard::No), di(ctx.s, n * 4, Guard::No), dy(ctx.s, n * dim * es);
  if (!upload(ctx.s, dx, encode(t, x), c) || !upload(ctx.s, di, ib, c) || !upload_poisoned(ctx.s, dy, t, c)) return ctx.report(c);
  const ckc_status st = ckc_gather_rows(ctx.s, dx.get(), rows, dim, t, di.as<int32_t>(), n, dy.get());
  if (st != CKC_OK) c.fail("ckc_gather_rows: " + status_text(st));
  std::vector<uint8_t> y;
  if (st == CKC_OK && sync(ctx.s, c, "gather_rows") && download(ctx.s, dy, y, c)) {
    for (size_t i = 0; i < n; ++i)
      for (size_t j = 0; j < dim; ++j) c.bits(i * dim + j, load_elem(t, y.data(), i * dim + j), x[size_t(idx[i]) * dim + j]);
    check_untouched(c, t, y, std::vector<char>(n * dim, 1));
  }
  ctx.report(c);
}

}  // namespace

void elementwise_tests(Ctx& ctx) {
  for (ckc_dtype src : kTypes)
    for (ckc_dtype dst : kTypes) {
      convert_case(ctx, src, dst, 1031, false, 0, src == CKC_F32 && dst != CKC_F32);
      convert_case(ctx, src, dst, src == CKC_F32 ? 64 : 65536, true, 0, src != dst);
    }
  for (ckc_dtype dst : {CKC_BF16, CKC_F16}) {
    convert_case(ctx, CKC_F32, dst, 1, false, 0, false);
    convert_case(ctx, CKC_F32, dst, (1u << 20) + 3, false, 0, false);
    convert_case(ctx, CKC_F32, dst, 1029, false, 1, true);  // start one element past an alignment boundary
    convert_case(ctx, dst, CKC_F32, 1029, false, 1, false);
  }

  for (ckc_dtype t : kTypes) {
    add_case(ctx, t, 1, 1, false, 0, t == CKC_F32);
    add_case(ctx, t, 7, 7, false, 0, false);
    add_case(ctx, t, 63 * 7, 7, false, 0, t != CKC_F32);
    add_case(ctx, t, 257, 1, true, 0, false);
    add_case(ctx, t, 197 * 768, 768, true, 0, false);  // a bias over the rows of a ViT-B activation
    add_case(ctx, t, 65539, 65539, false, 1, t == CKC_BF16);
    add_case(ctx, t, 769 * 3, 769, false, 1, false);
  }

  for (ckc_unary op : {CKC_UNARY_GELU, CKC_UNARY_QUICK_GELU})
    for (ckc_dtype t : kTypes) {
      for (size_t n : {1, 7, 63, 257, 769}) unary_case(ctx, op, t, n, false, 0, n == 63);
      unary_case(ctx, op, t, 65541, true, 0, false);
      unary_case(ctx, op, t, 4099, false, 1, t == CKC_F16);
    }

  const size_t row_shapes[][2] = {{1, 1}, {7, 7}, {63, 197}, {12 * 197, 197}, {5, 769}, {3, 1025}, {2, 4096}};
  for (RowOp op : {RowOp::Softmax, RowOp::L2})
    for (ckc_dtype t : kTypes) {
      for (const auto& rs : row_shapes) row_case(ctx, op, t, rs[0], rs[1], false, false, rs[1] == 7);
      row_case(ctx, op, t, 63, 512, true, false, false);
      row_case(ctx, op, t, 3, 50, false, true, true);   // −inf entries / a zero row
      row_case(ctx, op, t, 4, 1000, false, true, false);
    }
}

void layer_norm_tests(Ctx& ctx) {
  const LnCase ln[] = {
      {1, 1, CKC_F32, CKC_F32, false, false, LnAlias::None, 1e-5f, 0.5, 2.0, true},
      {3, 7, CKC_BF16, CKC_BF16, true, true, LnAlias::None, 1e-5f, 0.5, 2.0, true},
      {197, 768, CKC_F32, CKC_F32, true, true, LnAlias::None, 1e-5f, 0.5, 2.0, false},
      {197, 768, CKC_BF16, CKC_BF16, true, true, LnAlias::SumIsX, 1e-5f, 0.5, 2.0, false},
      {197, 768, CKC_F16, CKC_F16, false, false, LnAlias::None, 1e-5f, 0.5, 2.0, false},
      {7, 769, CKC_F32, CKC_BF16, true, true, LnAlias::None, 1e-5f, 0.5, 2.0, false},
      {7, 769, CKC_BF16, CKC_F32, true, false, LnAlias::None, 1e-5f, 0.5, 2.0, true},
      {5, 1024, CKC_F16, CKC_F16, true, false, LnAlias::YIsResidual, 1e-5f, 0.5, 2.0, false},
      {64, 1024, CKC_BF16, CKC_BF16, false, false, LnAlias::YIsX, 1e-5f, 0.5, 2.0, false},
      {64, 1024, CKC_F32, CKC_F32, true, true, LnAlias::SumIsX, 1e-5f, 0.5, 2.0, false},
      {4, 63, CKC_F32, CKC_F32, true, true, LnAlias::SumIsX, 1e-5f, 0.5, 2.0, true},
      {4, 63, CKC_F16, CKC_BF16, true, true, LnAlias::None, 1e-12f, 0.5, 2.0, true},
      {33, 1, CKC_BF16, CKC_BF16, true, true, LnAlias::None, 1e-5f, 0.5, 2.0, false},
      {3, 1664, CKC_BF16, CKC_BF16, true, true, LnAlias::None, 1e-5f, 0.5, 2.0, false},
      {2, 4096, CKC_F32, CKC_F32, false, false, LnAlias::YIsX, 1e-5f, 0.5, 2.0, false},
      {1, 768, CKC_F32, CKC_F32, false, false, LnAlias::None, 1e-5f, 100.0, 0.01, true},  // large mean, small spread
      {16, 768, CKC_F32, CKC_BF16, true, true, LnAlias::None, 1e-5f, 30.0, 0.05, false},
  };
  for (const auto& k : ln) layer_norm_case(ctx, k);
}

void embedding_tests(Ctx& ctx) {
  const EmbCase emb[] = {
      {1, 1, 1, 5, 1, true, false, false, 0, CKC_F32, CKC_F32, true},
      {2, 7, 17, 97, 12, true, true, false, 2, CKC_BF16, CKC_BF16, true},
      {3, 52, 768, 1000, 77, false, false, false, 0, CKC_F32, CKC_BF16, false},
      {1, 77, 512, 4000, 77, true, false, true, 0, CKC_F16, CKC_F16, false},
      {4, 77, 768, 500, 80, false, false, false, 3, CKC_BF16, CKC_F32, false},
      {2, 9, 63, 31, 20, false, false, true, 0, CKC_F32, CKC_F16, true},
  };
  for (const auto& k : emb) embedding_case(ctx, k);

  for (ckc_dtype t : kTypes) {
    gather_case(ctx, t, 1, 1, 1, t == CKC_F32);
    gather_case(ctx, t, 97, 17, 63, t == CKC_BF16);
    gather_case(ctx, t, 1000, 768, 257, false);
    gather_case(ctx, t, 8, 1025, 3, false);
  }
}

}  // namespace ckt
