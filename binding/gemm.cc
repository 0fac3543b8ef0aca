// packWeight({ w, n, k, dtype }) -> Promise<handle>
// gemm({ x, m, k, w: handle, wRow0?, wRows?, bias?, epilogue, residual?, y, ldy?, alpha?, xActivation? }) -> Promise<void>
#include <memory>
#include <vector>

#include "packed_weight.h"

namespace ck_binding {

// ck::Epilogue's names, in its numbering (ck::Activation is the first three).
static const char* const kEpilogueNames[] = {"none", "gelu", "quick_gelu", "residual"};

// The index of `name` among the first `count` of `names`, or E_ARG listing them.
static int pick_name(Napi::Env env, const char* what, const std::string& name, const char* const* names, int count) {
  std::string known;
  for (int i = 0; i < count; ++i) {
    if (name == names[i]) return i;
    known += std::string(i ? (i + 1 == count ? " or " : ", ") : "") + names[i];
  }
  throw_range(env, "E_ARG", std::string("gemm: expected ") + known + " for " + what + " but received " + name);
}


const ck::PackedWeight* packed_weight_arg(Args& a, const char* name) {
  Napi::Value v = a.value(name);
  if (!v.IsExternal() || !v.As<Napi::External<ck::PackedWeight>>().CheckTypeTag(&kPackedWeightTag))
    throw_type(a.env(), "E_ARG", std::string(a.op()) + ": expected a packed weight (from packWeight) for " + name);
  a.keep(v);
  return v.As<Napi::External<ck::PackedWeight>>().Data();
}

// The typed arrays a weight packed in place lives in, held by owned references until the weight's
// External is finalized (and dropped with the job, on the JS thread, if packing fails).
using Pins = std::vector<Napi::ObjectReference>;

// packWeight({ parts: [Float32Array, ...], ns: [n0, n1, ...], k, inPlace: true }): one weight whose
// rows are the parts stacked (q | k | v), each packed over its own storage.
static Napi::Value PackWeightParts(Args& a) {
  Napi::Env env = a.env();
  const size_t k = a.size("k");
  if (!a.flag("inPlace", false)) throw_range(env, "E_ARG", "packWeight: parts are packed in place only (inPlace: true)");
  Napi::Value pv = a.value("parts"), nv = a.value("ns");
  if (!pv.IsArray() || !nv.IsArray()) throw_type(env, "E_ARG", "packWeight: expected arrays for parts and ns");
  Napi::Array parts = pv.As<Napi::Array>(), ns_arr = nv.As<Napi::Array>();
  const uint32_t count = parts.Length();
  if (count == 0 || count > 16 || ns_arr.Length() != count) throw_range(env, "E_ARG", "packWeight: expected 1 to 16 parts, one n each");
  std::vector<float*> ptrs;
  std::vector<size_t> ns;
  auto pins = std::make_shared<Pins>();
  for (uint32_t i = 0; i < count; ++i) {
    Napi::Value p = parts.Get(i), ni = ns_arr.Get(i);
    if (!p.IsTypedArray() || p.As<Napi::TypedArray>().TypedArrayType() != napi_float32_array)
      throw_type(env, "E_DTYPE", "packWeight: expected Float32Array parts");
    if (!ni.IsNumber() || ni.As<Napi::Number>().DoubleValue() < 0 || ni.As<Napi::Number>().DoubleValue() > 1e9 ||
        ni.As<Napi::Number>().DoubleValue() != static_cast<double>(static_cast<size_t>(ni.As<Napi::Number>().DoubleValue())))
      throw_range(env, "E_ARG", "packWeight: expected non-negative integers in ns");
    const size_t n = static_cast<size_t>(ni.As<Napi::Number>().DoubleValue());
    Napi::Float32Array f = p.As<Napi::Float32Array>();
    if (n % ck::kPanelCols != 0) throw_range(env, "E_ARG", "packWeight: each part's n must be a multiple of " + std::to_string(ck::kPanelCols) + " (part " + std::to_string(i) + ")");
    if (f.ElementLength() != a.product({n, k}))
      throw_range(env, "E_SHAPE", "packWeight: expected part " + std::to_string(i) + " of length " + std::to_string(n * k) +
                                      " but received length " + std::to_string(f.ElementLength()));
    a.keep(f);
    ptrs.push_back(f.Data());
    ns.push_back(n);
  }
  for (uint32_t i = 0; i < count; ++i) pins->push_back(Napi::Persistent(parts.Get(i).As<Napi::Object>()));
  auto packed = std::make_shared<std::unique_ptr<ck::PackedWeight>>(new ck::PackedWeight());
  return queue_job(
      a, [packed, ptrs, ns, k] { return ck::pack_weight_parts_in_place(ptrs.data(), ns.data(), ptrs.size(), k, packed->get()); },
      [packed, pins](Napi::Env env) -> Napi::Value {
        // The finalizer holds the pins (the buffers the panels live in) until it is run.
        auto ext = Napi::External<ck::PackedWeight>::New(env, packed->release(), [pins](Napi::Env, ck::PackedWeight* p) { delete p; });
        ext.TypeTag(&kPackedWeightTag);
        return ext;
      });
}

static Napi::Value PackWeight(const Napi::CallbackInfo& info) {
  Args a(info, "packWeight");
  if (!a.value("parts").IsUndefined()) return PackWeightParts(a);
  const size_t n = a.size("n"), k = a.size("k");
  auto w = a.f32("w");
  a.expect_length("w", w, a.product({n, k}));
  const std::string dtype = a.string_or("dtype", "float32");
  if (dtype != "float32" && dtype != "bfloat16")
    throw_range(a.env(), "E_DTYPE", "packWeight: expected float32 or bfloat16 for dtype but received " + dtype);
  const ck::WeightType type = dtype == "bfloat16" ? ck::WeightType::BF16 : ck::WeightType::F32;
  // inPlace: the panels overwrite w itself, and the packed weight keeps w's buffer alive.
  const bool in_place = a.flag("inPlace", false);
  if (in_place && (type != ck::WeightType::F32 || n % ck::kPanelCols != 0))
    throw_range(a.env(), "E_ARG", "packWeight: inPlace needs float32 and n a multiple of " + std::to_string(ck::kPanelCols) + " (n = " + std::to_string(n) + ")");
  auto pins = std::make_shared<Pins>();
  if (in_place) pins->push_back(Napi::Persistent(a.value("w").As<Napi::Object>()));
  auto packed = std::make_shared<std::unique_ptr<ck::PackedWeight>>(new ck::PackedWeight());
  float* wd = w.data;
  return queue_job(
      a,
      [packed, wd, n, k, type, in_place] {
        return in_place ? ck::pack_weight_in_place(wd, n, k, packed->get()) : ck::pack_weight(wd, n, k, k, type, packed->get());
      },
      [packed, pins](Napi::Env env) -> Napi::Value {
        ck::PackedWeight* pw = packed->release();
        // Memory of its own to report to the GC (in place: none new).
        const int64_t bytes = pw->owned ? static_cast<int64_t>(pw->bytes) : 0;
        auto ext = Napi::External<ck::PackedWeight>::New(env, pw, [bytes, pins](Napi::Env e, ck::PackedWeight* p) {
          // A finalizer must not throw (it may run while the environment is torn down): raw call, status ignored.
          int64_t total;
          if (bytes) napi_adjust_external_memory(e, -bytes, &total);
          delete p;  // the pins (w, when packed in place) go with this callback
        });
        ext.TypeTag(&kPackedWeightTag);
        if (bytes) Napi::MemoryManagement::AdjustExternalMemory(env, bytes);
        return ext;
      });
}
CK_EXPORT("packWeight", PackWeight);

static Napi::Value Gemm(const Napi::CallbackInfo& info) {
  Args a(info, "gemm");
  const ck::PackedWeight* w = packed_weight_arg(a, "w");
  // wRow0, wRows: only those rows of W (its output features), e.g. k and v of a fused q | k | v weight.
  const size_t row0 = a.size_or("wRow0", 0), m = a.size("m"), k = a.size("k");
  if (row0 % ck::kPanelCols || row0 > w->n)
    throw_range(a.env(), "E_ARG", "gemm: expected wRow0 a multiple of " + std::to_string(ck::kPanelCols) + " up to " + std::to_string(w->n) + " but received " + std::to_string(row0));
  const size_t n = a.size_or("wRows", w->n - row0);
  if (n > w->n - row0 || (n % ck::kPanelCols && row0 + n != w->n))
    throw_range(a.env(), "E_ARG", "gemm: expected wRows a multiple of " + std::to_string(ck::kPanelCols) + " (or up to the end) within the weight's " + std::to_string(w->n) +
                                      " rows from " + std::to_string(row0) + " but received " + std::to_string(n));
  if (k != w->k)
    throw_range(a.env(), "E_SHAPE", "gemm: expected k " + std::to_string(w->k) + " (the packed weight's) but received " +
                                        std::to_string(k));
  auto x = a.f32("x"), y = a.f32("y"), bias = a.f32_opt("bias");
  a.expect_length("x", x, a.product({m, k}));
  // ldy: y's row stride (default n), e.g. to write q, k and v side by side into one [m, 3n] buffer.
  const size_t ldy = a.size_or("ldy", n);
  if (ldy < n) throw_range(a.env(), "E_ARG", "gemm: expected ldy >= n (" + std::to_string(n) + ") but received " + std::to_string(ldy));
  if (ldy == n) {
    a.expect_length("y", y, a.product({m, n}));
  } else if (m && y.length < a.product({m - 1, ldy}) + n) {
    throw_range(a.env(), "E_SHAPE", "gemm: expected y of at least " + std::to_string((m - 1) * ldy + n) + " elements for " +
                                        std::to_string(m) + " rows of stride " + std::to_string(ldy) + " but received length " +
                                        std::to_string(y.length));
  }
  if (bias) a.expect_length("bias", bias, n);
  const std::string epi = a.string_or("epilogue", "none");
  const ck::Epilogue e = static_cast<ck::Epilogue>(pick_name(a.env(), "epilogue", epi, kEpilogueNames, 4));
  View<float> residual;
  if (e == ck::Epilogue::Residual) {
    if (ldy != n) throw_range(a.env(), "E_ARG", "gemm: epilogue 'residual' needs ldy = n");
    residual = a.f32("residual");
    a.expect_length("residual", residual, a.product({m, n}));
  } else if (a.f32_opt("residual")) {
    throw_range(a.env(), "E_ARG", "gemm: residual is only read with epilogue 'residual' but epilogue is " + epi);
  }
  // The activations are the epilogue's first three names, in the same order.
  const std::string xa = a.string_or("xActivation", "none");
  const auto x_act = static_cast<ck::Activation>(pick_name(a.env(), "xActivation", xa, kEpilogueNames, 3));
  ck::GemmArgs args;
  args.x = x.data;
  args.ldx = k;
  args.w = w;
  args.bias = bias.data;
  args.epilogue = e;
  args.residual = residual.data;
  args.ldr = n;
  args.y = y.data;
  args.ldy = ldy;
  args.m = m;
  args.alpha = static_cast<float>(a.number_or("alpha", 1.0));
  args.x_act = x_act;
  args.w_row0 = row0;
  args.w_rows = n;
  return queue_job(a, [args] { return ck::gemm(args); });
}
CK_EXPORT("gemm", Gemm);

// gemmPanelWidth() -> number: ck::kPanelCols, the columns of a packed weight's panel.
static Napi::Value GemmPanelWidth(const Napi::CallbackInfo& info) { return Napi::Number::New(info.Env(), double(ck::kPanelCols)); }
CK_EXPORT("gemmPanelWidth", GemmPanelWidth);

}  // namespace ck_binding
