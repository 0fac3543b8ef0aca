// CPU feature detection. On x86 a feature counts only when CPUID reports it AND the OS has enabled
// the register state for it (OSXSAVE + XGETBV): ymm for AVX2, opmask/zmm for AVX-512, tile config
// and tile data for AMX. Linux also wants each process to ask before it touches tile data
// (arch_prctl ARCH_REQ_XCOMP_PERM); without that grant AMX counts as absent.
#include "cpu_features.h"

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <set>
#include <string>
#include <thread>
#include <utility>

#if defined(CK_X86)
#include <cpuid.h>
#endif
#if defined(CK_X86) && defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

namespace ck {

const char* status_message(ck_status s) {
  switch (s) {
    case CK_OK: return "ok";
    case CK_ERR_ARG: return "invalid argument reached a kernel";
    case CK_ERR_NOMEM: return "out of memory in a kernel's scratch or packing buffer";
    case CK_ERR_ISA: return "no kernel variant for the requested instruction set";
  }
  return "unknown status";
}

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::Scalar: return "scalar";
    case Isa::Avx2: return "avx2";
    case Isa::Avx512: return "avx512";
    case Isa::Neon: return "neon";
    case Isa::Amx: return "amx";
  }
  return "unknown";
}

static int count_physical_cores(int logical) {
#if defined(__linux__)
  // Distinct (package, core) pairs from sysfs; falls back to the logical count.
  std::set<std::pair<int, int>> cores;
  for (int cpu = 0; cpu < 4096; ++cpu) {
    char path[128];
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/core_id", cpu);
    FILE* f = std::fopen(path, "r");
    if (!f) {
      if (cpu >= logical) break;
      continue;
    }
    int core = -1, pkg = 0;
    if (std::fscanf(f, "%d", &core) != 1) core = cpu;
    std::fclose(f);
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu%d/topology/physical_package_id", cpu);
    f = std::fopen(path, "r");
    if (f) {
      if (std::fscanf(f, "%d", &pkg) != 1) pkg = 0;
      std::fclose(f);
    }
    cores.insert({pkg, core});
  }
  if (!cores.empty()) return static_cast<int>(cores.size());
#endif
  return logical;
}

// Asks Linux for this process's permission to use AMX tile data (XFEATURE_XTILEDATA, 18).
static bool request_tile_data() {
#if defined(CK_X86) && defined(__linux__) && defined(SYS_arch_prctl)
  constexpr long kArchReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
  return syscall(SYS_arch_prctl, kArchReqXcompPerm, kXfeatureXtiledata) == 0;
#else
  return false;
#endif
}

// The size of cpu0's cache of this level and type ("Data", "Unified") from sysfs ("2048K"), or 0.
static size_t read_cache_bytes(int want_level, const char* want_type) {
#if defined(__linux__)
  for (int i = 0; i < 8; ++i) {
    char path[96], type[32] = {0};
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/level", i);
    FILE* f = std::fopen(path, "r");
    if (!f) break;
    int level = 0;
    const bool ok = std::fscanf(f, "%d", &level) == 1;
    std::fclose(f);
    if (!ok || level != want_level) continue;
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/type", i);
    f = std::fopen(path, "r");
    if (!f) continue;
    const bool typed = std::fscanf(f, "%31s", type) == 1;
    std::fclose(f);
    if (!typed || std::strcmp(type, want_type) != 0) continue;
    std::snprintf(path, sizeof path, "/sys/devices/system/cpu/cpu0/cache/index%d/size", i);
    f = std::fopen(path, "r");
    if (!f) break;
    unsigned long v = 0;
    char unit = 0;
    const int got = std::fscanf(f, "%lu%c", &v, &unit);
    std::fclose(f);
    if (got < 1 || v == 0) return 0;
    return got == 2 && (unit == 'K' || unit == 'k') ? v << 10 : got == 2 && unit == 'M' ? v << 20 : v;
  }
#endif
  return 0;
}

static CpuFeatures detect() {
  CpuFeatures f;
  unsigned hc = std::thread::hardware_concurrency();
  f.logical_cpus = hc ? static_cast<int>(hc) : 1;
  f.physical_cores = count_physical_cores(f.logical_cpus);
  if (f.physical_cores < 1) f.physical_cores = 1;
  if (size_t l1 = read_cache_bytes(1, "Data")) f.l1d_bytes = l1;
  if (size_t l2 = read_cache_bytes(2, "Unified")) f.l2_bytes = l2;
#if defined(CK_X86)
  unsigned a, b, c, d;
  if (!__get_cpuid(1, &a, &b, &c, &d)) return f;
  const bool osxsave = c & (1u << 27), fma = c & (1u << 12), avx = c & (1u << 28);
  if (!osxsave || !avx) return f;
  unsigned xcr0_lo, xcr0_hi;
  __asm__ volatile("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  const bool ymm_state = (xcr0_lo & 0x6) == 0x6;            // SSE + AVX state
  const bool zmm_state = (xcr0_lo & 0xE6) == 0xE6;          // + opmask, ZMM_Hi256, Hi16_ZMM
  if (__get_cpuid_max(0, nullptr) < 7) return f;
  __cpuid_count(7, 0, a, b, c, d);
  const bool avx2 = b & (1u << 5);
  const bool amx_bf16 = d & (1u << 22), amx_tile = d & (1u << 24);
  const bool tile_state = ((xcr0_lo >> 17) & 3) == 3;      // XTILECFG + XTILEDATA
  const bool avx512f = b & (1u << 16), avx512dq = b & (1u << 17), avx512bw = b & (1u << 30),
             avx512vl = b & (1u << 31);
  f.avx2_fma = ymm_state && avx2 && fma;
  f.avx512 = f.avx2_fma && zmm_state && avx512f && avx512dq && avx512bw && avx512vl;
  __cpuid_count(7, 1, a, b, c, d);
  f.avx512_bf16 = f.avx512 && (a & (1u << 5));
  f.amx = f.avx512_bf16 && amx_tile && amx_bf16 && tile_state && request_tile_data();
#elif defined(CK_ARM64)
  f.neon = true;
#endif
  return f;
}

const CpuFeatures& cpu_features() {
  static const CpuFeatures f = detect();
  return f;
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::Scalar: return true;
    case Isa::Avx2: return f.avx2_fma;
    case Isa::Avx512: return f.avx512;
    case Isa::Neon: return f.neon;
    case Isa::Amx: return f.amx;
  }
  return false;
}

Isa best_isa() {
  const CpuFeatures& f = cpu_features();
  if (f.amx) return Isa::Amx;
  if (f.avx512) return Isa::Avx512;
  if (f.avx2_fma) return Isa::Avx2;
  if (f.neon) return Isa::Neon;
  return Isa::Scalar;
}

bool parse_isa(const char* name, Isa* out) {
  static const std::pair<const char*, Isa> names[] = {
      {"scalar", Isa::Scalar}, {"avx2", Isa::Avx2}, {"avx512", Isa::Avx512}, {"amx", Isa::Amx},
      {"neon", Isa::Neon}};
  for (const auto& n : names)
    if (std::strcmp(name, n.first) == 0) {
      *out = n.second;
      return true;
    }
  return false;
}

static std::string g_env_error;

static Isa initial_isa() {
  const char* env = std::getenv("CLIPKIT_ISA");
  if (!env || !*env) return best_isa();
  Isa isa;
  if (!parse_isa(env, &isa)) {
    g_env_error = std::string("CLIPKIT_ISA=") + env + " is not one of scalar, avx2, avx512, amx, neon";
    return best_isa();
  }
  if (!isa_supported(isa)) {
    g_env_error = std::string("CLIPKIT_ISA=") + env + " asks for an instruction set this CPU lacks (best: " +
                  isa_name(best_isa()) + ")";
    return best_isa();
  }
  return isa;
}

static std::atomic<int> g_requested{static_cast<int>(initial_isa())};
static std::atomic<int> g_current{static_cast<int>(best_isa())};

const char* isa_env_error() { return g_env_error.empty() ? nullptr : g_env_error.c_str(); }
Isa requested_isa() { return static_cast<Isa>(g_requested.load()); }
bool request_isa(Isa isa) {
  if (!isa_supported(isa)) return false;
  g_requested.store(static_cast<int>(isa));
  return true;
}
void set_current_isa(Isa isa) { g_current.store(static_cast<int>(isa), std::memory_order_relaxed); }
Isa current_isa() { return static_cast<Isa>(g_current.load(std::memory_order_relaxed)); }

}  // namespace ck
