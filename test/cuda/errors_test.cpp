// Calls the contract says must fail. On the host: each op checks its arguments and returns
// CKC_ERR_ARG (CKC_ERR_UNSUPPORTED for a valid combination without a kernel) before queueing anything,
// with ckc_last_error() saying why. On the device: an index out of range writes zeros and makes the
// next ckc_stream_sync return CKC_ERR_DEVICE, once; the stream stays usable.
// These run after every other case: a library that crashes on one loses only what follows.
#include <cmath>

#include "harness.h"

namespace ckt {

namespace {

void expect(Ctx& ctx, const std::string& test, const std::string& what, ckc_status got, ckc_status want) {
  const std::string name = "errors." + test;
  if (!ctx.selected(name + " - " + what, true)) return;
  Check c(name, "-", what, std::string("status ") + ckc_status_name(want));
  if (got != want) {
    c.fail(fmt("returned %s instead", status_text(got).c_str()));
  } else {
    const char* msg = ckc_last_error();
    if (!msg || !*msg) c.fail("ckc_last_error() is empty after the failing call");
    else c.note(std::string("message: ") + msg);
  }
  ctx.report(c);
}

}  // namespace

void argument_error_tests(Ctx& ctx) {
  ckc_stream* s = ctx.s;
  Check setup("errors.setup", "-", "-", "allocations");
  // Scratch buffers large enough for every call below: the calls must fail on their arguments.
  Dev x(s, 1 << 16), w(s, 1 << 16), y(s, 1 << 16), aux(s, 1 << 16), ids(s, 1 << 12);
  if (!upload_poisoned(s, x, CKC_F32, setup) || !upload_poisoned(s, w, CKC_F32, setup) ||
      !upload_poisoned(s, y, CKC_F32, setup) || !upload_poisoned(s, aux, CKC_F32, setup) || !upload(s, ids, std::vector<uint8_t>(1 << 12, 0), setup) ||
      !sync(s, setup, "setup"))
    return ctx.report(setup);
  char* xb = x.as<char>();
  char* wb = w.as<char>();

  auto gemm_base = [&] {  // a valid bf16 call: 4 x 16 -> 8
    ckc_gemm_args a{};
    a.x = xb, a.ldx = 16, a.w = wb, a.ldw = 16, a.in_type = CKC_BF16;
    a.y = y.get(), a.ldy = 8, a.y_type = CKC_F32, a.m = 4, a.n = 8, a.k = 16, a.alpha = 1.0f;
    return a;
  };
  {
    ckc_gemm_args a = gemm_base();
    a.k = 12;
    expect(ctx, "gemm.k_not_multiple_of_8", "bf16 k=12", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.in_type = CKC_F16, a.k = 20, a.ldx = a.ldw = 24;
    expect(ctx, "gemm.k_not_multiple_of_8", "f16 k=20", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.ldx = 20;
    expect(ctx, "gemm.ldx_not_multiple_of_8", "bf16 ldx=20", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.ldw = 20;
    expect(ctx, "gemm.ldw_not_multiple_of_8", "bf16 ldw=20", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.x = xb + 8;
    expect(ctx, "gemm.x_misaligned", "bf16 x at +8 bytes", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.in_type = CKC_F16, a.w = wb + 2;
    expect(ctx, "gemm.w_misaligned", "f16 w at +2 bytes", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.x = nullptr;
    expect(ctx, "gemm.null_x", "bf16", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.w = nullptr;
    expect(ctx, "gemm.null_w", "bf16", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.y = nullptr;
    expect(ctx, "gemm.null_y", "bf16", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.in_type = CKC_F32, a.x = nullptr;
    expect(ctx, "gemm.null_x", "f32", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.in_type = static_cast<ckc_dtype>(7);
    expect(ctx, "gemm.bad_dtype", "in_type=7", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.y_type = static_cast<ckc_dtype>(9);
    expect(ctx, "gemm.bad_dtype", "y_type=9", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.epilogue = CKC_EPILOGUE_RESIDUAL, a.residual = nullptr, a.ldr = 8;
    expect(ctx, "gemm.residual_null", "epilogue residual, residual null", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.epilogue = static_cast<ckc_epilogue>(9);
    expect(ctx, "gemm.bad_epilogue", "epilogue=9", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.x_act = static_cast<ckc_activation>(5);
    expect(ctx, "gemm.bad_x_act", "x_act=5", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.in_type = CKC_F32, a.ldx = 8;
    expect(ctx, "gemm.ldx_below_k", "f32 k=16 ldx=8", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base(), a.ldy = 4;
    expect(ctx, "gemm.ldy_below_n", "n=8 ldy=4", ckc_gemm(s, &a), CKC_ERR_ARG);
    a = gemm_base();
    expect(ctx, "gemm.null_stream", "stream null", ckc_gemm(nullptr, &a), CKC_ERR_ARG);
    expect(ctx, "gemm.null_args", "args null", ckc_gemm(s, nullptr), CKC_ERR_ARG);
  }

  auto attn_base = [&] {  // a valid bf16 call: batch 1, seq 4, 1 head of 64
    ckc_attention_args a{};
    a.q = xb, a.k = wb, a.v = aux.get(), a.q_batch_stride = a.k_batch_stride = a.v_batch_stride = 4 * 64;
    a.q_row_stride = a.k_row_stride = a.v_row_stride = 64, a.dtype = CKC_BF16;
    a.out = y.get(), a.out_batch_stride = 4 * 64, a.out_row_stride = 64;
    a.batch = 1, a.seq = 4, a.heads = 1, a.head_dim = 64, a.q_rows = 4, a.scale = 0.125f;
    return a;
  };
  {
    ckc_attention_args a = attn_base();
    a.head_dim = 96, a.q_row_stride = a.k_row_stride = a.v_row_stride = a.out_row_stride = 96;
    a.q_batch_stride = a.k_batch_stride = a.v_batch_stride = a.out_batch_stride = 4 * 96;
    expect(ctx, "attention.head_dim_96", "no kernel for head dim 96", ckc_attention(s, &a), CKC_ERR_UNSUPPORTED);
    a = attn_base(), a.q_rows = 5;
    expect(ctx, "attention.q_rows_above_seq", "q_rows=5 seq=4", ckc_attention(s, &a), CKC_ERR_ARG);
    a = attn_base(), a.q = nullptr;
    expect(ctx, "attention.null_q", "bf16", ckc_attention(s, &a), CKC_ERR_ARG);
    a = attn_base(), a.out = nullptr;
    expect(ctx, "attention.null_out", "bf16", ckc_attention(s, &a), CKC_ERR_ARG);
    a = attn_base(), a.dtype = static_cast<ckc_dtype>(5);
    expect(ctx, "attention.bad_dtype", "dtype=5", ckc_attention(s, &a), CKC_ERR_ARG);
    expect(ctx, "attention.null_args", "args null", ckc_attention(s, nullptr), CKC_ERR_ARG);
  }

  auto ln_base = [&] {
    ckc_layer_norm_args a{};
    a.x = xb, a.x_type = CKC_BF16, a.gamma = w.as<float>(), a.beta = aux.as<float>(), a.y = y.get(), a.y_type = CKC_BF16;
    a.rows = 4, a.dim = 64, a.eps = 1e-5f;
    return a;
  };
  {
    ckc_layer_norm_args a = ln_base();
    a.x = nullptr;
    expect(ctx, "layer_norm.null_x", "bf16", ckc_layer_norm(s, &a), CKC_ERR_ARG);
    a = ln_base(), a.gamma = nullptr;
    expect(ctx, "layer_norm.null_gamma", "bf16", ckc_layer_norm(s, &a), CKC_ERR_ARG);
    a = ln_base(), a.y = nullptr;
    expect(ctx, "layer_norm.null_y", "bf16", ckc_layer_norm(s, &a), CKC_ERR_ARG);
    a = ln_base(), a.x_type = static_cast<ckc_dtype>(3);
    expect(ctx, "layer_norm.bad_dtype", "x_type=3", ckc_layer_norm(s, &a), CKC_ERR_ARG);
    a = ln_base(), a.y_type = static_cast<ckc_dtype>(4);
    expect(ctx, "layer_norm.bad_dtype", "y_type=4", ckc_layer_norm(s, &a), CKC_ERR_ARG);
  }

  {
    ckc_patch_embed_args a{};
    a.pixels = x.as<float>(), a.batch = 1, a.channels = 1, a.height = 30, a.width = 16, a.patch = 16;
    a.w = wb, a.w_type = CKC_F32, a.dim = 4, a.class_emb = aux.as<float>(), a.pos_emb = aux.as<float>(), a.y = y.get();
    a.y_type = CKC_F32;
    expect(ctx, "patch_embed.patch_not_dividing", "height=30 patch=16", ckc_patch_embed(s, &a), CKC_ERR_ARG);
    a.height = 32, a.pixels = nullptr;
    expect(ctx, "patch_embed.null_pixels", "f32", ckc_patch_embed(s, &a), CKC_ERR_ARG);
    a.pixels = x.as<float>(), a.w_type = static_cast<ckc_dtype>(6);
    expect(ctx, "patch_embed.bad_dtype", "w_type=6", ckc_patch_embed(s, &a), CKC_ERR_ARG);
  }
  {
    ckc_logits_args a{};
    a.a = nullptr, a.b = w.as<float>(), a.logits = y.as<float>(), a.n = 2, a.m = 2, a.d = 8, a.scale = 1.0f;
    expect(ctx, "logits.null_a", "f32", ckc_logits(s, &a), CKC_ERR_ARG);
    ckc_infonce_args ia{};
    ia.a = x.as<float>(), ia.b = w.as<float>(), ia.n = 2, ia.d = 8, ia.scale = 1.0f, ia.logits = nullptr;
    ia.result = aux.as<double>();
    expect(ctx, "infonce.null_logits", "f32", ckc_infonce(s, &ia), CKC_ERR_ARG);
  }
  {
    ckc_embedding_args a{};
    a.ids = ids.as<int32_t>(), a.rows = 4, a.seq = 4, a.dim = 8, a.tokens = wb, a.vocab = 4, a.positions = aux.get();
    a.max_positions = 4, a.table_type = CKC_F32, a.y = y.get(), a.y_type = CKC_F32;
    ckc_embedding_args b = a;
    b.ids = nullptr;
    expect(ctx, "embedding.null_ids", "f32", ckc_embedding(s, &b), CKC_ERR_ARG);
    b = a, b.tokens = nullptr;
    expect(ctx, "embedding.null_tokens", "f32", ckc_embedding(s, &b), CKC_ERR_ARG);
    b = a, b.table_type = static_cast<ckc_dtype>(8);
    expect(ctx, "embedding.bad_dtype", "table_type=8", ckc_embedding(s, &b), CKC_ERR_ARG);
    expect(ctx, "gather_rows.null_index", "f32", ckc_gather_rows(s, xb, 4, 8, CKC_F32, nullptr, 2, y.get()), CKC_ERR_ARG);
  }
  expect(ctx, "convert.bad_dtype", "dst_type=5", ckc_convert(s, xb, CKC_F32, y.get(), static_cast<ckc_dtype>(5), 8), CKC_ERR_ARG);
  expect(ctx, "convert.null_src", "f32->bf16", ckc_convert(s, nullptr, CKC_F32, y.get(), CKC_BF16, 8), CKC_ERR_ARG);
  expect(ctx, "unary.bad_op", "op=5", ckc_unary_op(s, static_cast<ckc_unary>(5), xb, y.get(), 8, CKC_F32), CKC_ERR_ARG);
  expect(ctx, "unary.null_x", "f32", ckc_unary_op(s, CKC_UNARY_GELU, nullptr, y.get(), 8, CKC_F32), CKC_ERR_ARG);
  expect(ctx, "add.null_b", "f32", ckc_add(s, xb, nullptr, 8, y.get(), 8, CKC_F32), CKC_ERR_ARG);
  expect(ctx, "softmax.null_x", "f32", ckc_softmax(s, nullptr, y.get(), 2, 4, CKC_F32), CKC_ERR_ARG);
  expect(ctx, "softmax.bad_dtype", "dtype=3", ckc_softmax(s, xb, y.get(), 2, 4, static_cast<ckc_dtype>(3)), CKC_ERR_ARG);
  expect(ctx, "l2_normalize.null_y", "f32", ckc_l2_normalize(s, xb, nullptr, 2, 4, CKC_F32), CKC_ERR_ARG);
  expect(ctx, "stream.null_sync", "stream null", ckc_stream_sync(nullptr), CKC_ERR_ARG);

  // Nothing above queued work: the stream syncs clean and y still holds its poison.
  if (ctx.selected("errors.nothing_queued", true)) {
    Check c("errors.nothing_queued", "-", "after the failing calls", "ckc_stream_sync CKC_OK, outputs untouched");
    std::vector<uint8_t> yh;
    if (sync(s, c, "after argument errors") && download(s, y, yh, c)) check_untouched(c, CKC_F32, yh, {});
    ctx.report(c);
  }
}

void device_error_tests(Ctx& ctx) {
  ckc_stream* s = ctx.s;
  struct Bad {
    const char* name;
    int field;  // 0 id, 1 position id, 2 type id, 3 gather index
    int32_t value;
  };
  const size_t rows = 8, dim = 24, vocab = 10, max_pos = 8, n_types = 2;
  const Bad bad[] = {{"embedding.id_out_of_range", 0, 10}, {"embedding.id_negative", 0, -1},
                     {"embedding.position_id_out_of_range", 1, 8}, {"embedding.type_id_out_of_range", 2, 2},
                     {"gather_rows.index_out_of_range", 3, 10}};
  for (const Bad& b : bad) {
    const std::string name = std::string("device_errors.") + b.name;
    if (!ctx.selected(name, true)) continue;
    const std::string shape = shape_str({{"rows", rows}, {"dim", dim}}) + fmt(",bad_row=3,value=%d", b.value);
    Check cs(name + ".sync", "f32", shape, "first ckc_stream_sync CKC_ERR_DEVICE, the next CKC_OK");
    Check cr(name + ".rows", "f32", shape, "bad row all zeros; others exact (+ 2u32 rounding for sums)");
    Rng r(seed_for(name, ctx.opt.seed));
    const auto tok = randn(CKC_F32, vocab * dim, r), pos = randn(CKC_F32, max_pos * dim, r), typ = randn(CKC_F32, n_types * dim, r);
    std::vector<int32_t> id(rows), pid(rows), tid(rows);
    for (size_t i = 0; i < rows; ++i) {
      id[i] = static_cast<int32_t>(r.below(vocab));
      pid[i] = static_cast<int32_t>(r.below(max_pos));
      tid[i] = static_cast<int32_t>(r.below(n_types));
    }
    std::vector<int32_t>& target = b.field == 1 ? pid : b.field == 2 ? tid : id;
    target[3] = b.value;
    auto bytes = [](const std::vector<int32_t>& v) {
      std::vector<uint8_t> o(v.size() * 4);
      std::memcpy(o.data(), v.data(), o.size());
      return o;
    };
    Dev dtok(s, tok.size() * 4, Guard::No), dpos(s, pos.size() * 4, Guard::No), dtyp(s, typ.size() * 4, Guard::No);
    Dev did(s, rows * 4, Guard::No), dpid(s, rows * 4, Guard::No), dtid(s, rows * 4, Guard::No), dy(s, rows * dim * 4);
    if (!upload(s, dtok, encode(CKC_F32, tok), cs) || !upload(s, dpos, encode(CKC_F32, pos), cs) ||
        !upload(s, dtyp, encode(CKC_F32, typ), cs) || !upload(s, did, bytes(id), cs) || !upload(s, dpid, bytes(pid), cs) ||
        !upload(s, dtid, bytes(tid), cs) || !upload_poisoned(s, dy, CKC_F32, cs) || !sync(s, cs, "setup")) {
      ctx.report(cs);
      continue;
    }
    ckc_status st;
    if (b.field == 3) {
      st = ckc_gather_rows(s, dtok.get(), vocab, dim, CKC_F32, did.as<int32_t>(), rows, dy.get());
    } else {
      ckc_embedding_args a{};
      a.ids = did.as<int32_t>(), a.rows = rows, a.seq = rows, a.dim = dim, a.tokens = dtok.get(), a.vocab = vocab;
      a.positions = dpos.get(), a.max_positions = max_pos, a.position_ids = dpid.as<int32_t>();
      a.types = dtyp.get(), a.n_types = n_types, a.type_ids = dtid.as<int32_t>();
      a.table_type = CKC_F32, a.y = dy.get(), a.y_type = CKC_F32;
      st = ckc_embedding(s, &a);
    }
    if (st != CKC_OK) {
      cs.fail("the op returned " + status_text(st) + " (the ids are on the device: only the sync can tell)");
      ctx.report(cs);
      continue;
    }
    const ckc_status first = ckc_stream_sync(s);
    if (first != CKC_ERR_DEVICE) cs.fail("first sync returned " + status_text(first));
    else cs.note(std::string("message: ") + (ckc_last_error() ? ckc_last_error() : ""));
    const ckc_status second = ckc_stream_sync(s);
    if (second != CKC_OK) cs.fail("second sync returned " + status_text(second) + " (the error must be reported once)");
    ctx.report(cs);
    std::vector<uint8_t> yh;
    if (download(s, dy, yh, cr)) {
      for (size_t row = 0; row < rows; ++row)
        for (size_t j = 0; j < dim; ++j) {
          const size_t i = row * dim + j;
          double want;
          double tol = 0;
          if (row == 3) want = 0.0;
          else if (b.field == 3) want = tok[size_t(id[row]) * dim + j];
          else {
            const double t = tok[size_t(id[row]) * dim + j], ty = typ[size_t(tid[row]) * dim + j], p = pos[size_t(pid[row]) * dim + j];
            want = t + ty + p;
            tol = 2 * kU32 * (std::fabs(t) + std::fabs(ty) + std::fabs(p));
          }
          cr.value(i, load_elem(CKC_F32, yh.data(), i), want, tol, std::fabs(want));
        }
      check_untouched(cr, CKC_F32, yh, std::vector<char>(rows * dim, 1));
    }
    ctx.report(cr);
  }
  // The stream still works after a device error.
  if (ctx.selected("device_errors.stream_usable", true)) {
    Check c("device_errors.stream_usable", "f32", "n=7", "exact (one fp32 add)");
    Rng r(seed_for("device_errors.stream_usable", ctx.opt.seed));
    const auto a = randn(CKC_F32, 7, r), b = randn(CKC_F32, 7, r);
    Dev da(s, 28, Guard::No), db(s, 28, Guard::No), dy(s, 28);
    std::vector<uint8_t> yh;
    if (upload(s, da, encode(CKC_F32, a), c) && upload(s, db, encode(CKC_F32, b), c) && upload_poisoned(s, dy, CKC_F32, c)) {
      const ckc_status st = ckc_add(s, da.get(), db.get(), 7, dy.get(), 7, CKC_F32);
      if (st != CKC_OK) c.fail("ckc_add: " + status_text(st));
      else if (sync(s, c, "add") && download(s, dy, yh, c))
        for (size_t i = 0; i < 7; ++i)
          c.value(i, load_elem(CKC_F32, yh.data(), i), double(static_cast<float>(a[i] + b[i])), 0.0, std::fabs(a[i] + b[i]));
    }
    ctx.report(c);
  }
}

}  // namespace ckt
