// Row gathers: the embedding sum of a text tower's input (token + position + token type) and a
// plain row gather (pick the class / end-of-text rows). Memory-bound; rows split across threads.
#ifndef CK_ISA_PASS
#include "embedding.h"

#define CK_SIMD_SELF "embedding.cpp"
#include "isa_passes.h"

namespace ck {

using EmbeddingFn = void (*)(const EmbeddingArgs&, size_t, size_t);
static const IsaTable<EmbeddingFn> kEmbedding = {pass_scalar::embedding_rows, CK_X86_OR_NULL(pass_avx2::embedding_rows),
                                                 CK_X86_OR_NULL(pass_avx512::embedding_rows),
                                                 CK_NEON_OR_NULL(pass_neon::embedding_rows)};

static bool in_range(const int32_t* idx, size_t n, size_t limit) {
  for (size_t i = 0; i < n; ++i)
    if (idx[i] < 0 || static_cast<size_t>(idx[i]) >= limit) return false;
  return true;
}

ck_status embedding_f32(const EmbeddingArgs& a) {
  if (!a.ids || !a.tokens || !a.y || !in_range(a.ids, a.rows, a.vocab)) return CK_ERR_ARG;
  if (a.positions) {
    if (a.position_ids ? !in_range(a.position_ids, a.rows, a.max_positions)
                       : (a.seq && a.position_offset + a.seq > a.max_positions))
      return CK_ERR_ARG;
  }
  if (a.types && a.type_ids && !in_range(a.type_ids, a.rows, a.n_types)) return CK_ERR_ARG;
  if (a.types && a.n_types == 0) return CK_ERR_ARG;
  EmbeddingFn fn = kEmbedding.pick();
  const size_t per_task = std::max<size_t>(1, 8192 / std::max<size_t>(a.dim, 1));
  pool().parallel_for((a.rows + per_task - 1) / per_task, [&](size_t t, int) {
    size_t r0 = t * per_task, r1 = std::min(a.rows, r0 + per_task);
    fn(a, r0, r1);
  });
  return CK_OK;
}

ck_status gather_rows_f32(const float* x, size_t rows, size_t dim, const int32_t* index, size_t n, float* y) {
  if (n && (!x || !index || !y || !in_range(index, n, rows))) return CK_ERR_ARG;
  for (size_t i = 0; i < n; ++i) std::memcpy(y + i * dim, x + static_cast<size_t>(index[i]) * dim, dim * sizeof(float));
  return CK_OK;
}

}  // namespace ck

#else  // ---- SIMD body, compiled once per ISA ----

static void embedding_rows(const EmbeddingArgs& a, size_t r0, size_t r1) {
  const size_t d = a.dim;
  for (size_t r = r0; r < r1; ++r) {
    const float* tok = a.tokens + static_cast<size_t>(a.ids[r]) * d;
    const float* pos = nullptr;
    if (a.positions) {
      size_t p = a.position_ids ? static_cast<size_t>(a.position_ids[r]) : a.position_offset + r % a.seq;
      pos = a.positions + p * d;
    }
    const float* typ = a.types ? a.types + (a.type_ids ? static_cast<size_t>(a.type_ids[r]) : 0) * d : nullptr;
    float* y = a.y + r * d;
    size_t i = 0;
    for (; i + V::W <= d; i += V::W) {
      V::F v = V::load(tok + i);  // BERT's order: (token + type) + position
      if (typ) v = V::add(v, V::load(typ + i));
      if (pos) v = V::add(v, V::load(pos + i));
      V::store(y + i, v);
    }
    if (i < d) {
      const int t = static_cast<int>(d - i);
      V::F v = V::load_tail(tok + i, t);
      if (typ) v = V::add(v, V::load_tail(typ + i, t));
      if (pos) v = V::add(v, V::load_tail(pos + i, t));
      V::store_tail(y + i, v, t);
    }
  }
}

#endif
