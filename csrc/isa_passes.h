// Compiles the SIMD section of an op file once per instruction set.
//
// An op file writes its kernel body once, against the vector vocabulary `V` (csrc/simd/vec_*.h:
// V::W lanes, V::load, V::fmadd, V::exp, ...), inside `#ifdef CK_ISA_PASS`. Before its dispatch
// table it defines CK_SIMD_SELF as its own file name and includes this header, which includes the
// file again inside one namespace per ISA (ck::pass_scalar, ck::pass_avx2, ck::pass_avx512,
// ck::pass_neon), each under that ISA's target pragma. The table then names pass_avx2::fn etc.
//
// System headers are included here, outside the target regions, so that no inline function from
// them is compiled for a wider ISA than the baseline (the linker could otherwise pick an AVX-512
// copy of it for the scalar path). Files included inside the passes have no include guards.
#if !defined(CK_SIMD_SELF)
#error "define CK_SIMD_SELF (the op file's name) before including isa_passes.h"
#endif

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <type_traits>

#include "common.h"
#include "thread_pool.h"

#if defined(CK_X86)
#include <immintrin.h>
#elif defined(CK_ARM64)
#include <arm_neon.h>
#endif

#define CK_ISA_PASS 1

#define CK_PASS_SCALAR 1
namespace ck { namespace pass_scalar {
#include "simd/vec_scalar.h"
#include "simd/vmath.h"
#include CK_SIMD_SELF
}}  // namespace ck::pass_scalar
#undef CK_PASS_SCALAR

#if defined(CK_X86)

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif
#define CK_PASS_AVX2 1
namespace ck { namespace pass_avx2 {
#include "simd/vec_avx2.h"
#include "simd/vmath.h"
#include CK_SIMD_SELF
}}  // namespace ck::pass_avx2
#undef CK_PASS_AVX2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512dq,avx512vl,avx2,fma,f16c")
#endif
#define CK_PASS_AVX512 1
namespace ck { namespace pass_avx512 {
#include "simd/vec_avx512.h"
#include "simd/vmath.h"
#include CK_SIMD_SELF
}}  // namespace ck::pass_avx512
#undef CK_PASS_AVX512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#elif defined(CK_ARM64)

#define CK_PASS_NEON 1
namespace ck { namespace pass_neon {
#include "simd/vec_neon.h"
#include "simd/vmath.h"
#include CK_SIMD_SELF
}}  // namespace ck::pass_neon
#undef CK_PASS_NEON

#endif

#undef CK_ISA_PASS
#undef CK_SIMD_SELF
