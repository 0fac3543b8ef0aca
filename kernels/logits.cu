// logits: logits[i, j] = scale · Â[i]·B̂[j] (csrc/logits.cpp). The rows of a and b are normalised
// into scratch by l2_normalize_rows_kernel (reduce.cuh: a warp per row, sums of squares reduced in
// double, a zero row → zeros), which also writes the norms when asked, then one ckc_gemm with fp32
// inputs, FFMA products (EXACT_F32) and alpha = scale: x = Â [n, d], w = B̂ [m, d].
#include "reduce.cuh"

extern "C" CKC_API ckc_status ckc_logits(ckc_stream* s, const ckc_logits_args* a) {
  using namespace ckc;
  if (ckc_status st = ready(s, "ckc_logits")) return st;
  if (!a) return fail(CKC_ERR_ARG, "ckc_logits: no arguments");
  if (a->d == 0) return fail(CKC_ERR_ARG, "ckc_logits: d must be >= 1 (received 0)");
  if (a->n == 0 && a->m == 0) return CKC_OK;
  if (a->n && !a->a) return fail(CKC_ERR_ARG, "ckc_logits: a is null");
  if (a->m && !a->b) return fail(CKC_ERR_ARG, "ckc_logits: b is null");
  if (a->n && a->m && !a->logits) return fail(CKC_ERR_ARG, "ckc_logits: logits is null");
  size_t nm, rows, elems, bytes;
  if (!checked_mul(a->n, a->m, &nm) || !checked_mul(nm, 4, &bytes) || a->n + a->m < a->n)
    return fail(CKC_ERR_ARG, "ckc_logits: n*m overflows (" + std::to_string(a->n) + "*" + std::to_string(a->m) + ")");
  rows = a->n + a->m;
  if (!checked_mul(rows, a->d, &elems) || !checked_mul(elems, 4, &bytes) || bytes > SIZE_MAX - 512)
    return fail(CKC_ERR_ARG, "ckc_logits: (n + m)*d overflows (" + std::to_string(rows) + "*" + std::to_string(a->d) + ")");

  // Â then B̂ in one allocation, B̂ starting on a 256-byte boundary like Â, so both get the vector paths.
  const size_t b_offset = (a->n * a->d * 4 + 255) / 256 * 256;
  Scratch scratch(s);
  ckc_status st = CKC_OK;
  char* hat = static_cast<char*>(scratch.get(b_offset + a->m * a->d * 4, &st));
  if (!hat) return st;
  float* a_hat = reinterpret_cast<float*>(hat);
  float* b_hat = reinterpret_cast<float*>(hat + b_offset);
  if (a->n && (st = launch_l2_normalize_rows<float>(s, a->a, a_hat, a->a_norm, a->n, a->d, "ckc_logits: normalise a"))) return st;
  if (a->m && (st = launch_l2_normalize_rows<float>(s, a->b, b_hat, a->b_norm, a->m, a->d, "ckc_logits: normalise b"))) return st;
  if (a->n == 0 || a->m == 0) return CKC_OK;  // the norms of the other side were all there was to do

  ckc_gemm_args g{};
  g.x = a_hat;
  g.ldx = a->d;
  g.w = b_hat;
  g.ldw = a->d;
  g.in_type = CKC_F32;
  g.bias = nullptr;
  g.epilogue = CKC_EPILOGUE_NONE;
  g.residual = nullptr;
  g.ldr = a->m;
  g.y = a->logits;
  g.ldy = a->m;
  g.y_type = CKC_F32;
  g.m = a->n;
  g.n = a->m;
  g.k = a->d;
  g.alpha = a->scale;
  g.x_act = CKC_ACT_NONE;
  g.precision = CKC_PRECISION_EXACT_F32;
  return ckc_gemm(s, &g);
}
