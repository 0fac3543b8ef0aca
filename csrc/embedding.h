#pragma once
#include "common.h"

namespace ck {

// y[b,s,:] = (tokens[ids[b,s]] (+ types[type(b,s)])) + positions[pos(b,s)]   (BERT's order of adds)
//   pos(b,s)  = position_ids[b,s] when given, else position_offset + s
//   type(b,s) = type_ids[b,s] when given, else 0 (only when a type table is given)
// Every index is range-checked by the caller (the binding); the kernel re-checks and returns CK_ERR_ARG.
struct EmbeddingArgs {
  const int32_t* ids;           // [batch, seq]
  const float* tokens;          // [vocab, dim]
  size_t vocab;
  const float* positions;       // [max_positions, dim], optional
  size_t max_positions;
  const int32_t* position_ids;  // [batch, seq], optional
  size_t position_offset;
  const float* types;           // [n_types, dim], optional
  size_t n_types;
  const int32_t* type_ids;      // [batch, seq], optional
  float* y;                     // [batch, seq, dim]
  size_t rows;                  // batch·seq
  size_t seq, dim;
};
ck_status embedding_f32(const EmbeddingArgs& a);

// y[i,:] = x[index[i],:], index in [0, rows).
ck_status gather_rows_f32(const float* x, size_t rows, size_t dim, const int32_t* index, size_t n, float* y);

}  // namespace ck
