// Finding and opening libclipkit_cuda.so (see cuda_library.h).
#include "cuda_library.h"

#include <dlfcn.h>
#include <sys/stat.h>

#include <cstdlib>
#include <mutex>

namespace ck_binding {

static std::string addon_dir() {
  Dl_info info{};
  if (!dladdr(reinterpret_cast<void*>(&load_cuda_library), &info) || !info.dli_fname) return ".";
  std::string file = info.dli_fname;
  size_t slash = file.rfind('/');
  return slash == std::string::npos ? "." : file.substr(0, slash);
}

template <class F>
static bool resolve(void* handle, const char* name, F* out, std::string* missing) {
  *out = reinterpret_cast<F>(dlsym(handle, name));
  if (!*out && missing->empty()) *missing = name;
  return *out != nullptr;
}

static bool resolve_all(void* h, CudaLibrary* lib, std::string* missing) {
  bool ok = true;
  ok &= resolve(h, "ckc_abi_version", &lib->abi_version, missing);
  ok &= resolve(h, "ckc_last_error", &lib->last_error, missing);
  ok &= resolve(h, "ckc_status_name", &lib->status_name, missing);
  ok &= resolve(h, "ckc_init", &lib->init, missing);
  ok &= resolve(h, "ckc_stream_create", &lib->stream_create, missing);
  ok &= resolve(h, "ckc_stream_destroy", &lib->stream_destroy, missing);
  ok &= resolve(h, "ckc_stream_sync", &lib->stream_sync, missing);
  ok &= resolve(h, "ckc_alloc", &lib->alloc, missing);
  ok &= resolve(h, "ckc_free", &lib->free, missing);
  ok &= resolve(h, "ckc_copy_to_device", &lib->copy_to_device, missing);
  ok &= resolve(h, "ckc_copy_to_host", &lib->copy_to_host, missing);
  ok &= resolve(h, "ckc_convert", &lib->convert, missing);
  ok &= resolve(h, "ckc_gemm", &lib->gemm, missing);
  ok &= resolve(h, "ckc_attention", &lib->attention, missing);
  ok &= resolve(h, "ckc_layer_norm", &lib->layer_norm, missing);
  return ok;
}

const CudaLibrary* load_cuda_library(const std::string& explicit_path, std::string* error) {
  static std::mutex mutex;
  static CudaLibrary* loaded = nullptr;  // never unloaded: its streams and memory outlive any caller
  std::lock_guard<std::mutex> lock(mutex);
  if (loaded) return loaded;

  const char* env = std::getenv("CLIPKIT_CUDA_LIBRARY");
  std::string path = !explicit_path.empty() ? explicit_path : env && *env ? env : addon_dir() + "/libclipkit_cuda.so";
  const std::string where = !explicit_path.empty() ? "" : env && *env ? " (CLIPKIT_CUDA_LIBRARY)" : " (beside the addon)";
  struct stat st{};
  if (stat(path.c_str(), &st) != 0) {
    *error = "the CUDA library " + path + where + " does not exist: this build of clipkit has no CUDA backend. " +
             "Build it from a clone with nvcc on PATH (npm install builds kernels/ when nvcc is found; " +
             "CLIPKIT_CUDA=ON makes a missing nvcc an error), or set CLIPKIT_CUDA_LIBRARY to a built libclipkit_cuda.so";
    return nullptr;
  }
  void* handle = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!handle) {
    const char* why = dlerror();
    *error = "the CUDA library " + path + where + " could not be loaded: " + (why ? why : "unknown error");
    return nullptr;
  }
  auto* lib = new CudaLibrary;
  lib->path = path;
  std::string missing;
  if (!resolve_all(handle, lib, &missing)) {
    *error = "the CUDA library " + path + " lacks " + missing + ": it is not a clipkit_cuda library of this version; rebuild it";
    delete lib;
    dlclose(handle);
    return nullptr;
  }
  if (lib->abi_version() != CKC_ABI_VERSION) {
    *error = "the CUDA library " + path + " has interface version " + std::to_string(lib->abi_version()) +
             "; this addon needs version " + std::to_string(CKC_ABI_VERSION) + ": rebuild both from the same sources";
    delete lib;
    dlclose(handle);
    return nullptr;
  }
  loaded = lib;
  return loaded;
}

}  // namespace ck_binding
