// attention({ q, k, v | qkv, keyMask?, out, batch, seq, heads, headDim, qRows, scale, causal }) -> Promise<void>
// q, k, v: [batch, seq, heads·headDim] each, or qkv: [batch, seq, 3·heads·headDim] (q | k | v),
// with qkv optionally query: [batch, qRows, heads·headDim], the queries computed (qkv's q unread).
// keyMask: Int32Array or Uint8Array [batch, seq]. out: [batch, qRows, heads·headDim].
// seqStarts (ragged batches): Int32Array [batch + 1]; then q, k, v, qkv and keyMask hold
// seqStarts[batch] rows, seq is the longest sequence, and out holds every row (qRows = seq) or one
// row per sequence (qRows = 1).
#include "addon.h"
#include "attention.h"

namespace ck_binding {

static Napi::Value Attention(const Napi::CallbackInfo& info) {
  Args a(info, "attention");
  const size_t batch = a.size("batch"), seq = a.size("seq"), heads = a.size("heads"), head_dim = a.size("headDim");
  const size_t q_rows = a.size("qRows");
  if (q_rows > seq)
    throw_range(a.env(), "E_ARG", "attention: expected qRows <= seq (" + std::to_string(seq) + ") but received " +
                                      std::to_string(q_rows));
  const size_t width = a.product({heads, head_dim});
  ck::AttentionArgs args{};
  // Ragged batches: sequence b is rows [seqStarts[b], seqStarts[b + 1]) of `rows` rows in all.
  auto starts = a.i32_opt("seqStarts");
  size_t rows = a.product({batch, seq});
  if (starts) {
    a.expect_length("seqStarts", starts, batch + 1);
    if (starts.data[0] != 0) throw_range(a.env(), "E_ARG", "attention: expected seqStarts[0] = 0");
    for (size_t b = 0; b < batch; ++b) {
      const int64_t len = int64_t(starts.data[b + 1]) - starts.data[b];
      if (len < 1 || static_cast<size_t>(len) > seq)
        throw_range(a.env(), "E_ARG", "attention: expected every sequence of seqStarts to hold 1 to seq (" + std::to_string(seq) +
                                          ") rows but sequence " + std::to_string(b) + " holds " + std::to_string(len));
    }
    rows = static_cast<size_t>(starts.data[batch]);
    if (q_rows != 1 && q_rows != seq)
      throw_range(a.env(), "E_ARG", "attention: with seqStarts, expected qRows of 1 or seq (" + std::to_string(seq) + ")");
    args.seq_starts = starts.data;
  }
  auto qkv = a.f32_opt("qkv");
  if (qkv) {
    const size_t row = a.product({3, width});
    a.expect_length("qkv", qkv, a.product({rows, row}));
    args.q = qkv.data;
    args.k = qkv.data + (seq ? width : 0);
    args.v = qkv.data + (seq ? 2 * width : 0);
    args.q_row_stride = args.k_row_stride = args.v_row_stride = row;
    args.q_batch_stride = args.k_batch_stride = args.v_batch_stride = starts ? 0 : seq * row;
    // query: the queries of the rows computed, in place of qkv's q part ([batch, qRows, width]).
    if (auto query = a.f32_opt("query")) {
      if (starts && q_rows != 1) throw_range(a.env(), "E_ARG", "attention: with seqStarts, query needs qRows = 1");
      a.expect_length("query", query, a.product({batch, q_rows, width}));
      args.q = query.data;
      args.q_row_stride = width;
      args.q_batch_stride = q_rows * width;
    }
  } else {
    auto q = a.f32("q"), k = a.f32("k"), v = a.f32("v");
    const size_t n = a.product({rows, width});
    a.expect_length("q", q, n);
    a.expect_length("k", k, n);
    a.expect_length("v", v, n);
    args.q = q.data, args.k = k.data, args.v = v.data;
    args.q_row_stride = args.k_row_stride = args.v_row_stride = width;
    args.q_batch_stride = args.k_batch_stride = args.v_batch_stride = starts ? 0 : seq * width;
  }
  Napi::Value mask = a.value("keyMask");
  if (!mask.IsUndefined() && !mask.IsNull()) {
    const bool bytes = mask.IsTypedArray() && mask.As<Napi::TypedArray>().TypedArrayType() == napi_uint8_array;
    if (!bytes && !(mask.IsTypedArray() && mask.As<Napi::TypedArray>().TypedArrayType() == napi_int32_array))
      throw_type(a.env(), "E_DTYPE", "attention: expected Int32Array or Uint8Array for keyMask");
    if (bytes) {
      auto m = a.u8_opt("keyMask");
      a.expect_length("keyMask", m, rows);
      args.key_mask_u8 = m.data;
    } else {
      auto m = a.i32_opt("keyMask");
      a.expect_length("keyMask", m, rows);
      args.key_mask_i32 = m.data;
    }
  }
  auto out = a.f32("out");
  a.expect_length("out", out, a.product({starts && q_rows != 1 ? rows : a.product({batch, q_rows}), width}));
  args.out = out.data;
  args.out_row_stride = width;
  args.out_batch_stride = q_rows * width;
  args.batch = batch, args.seq = seq, args.heads = heads, args.head_dim = head_dim, args.q_rows = q_rows;
  args.scale = static_cast<float>(a.number("scale"));
  args.causal = a.flag("causal", false);
  return queue_job(a, [args] { return ck::attention_f32(args); });
}
CK_EXPORT("attention", Attention);

}  // namespace ck_binding
