// Row gathers (csrc/embedding.cpp): the text tower's input embedding, token + token type + position,
// and a plain row gather. A warp per output row, grid-stride over the rows, 16-byte packs along the
// row when dim and the pointers allow.
// An index out of range cannot be reported from the kernel's thread: the row is written as zeros
// and kDeviceErrorIndex is set in the stream's error word, which ckc_stream_sync turns into
// CKC_ERR_DEVICE.
#include "reduce.cuh"

namespace ckc {
namespace {

constexpr unsigned kWarps = 8;

struct EmbeddingParams {
  const int32_t* ids;
  size_t rows, seq, dim;
  const void* tokens;
  size_t vocab;
  const void* positions;        // or null
  size_t max_positions;
  const int32_t* position_ids;  // or null: position_offset + t
  size_t position_offset;
  const void* types;            // or null
  size_t n_types;
  const int32_t* type_ids;      // or null: type 0
  void* y;
  ckc_dtype y_type;
  unsigned* error_word;
};

__device__ __forceinline__ bool index_ok(int32_t i, size_t limit) { return i >= 0 && static_cast<size_t>(i) < limit; }

// y[r] = (tokens[id] + types[type]) + positions[pos] in fp32, BERT's order as on the CPU, rounded
// once to y_type.
template <class TT, int P>
__global__ void __launch_bounds__(32 * kWarps) embedding_kernel(EmbeddingParams p) {
  const TT* tokens = static_cast<const TT*>(p.tokens);
  const TT* positions = static_cast<const TT*>(p.positions);
  const TT* types = static_cast<const TT*>(p.types);
  const unsigned lane = threadIdx.x & 31u;
  const size_t packs = p.dim / P;
  const size_t warps = static_cast<size_t>(gridDim.x) * kWarps;
  for (size_t r = static_cast<size_t>(blockIdx.x) * kWarps + threadIdx.x / 32; r < p.rows; r += warps) {
    // Every lane reads the same indices (one broadcast load each), so `ok` is uniform in the warp.
    const int32_t id = p.ids[r];
    bool ok = index_ok(id, p.vocab);
    const TT* tok = tokens + static_cast<size_t>(id < 0 ? 0 : id) * p.dim;
    const TT* pos = nullptr;
    if (positions) {
      size_t pi;
      if (p.position_ids) {
        const int32_t i = p.position_ids[r];
        ok = ok && index_ok(i, p.max_positions);
        pi = i < 0 ? 0 : static_cast<size_t>(i);
      } else {
        pi = p.position_offset + r % p.seq;
        ok = ok && pi < p.max_positions;
      }
      pos = positions + pi * p.dim;
    }
    const TT* typ = nullptr;
    if (types) {
      size_t ti = 0;
      if (p.type_ids) {
        const int32_t i = p.type_ids[r];
        ok = ok && index_ok(i, p.n_types);
        ti = i < 0 ? 0 : static_cast<size_t>(i);
      }
      typ = types + ti * p.dim;
    }
    if (!ok) {
      const float zero[P] = {};
      for (size_t k = lane; k < packs; k += 32) store_pack_as<P>(p.y_type, p.y, r * p.dim + k * P, zero);
      if (lane == 0) atomicOr(p.error_word, kDeviceErrorIndex);
      continue;
    }
    for (size_t k = lane; k < packs; k += 32) {
      float v[P], t[P];
      load_pack_ro<TT, P>(tok + k * P, v);
      if (typ) {
        load_pack_ro<TT, P>(typ + k * P, t);
#pragma unroll
        for (int j = 0; j < P; ++j) v[j] += t[j];
      }
      if (pos) {
        load_pack_ro<TT, P>(pos + k * P, t);
#pragma unroll
        for (int j = 0; j < P; ++j) v[j] += t[j];
      }
      store_pack_as<P>(p.y_type, p.y, r * p.dim + k * P, v);
    }
  }
}

// y[i] = x[index[i]], copied as words of W (the row's bytes are a multiple of sizeof(W)).
template <class W>
__global__ void __launch_bounds__(32 * kWarps) gather_rows_kernel(const W* x, size_t rows, size_t row_words,
                                                                  const int32_t* index, size_t n, W* y,
                                                                  unsigned* error_word) {
  const unsigned lane = threadIdx.x & 31u;
  const size_t warps = static_cast<size_t>(gridDim.x) * kWarps;
  for (size_t i = static_cast<size_t>(blockIdx.x) * kWarps + threadIdx.x / 32; i < n; i += warps) {
    const int32_t src = index[i];
    W* yr = y + i * row_words;
    if (!index_ok(src, rows)) {
      for (size_t k = lane; k < row_words; k += 32) yr[k] = W{};
      if (lane == 0) atomicOr(error_word, kDeviceErrorIndex);
      continue;
    }
    const W* xr = x + static_cast<size_t>(src) * row_words;
    for (size_t k = lane; k < row_words; k += 32) yr[k] = xr[k];
  }
}

ckc_status overflow(const char* what, size_t a, size_t b) {
  return fail(CKC_ERR_ARG, std::string(what) + " overflows (" + std::to_string(a) + "*" + std::to_string(b) + ")");
}

}  // namespace
}  // namespace ckc

extern "C" CKC_API ckc_status ckc_embedding(ckc_stream* s, const ckc_embedding_args* a) {
  using namespace ckc;
  if (ckc_status st = ready(s, "ckc_embedding")) return st;
  if (!a) return fail(CKC_ERR_ARG, "ckc_embedding: no arguments");
  if (!valid_dtype(a->table_type)) return fail(CKC_ERR_ARG, "ckc_embedding: table_type is not a dtype (f32, bf16 or f16)");
  if (!valid_dtype(a->y_type)) return fail(CKC_ERR_ARG, "ckc_embedding: y_type is not a dtype (f32, bf16 or f16)");
  if (a->rows == 0) return CKC_OK;
  if (a->dim == 0) return fail(CKC_ERR_ARG, "ckc_embedding: dim must be >= 1 (received 0)");
  if (!a->ids) return fail(CKC_ERR_ARG, "ckc_embedding: ids is null");
  if (!a->tokens) return fail(CKC_ERR_ARG, "ckc_embedding: tokens is null");
  if (!a->y) return fail(CKC_ERR_ARG, "ckc_embedding: y is null");
  if (a->vocab == 0) return fail(CKC_ERR_ARG, "ckc_embedding: vocab must be >= 1 (received 0)");
  size_t elems, bytes;
  if (!checked_mul(a->rows, a->dim, &elems) || !checked_mul(elems, 4, &bytes)) return overflow("ckc_embedding: rows*dim", a->rows, a->dim);
  if (!checked_mul(a->vocab, a->dim, &elems) || !checked_mul(elems, 4, &bytes)) return overflow("ckc_embedding: vocab*dim", a->vocab, a->dim);
  if (a->positions) {
    if (a->max_positions == 0) return fail(CKC_ERR_ARG, "ckc_embedding: max_positions must be >= 1 when positions is given");
    if (!checked_mul(a->max_positions, a->dim, &elems) || !checked_mul(elems, 4, &bytes))
      return overflow("ckc_embedding: max_positions*dim", a->max_positions, a->dim);
    if (!a->position_ids) {
      // Positions position_offset + t for t < seq: checked here once, as the CPU does.
      if (a->seq == 0) return fail(CKC_ERR_ARG, "ckc_embedding: seq must be >= 1 when positions come from position_offset");
      if (a->position_offset > a->max_positions || a->seq > a->max_positions - a->position_offset)
        return fail(CKC_ERR_ARG, "ckc_embedding: position_offset + seq (" + std::to_string(a->position_offset) + " + " +
                                     std::to_string(a->seq) + ") exceeds max_positions (" + std::to_string(a->max_positions) + ")");
    }
  }
  if (a->types) {
    if (a->n_types == 0) return fail(CKC_ERR_ARG, "ckc_embedding: n_types must be >= 1 when types is given");
    if (!checked_mul(a->n_types, a->dim, &elems) || !checked_mul(elems, 4, &bytes)) return overflow("ckc_embedding: n_types*dim", a->n_types, a->dim);
  }
  const EmbeddingParams p{a->ids,          a->rows,      a->seq,          a->dim,    a->tokens,
                          a->vocab,        a->positions, a->max_positions, a->position_ids, a->position_offset,
                          a->types,        a->n_types,   a->type_ids,     a->y,      a->y_type,
                          s->error_word};
  return with_dtype(a->table_type, [&](auto tag) -> ckc_status {
    using TT = decltype(tag);
    constexpr int P = pack_of<TT>();
    const bool vec = a->dim % P == 0 && aligned16(a->tokens) && aligned16(a->y) && (!a->positions || aligned16(a->positions)) &&
                     (!a->types || aligned16(a->types));
    const unsigned blocks = blocks_for(a->rows, kWarps);
    if (vec) embedding_kernel<TT, P><<<blocks, 32 * kWarps, 0, s->stream>>>(p);
    else embedding_kernel<TT, 1><<<blocks, 32 * kWarps, 0, s->stream>>>(p);
    return check_launch("ckc_embedding");
  });
}

extern "C" CKC_API ckc_status ckc_gather_rows(ckc_stream* s, const void* x, size_t rows, size_t dim, ckc_dtype dtype,
                                              const int32_t* index, size_t n, void* y) {
  using namespace ckc;
  if (ckc_status st = ready(s, "ckc_gather_rows")) return st;
  if (!valid_dtype(dtype)) return fail(CKC_ERR_ARG, "ckc_gather_rows: dtype is not a dtype (f32, bf16 or f16)");
  if (n == 0) return CKC_OK;
  if (dim == 0) return fail(CKC_ERR_ARG, "ckc_gather_rows: dim must be >= 1 (received 0)");
  if (rows == 0) return fail(CKC_ERR_ARG, "ckc_gather_rows: rows must be >= 1 (x has no row to gather)");
  if (!x || !index || !y) return fail(CKC_ERR_ARG, std::string("ckc_gather_rows: ") + (!x ? "x" : !index ? "index" : "y") + " is null");
  size_t elems, bytes;
  if (!checked_mul(rows, dim, &elems) || !checked_mul(elems, 4, &bytes)) return overflow("ckc_gather_rows: rows*dim", rows, dim);
  if (!checked_mul(n, dim, &elems) || !checked_mul(elems, 4, &bytes)) return overflow("ckc_gather_rows: n*dim", n, dim);
  const size_t row_bytes = dim * dtype_size(dtype);
  const unsigned blocks = blocks_for(n, kWarps);
  const uintptr_t addr = reinterpret_cast<uintptr_t>(x) | reinterpret_cast<uintptr_t>(y);
  if (row_bytes % 16 == 0 && addr % 16 == 0)
    gather_rows_kernel<uint4><<<blocks, 32 * kWarps, 0, s->stream>>>(static_cast<const uint4*>(x), rows, row_bytes / 16, index, n,
                                                                     static_cast<uint4*>(y), s->error_word);
  else if (row_bytes % 4 == 0 && addr % 4 == 0)
    gather_rows_kernel<unsigned><<<blocks, 32 * kWarps, 0, s->stream>>>(static_cast<const unsigned*>(x), rows, row_bytes / 4, index,
                                                                        n, static_cast<unsigned*>(y), s->error_word);
  else
    gather_rows_kernel<unsigned short><<<blocks, 32 * kWarps, 0, s->stream>>>(
        static_cast<const unsigned short*>(x), rows, row_bytes / 2, index, n, static_cast<unsigned short*>(y), s->error_word);
  return check_launch("ckc_gather_rows");
}
