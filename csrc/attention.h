#pragma once
#include "common.h"

namespace ck {

// Fused multi-head attention, one (batch, head) at a time:
//   out[b, i, h·D : (h+1)·D] = softmax_j(scale · q_i·k_j + mask_ij) · v_j
// with q_i = q[b, i, h·D : (h+1)·D] and likewise k_j, v_j (D = head_dim). Rows of q, k, v are
// addressed through strides, so separate [batch, seq, heads·D] tensors and the packed QKV output of
// one GEMM ([batch, seq, 3·heads·D], q | k | v along the last axis) are read in place.
//
// Masks: key j of batch b is dropped when key_mask[b, j] == 0; with `causal`, query i sees keys
// j <= i only. A dropped key gets weight exactly 0, so padding never changes the real tokens'
// outputs. A query row whose keys are all dropped gets an output of 0 (not NaN).
// Only the first q_rows query rows are computed (q_rows <= seq; the class token alone: 1).
//
// Ragged batches (seq_starts given): sequence b is rows [seq_starts[b], seq_starts[b+1]) of q, k, v
// (the batch strides are unused), `seq` is the longest of them, and a key mask holds one entry per
// row. Output rows: with q_rows == 1 sequence b's first row goes to out row b; otherwise every row
// of every sequence goes to the out row of the same index. Sequences of different lengths thus run
// in one call without padding. In a ragged batch with q_rows == 1, a nonzero q_batch_stride means q
// holds only the rows computed: sequence b's first query at q + b·q_batch_stride (else at its row).
struct AttentionArgs {
  const float* q;            // element [b, i, h·D + c] at q[b·q_batch_stride + i·q_row_stride + h·D + c]
  const float* k;
  const float* v;
  size_t q_batch_stride, q_row_stride;
  size_t k_batch_stride, k_row_stride;
  size_t v_batch_stride, v_row_stride;
  const int32_t* key_mask_i32;  // [batch, seq], nonzero = keep; optional
  const uint8_t* key_mask_u8;   // the same as bytes; at most one of the two is given
  const int32_t* seq_starts;    // [batch + 1], increasing from 0; optional (ragged batches)
  float* out;                // [batch, q_rows, heads·D], row stride out_row_stride
  size_t out_batch_stride, out_row_stride;
  size_t batch, seq, heads, head_dim, q_rows;
  float scale;               // usually 1/sqrt(head_dim)
  bool causal;
};

ck_status attention_f32(const AttentionArgs& a);

}  // namespace ck
