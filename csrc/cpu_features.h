// What the CPU and the OS support, read once (CPUID + XGETBV on x86, fixed on arm64),
// and the ISA the kernels use: the best available one, lowered by CLIPKIT_ISA or ck::request_isa.
#pragma once
#include "common.h"

namespace ck {

struct CpuFeatures {
  bool avx2_fma = false;     // AVX2 + FMA, with the OS saving ymm state
  bool avx512 = false;       // AVX-512 F/BW/DQ/VL, with the OS saving zmm and mask state
  bool avx512_bf16 = false;  // vdpbf16ps
  bool amx = false;          // AMX-TILE + AMX-BF16 (with avx512_bf16), and the OS let this process use tile data
  bool neon = false;
  size_t l1d_bytes = 32 * 1024;  // per core (sysfs on Linux; these defaults elsewhere)
  size_t l2_bytes = 512 * 1024;
  int physical_cores = 1;
  int logical_cpus = 1;
};

const CpuFeatures& cpu_features();

// Best ISA this CPU runs.
Isa best_isa();
bool isa_supported(Isa isa);

// The ISA that newly submitted jobs will use. Starts at best_isa(), or at CLIPKIT_ISA when set.
Isa requested_isa();
// Returns false (and changes nothing) when the CPU lacks the ISA.
bool request_isa(Isa isa);
// Parses "scalar" | "avx2" | "avx512" | "amx" | "neon"; false if unknown.
bool parse_isa(const char* name, Isa* out);

// Called by the dispatcher around each job.
void set_current_isa(Isa isa);

// The error (if any) from reading CLIPKIT_ISA at load: an unknown name or an ISA the CPU lacks.
const char* isa_env_error();

}  // namespace ck
