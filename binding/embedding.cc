// embedding({ ids, tokens, vocab, positions?, maxPositions?, positionIds?, positionOffset?, types?, nTypes?,
//             typeIds?, y, batch, seq, dim }) and gatherRows({ x, rows, dim, index, y }) -> Promise<void>
// Indices are range-checked here: an out-of-range index would read outside the table.
#include "addon.h"
#include "embedding.h"

namespace ck_binding {

static void check_indices(Args& a, const char* name, const View<int32_t>& idx, size_t limit, const char* what) {
  for (size_t i = 0; i < idx.length; ++i)
    if (idx.data[i] < 0 || static_cast<size_t>(idx.data[i]) >= limit)
      throw_range(a.env(), "E_ARG", std::string(a.op()) + ": " + name + "[" + std::to_string(i) + "] = " +
                                        std::to_string(idx.data[i]) + " is outside " + what + " [0, " +
                                        std::to_string(limit) + ")");
}

static Napi::Value Embedding(const Napi::CallbackInfo& info) {
  Args a(info, "embedding");
  const size_t batch = a.size("batch"), seq = a.size("seq"), dim = a.size("dim");
  const size_t rows = a.product({batch, seq});
  ck::EmbeddingArgs e{};
  auto ids = a.i32("ids"), pos_ids = a.i32_opt("positionIds"), type_ids = a.i32_opt("typeIds");
  auto tokens = a.f32("tokens"), positions = a.f32_opt("positions"), types = a.f32_opt("types"), y = a.f32("y");
  e.vocab = a.size("vocab");
  a.expect_length("ids", ids, rows);
  a.expect_length("tokens", tokens, a.product({e.vocab, dim}));
  check_indices(a, "ids", ids, e.vocab, "the vocabulary");
  if (positions) {
    e.max_positions = a.size("maxPositions");
    a.expect_length("positions", positions, a.product({e.max_positions, dim}));
    if (pos_ids) {
      a.expect_length("positionIds", pos_ids, rows);
      check_indices(a, "positionIds", pos_ids, e.max_positions, "the position table");
    } else {
      e.position_offset = a.size_or("positionOffset", 0);
      if (seq && e.position_offset + seq > e.max_positions)
        throw_range(a.env(), "E_SHAPE", "embedding: positions " + std::to_string(e.position_offset) + ".." +
                                            std::to_string(e.position_offset + seq - 1) + " exceed the position table (" +
                                            std::to_string(e.max_positions) + " rows)");
    }
  }
  if (types) {
    e.n_types = a.size("nTypes");
    a.expect_length("types", types, a.product({e.n_types, dim}));
    if (e.n_types == 0) throw_range(a.env(), "E_SHAPE", "embedding: the type table is empty");
    if (type_ids) {
      a.expect_length("typeIds", type_ids, rows);
      check_indices(a, "typeIds", type_ids, e.n_types, "the token-type table");
    }
  }
  a.expect_length("y", y, a.product({rows, dim}));
  e.ids = ids.data, e.tokens = tokens.data, e.positions = positions.data, e.position_ids = pos_ids.data;
  e.types = types.data, e.type_ids = type_ids.data, e.y = y.data, e.rows = rows, e.seq = seq, e.dim = dim;
  return queue_job(a, [e] { return ck::embedding_f32(e); });
}
CK_EXPORT("embedding", Embedding);

static Napi::Value GatherRows(const Napi::CallbackInfo& info) {
  Args a(info, "gatherRows");
  const size_t rows = a.size("rows"), dim = a.size("dim");
  auto x = a.f32("x"), y = a.f32("y");
  auto index = a.i32("index");
  a.expect_length("x", x, a.product({rows, dim}));
  a.expect_length("y", y, a.product({index.length, dim}));
  check_indices(a, "index", index, rows, "the rows of x");
  return queue_job(a, [=] { return ck::gather_rows_f32(x.data, rows, dim, index.data, index.length, y.data); });
}
CK_EXPORT("gatherRows", GatherRows);

}  // namespace ck_binding
