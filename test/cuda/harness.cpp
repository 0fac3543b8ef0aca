// The test harness: conversions, random inputs, device buffers, comparisons and their JSON lines.
#include "harness.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <limits>
#include <thread>

namespace ckt {

// ---- Numbers ----

double unit_roundoff(ckc_dtype t) {
  switch (t) {
    case CKC_BF16: return 0x1p-8;   // 8 significant bits
    case CKC_F16: return 0x1p-11;   // 11 significant bits
    default: return kU32;
  }
}

double subnormal_floor(ckc_dtype t) { return t == CKC_F16 ? 0x1p-25 : 0.0; }

const char* dtype_name(ckc_dtype t) {
  switch (t) {
    case CKC_F32: return "f32";
    case CKC_BF16: return "bf16";
    case CKC_F16: return "f16";
  }
  return "bad";
}

size_t dtype_size(ckc_dtype t) { return t == CKC_F32 ? 4 : 2; }

static uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
static float bits_f32(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

uint16_t f32_to_bf16(float f) {
  uint32_t u = f32_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x0040u);  // quiet NaN
  // Add just under half an ulp of the result, plus one when the kept part is odd: ties go to even, and
  // a carry out of the mantissa moves into the exponent (up to inf), as round-to-nearest does.
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}

float bf16_to_f32(uint16_t h) { return bits_f32(static_cast<uint32_t>(h) << 16); }

uint16_t f32_to_f16(float f) {
  const uint32_t u = f32_bits(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return sign | 0x7e00u;  // NaN
  // 65520 = 0x477ff000 is the midpoint between 65504 (odd mantissa) and 65536: ties to even is inf.
  if (a >= 0x477ff000u) return sign | 0x7c00u;
  if (a >= 0x38800000u) {  // a normal f16 (>= 2^-14): the bf16 trick on 13 dropped bits, exponent rebiased
    const uint32_t r = a + 0x0fffu + ((a >> 13) & 1u);
    return static_cast<uint16_t>(sign | ((r >> 13) - (112u << 10)));
  }
  if (a <= 0x33000000u) return sign;  // <= 2^-25: 2^-25 itself is a tie between 0 and 2^-24, even is 0
  // Subnormal f16: the result is round(|f| · 2^24) in units of 2^-24. |f| = m · 2^(e − 150).
  const uint32_t e = a >> 23;  // 102 .. 112 here
  const uint32_t m = (a & 0x7fffffu) | 0x800000u;
  const uint32_t shift = 126u - e;  // 14 .. 24
  const uint32_t half = 1u << (shift - 1);
  uint32_t q = m >> shift;
  const uint32_t rem = m & ((1u << shift) - 1u);
  if (rem > half || (rem == half && (q & 1u))) ++q;  // q = 0x400 is the smallest normal's encoding
  return static_cast<uint16_t>(sign | q);
}

float f16_to_f32(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
  if (e == 0x1f) return bits_f32(sign | 0x7f800000u | (m << 13));
  if (e == 0) {
    const float v = std::ldexp(static_cast<float>(m), -24);  // exact
    return sign ? -v : v;
  }
  return bits_f32(sign | ((e + 112u) << 23) | (m << 13));
}

double round_to(ckc_dtype t, double v) {
  const float f = static_cast<float>(v);
  switch (t) {
    case CKC_BF16: return bf16_to_f32(f32_to_bf16(f));
    case CKC_F16: return f16_to_f32(f32_to_f16(f));
    default: return f;
  }
}

double load_elem(ckc_dtype t, const void* base, size_t i) {
  if (t == CKC_F32) {
    float f;
    std::memcpy(&f, static_cast<const char*>(base) + 4 * i, 4);
    return f;
  }
  uint16_t h;
  std::memcpy(&h, static_cast<const char*>(base) + 2 * i, 2);
  return t == CKC_BF16 ? bf16_to_f32(h) : f16_to_f32(h);
}

void store_elem(ckc_dtype t, void* base, size_t i, double v) {
  const float f = static_cast<float>(v);
  if (t == CKC_F32) {
    std::memcpy(static_cast<char*>(base) + 4 * i, &f, 4);
    return;
  }
  const uint16_t h = t == CKC_BF16 ? f32_to_bf16(f) : f32_to_f16(f);
  std::memcpy(static_cast<char*>(base) + 2 * i, &h, 2);
}

void poison(ckc_dtype t, void* base, size_t first, size_t count) {
  char* p = static_cast<char*>(base);
  for (size_t i = first; i < first + count; ++i) {
    if (t == CKC_F32) std::memcpy(p + 4 * i, &kPoisonF32, 4);
    else std::memcpy(p + 2 * i, &kPoisonHalf, 2);
  }
}

bool is_poison(ckc_dtype t, const void* base, size_t i) {
  const char* p = static_cast<const char*>(base);
  if (t == CKC_F32) {
    uint32_t u;
    std::memcpy(&u, p + 4 * i, 4);
    return u == kPoisonF32;
  }
  uint16_t h;
  std::memcpy(&h, p + 2 * i, 2);
  return h == kPoisonHalf;
}

double gelu_f64(double x) { return 0.5 * x * std::erfc(-x / std::sqrt(2.0)); }
double quick_gelu_f64(double x) { return x / (1.0 + std::exp(-1.702 * x)); }

double act_f32_err(int act, double x, double ref) {
  const double ax = std::fabs(x);
  const double amp = act == 1 ? 16.0 + ax * ax : 16.0 + 2.0 * ax;
  return amp * kU32 * std::fabs(ref) + kU32 * ax;
}

// ---- Random inputs ----

static uint64_t splitmix64(uint64_t& x) {
  uint64_t z = (x += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

Rng::Rng(uint64_t seed) {
  for (auto& w : s_) w = splitmix64(seed);
}

uint64_t Rng::next() {
  auto rotl = [](uint64_t v, int k) { return (v << k) | (v >> (64 - k)); };
  const uint64_t out = rotl(s_[1] * 5, 7) * 9;
  const uint64_t t = s_[1] << 17;
  s_[2] ^= s_[0];
  s_[3] ^= s_[1];
  s_[1] ^= s_[2];
  s_[0] ^= s_[3];
  s_[2] ^= t;
  s_[3] = rotl(s_[3], 45);
  return out;
}

double Rng::uniform(double lo, double hi) {
  const double u = static_cast<double>(next() >> 11) * 0x1p-53;
  return lo + (hi - lo) * u;
}

double Rng::normal(double mean, double sd) {
  double u1;
  do u1 = uniform(0.0, 1.0);
  while (u1 <= 0.0);
  const double u2 = uniform(0.0, 1.0);
  return mean + sd * std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
}

size_t Rng::below(size_t n) { return n ? static_cast<size_t>(next() % n) : 0; }

uint64_t seed_for(const std::string& name, uint64_t run_seed) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char ch : name) h = (h ^ ch) * 1099511628211ull;
  uint64_t x = h ^ (run_seed * 0x9e3779b97f4a7c15ull);
  return splitmix64(x);
}

std::vector<double> randn(ckc_dtype t, size_t n, Rng& r, double sd, double mean) {
  std::vector<double> v(n);
  for (auto& e : v) {
    do e = round_to(t, r.normal(mean, sd));
    while (e == 0.0);
  }
  return v;
}

std::vector<double> randu(ckc_dtype t, size_t n, Rng& r, double lo, double hi) {
  std::vector<double> v(n);
  for (auto& e : v) {
    do e = round_to(t, r.uniform(lo, hi));
    while (e == 0.0);
  }
  return v;
}

std::vector<uint8_t> encode(ckc_dtype t, const std::vector<double>& v) {
  std::vector<uint8_t> out(v.size() * dtype_size(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (std::isnan(v[i])) poison(t, out.data(), i, 1);  // a NaN in a logical tensor marks a gap
    else store_elem(t, out.data(), i, v[i]);
  }
  return out;
}

std::vector<double> decode(ckc_dtype t, const std::vector<uint8_t>& bytes, size_t first, size_t count) {
  std::vector<double> v(count);
  for (size_t i = 0; i < count; ++i) v[i] = load_elem(t, bytes.data(), first + i);
  return v;
}

// ---- Running ----

void parallel_for(size_t n, const std::function<void(size_t)>& fn) {
  const size_t threads = std::min<size_t>(n, std::max(1u, std::thread::hardware_concurrency()));
  if (threads <= 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  std::atomic<size_t> next{0};
  std::vector<std::thread> pool;
  for (size_t t = 0; t < threads; ++t)
    pool.emplace_back([&] {
      for (size_t i; (i = next.fetch_add(1)) < n;) fn(i);
    });
  for (auto& th : pool) th.join();
}

static std::string json_escape(const std::string& s) {
  std::string o;
  for (char ch : s) {
    switch (ch) {
      case '"': o += "\\\""; break;
      case '\\': o += "\\\\"; break;
      case '\n': o += "\\n"; break;
      case '\t': o += "\\t"; break;
      default:
        if (static_cast<unsigned char>(ch) < 0x20) o += fmt("\\u%04x", ch);
        else o += ch;
    }
  }
  return o;
}

static std::string json_num(double v) {
  if (std::isnan(v)) return "\"nan\"";
  if (std::isinf(v)) return v > 0 ? "\"inf\"" : "\"-inf\"";
  return fmt("%.4g", v);
}

Check::Check(std::string test, std::string dtype, std::string shape, std::string tol)
    : test_(std::move(test)), dtype_(std::move(dtype)), shape_(std::move(shape)), tol_(std::move(tol)) {}

void Check::value(size_t index, double got, double want, double tol, double mag) {
  ++count_;
  double err, ratio;
  if (std::isnan(want)) {
    err = std::isnan(got) ? 0.0 : std::numeric_limits<double>::infinity();
    ratio = err;
  } else if (!std::isfinite(got)) {
    err = ratio = std::numeric_limits<double>::infinity();
  } else {
    err = std::fabs(got - want);
    ratio = tol > 0 ? err / tol : (err > 0 ? std::numeric_limits<double>::infinity() : 0.0);
  }
  max_abs_ = std::max(max_abs_, err);
  const double m = std::max(mag, std::fabs(want));
  if (m > 0) max_rel_ = std::max(max_rel_, err / m);
  else if (err > 0) max_rel_ = std::numeric_limits<double>::infinity();
  worst_ = std::max(worst_, ratio);
  if (!(ratio <= 1.0)) {
    if (samples_.size() < 5) samples_.push_back(fmt("[%zu] got %.9g want %.9g tol %.3g", index, got, want, tol));
    ++bad_;
  }
}

void Check::bits(size_t index, double got, double want) {
  ++count_;
  const bool same = (std::isnan(got) && std::isnan(want)) ||
                    (got == want && std::signbit(got) == std::signbit(want));
  if (!same) {
    const double err = std::isnan(got) || std::isnan(want) ? std::numeric_limits<double>::infinity() : std::fabs(got - want);
    max_abs_ = std::max(max_abs_, err);
    worst_ = std::numeric_limits<double>::infinity();
    if (samples_.size() < 5) samples_.push_back(fmt("[%zu] got %.9g want %.9g (bits differ)", index, got, want));
    ++bad_;
  }
}

void Check::fail(const std::string& why) { failures_.push_back(why); }
void Check::note(const std::string& what) { notes_.push_back(what); }

std::string Check::json() const {
  std::string s = "{\"test\":\"" + json_escape(test_) + "\",\"dtype\":\"" + json_escape(dtype_) + "\",\"shape\":\"" +
                  json_escape(shape_) + "\"";
  s += ",\"max_abs_err\":" + json_num(max_abs_) + ",\"max_rel_err\":" + json_num(max_rel_);
  s += ",\"err_to_tol\":" + json_num(worst_) + ",\"tol\":\"" + json_escape(tol_) + "\"";
  s += fmt(",\"checked\":%zu,\"bad\":%zu", count_, bad_);
  s += std::string(",\"pass\":") + (ok() ? "true" : "false");
  auto list = [&](const char* key, const std::vector<std::string>& v) {
    if (v.empty()) return;
    s += ",\"" + std::string(key) + "\":[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? ",\"" : "\"") + json_escape(v[i]) + "\"";
    s += "]";
  };
  list("failures", failures_);
  list("first_bad", samples_);
  list("notes", notes_);
  return s + "}";
}

bool Ctx::selected(const std::string& key, bool in_quick) const {
  if (opt.quick && !in_quick) return false;
  return opt.filter.empty() || key.find(opt.filter) != std::string::npos;
}

void Ctx::report_line(const std::string& line) {
  std::fputs(line.c_str(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);  // a crash later must not take the lines already earned with it
}

void Ctx::report(const Check& c) {
  if (c.ok()) ++passed;
  else {
    ++failed;
    failed_names.push_back(c.id());
  }
  report_line(c.json());
}

void Ctx::report_best(std::vector<Check>& alts) {
  size_t best = 0;
  for (size_t i = 1; i < alts.size(); ++i) {
    const bool bo = alts[best].ok(), io = alts[i].ok();
    if ((io && !bo) || (io == bo && alts[i].worst() < alts[best].worst())) best = i;
  }
  report(alts[best]);
}

// ---- Device memory ----

Dev::Dev(ckc_stream* s, size_t bytes, Guard g) : s_(s), bytes_(bytes), guard_(g == Guard::Yes ? kGuardBytes : 0) {
  st_ = ckc_alloc(s_, std::max<size_t>(total(), 1), &p_);
}

Dev::~Dev() {
  if (p_) ckc_free(s_, p_);
}

std::string status_text(ckc_status st) {
  const char* name = ckc_status_name(st);
  const std::string s = std::string(name ? name : "?") + fmt(" (%d)", static_cast<int>(st));
  if (st == CKC_OK) return s;  // the last error belongs to an earlier call
  const char* msg = ckc_last_error();
  return s + ": " + (msg ? msg : "");
}

bool upload(ckc_stream* s, Dev& d, const std::vector<uint8_t>& host, Check& c) {
  if (d.status() != CKC_OK) {
    c.fail("ckc_alloc: " + status_text(d.status()));
    return false;
  }
  if (host.empty()) return true;
  const ckc_status st = ckc_copy_to_device(s, d.get(), host.data(), std::min(host.size(), d.total()));
  if (st != CKC_OK) c.fail("ckc_copy_to_device: " + status_text(st));
  return st == CKC_OK;
}

bool upload_guarded(ckc_stream* s, Dev& d, ckc_dtype t, std::vector<uint8_t> content, Check& c) {
  const size_t have = content.size();
  if (have < d.total()) {
    content.resize(d.total());
    const size_t es = dtype_size(t);
    poison(t, content.data(), (have + es - 1) / es, (d.total() - have) / es);
  }
  return upload(s, d, content, c);
}

bool upload_poisoned(ckc_stream* s, Dev& d, ckc_dtype t, Check& c) {
  std::vector<uint8_t> host(d.total());
  poison(t, host.data(), 0, host.size() / dtype_size(t));
  return upload(s, d, host, c);
}

bool sync(ckc_stream* s, Check& c, const char* what) {
  const ckc_status st = ckc_stream_sync(s);
  if (st != CKC_OK) c.fail(std::string(what) + ": ckc_stream_sync: " + status_text(st));
  return st == CKC_OK;
}

bool download(ckc_stream* s, const Dev& d, std::vector<uint8_t>& host, Check& c) {
  if (d.status() != CKC_OK) {
    c.fail("ckc_alloc: " + status_text(d.status()));
    return false;
  }
  host.assign(d.total(), 0);
  const ckc_status st = ckc_copy_to_host(s, host.data(), d.get(), host.size());
  if (st != CKC_OK) c.fail("ckc_copy_to_host: " + status_text(st));
  return st == CKC_OK && sync(s, c, "download");
}

void check_untouched(Check& c, ckc_dtype t, const std::vector<uint8_t>& buf, const std::vector<char>& written) {
  const size_t n = buf.size() / dtype_size(t);
  size_t changed = 0, first = 0;
  for (size_t i = 0; i < n; ++i)
    if (!(i < written.size() && written[i]) && !is_poison(t, buf.data(), i)) {
      if (!changed) first = i;
      ++changed;
    }
  if (changed)
    c.fail(fmt("%zu elements outside the output were written (first at element %zu of %zu, %s)", changed, first, n,
               first >= written.size() ? "past the end" : "in a gap between rows"));
}

std::string fmt(const char* f, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

std::string shape_str(std::initializer_list<std::pair<const char*, size_t>> dims) {
  std::string s;
  for (const auto& d : dims) s += (s.empty() ? "" : ",") + std::string(d.first) + "=" + std::to_string(d.second);
  return s;
}

}  // namespace ckt
