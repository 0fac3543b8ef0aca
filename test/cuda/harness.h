// Shared vocabulary of the CUDA kernel tests: host bf16 / f16 conversion written out by hand, seeded
// random inputs, device buffers through clipkit_cuda.h, a parallel loop for the float64 references,
// and the comparison that prints one JSON line per checked output.
//
// Plain C++17 over the C interface alone: no CUDA header is included anywhere under test/cuda, which
// also proves that clipkit_cuda.h stands on its own.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "clipkit_cuda.h"

namespace ckt {

// ---- Numbers ----

constexpr double kU32 = 0x1p-24;  // unit roundoff of fp32 (round to nearest)

// Unit roundoff of storing a value in t: a rounded value is within u·|v| of v (normal range).
double unit_roundoff(ckc_dtype t);
// The absolute error of rounding into t's subnormal range: half its smallest step (f16: 2^-25; the
// subnormals of bf16 and f32 lie far below anything these tests produce).
double subnormal_floor(ckc_dtype t);
const char* dtype_name(ckc_dtype t);
size_t dtype_size(ckc_dtype t);

// Round to nearest, ties to even, the way the kernels store (NaN stays NaN, overflow goes to inf).
uint16_t f32_to_bf16(float f);
float bf16_to_f32(uint16_t h);
uint16_t f32_to_f16(float f);
float f16_to_f32(uint16_t h);

// v as t would hold it (through fp32, as a kernel computing in fp32 would store it).
double round_to(ckc_dtype t, double v);
// Element i of a buffer of t, widened exactly.
double load_elem(ckc_dtype t, const void* base, size_t i);
void store_elem(ckc_dtype t, void* base, size_t i, double v);

// Bytes of a NaN that no kernel writes by accident: the poison that fills every output before an op
// (an element left unwritten stays NaN and fails) and the gaps between rows of inputs (a kernel that
// reads them gets NaN into its result). 0x7FA5 is a NaN both as bf16 and as f16.
constexpr uint32_t kPoisonF32 = 0x7FA5A5A5u;
constexpr uint16_t kPoisonHalf = 0x7FA5u;
void poison(ckc_dtype t, void* base, size_t first, size_t count);
bool is_poison(ckc_dtype t, const void* base, size_t i);

// The activations in float64: erf GELU as x/2·erfc(−x/√2) (no cancellation for negative x), QuickGELU.
double gelu_f64(double x);
double quick_gelu_f64(double x);
// How far an fp32 evaluation of the activation (act = 1 GELU, 2 QuickGELU) at x may stray from the
// float64 value ref: the argument's rounding is amplified by the log-derivative of erfc (≈ x²) or of
// exp (≈ 1.7|x|), on top of a few ulp of erfcf / expf; 2^-24·|x| admits the x/2·(1 + erf) form whose
// absolute error there is far below anything a network sees.
double act_f32_err(int act, double x, double ref);

// ---- Random inputs ----

// xoshiro256** seeded through splitmix64: the same sequence on every machine.
class Rng {
 public:
  explicit Rng(uint64_t seed);
  uint64_t next();
  double uniform(double lo, double hi);
  double normal(double mean = 0.0, double sd = 1.0);
  size_t below(size_t n);

 private:
  uint64_t s_[4];
};

// A stable seed for a named case, mixed with the run's --seed.
uint64_t seed_for(const std::string& name, uint64_t run_seed);

// Logical tensors: float64 values that the stored dtype represents exactly, so the references compute
// from what the kernel reads. Never zero (a zero input hides unread or unwritten elements).
std::vector<double> randn(ckc_dtype t, size_t n, Rng& r, double sd = 1.0, double mean = 0.0);
std::vector<double> randu(ckc_dtype t, size_t n, Rng& r, double lo, double hi);
// The bytes of v stored as t.
std::vector<uint8_t> encode(ckc_dtype t, const std::vector<double>& v);
std::vector<double> decode(ckc_dtype t, const std::vector<uint8_t>& bytes, size_t first, size_t count);

// ---- Running ----

// Splits [0, n) over the host's cores; fn(i) must touch only what index i owns.
void parallel_for(size_t n, const std::function<void(size_t)>& fn);

struct Options {
  bool quick = false;       // a small subset, for compute-sanitizer
  bool bench = false;
  std::string filter;       // run only cases whose "test dtype shape" contains it
  uint64_t seed = 1;
};

// One checked output: collects the element comparisons and prints the JSON line.
class Check {
 public:
  Check(std::string test, std::string dtype, std::string shape, std::string tol);
  // got against the float64 reference want, allowed |got − want| <= tol; mag is the magnitude the
  // relative error is measured against (the reference's own |value| or its sum of |terms|).
  void value(size_t index, double got, double want, double tol, double mag);
  // Exact equality of stored bits (conversions, gathers); NaN matches any NaN.
  void bits(size_t index, double got, double want);
  // A failure that is not one element's: a status, a guard written over.
  void fail(const std::string& why);
  void note(const std::string& what);
  bool ok() const { return failures_.empty() && bad_ == 0; }
  double worst() const { return worst_; }  // max over elements of |err| / tol
  std::string id() const { return test_ + " " + dtype_ + " " + shape_; }
  std::string json() const;

 private:
  std::string test_, dtype_, shape_, tol_;
  std::vector<std::string> failures_, notes_, samples_;
  size_t count_ = 0, bad_ = 0;
  double max_abs_ = 0, max_rel_ = 0, worst_ = 0;
};

class Ctx {
 public:
  Ctx(ckc_stream* stream, Options o) : s(stream), opt(std::move(o)) {}
  ckc_stream* s;
  Options opt;
  // Whether a case runs: in the quick subset when --quick, and matching --filter.
  bool selected(const std::string& key, bool in_quick) const;
  void report(const Check& c);
  // The better of several checks of one output against alternative references that each stand for
  // a valid way to compute it (e.g. the sum rounded to its storage type or not): the one that passes
  // with the smallest error.
  void report_best(std::vector<Check>& alternatives);
  void report_line(const std::string& json_line);
  int passed = 0, failed = 0;
  std::vector<std::string> failed_names;
};

// ---- Device memory ----

// A device allocation, freed on scope exit (stream-ordered). Outputs carry a tail guard of kGuardBytes
// that must still hold the poison afterwards; inputs are allocated to the byte, so that
// compute-sanitizer sees a read past their end.
constexpr size_t kGuardBytes = 256;
enum class Guard { Yes, No };
class Dev {
 public:
  Dev(ckc_stream* s, size_t bytes, Guard g = Guard::Yes);
  ~Dev();
  Dev(const Dev&) = delete;
  Dev& operator=(const Dev&) = delete;
  void* get() const { return p_; }
  template <class T> T* as(size_t elem_offset = 0) const { return static_cast<T*>(p_) + elem_offset; }
  size_t bytes() const { return bytes_; }        // without the guard
  size_t total() const { return bytes_ + guard_; }
  ckc_status status() const { return st_; }

 private:
  ckc_stream* s_;
  void* p_ = nullptr;
  size_t bytes_, guard_;
  ckc_status st_;
};

std::string status_text(ckc_status st);  // "CKC_ERR_ARG: <last error>"

// Uploads host bytes into d (from byte offset 0, at most d.total()); records a failure in c and
// returns false on error.
bool upload(ckc_stream* s, Dev& d, const std::vector<uint8_t>& host, Check& c);
// An output that is also an input (an alias): content, then the poison of t up to d.total().
bool upload_guarded(ckc_stream* s, Dev& d, ckc_dtype t, std::vector<uint8_t> content, Check& c);
// An output buffer: every byte of d (guard too) set to the poison of t.
bool upload_poisoned(ckc_stream* s, Dev& d, ckc_dtype t, Check& c);
// Waits for the stream; a failing status is recorded in c.
bool sync(ckc_stream* s, Check& c, const char* what);
// Downloads the whole allocation, guard included, and waits for it.
bool download(ckc_stream* s, const Dev& d, std::vector<uint8_t>& host, Check& c);
// Every element of buf (a downloaded output of t, guard included) whose written[i] is false (or lies
// past written's end) must still be the poison: a kernel that writes between rows or past the end fails.
void check_untouched(Check& c, ckc_dtype t, const std::vector<uint8_t>& buf, const std::vector<char>& written);

// Formatting for names and tolerances.
std::string fmt(const char* f, ...);
std::string shape_str(std::initializer_list<std::pair<const char*, size_t>> dims);

// ---- The groups of cases (one file each) ----
void host_tests(Ctx& ctx);
void elementwise_tests(Ctx& ctx);  // convert, add, unary, softmax, l2_normalize
void layer_norm_tests(Ctx& ctx);
void embedding_tests(Ctx& ctx);    // embedding, gather_rows
void gemm_tests(Ctx& ctx);
void patch_embed_tests(Ctx& ctx);
void logits_tests(Ctx& ctx);       // logits, infonce
void attention_tests(Ctx& ctx);
// Run last: calls the contract says must fail, on the host (argument errors) or on the device (an
// index out of range). A library that crashes on one loses only the lines after it.
void argument_error_tests(Ctx& ctx);
void device_error_tests(Ctx& ctx);
void benchmarks(Ctx& ctx);

}  // namespace ckt
