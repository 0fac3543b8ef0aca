// ckc_gemm: checks every argument on the host (nothing is queued for a bad call), then picks a path:
//   f32 inputs                                      -> gemm_f32  (FFMA, the exact mode)
//   bf16 / f16 on compute capability 9.0, no x_act  -> gemm_sm90 (wgmma + TMA)
//   bf16 / f16 otherwise (8.0 and newer)            -> gemm_sm80 (mma.sync; also sm_90 with x_act)
#include <string>

#include "gemm.cuh"

namespace {

ckc_status arg_error(const std::string& msg) { return ckc::fail(CKC_ERR_ARG, "gemm: " + msg); }

bool aligned(const void* p, size_t bytes) { return reinterpret_cast<uintptr_t>(p) % bytes == 0; }

ckc_status gemm(ckc_stream* s, const ckc_gemm_args* a) {
  ckc_status st = ckc::ready(s, "gemm");
  if (st != CKC_OK) return st;
  if (!a) return arg_error("args is null");
  if (!a->x || !a->w || !a->y) return arg_error("x, w and y must not be null");
  if (a->m < 1 || a->n < 1 || a->k < 1) return arg_error("m, n and k must be at least 1");
  // The kernels index k with int (rows and columns with size_t), with a tile of headroom.
  if (a->k > (size_t{1} << 30)) return arg_error("k must be at most 2^30");
  if (!ckc::valid_dtype(a->in_type)) return arg_error("in_type is not a valid dtype");
  if (!ckc::valid_dtype(a->y_type)) return arg_error("y_type is not a valid dtype");
  if (a->epilogue < CKC_EPILOGUE_NONE || a->epilogue > CKC_EPILOGUE_RESIDUAL)
    return arg_error("epilogue is not a valid ckc_epilogue");
  if (a->x_act < CKC_ACT_NONE || a->x_act > CKC_ACT_QUICK_GELU) return arg_error("x_act is not a valid ckc_activation");
  if (a->precision != CKC_PRECISION_DEFAULT && a->precision != CKC_PRECISION_EXACT_F32)
    return arg_error("precision is not a valid ckc_precision");
  if (a->ldx < a->k) return arg_error("ldx must be at least k");
  if (a->ldw < a->k) return arg_error("ldw must be at least k");
  if (a->ldy < a->n) return arg_error("ldy must be at least n");

  const bool residual = a->epilogue == CKC_EPILOGUE_RESIDUAL;
  if (residual && !a->residual) return arg_error("epilogue RESIDUAL needs a residual");
  if (!residual && a->residual) return arg_error("residual is given but the epilogue is not RESIDUAL");
  if (residual && a->ldr < a->n) return arg_error("ldr must be at least n");
  // Each output is read (residual) and written (y) by the same thread, so an exact alias is safe;
  // the same base with other strides would let one thread's store overtake another's read.
  if (residual && a->residual == a->y && a->ldr != a->ldy) return arg_error("a residual aliasing y needs ldr == ldy");

  if (a->precision == CKC_PRECISION_EXACT_F32 && a->in_type != CKC_F32)
    return arg_error("precision EXACT_F32 needs in_type f32");

  const size_t in_size = ckc::dtype_size(a->in_type), y_size = ckc::dtype_size(a->y_type);
  if (!aligned(a->x, in_size) || !aligned(a->w, in_size)) return arg_error("x and w must be aligned to their element size");
  if (!aligned(a->y, y_size) || (a->residual && !aligned(a->residual, y_size)))
    return arg_error("y and residual must be aligned to their element size");
  if (a->bias && !aligned(a->bias, sizeof(float))) return arg_error("bias must be 4-byte aligned");

  // f32 inputs always run on FFMA (there is no TF32 path), whatever the precision.
  if (a->in_type == CKC_F32) return ckc::gemm_f32(s, *a);

  // Tensor-core paths: their loads move rows in 16-byte chunks (cp.async, TMA).
  if (a->k % 8 != 0) return arg_error("bf16/f16 inputs need k to be a multiple of 8");
  if (a->ldx % 8 != 0 || a->ldw % 8 != 0) return arg_error("bf16/f16 inputs need ldx and ldw to be multiples of 8");
  if (!aligned(a->x, 16) || !aligned(a->w, 16)) return arg_error("bf16/f16 inputs need x and w 16-byte aligned");

  const int cc = ckc::device_cc();
  if (cc < 80) return ckc::fail(CKC_ERR_ARCH, "gemm: tensor-core paths need compute capability 8.0 or newer");
  if (cc == 90 && a->x_act == CKC_ACT_NONE) return ckc::gemm_sm90(s, *a);
  return ckc::gemm_sm80(s, *a);
}

}  // namespace

extern "C" CKC_API ckc_status ckc_gemm(ckc_stream* s, const ckc_gemm_args* a) {
  // No exception may cross the C interface; the only one possible here is an allocation failure
  // while an error message is built.
  try {
    return gemm(s, a);
  } catch (...) {
    return CKC_ERR_NOMEM;
  }
}
