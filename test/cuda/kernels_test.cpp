// clipkit_cuda_test: every op of clipkit_cuda.h against float64 CPU references written here, then
// (with --bench) microbenchmarks. Built by kernels/CMakeLists.txt; scripts/gpu-check.sh runs it.
//
//   clipkit_cuda_test            all cases; one JSON line per checked output, a summary line last
//   clipkit_cuda_test --quick    a small subset at small sizes (for compute-sanitizer)
//   clipkit_cuda_test --filter S only cases whose "test dtype shape" contains S
//   clipkit_cuda_test --bench    the microbenchmarks instead of the cases (--filter applies)
//   clipkit_cuda_test --seed N   other random inputs (default 1)
//
// Exit status: 0 all passed, 1 a case failed, 77 skipped (no driver, no device, a GPU too old, a
// driver too old: one line "skip: <status>: <message>"), 2 a bad flag.
//
// Every case draws fresh seeded random inputs (never zeros), poisons its outputs with NaN first and
// checks that nothing outside them was written; each tolerance is stated where its case is built and
// printed with the result.
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "harness.h"

namespace ckt {

// The host side of the tests: the hand-written conversions that every reference relies on, and the
// parts of the interface that need no device work.
void host_tests(Ctx& ctx) {
  if (ctx.selected("host.conversion", true)) {
    Check c("host.conversion", "bf16,f16", "all 2^16 encodings + 2^18 random f32", "exact (round to nearest even)");
    // Every finite encoding widens and narrows back to itself.
    for (uint32_t h = 0; h < 0x10000; ++h) {
      const uint16_t e = static_cast<uint16_t>(h);
      const float b = bf16_to_f32(e), f = f16_to_f32(e);
      if (!std::isnan(b)) c.bits(h, f32_to_bf16(b), e);
      if (!std::isnan(f)) c.bits(h, f32_to_f16(f), e);
    }
    // Known points: the largest f16, the overflow midpoint, the subnormal ties, bf16 ties.
    const struct { float in; uint16_t f16; } f16_known[] = {
        {1.0f, 0x3c00}, {65504.0f, 0x7bff}, {65519.99f, 0x7bff}, {65520.0f, 0x7c00}, {0x1p-24f, 0x0001},
        {0x1p-25f, 0x0000}, {0x1.8p-25f, 0x0001}, {0x1.8p-24f, 0x0002}, {0x1p-14f, 0x0400},
        {-0x1.ffcp-15f, 0x8400}, {1.0f + 0x1p-11f, 0x3c00}, {1.0f + 0x3p-11f, 0x3c02}};
    for (const auto& k : f16_known) c.bits(0, f32_to_f16(k.in), k.f16);
    const struct { uint32_t in; uint16_t bf16; } bf16_known[] = {
        {0x3f808000u, 0x3f80}, {0x3f818000u, 0x3f82}, {0x3f808001u, 0x3f81}, {0x7f7fffffu, 0x7f80}, {0x00008000u, 0x0000}};
    for (const auto& k : bf16_known) {
      float f;
      std::memcpy(&f, &k.in, 4);
      c.bits(1, f32_to_bf16(f), k.bf16);
    }
    // Random floats: the result is the nearest representable value, ties to the even encoding.
    Rng r(seed_for("host.conversion", ctx.opt.seed));
    for (int i = 0; i < (1 << 18); ++i) {
      const float x = static_cast<float>(std::ldexp(r.uniform(-2.0, 2.0), static_cast<int>(r.below(60)) - 40));
      for (int kind = 0; kind < 2; ++kind) {
        const uint16_t h = kind ? f32_to_f16(x) : f32_to_bf16(x);
        auto val = [&](uint16_t e) { return kind ? static_cast<double>(f16_to_f32(e)) : static_cast<double>(bf16_to_f32(e)); };
        const double v = val(h), err = std::fabs(v - x);
        if (std::isinf(v)) continue;  // overflow: checked at the known points
        for (int d : {-1, 1}) {
          const uint16_t nb = static_cast<uint16_t>(h + d);
          const double w = val(nb);
          if (std::isnan(w) || std::isinf(w) || ((nb ^ h) & 0x8000)) continue;
          const double e2 = std::fabs(w - x);
          if (e2 < err || (e2 == err && (h & 1))) c.fail(fmt("%s(%.9g) = 0x%04x is not the nearest-even", kind ? "f16" : "bf16", x, h));
        }
      }
    }
    ctx.report(c);
  }
  if (ctx.selected("host.status_names", true)) {
    Check c("host.status_names", "-", "11 statuses", "each named, names distinct");
    std::vector<std::string> seen;
    for (int st = CKC_OK; st <= CKC_ERR_CUDA; ++st) {
      const char* n = ckc_status_name(static_cast<ckc_status>(st));
      if (!n || !*n) c.fail(fmt("status %d has no name", st));
      else {
        for (const auto& s : seen)
          if (s == n) c.fail(fmt("status %d shares the name %s", st, n));
        seen.emplace_back(n);
      }
    }
    ctx.report(c);
  }
}

}  // namespace ckt

using namespace ckt;

static int usage(const char* argv0) {
  std::fprintf(stderr, "usage: %s [--quick] [--filter SUBSTR] [--bench] [--seed N]\n", argv0);
  return 2;
}

int main(int argc, char** argv) {
  Options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--quick") opt.quick = true;
    else if (a == "--bench") opt.bench = true;
    else if (a == "--filter" && i + 1 < argc) opt.filter = argv[++i];
    else if (a == "--seed" && i + 1 < argc) opt.seed = std::strtoull(argv[++i], nullptr, 10);
    else return usage(argv[0]);
  }

  if (ckc_abi_version() != CKC_ABI_VERSION) {
    std::printf("{\"test\":\"abi_version\",\"dtype\":\"-\",\"shape\":\"-\",\"tol\":\"equal\",\"pass\":false,"
                "\"failures\":[\"library ABI %d, header ABI %d\"]}\n", ckc_abi_version(), CKC_ABI_VERSION);
    return 1;
  }
  ckc_device_info info{};
  const ckc_status st = ckc_init(0, &info);
  if (st == CKC_ERR_NO_DRIVER || st == CKC_ERR_NO_DEVICE || st == CKC_ERR_ARCH || st == CKC_ERR_DRIVER_TOO_OLD) {
    std::printf("skip: %s: %s\n", ckc_status_name(st), ckc_last_error() ? ckc_last_error() : "");
    return 77;
  }
  if (st != CKC_OK) {
    std::printf("{\"test\":\"init\",\"dtype\":\"-\",\"shape\":\"-\",\"tol\":\"CKC_OK\",\"pass\":false,\"failures\":[\"ckc_init: %s\"]}\n",
                status_text(st).c_str());
    return 1;
  }
  std::string name = info.name;
  for (auto& ch : name)
    if (ch == '"' || ch == '\\' || static_cast<unsigned char>(ch) < 0x20) ch = ' ';
  std::printf("{\"device\":%d,\"name\":\"%s\",\"cc\":\"%d.%d\",\"sm_count\":%d,\"total_memory\":%zu,\"free_memory\":%zu,"
              "\"driver_version\":%d,\"runtime_version\":%d,\"gemm_path\":%d,\"abi\":%d,\"mode\":\"%s\",\"seed\":%llu}\n",
              info.device, name.c_str(), info.cc_major, info.cc_minor, info.sm_count, info.total_memory, info.free_memory,
              info.driver_version, info.runtime_version, info.gemm_path, ckc_abi_version(),
              opt.bench ? "bench" : opt.quick ? "quick" : "full", static_cast<unsigned long long>(opt.seed));
  std::fflush(stdout);

  ckc_stream* s = nullptr;
  const ckc_status sc = ckc_stream_create(&s);
  if (sc != CKC_OK || !s) {
    std::printf("{\"test\":\"stream_create\",\"dtype\":\"-\",\"shape\":\"-\",\"tol\":\"CKC_OK\",\"pass\":false,\"failures\":[\"%s\"]}\n",
                status_text(sc).c_str());
    return 1;
  }
  Ctx ctx(s, opt);
  if (opt.bench) {
    benchmarks(ctx);
  } else {
    // Cheap, self-contained ops first, so a broken GEMM or attention kernel (a device fault poisons
    // the context for everything after it) still leaves their results; the calls meant to fail last.
    host_tests(ctx);
    elementwise_tests(ctx);
    layer_norm_tests(ctx);
    embedding_tests(ctx);
    gemm_tests(ctx);
    patch_embed_tests(ctx);
    logits_tests(ctx);
    attention_tests(ctx);
    argument_error_tests(ctx);
    device_error_tests(ctx);
  }
  const ckc_status sd = ckc_stream_destroy(s);
  if (sd != CKC_OK) {
    Check c("stream_destroy", "-", "-", "CKC_OK");
    c.fail(status_text(sd));
    ctx.report(c);
  }
  std::string failed;
  for (size_t i = 0; i < ctx.failed_names.size() && i < 50; ++i) {
    std::string n = ctx.failed_names[i];
    for (auto& ch : n)
      if (ch == '"' || ch == '\\') ch = '\'';
    failed += (i ? ",\"" : "\"") + n + "\"";
  }
  std::printf("{\"summary\":\"%s\",\"passed\":%d,\"failed\":%d,\"failed_tests\":[%s]}\n", opt.bench ? "bench" : "tests",
              ctx.passed, ctx.failed, failed.c_str());
  return ctx.failed ? 1 : 0;
}
