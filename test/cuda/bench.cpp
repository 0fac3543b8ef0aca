// Microbenchmarks (--bench): one JSON line each, with the fields bench/cuda_anchor.py prints for the
// PyTorch anchors on the same GPU, so the two join on (bench, dtype, shape):
//   {"bench","impl":"clipkit","dtype","shape","median_ms","min_ms","tflops" or "gbs",
//    "launches_per_iter","iters"}
// Method (the anchor's too): after two warm-up calls, each of >= 20 timed iterations queues L launches
// and waits in ckc_stream_sync; std::chrono around that gives the iteration's time / L, and the median
// over iterations is reported. L is chosen so one iteration takes about 5 ms, which hides the launch
// gaps of small ops. Inputs are random (a 2^20-element random block tiled over the buffer), never zeros,
// which tensor cores multiply faster than real data.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <functional>

#include "harness.h"

namespace ckt {

namespace {

using Clock = std::chrono::steady_clock;

constexpr int kIters = 25;
constexpr double kTargetIterMs = 5.0;

struct Timing {
  std::string error;  // empty when every call succeeded
  double median_ms = 0, min_ms = 0;
  int launches = 0;
};

Timing time_op(ckc_stream* s, const std::function<ckc_status()>& op) {
  Timing t;
  auto batch = [&](int n) -> bool {
    for (int i = 0; i < n; ++i) {
      const ckc_status st = op();
      if (st != CKC_OK) {
        t.error = "op: " + status_text(st);
        return false;
      }
    }
    const ckc_status st = ckc_stream_sync(s);
    if (st != CKC_OK) t.error = "ckc_stream_sync: " + status_text(st);
    return st == CKC_OK;
  };
  if (!batch(2)) return t;
  auto t0 = Clock::now();
  if (!batch(3)) return t;
  const double est = std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / 3.0;
  t.launches = static_cast<int>(std::clamp(std::ceil(kTargetIterMs / std::max(est, 1e-4)), 1.0, 2000.0));
  std::vector<double> ms;
  for (int it = 0; it < kIters; ++it) {
    t0 = Clock::now();
    if (!batch(t.launches)) return t;
    ms.push_back(std::chrono::duration<double, std::milli>(Clock::now() - t0).count() / t.launches);
  }
  std::sort(ms.begin(), ms.end());
  t.median_ms = ms[ms.size() / 2];
  t.min_ms = ms.front();
  return t;
}

// Fills n elements of t at dst with N(0, sd) values: one random block uploaded, then doubled in place.
bool fill_random(ckc_stream* s, void* dst, size_t n, ckc_dtype t, double sd, uint64_t seed, std::string& err) {
  Rng r(seed);
  const size_t es = dtype_size(t), first = std::min<size_t>(n, 1u << 20);
  const auto block = encode(t, randn(t, first, r, sd));
  ckc_status st = ckc_copy_to_device(s, dst, block.data(), block.size());
  for (size_t done = first; st == CKC_OK && done < n;) {
    const size_t len = std::min(done, n - done);
    st = ckc_copy_device(s, static_cast<char*>(dst) + done * es, dst, len * es);
    done += len;
  }
  if (st == CKC_OK) st = ckc_stream_sync(s);
  if (st != CKC_OK) err = "fill: " + status_text(st);
  return st == CKC_OK;
}

void print(Ctx& ctx, const std::string& bench, const std::string& dtype, const std::string& shape, const std::string& extra,
           const Timing& t, const char* rate_key, double work) {
  std::string line = "{\"bench\":\"" + bench + "\",\"impl\":\"clipkit\",\"dtype\":\"" + dtype + "\",\"shape\":\"" + shape + "\"" + extra;
  if (!t.error.empty()) {
    std::string e = t.error;
    for (auto& ch : e)
      if (ch == '"' || ch == '\\' || static_cast<unsigned char>(ch) < 0x20) ch = ' ';
    line += ",\"error\":\"" + e + "\"}";
    ++ctx.failed;
    ctx.failed_names.push_back(bench + " " + shape);
  } else {
    line += fmt(",\"median_ms\":%.5g,\"min_ms\":%.5g,\"%s\":%.5g,\"launches_per_iter\":%d,\"iters\":%d}", t.median_ms, t.min_ms,
                rate_key, work / (t.median_ms * 1e-3) * (rate_key[0] == 't' ? 1e-12 : 1e-9), t.launches, kIters);
    ++ctx.passed;
  }
  ctx.report_line(line);
}

// ---- GEMM ----

void bench_gemm(Ctx& ctx, ckc_dtype in, ckc_dtype out, size_t M, size_t N, size_t K, ckc_epilogue epi, bool bias,
                ckc_activation act, const char* bench, const char* label) {
  const std::string shape = shape_str({{"M", M}, {"N", N}, {"K", K}});
  const std::string dtype = in == out ? dtype_name(in) : std::string(dtype_name(in)) + "->" + dtype_name(out);
  if (!ctx.selected(std::string(bench) + " " + dtype + " " + shape + " " + label, true)) return;
  Timing t;
  Dev x(ctx.s, M * K * dtype_size(in)), w(ctx.s, N * K * dtype_size(in)), y(ctx.s, M * N * dtype_size(out));
  Dev b(ctx.s, N * 4);
  if (x.status() != CKC_OK || w.status() != CKC_OK || y.status() != CKC_OK || b.status() != CKC_OK) {
    t.error = "ckc_alloc: " + status_text(x.status() != CKC_OK ? x.status() : w.status() != CKC_OK ? w.status() : y.status());
  } else if (fill_random(ctx.s, x.get(), M * K, in, 1.0, 1, t.error) &&
             fill_random(ctx.s, w.get(), N * K, in, 1.0 / std::sqrt(double(K)), 2, t.error) &&
             fill_random(ctx.s, b.get(), N, CKC_F32, 1.0, 3, t.error) &&
             (epi != CKC_EPILOGUE_RESIDUAL || fill_random(ctx.s, y.get(), M * N, out, 1.0, 4, t.error))) {
    ckc_gemm_args a{};
    a.x = x.get(), a.ldx = K, a.w = w.get(), a.ldw = K, a.in_type = in, a.bias = bias ? b.as<float>() : nullptr;
    a.epilogue = epi, a.residual = epi == CKC_EPILOGUE_RESIDUAL ? y.get() : nullptr, a.ldr = N;
    a.y = y.get(), a.ldy = N, a.y_type = out, a.m = M, a.n = N, a.k = K, a.alpha = 1.0f, a.x_act = act;
    a.precision = in == CKC_F32 ? CKC_PRECISION_EXACT_F32 : CKC_PRECISION_DEFAULT;
    t = time_op(ctx.s, [&] { return ckc_gemm(ctx.s, &a); });
  }
  print(ctx, bench, dtype, shape, fmt(",\"epilogue\":\"%s\"", label), t, "tflops", 2.0 * double(M) * double(N) * double(K));
}

// ---- attention ----

void bench_attention(Ctx& ctx, size_t B, size_t H, size_t S, size_t D, bool causal) {
  const std::string shape = shape_str({{"B", B}, {"H", H}, {"S", S}, {"D", D}});
  if (!ctx.selected(std::string("attention bf16 ") + shape + (causal ? " causal" : ""), true)) return;
  Timing t;
  const size_t HD = H * D, es = 2;
  Dev qkv(ctx.s, B * S * 3 * HD * es), out(ctx.s, B * S * HD * es);
  if (qkv.status() != CKC_OK || out.status() != CKC_OK) {
    t.error = "ckc_alloc: " + status_text(qkv.status() != CKC_OK ? qkv.status() : out.status());
  } else if (fill_random(ctx.s, qkv.get(), B * S * 3 * HD, CKC_BF16, 1.0, 5, t.error)) {
    // The packed QKV output of one GEMM, read in place, as a ViT / text layer runs it.
    ckc_attention_args a{};
    a.q = qkv.get(), a.k = qkv.as<char>(HD * es), a.v = qkv.as<char>(2 * HD * es);
    a.q_batch_stride = a.k_batch_stride = a.v_batch_stride = S * 3 * HD;
    a.q_row_stride = a.k_row_stride = a.v_row_stride = 3 * HD;
    a.dtype = CKC_BF16, a.out = out.get(), a.out_batch_stride = S * HD, a.out_row_stride = HD;
    a.batch = B, a.seq = S, a.heads = H, a.head_dim = D, a.q_rows = S, a.scale = static_cast<float>(1.0 / std::sqrt(double(D)));
    a.causal = causal ? 1 : 0;
    t = time_op(ctx.s, [&] { return ckc_attention(ctx.s, &a); });
  }
  const double flops = 4.0 * double(B) * double(H) * double(S) * double(S) * double(D) * (causal ? 0.5 : 1.0);
  print(ctx, "attention", "bf16", shape, fmt(",\"causal\":%s,\"layout\":\"packed_qkv\"", causal ? "true" : "false"), t, "tflops", flops);
}

// ---- layer_norm, against a device-to-device copy of as many bytes ----

void bench_layer_norm(Ctx& ctx, ckc_dtype t, size_t rows, size_t dim, bool residual) {
  const std::string shape = shape_str({{"rows", rows}, {"dim", dim}});
  const std::string bench = residual ? "layer_norm_residual" : "layer_norm";
  if (!ctx.selected(bench + " " + dtype_name(t) + " " + shape, true)) return;
  const size_t n = rows * dim, es = dtype_size(t);
  // Bytes read plus bytes written: x, y; with the residual also residual and sum. The copy moves as many.
  const size_t tensors = residual ? 4 : 2, moved = tensors * n * es;
  Timing tl, tc;
  Dev x(ctx.s, n * es), r(ctx.s, residual ? n * es : 0), y(ctx.s, n * es), sum(ctx.s, residual ? n * es : 0);
  Dev g(ctx.s, dim * 4), b(ctx.s, dim * 4), csrc(ctx.s, moved / 2), cdst(ctx.s, moved / 2);
  std::string err;
  const bool alloc_ok = x.status() == CKC_OK && r.status() == CKC_OK && y.status() == CKC_OK && sum.status() == CKC_OK &&
                        csrc.status() == CKC_OK && cdst.status() == CKC_OK;
  if (!alloc_ok) {
    tl.error = tc.error = "ckc_alloc failed";
  } else if (fill_random(ctx.s, x.get(), n, t, 1.0, 6, err) && (!residual || fill_random(ctx.s, r.get(), n, t, 1.0, 7, err)) &&
             fill_random(ctx.s, g.get(), dim, CKC_F32, 1.0, 8, err) && fill_random(ctx.s, b.get(), dim, CKC_F32, 1.0, 9, err) &&
             fill_random(ctx.s, csrc.get(), moved / 2 / 4, CKC_F32, 1.0, 10, err)) {
    ckc_layer_norm_args a{};
    a.x = x.get(), a.residual = residual ? r.get() : nullptr, a.x_type = t, a.gamma = g.as<float>(), a.beta = b.as<float>();
    a.y = y.get(), a.y_type = t, a.sum = residual ? sum.get() : nullptr, a.rows = rows, a.dim = dim, a.eps = 1e-5f;
    tl = time_op(ctx.s, [&] { return ckc_layer_norm(ctx.s, &a); });
    tc = time_op(ctx.s, [&] { return ckc_copy_device(ctx.s, cdst.get(), csrc.get(), moved / 2); });
  } else {
    tl.error = tc.error = err;
  }
  std::string extra;
  if (tl.error.empty() && tc.error.empty())
    extra = fmt(",\"copy_ms\":%.5g,\"copy_gbs\":%.5g,\"ratio_to_copy\":%.4g", tc.median_ms, double(moved) / (tc.median_ms * 1e-3) * 1e-9,
                tl.median_ms / tc.median_ms);
  print(ctx, bench, dtype_name(t), shape, extra + fmt(",\"bytes_moved\":%zu", moved), tl, "gbs", double(moved));
}

}  // namespace

void benchmarks(Ctx& ctx) {
  const ckc_epilogue N = CKC_EPILOGUE_NONE, Q = CKC_EPILOGUE_QUICK_GELU, R = CKC_EPILOGUE_RESIDUAL;
  const ckc_activation A0 = CKC_ACT_NONE;
  bench_gemm(ctx, CKC_BF16, CKC_BF16, 8192, 8192, 8192, N, false, A0, "gemm", "none");
  // ViT-B/16 at batch 256: 256·197 = 50432 rows; QKV, attention out, MLP up, MLP down.
  const size_t M = 50432;
  const size_t nk[][2] = {{2304, 768}, {768, 768}, {3072, 768}, {768, 3072}};
  for (const auto& s : nk) bench_gemm(ctx, CKC_BF16, CKC_BF16, M, s[0], s[1], N, false, A0, "gemm", "none");
  // The same four as a layer runs them, with their fused epilogues (no anchor: cuBLAS has none of these).
  bench_gemm(ctx, CKC_BF16, CKC_BF16, M, 2304, 768, N, true, A0, "gemm_fused", "bias");
  bench_gemm(ctx, CKC_BF16, CKC_BF16, M, 768, 768, R, true, A0, "gemm_fused", "bias+residual");
  bench_gemm(ctx, CKC_BF16, CKC_BF16, M, 3072, 768, Q, true, A0, "gemm_fused", "bias+quick_gelu");
  bench_gemm(ctx, CKC_BF16, CKC_BF16, M, 768, 3072, R, true, A0, "gemm_fused", "bias+residual");
  bench_gemm(ctx, CKC_F32, CKC_F32, 4096, 4096, 4096, N, false, A0, "gemm", "none");

  for (size_t S : {50, 77, 197, 257, 577}) bench_attention(ctx, 256, 12, S, 64, S == 77);

  for (ckc_dtype t : {CKC_BF16, CKC_F32}) bench_layer_norm(ctx, t, 50432, 768, false);
  bench_layer_norm(ctx, CKC_BF16, 50432, 768, true);
}

}  // namespace ckt
