// ckc_attention: fused multi-head attention on the GPU, the contract of csrc/attention.h.
//
// Three kernels behind one entry point:
//   - bf16 / f16, q_rows > 1: flash attention (one pass, online softmax in fp32) on mma.sync
//     m16n8k16 tensor cores. A CTA of 4 warps owns 64 query rows of one (batch, head), 16 per warp;
//     K / V tiles of 64 keys stream through shared memory with cp.async, double-buffered.
//   - f32, q_rows > 1: the same algorithm with FFMA products and expf, for the exact mode.
//   - q_rows == 1 (any dtype): one CTA per (batch, head), one query row against every key.
// Masks, causal order, ragged sequences and the all-dropped row (output 0) follow the CPU path.
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <string>

#include "common.cuh"

namespace {

// Everything a kernel needs, by value. Strides in elements; offsets are formed in size_t.
struct AttnParams {
  const void* q;
  const void* k;
  const void* v;
  void* out;
  size_t qbs, qrs, kbs, krs, vbs, vrs, obs, ors;
  const int32_t* key_mask;    // nonzero = keep; [batch, seq], or one entry per row when ragged
  const int32_t* seq_starts;  // [batch + 1] on the device, or null
  int batch, seq, heads, head_dim, q_rows, q_tiles;
  int causal;
  float scale;  // f32 and row kernels: scores are (scale·q)·k, as on the CPU
  float sl2;    // tensor-core kernel: |scale|·log2(e), > 0 (exp2 of scaled scores)
  int neg;      // tensor-core kernel: scale < 0, the Q fragments are negated instead
};

// Where sequence b lives. A fixed-size batch: rows [0, seq) of slab b. Ragged: rows
// [seq_starts[b], seq_starts[b+1]) of one stack of rows; the caller guarantees the starts.
struct SeqView {
  size_t row0;      // first row (ragged) or 0
  int len;          // keys (and query rows) of the sequence
  size_t q_off, k_off, v_off, o_off, mask0;  // element offsets of row 0 (head offset not included)
};

__device__ __forceinline__ SeqView seq_view(const AttnParams& p, int b) {
  SeqView s;
  if (p.seq_starts) {
    const int s0 = p.seq_starts[b], s1 = p.seq_starts[b + 1];
    s.row0 = static_cast<size_t>(s0);
    s.len = s1 - s0;
    // q_rows == 1 with a q batch stride: q holds only the rows computed, sequence b's at b·qbs.
    s.q_off = (p.q_rows == 1 && p.qbs) ? static_cast<size_t>(b) * p.qbs : s.row0 * p.qrs;
    s.k_off = s.row0 * p.krs;
    s.v_off = s.row0 * p.vrs;
    s.o_off = p.q_rows == 1 ? static_cast<size_t>(b) * p.ors : s.row0 * p.ors;
    s.mask0 = s.row0;
  } else {
    s.row0 = 0;
    s.len = p.seq;
    s.q_off = static_cast<size_t>(b) * p.qbs;
    s.k_off = static_cast<size_t>(b) * p.kbs;
    s.v_off = static_cast<size_t>(b) * p.vbs;
    s.o_off = static_cast<size_t>(b) * p.obs;
    s.mask0 = static_cast<size_t>(b) * static_cast<size_t>(p.seq);
  }
  return s;
}

// ---------------------------------------------------------------------------------------------
// PTX wrappers (sm_80+)

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}
// 16 bytes global -> shared; bytes past src_bytes (0 or 16) are zero-filled and not read.
__device__ __forceinline__ void cp_async16(void* dst, const void* src, bool ok) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(ok ? 16 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async4(void* dst, const void* src, bool ok) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(ok ? 4 : 0)
               : "memory");
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::: "memory"); }
__device__ __forceinline__ void cp_async_wait_all() { asm volatile("cp.async.wait_group 0;\n" ::: "memory"); }

// Four 8x8 b16 matrices; lanes 8i..8i+7 give the row addresses of matrix i, register i receives
// matrix i with lane l holding row l/4, columns 2(l%4), 2(l%4)+1 (.trans: the transpose's).
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], uint32_t addr) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(addr));
}

// d += a·b, m16n8k16, fp32 accumulate. a: A fragment (rows g / g+8, k 2t.. and 2t+8..), b0 b1: B
// fragment (k 2t.. and 2t+8.., column g); d: rows g (d0 d1) and g+8 (d2 d3), columns 2t, 2t+1.
template <class T> __device__ __forceinline__ void mma16816(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1);
template <>
__device__ __forceinline__ void mma16816<__nv_bfloat16>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}
template <>
__device__ __forceinline__ void mma16816<__half>(float (&d)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

// Two values rounded to nearest even, lo in the low half (the lower column / k index).
template <class T> __device__ __forceinline__ uint32_t pack2(float lo, float hi);
template <>
__device__ __forceinline__ uint32_t pack2<__nv_bfloat16>(float lo, float hi) {
  __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}
template <>
__device__ __forceinline__ uint32_t pack2<__half>(float lo, float hi) {
  __half2 v = __floats2half2_rn(lo, hi);
  return *reinterpret_cast<uint32_t*>(&v);
}

// 2^x; ex2.approx(-inf) = +0, which is how dropped keys get weight exactly 0.
__device__ __forceinline__ float exp2_approx(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// ---------------------------------------------------------------------------------------------
// bf16 / f16 tensor-core flash attention

constexpr int kTcRows = 64;     // query rows per CTA, 16 per warp
constexpr int kTcKeys = 64;     // keys per K / V tile
constexpr int kTcThreads = 128;

template <int D>
struct TcShape {
  static_assert(D % 16 == 0, "head_dim must be a multiple of 16");
  // Shared-memory rows padded by 16 bytes: row pitches of 144 / 176 / 272 bytes put the 8 rows of
  // every ldmatrix phase on 8 distinct 16-byte bank groups (pitch/16 is odd), for 64, 80 and 128
  // alike; an XOR swizzle would need a power-of-two number of 16-byte chunks per row (not 80's 10).
  static constexpr int RS = D + 8;
  static constexpr int TILE = kTcKeys * RS;  // elements of one K or V tile; a Q tile is the same size
  static constexpr int CH = D / 8;           // 16-byte chunks per row
  static constexpr int KSTEPS = D / 16;      // k steps of Q·Kᵀ; also pairs of 8-wide O tiles
  static constexpr int LOADS = kTcKeys * CH / kTcThreads;  // chunks per thread per tile (D/16)
  static_assert(kTcKeys * CH % kTcThreads == 0, "tile chunks must split evenly over the threads");
  // K[2] | V[2] | mask[2][64]; Q aliases K[1] until it is in registers.
  static constexpr size_t SMEM = 4 * static_cast<size_t>(TILE) * 2 + 2 * kTcKeys * sizeof(int);
};

template <class T, int D>
__global__ void __launch_bounds__(kTcThreads) attn_tc_kernel(const AttnParams p) {
  using S = TcShape<D>;
  extern __shared__ __align__(128) unsigned char smem_raw[];
  T* const sK = reinterpret_cast<T*>(smem_raw);
  T* const sV = sK + 2 * S::TILE;
  int* const sMask = reinterpret_cast<int*>(sV + 2 * S::TILE);
  T* const sQ = sK + S::TILE;

  // Block -> (q tile, head, batch); q tiles of one head are adjacent so they share K / V in L2.
  const int bid = blockIdx.x;
  int tile = bid % p.q_tiles;
  const int bh = bid / p.q_tiles;
  const int h = bh % p.heads, b = bh / p.heads;
  if (p.causal) tile = p.q_tiles - 1 - tile;  // the longest causal tiles start first

  const SeqView sv = seq_view(p, b);
  const int len = sv.len;
  const int nq = min(p.q_rows, len);
  const int q0 = tile * kTcRows;
  if (q0 >= nq) return;  // past this sequence's end (uniform over the CTA)
  // Keys any computed row can see; with causal, none past the tile's last computed row.
  const int key_end = p.causal ? min(len, min(q0 + kTcRows, nq)) : len;
  const int n_tiles = (key_end + kTcKeys - 1) / kTcKeys;

  const size_t hoff = static_cast<size_t>(h) * D;
  const T* const qb = static_cast<const T*>(p.q) + sv.q_off + hoff;
  const T* const kb = static_cast<const T*>(p.k) + sv.k_off + hoff;
  const T* const vb = static_cast<const T*>(p.v) + sv.v_off + hoff;
  T* const ob = static_cast<T*>(p.out) + sv.o_off + hoff;
  const int32_t* const mask = p.key_mask ? p.key_mask + sv.mask0 : nullptr;

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  const int g = lane >> 2, t4 = lane & 3;

  // Rows past key_end (and Q rows past nq) are zero-filled, never read: no out-of-bounds access,
  // and V rows that P·V touches with weight 0 hold zeros, not whatever follows the sequence.
  auto load_kv = [&](int st, int j0) {
    T* const dk = sK + st * S::TILE;
    T* const dv = sV + st * S::TILE;
#pragma unroll 1
    for (int i = 0; i < S::LOADS; ++i) {
      const int c = tid + i * kTcThreads;
      const int r = c / S::CH, ch = c % S::CH;
      const int j = j0 + r;
      const bool ok = j < key_end;
      const size_t jr = ok ? static_cast<size_t>(j) : 0;
      cp_async16(dk + r * S::RS + ch * 8, kb + jr * p.krs + ch * 8, ok);
      cp_async16(dv + r * S::RS + ch * 8, vb + jr * p.vrs + ch * 8, ok);
    }
    if (mask && tid < kTcKeys) {
      const int j = j0 + tid;
      const bool ok = j < key_end;
      cp_async4(sMask + st * kTcKeys + tid, mask + (ok ? j : 0), ok);  // past the end: 0 = dropped
    }
  };

#pragma unroll 1
  for (int i = 0; i < S::LOADS; ++i) {
    const int c = tid + i * kTcThreads;
    const int r = c / S::CH, ch = c % S::CH;
    const int row = q0 + r;
    const bool ok = row < nq;
    cp_async16(sQ + r * S::RS + ch * 8, qb + (ok ? static_cast<size_t>(row) : 0) * p.qrs + ch * 8, ok);
  }
  load_kv(0, 0);
  cp_async_commit();

  const bool warp_active = q0 + 16 * warp < nq;  // a warp whose 16 rows are all past nq only loads
  const int row_lo = q0 + 16 * warp + g;          // this thread's rows: row_lo and row_lo + 8

  uint32_t qf[S::KSTEPS][4];
  float o[2 * S::KSTEPS][4];
#pragma unroll
  for (int n = 0; n < 2 * S::KSTEPS; ++n)
#pragma unroll
    for (int e = 0; e < 4; ++e) o[n][e] = 0.f;
  // Running max of the scaled scores (log2 units) and the thread's partial row sums.
  float m_lo = -INFINITY, m_hi = -INFINITY, l_lo = 0.f, l_hi = 0.f;

  // ldmatrix lane offsets. K (B of Q·Kᵀ, non-transposed): matrices (keys +0, dims +0), (+0, +8),
  // (+8, +0), (+8, +8) give the B fragments of two 8-key tiles. V (B of P·V, transposed): matrices
  // (keys +0, dims +0), (+8, +0), (+0, +8), (+8, +8) give the B fragments of two 8-dim tiles.
  // Q (A, non-transposed): (rows +0, dims +0), (+8, +0), (+0, +8), (+8, +8) = a0a1, a2a3, a4a5, a6a7.
  const int k_row = (lane & 7) + ((lane >> 4) << 3), k_col = ((lane >> 3) & 1) << 3;
  const int v_row = (lane & 7) + (((lane >> 3) & 1) << 3), v_col = (lane >> 4) << 3;

  for (int t = 0; t < n_tiles; ++t) {
    const int st = t & 1, j0 = t * kTcKeys;
    // Tile t has landed for every thread, and every warp is done with tile t-1 (whose stage the
    // next load overwrites).
    cp_async_wait_all();
    __syncthreads();
    if (t == 0) {
      if (warp_active) {
        const T* qw = sQ + (16 * warp + v_row) * S::RS + v_col;  // Q's matrix order is V's
#pragma unroll
        for (int kk = 0; kk < S::KSTEPS; ++kk) {
          ldsm_x4(qf[kk], smem_addr(qw + kk * 16));
          if (p.neg) {  // scale < 0: negate Q exactly (sign bits) and use |scale|
#pragma unroll
            for (int e = 0; e < 4; ++e) qf[kk][e] ^= 0x80008000u;
          }
        }
      }
      if (n_tiles > 1) __syncthreads();  // Q's smem is K stage 1, which the next load fills
    }
    if (t + 1 < n_tiles) {
      load_kv(st ^ 1, j0 + kTcKeys);
      cp_async_commit();
    }

    // Keys of this tile that are kept: below key_end and, with a mask, nonzero.
    const int kv_valid = min(kTcKeys, key_end - j0);  // >= 1
    const uint32_t lim_lo = kv_valid >= 32 ? ~0u : ((1u << kv_valid) - 1u);
    const uint32_t lim_hi = kv_valid >= 64 ? ~0u : kv_valid <= 32 ? 0u : ((1u << (kv_valid - 32)) - 1u);
    uint32_t keep_lo = lim_lo, keep_hi = lim_hi;
    if (mask) {
      const int* mk = sMask + st * kTcKeys;
      keep_lo &= __ballot_sync(0xffffffffu, mk[lane] != 0);
      keep_hi &= __ballot_sync(0xffffffffu, mk[lane + 32] != 0);
      // A dropped key inside the tile: zero its V row, so that its weight 0 gives exactly 0 even
      // when the row holds Inf / NaN (the CPU leaves such keys out). Uniform over the CTA: every
      // warp reads the same mask.
      if ((keep_lo != lim_lo) | (keep_hi != lim_hi)) {
        T* const dv = sV + st * S::TILE;
#pragma unroll
        for (int i = 0; i < S::LOADS; ++i) {
          const int c = tid + i * kTcThreads;
          const int r = c / S::CH, ch = c % S::CH;
          const uint32_t kept = (r < 32 ? keep_lo >> r : keep_hi >> (r - 32)) & 1u;
          if (!kept) *reinterpret_cast<uint4*>(dv + r * S::RS + ch * 8) = make_uint4(0u, 0u, 0u, 0u);
        }
        __syncthreads();
      }
    }
    if (!warp_active) continue;

    // 16-key segments this warp needs: keys past kv_valid are dropped, and with causal keys past
    // the warp's last row too, so their S tiles are masked without being computed.
    int wlim = kv_valid;
    if (p.causal) wlim = min(wlim, q0 + 16 * warp + 16 - j0);
    const int nseg = (wlim + 15) >> 4;  // 1..4

    const T* const kt = sK + st * S::TILE;
    const T* const vt = sV + st * S::TILE;

    // S = Q·Kᵀ, 16 rows × 64 keys per warp: s[n] is keys n·8 .. n·8+7.
    float s[8][4];
#pragma unroll
    for (int n = 0; n < 8; ++n)
#pragma unroll
      for (int e = 0; e < 4; ++e) s[n][e] = 0.f;
#pragma unroll
    for (int np = 0; np < 4; ++np) {
      if (np < nseg) {
        const uint32_t base = smem_addr(kt + (np * 16 + k_row) * S::RS + k_col);
#pragma unroll
        for (int kk = 0; kk < S::KSTEPS; ++kk) {
          uint32_t bf[4];
          ldsm_x4(bf, base + kk * 16 * sizeof(T));
          mma16816<T>(s[2 * np], qf[kk], bf[0], bf[1]);
          mma16816<T>(s[2 * np + 1], qf[kk], bf[2], bf[3]);
        }
      }
    }

    // Dropped scores to -inf: masked or past key_end keys, causal j > i, uncomputed segments.
    const bool need_mask = (keep_lo != ~0u) | (keep_hi != ~0u) | (p.causal && j0 + kTcKeys - 1 > q0 + 16 * warp);
    if (need_mask) {
      const uint32_t kl = keep_lo >> (2 * t4), kh = keep_hi >> (2 * t4);
      const int d_lo = p.causal ? row_lo - (j0 + 2 * t4) : INT_MAX;  // keep column offsets <= d
      const int d_hi = p.causal ? row_lo + 8 - (j0 + 2 * t4) : INT_MAX;
#pragma unroll
      for (int n = 0; n < 8; ++n)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int off = n * 8 + (e & 1);  // column - 2·t4
          const bool kept = (((n < 4 ? kl : kh) >> ((n & 3) * 8 + (e & 1))) & 1u) && off <= ((e < 2) ? d_lo : d_hi);
          if (!kept) s[n][e] = -INFINITY;
        }
    }

    // Online softmax: the quad of threads sharing a row reduces its max with two shuffles; the row
    // sums stay per thread (the rescale factor is the quad's) and are reduced once at the end.
    float mx_lo = -INFINITY, mx_hi = -INFINITY;
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      mx_lo = fmaxf(mx_lo, fmaxf(s[n][0], s[n][1]));
      mx_hi = fmaxf(mx_hi, fmaxf(s[n][2], s[n][3]));
    }
    mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, 1));
    mx_lo = fmaxf(mx_lo, __shfl_xor_sync(0xffffffffu, mx_lo, 2));
    mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, 1));
    mx_hi = fmaxf(mx_hi, __shfl_xor_sync(0xffffffffu, mx_hi, 2));
    // sl2 > 0, so the max of the scaled scores is the scaled max; -inf stays -inf.
    const float mn_lo = fmaxf(m_lo, mx_lo * p.sl2), mn_hi = fmaxf(m_hi, mx_hi * p.sl2);
    // A row with no visible key yet keeps m = -inf and subtracts 0: its p are e^-inf = 0.
    const float ms_lo = mn_lo == -INFINITY ? 0.f : mn_lo, ms_hi = mn_hi == -INFINITY ? 0.f : mn_hi;
    const float al_lo = exp2_approx(m_lo - ms_lo), al_hi = exp2_approx(m_hi - ms_hi);  // 0 while m = -inf
    m_lo = mn_lo;
    m_hi = mn_hi;
    float sum_lo = 0.f, sum_hi = 0.f;
#pragma unroll
    for (int n = 0; n < 8; ++n) {
      s[n][0] = exp2_approx(fmaf(s[n][0], p.sl2, -ms_lo));
      s[n][1] = exp2_approx(fmaf(s[n][1], p.sl2, -ms_lo));
      s[n][2] = exp2_approx(fmaf(s[n][2], p.sl2, -ms_hi));
      s[n][3] = exp2_approx(fmaf(s[n][3], p.sl2, -ms_hi));
      sum_lo += s[n][0] + s[n][1];
      sum_hi += s[n][2] + s[n][3];
    }
    l_lo = fmaf(l_lo, al_lo, sum_lo);
    l_hi = fmaf(l_hi, al_hi, sum_hi);
#pragma unroll
    for (int n = 0; n < 2 * S::KSTEPS; ++n) {
      o[n][0] *= al_lo;
      o[n][1] *= al_lo;
      o[n][2] *= al_hi;
      o[n][3] *= al_hi;
    }

    // O += P·V. The S accumulators of keys 16kk..16kk+15 are, pairwise rounded, exactly the A
    // fragment of that k step (rows g / g+8, keys 2t.. and 2t+8..).
#pragma unroll
    for (int kk = 0; kk < 4; ++kk) {
      if (kk < nseg) {
        uint32_t a[4];
        a[0] = pack2<T>(s[2 * kk][0], s[2 * kk][1]);
        a[1] = pack2<T>(s[2 * kk][2], s[2 * kk][3]);
        a[2] = pack2<T>(s[2 * kk + 1][0], s[2 * kk + 1][1]);
        a[3] = pack2<T>(s[2 * kk + 1][2], s[2 * kk + 1][3]);
        const uint32_t base = smem_addr(vt + (kk * 16 + v_row) * S::RS + v_col);
#pragma unroll
        for (int dp = 0; dp < S::KSTEPS; ++dp) {
          uint32_t bf[4];
          ldsm_x4_trans(bf, base + dp * 16 * sizeof(T));
          mma16816<T>(o[2 * dp], a, bf[0], bf[1]);
          mma16816<T>(o[2 * dp + 1], a, bf[2], bf[3]);
        }
      }
    }
  }

  if (!warp_active) return;
  l_lo += __shfl_xor_sync(0xffffffffu, l_lo, 1);
  l_lo += __shfl_xor_sync(0xffffffffu, l_lo, 2);
  l_hi += __shfl_xor_sync(0xffffffffu, l_hi, 1);
  l_hi += __shfl_xor_sync(0xffffffffu, l_hi, 2);
  const float inv_lo = l_lo > 0.f ? 1.f / l_lo : 0.f;  // every key dropped: 0, not NaN
  const float inv_hi = l_hi > 0.f ? 1.f / l_hi : 0.f;
  if (row_lo < nq) {
    T* dst = ob + static_cast<size_t>(row_lo) * p.ors + 2 * t4;
#pragma unroll
    for (int n = 0; n < 2 * S::KSTEPS; ++n)
      *reinterpret_cast<uint32_t*>(dst + n * 8) = pack2<T>(o[n][0] * inv_lo, o[n][1] * inv_lo);
  }
  if (row_lo + 8 < nq) {
    T* dst = ob + static_cast<size_t>(row_lo + 8) * p.ors + 2 * t4;
#pragma unroll
    for (int n = 0; n < 2 * S::KSTEPS; ++n)
      *reinterpret_cast<uint32_t*>(dst + n * 8) = pack2<T>(o[n][2] * inv_hi, o[n][3] * inv_hi);
  }
}

// ---------------------------------------------------------------------------------------------
// f32 flash attention, FFMA products, expf: the exact path.
//
// 256 threads, 64 query rows × 64-key tiles. Thread (ty, tx) = (tid / 16, tid % 16) owns rows
// ty + 16·ii (ii < 4), score columns tx + 16·jj (jj < 4) and output columns tx + 16·cc. A row's 16
// threads are one half-warp, so its P row is written and read within that half-warp (__syncwarp).

constexpr int kF32Threads = 256;
constexpr int kF32Rows = 64, kF32Keys = 64;

template <int D>
struct F32Shape {
  static constexpr int QS = D + 1;  // Q, K row pitch: (D+1) is odd, so 16 rows read at one column hit 16 banks
  static constexpr int PS = 80;     // P pitch: the two rows of a warp fall 16 banks apart
  static constexpr int DC = D / 16;
  static constexpr size_t SMEM =
      (static_cast<size_t>(kF32Rows) * QS + kF32Keys * QS + kF32Keys * D + kF32Rows * PS) * sizeof(float) + kF32Keys * sizeof(int);
};

template <int D>
__global__ void __launch_bounds__(kF32Threads) attn_f32_kernel(const AttnParams p) {
  using S = F32Shape<D>;
  extern __shared__ __align__(16) float fsm[];
  float* const sQ = fsm;
  float* const sK = sQ + kF32Rows * S::QS;
  float* const sV = sK + kF32Keys * S::QS;
  float* const sP = sV + kF32Keys * D;
  int* const sKeep = reinterpret_cast<int*>(sP + kF32Rows * S::PS);

  const int bid = blockIdx.x;
  int tile = bid % p.q_tiles;
  const int bh = bid / p.q_tiles;
  const int h = bh % p.heads, b = bh / p.heads;
  if (p.causal) tile = p.q_tiles - 1 - tile;

  const SeqView sv = seq_view(p, b);
  const int len = sv.len;
  const int nq = min(p.q_rows, len);
  const int q0 = tile * kF32Rows;
  if (q0 >= nq) return;
  const int key_end = p.causal ? min(len, min(q0 + kF32Rows, nq)) : len;
  const int n_tiles = (key_end + kF32Keys - 1) / kF32Keys;

  const size_t hoff = static_cast<size_t>(h) * D;
  const float* const qb = static_cast<const float*>(p.q) + sv.q_off + hoff;
  const float* const kb = static_cast<const float*>(p.k) + sv.k_off + hoff;
  const float* const vb = static_cast<const float*>(p.v) + sv.v_off + hoff;
  float* const ob = static_cast<float*>(p.out) + sv.o_off + hoff;
  const int32_t* const mask = p.key_mask ? p.key_mask + sv.mask0 : nullptr;

  const int tid = threadIdx.x, tx = tid & 15, ty = tid >> 4;

  // Q pre-scaled, as the CPU path packs it: scores are (scale·q)·k.
  for (int e = tid; e < kF32Rows * D; e += kF32Threads) {
    const int r = e / D, c = e % D;
    const int i = q0 + r;
    sQ[r * S::QS + c] = i < nq ? qb[static_cast<size_t>(i) * p.qrs + c] * p.scale : 0.f;
  }

  float m[4], l[4], o[4][S::DC];
#pragma unroll
  for (int ii = 0; ii < 4; ++ii) {
    m[ii] = -INFINITY;
    l[ii] = 0.f;
#pragma unroll
    for (int cc = 0; cc < S::DC; ++cc) o[ii][cc] = 0.f;
  }

  for (int t = 0; t < n_tiles; ++t) {
    const int j0 = t * kF32Keys;
    const int kv_valid = min(kF32Keys, key_end - j0);
    __syncthreads();  // every thread is done with the previous tile's K, V (and Q is written)
    // Dropped keys (mask 0 or past key_end) are stored as zero rows: no read past the sequence,
    // and their weight 0 meets finite values.
#pragma unroll 4
    for (int e = tid; e < kF32Keys * D; e += kF32Threads) {
      const int r = e / D, c = e % D;
      const int j = j0 + r;
      const bool keep = j < key_end && (!mask || mask[j] != 0);
      const size_t jr = static_cast<size_t>(j);
      sK[r * S::QS + c] = keep ? kb[jr * p.krs + c] : 0.f;
      sV[r * D + c] = keep ? vb[jr * p.vrs + c] : 0.f;
    }
    if (tid < kF32Keys) {
      const int j = j0 + tid;
      sKeep[tid] = j < key_end && (!mask || mask[j] != 0);
    }
    __syncthreads();

    float s[4][4];
#pragma unroll
    for (int ii = 0; ii < 4; ++ii)
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) s[ii][jj] = 0.f;
#pragma unroll 4
    for (int c = 0; c < D; ++c) {
      float qv[4], kv[4];
#pragma unroll
      for (int ii = 0; ii < 4; ++ii) qv[ii] = sQ[(ty + 16 * ii) * S::QS + c];
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) kv[jj] = sK[(tx + 16 * jj) * S::QS + c];
#pragma unroll
      for (int ii = 0; ii < 4; ++ii)
#pragma unroll
        for (int jj = 0; jj < 4; ++jj) s[ii][jj] = fmaf(qv[ii], kv[jj], s[ii][jj]);
    }

    bool kept[4];
#pragma unroll
    for (int jj = 0; jj < 4; ++jj) kept[jj] = sKeep[tx + 16 * jj] != 0;
    float alpha[4];
#pragma unroll
    for (int ii = 0; ii < 4; ++ii) {
      const int i = q0 + ty + 16 * ii;
      float mx = -INFINITY;
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
        const int j = j0 + tx + 16 * jj;
        if (!kept[jj] || (p.causal && j > i)) s[ii][jj] = -INFINITY;
        mx = fmaxf(mx, s[ii][jj]);
      }
#pragma unroll
      for (int w = 1; w < 16; w <<= 1) mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, w));
      const float mn = fmaxf(m[ii], mx);
      const float mu = mn == -INFINITY ? 0.f : mn;  // no visible key yet: e^(-inf - 0) = 0
      alpha[ii] = expf(m[ii] - mu);
      m[ii] = mn;
      float sum = 0.f;
#pragma unroll
      for (int jj = 0; jj < 4; ++jj) {
        const float pv = expf(s[ii][jj] - mu);
        sum += pv;
        sP[(ty + 16 * ii) * S::PS + tx + 16 * jj] = pv;
      }
      l[ii] = fmaf(l[ii], alpha[ii], sum);
#pragma unroll
      for (int cc = 0; cc < S::DC; ++cc) o[ii][cc] *= alpha[ii];
    }
    __syncwarp();
#pragma unroll 4
    for (int j = 0; j < kv_valid; ++j) {
      float pv[4], vv[S::DC];
#pragma unroll
      for (int ii = 0; ii < 4; ++ii) pv[ii] = sP[(ty + 16 * ii) * S::PS + j];
#pragma unroll
      for (int cc = 0; cc < S::DC; ++cc) vv[cc] = sV[j * D + tx + 16 * cc];
#pragma unroll
      for (int ii = 0; ii < 4; ++ii)
#pragma unroll
        for (int cc = 0; cc < S::DC; ++cc) o[ii][cc] = fmaf(pv[ii], vv[cc], o[ii][cc]);
    }
    __syncwarp();  // P is rewritten by the same half-warp next tile
  }

#pragma unroll
  for (int ii = 0; ii < 4; ++ii) {
    float li = l[ii];
#pragma unroll
    for (int w = 1; w < 16; w <<= 1) li += __shfl_xor_sync(0xffffffffu, li, w);
    const float inv = li > 0.f ? 1.f / li : 0.f;
    const int i = q0 + ty + 16 * ii;
    if (i < nq) {
      float* dst = ob + static_cast<size_t>(i) * p.ors;
#pragma unroll
      for (int cc = 0; cc < S::DC; ++cc) dst[tx + 16 * cc] = o[ii][cc] * inv;
    }
  }
}

// ---------------------------------------------------------------------------------------------
// q_rows == 1: each sequence's first query row (the class token), any dtype, fp32 arithmetic.
// One CTA of 8 warps per (batch, head); warp w walks keys w, w+8, ... four at a time with its own
// running max / sum / output (lane owns dims lane + 32·k), and the warps' states merge at the end.
// Dropped keys are skipped, as on the CPU.

constexpr int kRowThreads = 256, kRowWarps = kRowThreads / 32, kRowUnroll = 4, kMaxHeadDim = 128;

template <class T>
__global__ void __launch_bounds__(kRowThreads) attn_row_kernel(const AttnParams p) {
  __shared__ float sq[kMaxHeadDim];
  __shared__ float sm[kRowWarps], sl[kRowWarps];
  __shared__ float so[kRowWarps][kMaxHeadDim];

  const int bh = blockIdx.x;
  const int h = bh % p.heads, b = bh / p.heads;
  const SeqView sv = seq_view(p, b);
  const int len = sv.len;
  if (len <= 0) return;
  const int D = p.head_dim;
  const size_t hoff = static_cast<size_t>(h) * D;
  const T* const qr = static_cast<const T*>(p.q) + sv.q_off + hoff;
  const T* const kb = static_cast<const T*>(p.k) + sv.k_off + hoff;
  const T* const vb = static_cast<const T*>(p.v) + sv.v_off + hoff;
  T* const orow = static_cast<T*>(p.out) + sv.o_off + hoff;
  const int32_t* const mask = p.key_mask ? p.key_mask + sv.mask0 : nullptr;
  const int key_end = p.causal ? 1 : len;  // query 0 sees key 0 alone under causal

  const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
  for (int c = tid; c < D; c += kRowThreads) sq[c] = ckc::to_f32(qr[c]) * p.scale;
  __syncthreads();

  float qv[4];
#pragma unroll
  for (int k = 0; k < 4; ++k) qv[k] = lane + 32 * k < D ? sq[lane + 32 * k] : 0.f;
  float m = -INFINITY, l = 0.f, o[4] = {0.f, 0.f, 0.f, 0.f};

  for (int j_base = warp; j_base < key_end; j_base += kRowWarps * kRowUnroll) {
    float sc[kRowUnroll], vv[kRowUnroll][4];
    bool keep[kRowUnroll];
#pragma unroll
    for (int u = 0; u < kRowUnroll; ++u) {
      const int j = j_base + u * kRowWarps;
      keep[u] = j < key_end && (!mask || mask[j] != 0);
      const T* kr = kb + static_cast<size_t>(keep[u] ? j : 0) * p.krs;
      const T* vr = vb + static_cast<size_t>(keep[u] ? j : 0) * p.vrs;
      float d = 0.f;
#pragma unroll
      for (int k = 0; k < 4; ++k) {
        const int c = lane + 32 * k;
        const bool in = keep[u] && c < D;
        d = fmaf(qv[k], in ? ckc::to_f32(kr[c]) : 0.f, d);
        vv[u][k] = in ? ckc::to_f32(vr[c]) : 0.f;
      }
      sc[u] = d;
    }
#pragma unroll
    for (int w = 16; w >= 1; w >>= 1)
#pragma unroll
      for (int u = 0; u < kRowUnroll; ++u) sc[u] += __shfl_xor_sync(0xffffffffu, sc[u], w);
    float mx = -INFINITY;
#pragma unroll
    for (int u = 0; u < kRowUnroll; ++u) {
      if (!keep[u]) sc[u] = -INFINITY;
      mx = fmaxf(mx, sc[u]);
    }
    if (mx == -INFINITY) continue;  // nothing visible in this group (uniform over the warp)
    const float mn = fmaxf(m, mx);
    const float alpha = expf(m - mn);  // m = -inf on the first visible group: 0
    m = mn;
    float sum = 0.f, pw[kRowUnroll];
#pragma unroll
    for (int u = 0; u < kRowUnroll; ++u) {
      pw[u] = expf(sc[u] - mn);  // dropped: e^-inf = 0
      sum += pw[u];
    }
    l = fmaf(l, alpha, sum);
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      float acc = o[k] * alpha;
#pragma unroll
      for (int u = 0; u < kRowUnroll; ++u) acc = fmaf(pw[u], vv[u][k], acc);
      o[k] = acc;
    }
  }

  if (lane == 0) {
    sm[warp] = m;
    sl[warp] = l;
  }
#pragma unroll
  for (int k = 0; k < 4; ++k)
    if (lane + 32 * k < D) so[warp][lane + 32 * k] = o[k];
  __syncthreads();
  float M = -INFINITY;
#pragma unroll
  for (int w = 0; w < kRowWarps; ++w) M = fmaxf(M, sm[w]);
  float wt[kRowWarps], L = 0.f;
#pragma unroll
  for (int w = 0; w < kRowWarps; ++w) {
    wt[w] = sm[w] == -INFINITY ? 0.f : expf(sm[w] - M);
    L = fmaf(sl[w], wt[w], L);
  }
  const float inv = L > 0.f ? 1.f / L : 0.f;  // every key dropped: 0
  for (int c = tid; c < D; c += kRowThreads) {
    float acc = 0.f;
#pragma unroll
    for (int w = 0; w < kRowWarps; ++w) acc = fmaf(so[w][c], wt[w], acc);
    orow[c] = ckc::from_f32<T>(acc * inv);
  }
}

// ---------------------------------------------------------------------------------------------
// Host side

template <class K>
ckc_status launch(K kernel, unsigned grid, unsigned block, size_t smem, cudaStream_t stream, const AttnParams& p,
                  const char* what) {
  if (smem > 48 * 1024) {
    // Per device, cheap; set on every launch so a second device gets it too.
    ckc_status st = ckc::check(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(smem)), what);
    if (st != CKC_OK) return st;
  }
  kernel<<<grid, block, smem, stream>>>(p);
  return ckc::check_launch(what);
}

template <class T>
ckc_status launch_tc(ckc_stream* s, const AttnParams& p, unsigned grid) {
  switch (p.head_dim) {
    case 64: return launch(attn_tc_kernel<T, 64>, grid, kTcThreads, TcShape<64>::SMEM, s->stream, p, "attention");
    case 80: return launch(attn_tc_kernel<T, 80>, grid, kTcThreads, TcShape<80>::SMEM, s->stream, p, "attention");
    default: return launch(attn_tc_kernel<T, 128>, grid, kTcThreads, TcShape<128>::SMEM, s->stream, p, "attention");
  }
}

ckc_status launch_f32(ckc_stream* s, const AttnParams& p, unsigned grid) {
  switch (p.head_dim) {
    case 64: return launch(attn_f32_kernel<64>, grid, kF32Threads, F32Shape<64>::SMEM, s->stream, p, "attention");
    case 80: return launch(attn_f32_kernel<80>, grid, kF32Threads, F32Shape<80>::SMEM, s->stream, p, "attention");
    default: return launch(attn_f32_kernel<128>, grid, kF32Threads, F32Shape<128>::SMEM, s->stream, p, "attention");
  }
}

bool aligned16(const void* ptr) { return (reinterpret_cast<uintptr_t>(ptr) & 15u) == 0; }

}  // namespace

extern "C" ckc_status ckc_attention(ckc_stream* s, const ckc_attention_args* a) {
  using ckc::fail;
  if (ckc_status st = ckc::ready(s, "attention"); st != CKC_OK) return st;
  if (!a) return fail(CKC_ERR_ARG, "attention: null arguments");
  if (!ckc::valid_dtype(a->dtype)) return fail(CKC_ERR_ARG, "attention: unknown dtype");
  if (a->precision != CKC_PRECISION_DEFAULT && a->precision != CKC_PRECISION_EXACT_F32)
    return fail(CKC_ERR_ARG, "attention: unknown precision");
  if (a->precision == CKC_PRECISION_EXACT_F32 && a->dtype != CKC_F32)
    return fail(CKC_ERR_ARG, std::string("attention: precision EXACT_F32 needs dtype f32, not ") + ckc::dtype_name(a->dtype));
  const size_t D = a->head_dim;
  if (D != 64 && D != 80 && D != 128)
    return fail(CKC_ERR_UNSUPPORTED, "attention: head_dim " + std::to_string(D) + " (64, 80 or 128 have kernels)");
  if (a->batch == 0 || a->heads == 0) return CKC_OK;  // nothing to compute
  if (!a->q || !a->k || !a->v || !a->out) return fail(CKC_ERR_ARG, "attention: null q, k, v or out");
  if (a->q_rows == 0 || a->q_rows > a->seq)
    return fail(CKC_ERR_ARG, "attention: q_rows " + std::to_string(a->q_rows) + " not in [1, seq = " + std::to_string(a->seq) + "]");
  if (a->seq > static_cast<size_t>(INT_MAX) || a->batch > static_cast<size_t>(INT_MAX) || a->heads > static_cast<size_t>(INT_MAX))
    return fail(CKC_ERR_ARG, "attention: batch, seq or heads too large");
  if (!std::isfinite(a->scale)) return fail(CKC_ERR_ARG, "attention: scale is not finite");
  const size_t width = a->heads * D;
  if (a->q_row_stride < width || a->k_row_stride < width || a->v_row_stride < width || a->out_row_stride < width)
    return fail(CKC_ERR_ARG, "attention: a row stride is smaller than heads*head_dim = " + std::to_string(width));
  const bool ragged = a->seq_starts != nullptr;
  // Ragged, q_rows == 1, q_batch_stride != 0: q is [batch, ·] with that row pitch.
  if (ragged && a->q_rows == 1 && a->q_batch_stride != 0 && a->q_batch_stride < width)
    return fail(CKC_ERR_ARG, "attention: q_batch_stride (the pitch of the first-row queries) is smaller than heads*head_dim");
  if (a->key_mask && (reinterpret_cast<uintptr_t>(a->key_mask) & 3u) != 0)
    return fail(CKC_ERR_ARG, "attention: key_mask is not 4-byte aligned");
  // seq_starts lives on the device and is not read here: the caller guarantees [batch + 1]
  // entries, increasing from 0, no sequence longer than seq, and (with a key mask) one mask entry
  // per row.

  AttnParams p{};
  p.q = a->q;
  p.k = a->k;
  p.v = a->v;
  p.out = a->out;
  p.qbs = a->q_batch_stride;
  p.qrs = a->q_row_stride;
  p.kbs = a->k_batch_stride;
  p.krs = a->k_row_stride;
  p.vbs = a->v_batch_stride;
  p.vrs = a->v_row_stride;
  p.obs = a->out_batch_stride;
  p.ors = a->out_row_stride;
  p.key_mask = a->key_mask;
  p.seq_starts = a->seq_starts;
  p.batch = static_cast<int>(a->batch);
  p.seq = static_cast<int>(a->seq);
  p.heads = static_cast<int>(a->heads);
  p.head_dim = static_cast<int>(D);
  p.q_rows = static_cast<int>(a->q_rows);
  p.causal = a->causal ? 1 : 0;
  p.scale = a->scale;
  // exp2 of |scale|·log2(e)·s; scale 0 (every kept weight equal) with the smallest normal instead,
  // so that -inf · sl2 stays -inf.
  const float sl2 = std::fabs(a->scale) * 1.4426950408889634f;
  p.sl2 = sl2 > 0.f ? sl2 : FLT_MIN;
  p.neg = a->scale < 0.f ? 1 : 0;

  const size_t bh = a->batch * a->heads;
  if (a->q_rows == 1) {
    if (bh > static_cast<size_t>(INT_MAX)) return fail(CKC_ERR_ARG, "attention: batch*heads too large");
    p.q_tiles = 1;
    return ckc::with_dtype(a->dtype, [&](auto tag) -> ckc_status {
      using T = decltype(tag);
      return launch(attn_row_kernel<T>, static_cast<unsigned>(bh), kRowThreads, 0, s->stream, p, "attention");
    });
  }

  const size_t rows_per_cta = a->dtype == CKC_F32 ? kF32Rows : kTcRows;
  const size_t q_tiles = (a->q_rows + rows_per_cta - 1) / rows_per_cta;
  if (q_tiles * bh > static_cast<size_t>(INT_MAX)) return fail(CKC_ERR_ARG, "attention: batch*heads*query tiles too large");
  p.q_tiles = static_cast<int>(q_tiles);
  const unsigned grid = static_cast<unsigned>(q_tiles * bh);
  if (a->dtype == CKC_F32) return launch_f32(s, p, grid);

  // Tensor-core path: cp.async moves 16-byte chunks, so every row (and, in a fixed-size batch,
  // every batch slab) must start on 16 bytes.
  if (!aligned16(a->q) || !aligned16(a->k) || !aligned16(a->v) || !aligned16(a->out))
    return fail(CKC_ERR_ARG, "attention: q, k, v and out must be 16-byte aligned for bf16 / f16");
  if (a->q_row_stride % 8 || a->k_row_stride % 8 || a->v_row_stride % 8 || a->out_row_stride % 8)
    return fail(CKC_ERR_ARG, "attention: row strides must be multiples of 8 elements for bf16 / f16");
  if (!ragged && a->batch > 1 &&
      (a->q_batch_stride % 8 || a->k_batch_stride % 8 || a->v_batch_stride % 8 || a->out_batch_stride % 8))
    return fail(CKC_ERR_ARG, "attention: batch strides must be multiples of 8 elements for bf16 / f16");
  if (a->dtype == CKC_BF16) return launch_tc<__nv_bfloat16>(s, p, grid);
  return launch_tc<__half>(s, p, grid);
}
