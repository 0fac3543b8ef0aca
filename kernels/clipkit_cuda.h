/*
 * clipkit_cuda: the CUDA backend's C interface. The addon opens the library with dlopen the first
 * time CUDA is asked for and resolves these symbols by name, so:
 *   - plain C: no exceptions cross it, no C++ types, no Node or CUDA headers needed to include it;
 *   - every call returns a ckc_status; ckc_last_error() then says what happened in words (per
 *     thread, valid until the next failing call on that thread);
 *   - the interface is versioned: ckc_abi_version() must equal CKC_ABI_VERSION of the header the
 *     caller was built with, else the caller refuses the library (a stale one beside a new addon).
 *
 * Memory: every tensor pointer passed to an op is device memory from ckc_alloc (or an offset into
 * it), element strides count elements, not bytes. Ops are asynchronous on the stream they are given:
 * they return once queued; ckc_stream_sync waits, and reports errors the kernels found on the device
 * (an embedding id out of range). Ops check their arguments on the host and return CKC_ERR_ARG
 * (or CKC_ERR_UNSUPPORTED for a valid combination that has no kernel) before queueing anything.
 */
#ifndef CLIPKIT_CUDA_H_
#define CLIPKIT_CUDA_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(_WIN32)
#define CKC_API __declspec(dllexport)
#else
#define CKC_API __attribute__((visibility("default")))
#endif

/* Bumped whenever a struct or signature below changes. */
#define CKC_ABI_VERSION 1

typedef enum ckc_status {
  CKC_OK = 0,
  CKC_ERR_ARG = 1,            /* a bad argument: null pointer, shape, stride or alignment */
  CKC_ERR_NOMEM = 2,          /* device (or pinned host) memory exhausted */
  CKC_ERR_NO_DRIVER = 3,      /* no NVIDIA driver (libcuda) on this machine */
  CKC_ERR_DRIVER_TOO_OLD = 4, /* the driver supports an older CUDA than this build needs */
  CKC_ERR_NO_DEVICE = 5,      /* the driver sees no GPU, or not the one asked for */
  CKC_ERR_ARCH = 6,           /* the GPU's compute capability is older than the kernels need (8.0) */
  CKC_ERR_UNSUPPORTED = 7,    /* valid arguments for which no kernel exists (e.g. head dim 96) */
  CKC_ERR_NOT_INITIALISED = 8,/* an op before ckc_init succeeded */
  CKC_ERR_DEVICE = 9,         /* a kernel reported bad data on the device (see ckc_stream_sync) */
  CKC_ERR_CUDA = 10           /* any other CUDA runtime error; ckc_last_error names it */
} ckc_status;

typedef enum ckc_dtype { CKC_F32 = 0, CKC_BF16 = 1, CKC_F16 = 2 } ckc_dtype;

/* How products are formed. DEFAULT: tensor cores where the inputs are bf16/f16 (fp32 accumulate),
 * FFMA for fp32 inputs. EXACT_F32: fp32 inputs with FFMA products and fp32 accumulation, within
 * the CPU path's tolerance of a float64 reference. */
typedef enum ckc_precision { CKC_PRECISION_DEFAULT = 0, CKC_PRECISION_EXACT_F32 = 1 } ckc_precision;

typedef enum ckc_epilogue {
  CKC_EPILOGUE_NONE = 0,
  CKC_EPILOGUE_GELU = 1,       /* erf GELU */
  CKC_EPILOGUE_QUICK_GELU = 2, /* x·sigmoid(1.702x) */
  CKC_EPILOGUE_RESIDUAL = 3    /* + residual[m, n] */
} ckc_epilogue;

typedef enum ckc_activation { CKC_ACT_NONE = 0, CKC_ACT_GELU = 1, CKC_ACT_QUICK_GELU = 2 } ckc_activation;

typedef struct ckc_device_info {
  int device;                 /* ordinal */
  char name[256];
  int cc_major, cc_minor;     /* compute capability */
  int sm_count;
  size_t total_memory, free_memory;
  int driver_version;         /* CUDA version the driver supports, e.g. 13000 */
  int runtime_version;        /* CUDA version the library was built with */
  int gemm_path;              /* 90: wgmma + TMA (sm_90a), 80: mma.sync, from the compute capability */
} ckc_device_info;

/* One caller's queue of work: a CUDA stream, its device error word, its scratch. Not shared between
 * threads without the caller's own locking. */
typedef struct ckc_stream ckc_stream;

CKC_API int ckc_abi_version(void);
CKC_API const char* ckc_last_error(void);
CKC_API const char* ckc_status_name(ckc_status s);

/* Checks the driver, its version and the device, and makes the device current on this thread (and
 * on every thread that later calls an op). Safe to call again; info may be null. */
CKC_API ckc_status ckc_init(int device, ckc_device_info* info);

CKC_API ckc_status ckc_stream_create(ckc_stream** out);
CKC_API ckc_status ckc_stream_destroy(ckc_stream* s); /* waits for its work first */
/* Waits for everything queued on s; CKC_ERR_DEVICE when a kernel flagged bad data since the last sync. */
CKC_API ckc_status ckc_stream_sync(ckc_stream* s);

/* Device memory from the device's stream-ordered pool (cudaMallocAsync): usable by work queued on s
 * after this call; 256-byte aligned. ckc_free returns it to the pool once s's earlier work is done. */
CKC_API ckc_status ckc_alloc(ckc_stream* s, size_t bytes, void** out);
CKC_API ckc_status ckc_free(ckc_stream* s, void* p);
/* Asynchronous copies on s. Host memory need not be pinned (pageable copies are staged by CUDA). */
CKC_API ckc_status ckc_copy_to_device(ckc_stream* s, void* dst, const void* src, size_t bytes);
CKC_API ckc_status ckc_copy_to_host(ckc_stream* s, void* dst, const void* src, size_t bytes);
CKC_API ckc_status ckc_copy_device(ckc_stream* s, void* dst, const void* src, size_t bytes);
/* dst[i] = (dst_type) src[i] for n elements (round to nearest even); e.g. fp32 weights to bf16.
 * src and dst may be the same buffer only when the types match; any other overlap is CKC_ERR_ARG. */
CKC_API ckc_status ckc_convert(ckc_stream* s, const void* src, ckc_dtype src_type, void* dst, ckc_dtype dst_type, size_t n);

/* ---- GEMM: y[m, n] = epilogue(alpha · act(x)[m, k] · w[n, k]ᵀ + bias[n]) ----
 * w is nn.Linear's [out, in] layout, row-major with row stride ldw. x and w share a dtype: bf16 or
 * f16 run on tensor cores, f32 on FFMA. y and residual (which may alias y) have y_type. Tensor-core
 * paths need k, ldx and ldw to be multiples of 8 and x, w 16-byte aligned (TMA's rules); else
 * CKC_ERR_ARG. bias is fp32. Accumulation is fp32 on every path. A residual without the RESIDUAL
 * epilogue, a residual aliasing y with ldr != ldy, and EXACT_F32 with bf16/f16 inputs are CKC_ERR_ARG. */
typedef struct ckc_gemm_args {
  const void* x; size_t ldx;
  const void* w; size_t ldw;
  ckc_dtype in_type;           /* x and w */
  const float* bias;           /* [n] or null */
  ckc_epilogue epilogue;
  const void* residual; size_t ldr; /* [m, n], y_type; CKC_EPILOGUE_RESIDUAL only */
  void* y; size_t ldy;
  ckc_dtype y_type;
  size_t m, n, k;
  float alpha;                 /* 1 for layers */
  ckc_activation x_act;        /* x is read through it, as it is loaded */
  ckc_precision precision;
} ckc_gemm_args;
CKC_API ckc_status ckc_gemm(ckc_stream* s, const ckc_gemm_args* a);

/* ---- Fused attention: the CPU path's contract (csrc/attention.h), on the GPU ----
 *   out[b, i, h·D : (h+1)·D] = softmax_j(scale · q_i·k_j + mask) · v_j
 * q, k, v, out share dtype (bf16/f16: tensor cores, fp32 accumulate and softmax; f32: FFMA). Rows
 * through strides, so the packed QKV output of one GEMM is read in place. key_mask[b, j] == 0 drops
 * key j (weight exactly 0); causal: query i sees keys j <= i; a query with no key left gets 0.
 * Only the first q_rows query rows are computed. Ragged batches (seq_starts, [batch + 1] on the
 * device, increasing from 0): sequence b is rows [seq_starts[b], seq_starts[b+1]) and seq is the
 * longest; the key mask then has one entry per row; with q_rows == 1 sequence b's first row goes to
 * out row b (and a nonzero q_batch_stride means q holds only those rows, sequence b's at
 * q + b·q_batch_stride); otherwise every row to the out row of its index. head_dim 64, 80 or 128.
 * bf16/f16 with q_rows > 1 (the tensor-core kernel) needs q, k, v, out 16-byte aligned and their row
 * (and, for batch > 1 without seq_starts, batch) strides multiples of 8 elements. */
typedef struct ckc_attention_args {
  const void* q; const void* k; const void* v;
  size_t q_batch_stride, q_row_stride;
  size_t k_batch_stride, k_row_stride;
  size_t v_batch_stride, v_row_stride;
  ckc_dtype dtype;
  const int32_t* key_mask;     /* optional, nonzero = keep */
  const int32_t* seq_starts;   /* optional */
  void* out; size_t out_batch_stride, out_row_stride;
  size_t batch, seq, heads, head_dim, q_rows;
  float scale;
  int causal;
  ckc_precision precision;
} ckc_attention_args;
CKC_API ckc_status ckc_attention(ckc_stream* s, const ckc_attention_args* a);

/* ---- Layer norm fused with the residual add (csrc/layer_norm.h) ----
 * s = x (+ residual); y = (s − mean) / sqrt(var + eps) · gamma + beta; sum receives s when given.
 * x, residual and sum have x_type; y has y_type; gamma, beta fp32; statistics in fp32. y may alias
 * x or residual; sum may alias x. */
typedef struct ckc_layer_norm_args {
  const void* x; const void* residual; ckc_dtype x_type;
  const float* gamma; const float* beta;
  void* y; ckc_dtype y_type;
  void* sum;
  size_t rows, dim;
  float eps;
} ckc_layer_norm_args;
CKC_API ckc_status ckc_layer_norm(ckc_stream* s, const ckc_layer_norm_args* a);

/* ---- ViT patch embedding (csrc/patch_embed.h) ----
 * y[b, 0, :] = class_emb + pos_emb[0]; y[b, 1+q, :] = W · patch_q(pixels[b]) + bias + pos_emb[1+q].
 * pixels fp32 NCHW; w the conv weight [dim, channels·patch·patch] in w_type (bf16/f16: tensor
 * cores; f32: FFMA); bias, class_emb, pos_emb fp32; y in y_type. patch 14, 16 or 32 (any that
 * divides height and width works). */
typedef struct ckc_patch_embed_args {
  const float* pixels; size_t batch, channels, height, width, patch;
  const void* w; ckc_dtype w_type; size_t dim;
  const float* bias; const float* class_emb; const float* pos_emb;
  void* y; ckc_dtype y_type;
  ckc_precision precision;
} ckc_patch_embed_args;
CKC_API ckc_status ckc_patch_embed(ckc_stream* s, const ckc_patch_embed_args* a);

/* ---- Normalised-matmul logits (csrc/logits.h): logits[i, j] = scale · Â[i]·B̂[j] ----
 * a [n, d], b [m, d] fp32; zero rows normalise to zeros; norms written when given. FFMA products. */
typedef struct ckc_logits_args {
  const float* a; const float* b; float* logits;
  float* a_norm; float* b_norm;
  size_t n, m, d;
  float scale;
} ckc_logits_args;
CKC_API ckc_status ckc_logits(ckc_stream* s, const ckc_logits_args* a);

/* ---- Symmetric softmax-InfoNCE (csrc/infonce.h), loss and gradients ----
 * From the embeddings a, b [n, d] (fp32): logits, d_logits, d_a, d_b (each optional but logits),
 * and result[3] = { loss, dL/dscale, dL/dlog_scale } in device memory (double). */
typedef struct ckc_infonce_args {
  const float* a; const float* b; size_t n, d;
  float scale;
  float* logits; float* d_logits; float* d_a; float* d_b;
  double* result;
} ckc_infonce_args;
CKC_API ckc_status ckc_infonce(ckc_stream* s, const ckc_infonce_args* a);

/* ---- Token embedding (csrc/embedding.h) ----
 * y[r, :] = tokens[ids[r]] (+ types[type(r)]) + positions[pos(r)], r = b·seq + t;
 * pos = position_ids[r] if given, else position_offset + t; type = type_ids[r] if given, else 0.
 * Tables in table_type, y in y_type. An index out of range writes zeros and makes the next
 * ckc_stream_sync return CKC_ERR_DEVICE (the caller checks ids on the host first). */
typedef struct ckc_embedding_args {
  const int32_t* ids; size_t rows, seq, dim;
  const void* tokens; size_t vocab;
  const void* positions; size_t max_positions;
  const int32_t* position_ids; size_t position_offset;
  const void* types; size_t n_types;
  const int32_t* type_ids;
  ckc_dtype table_type;
  void* y; ckc_dtype y_type;
} ckc_embedding_args;
CKC_API ckc_status ckc_embedding(ckc_stream* s, const ckc_embedding_args* a);
/* y[i, :] = x[index[i], :] (rows of x in dtype); an index out of range as for ckc_embedding. */
CKC_API ckc_status ckc_gather_rows(ckc_stream* s, const void* x, size_t rows, size_t dim, ckc_dtype dtype,
                                   const int32_t* index, size_t n, void* y);

/* ---- Elementwise (csrc/elementwise.h, l2_normalize.h, softmax.h); y may alias x ---- */
typedef enum ckc_unary { CKC_UNARY_GELU = 0, CKC_UNARY_QUICK_GELU = 1 } ckc_unary;
CKC_API ckc_status ckc_unary_op(ckc_stream* s, ckc_unary op, const void* x, void* y, size_t n, ckc_dtype dtype);
/* y = a + b, b of n elements or b_period elements repeated along a; y may alias a, not a repeated b. */
CKC_API ckc_status ckc_add(ckc_stream* s, const void* a, const void* b, size_t b_period, void* y, size_t n, ckc_dtype dtype);
/* Rows of x [rows, dim] divided by their L2 norm (a zero row stays zero). */
CKC_API ckc_status ckc_l2_normalize(ckc_stream* s, const void* x, void* y, size_t rows, size_t dim, ckc_dtype dtype);
/* Row softmax of x [rows, dim], max subtracted. */
CKC_API ckc_status ckc_softmax(ckc_stream* s, const void* x, void* y, size_t rows, size_t dim, ckc_dtype dtype);

#ifdef __cplusplus
}
#endif
#endif /* CLIPKIT_CUDA_H_ */
