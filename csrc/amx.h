// AMX (Advanced Matrix Extensions) on x86-64 Linux: the tile configuration the AMX kernels share.
// Tiles are usable once Linux has granted this process tile data (cpu_features().amx) and the
// running thread has loaded a tile configuration; amx_configure_thread() loads ours once per thread:
// palette 1, all 8 tiles 16 rows × 64 bytes (a 16×16 fp32 C tile, a 16×32 bf16 A tile, or 16 bf16
// k pairs × 16 columns of B).
#pragma once
#include "common.h"

#if defined(CK_X86) && defined(__linux__) && \
    ((defined(__clang__) && __clang_major__ >= 12) || (!defined(__clang__) && defined(__GNUC__) && __GNUC__ >= 11))
#define CK_AMX 1
#include <immintrin.h>

#include <cstdint>

#define CK_AMX_TARGET \
  __attribute__((target("avx512f,avx512bw,avx512dq,avx512vl,avx512bf16,avx2,fma,f16c,amx-tile,amx-bf16")))

namespace ck {

struct alignas(64) AmxTileConfig {
  uint8_t palette = 1, start_row = 0, reserved[14] = {};
  uint16_t colsb[16] = {};
  uint8_t rows[16] = {};
};

CK_AMX_TARGET inline void amx_configure_thread() {
  static thread_local bool configured = false;
  if (configured) return;
  AmxTileConfig cfg;
  for (int t = 0; t < 8; ++t) {
    cfg.rows[t] = 16;
    cfg.colsb[t] = 64;
  }
  _tile_loadconfig(&cfg);
  configured = true;
}

}  // namespace ck
#endif
