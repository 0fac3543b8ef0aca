// Shared vocabulary of the CPU kernels: status codes, ISA levels and the per-op dispatch table.
// Kernels never throw or abort (they run inside the Node process): they return a ck_status.
#pragma once
#include <cstddef>
#include <cstdint>

namespace ck {

enum ck_status : int {
  CK_OK = 0,
  CK_ERR_ARG = 1,     // an argument the binding should have rejected (defensive)
  CK_ERR_NOMEM = 2,   // a scratch or packing allocation failed
  CK_ERR_ISA = 3,     // no variant of the op exists for the requested ISA
};

const char* status_message(ck_status s);

// Instruction-set levels, ordered: a CPU that has a level has all lower x86 levels. Amx is AVX-512
// plus the AMX tile unit: every op runs its AVX-512 variant, and bf16 GEMMs run on AMX tiles.
enum class Isa : int { Scalar = 0, Avx2 = 1, Avx512 = 2, Neon = 3, Amx = 4 };
const char* isa_name(Isa isa);

// The ISA kernels use for the job now running (set by the dispatcher from the job's request).
Isa current_isa();

// One function pointer per ISA; null where an ISA has no variant (the next lower one is used).
// Scalar is always present.
template <class Fn>
struct IsaTable {
  Fn scalar;
  Fn avx2;
  Fn avx512;
  Fn neon;
  Fn pick() const { return pick(current_isa()); }
  Fn pick(Isa isa) const {
    switch (isa) {
      case Isa::Amx: [[fallthrough]];
      case Isa::Avx512: if (avx512) return avx512; [[fallthrough]];
      case Isa::Avx2: if (avx2) return avx2; return scalar;
      case Isa::Neon: return neon ? neon : scalar;
      default: return scalar;
    }
  }
};

// Variants that exist only on some architectures are named through these, so tables still compile elsewhere.
#if defined(__x86_64__) || defined(_M_X64)
#define CK_X86 1
#define CK_X86_OR_NULL(fn) fn
#define CK_NEON_OR_NULL(fn) nullptr
#elif defined(__aarch64__)
#define CK_ARM64 1
#define CK_X86_OR_NULL(fn) nullptr
#define CK_NEON_OR_NULL(fn) fn
#else
#define CK_X86_OR_NULL(fn) nullptr
#define CK_NEON_OR_NULL(fn) nullptr
#endif

// Overflow-checked size arithmetic for shapes coming from JavaScript.
inline bool mul_ok(size_t a, size_t b, size_t* out) {
  if (a != 0 && b > SIZE_MAX / a) return false;
  *out = a * b;
  return true;
}

}  // namespace ck
