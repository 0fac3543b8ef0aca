// The CUDA library (kernels/, libclipkit_cuda.so), opened with dlopen the first time CUDA is asked
// for: the addon neither links it nor needs it, so a CPU-only install never loads a CUDA library.
#pragma once
#include <string>

#include "clipkit_cuda.h"

namespace ck_binding {

// The library's entry points, resolved by name. Every pointer is set once load succeeded.
struct CudaLibrary {
  std::string path;
  decltype(&ckc_abi_version) abi_version;
  decltype(&ckc_last_error) last_error;
  decltype(&ckc_status_name) status_name;
  decltype(&ckc_init) init;
  decltype(&ckc_stream_create) stream_create;
  decltype(&ckc_stream_destroy) stream_destroy;
  decltype(&ckc_stream_sync) stream_sync;
  decltype(&ckc_alloc) alloc;
  decltype(&ckc_free) free;
  decltype(&ckc_copy_to_device) copy_to_device;
  decltype(&ckc_copy_to_host) copy_to_host;
  decltype(&ckc_convert) convert;
  decltype(&ckc_gemm) gemm;
  decltype(&ckc_attention) attention;
  decltype(&ckc_layer_norm) layer_norm;
};

// Opens the library once per process (later calls return the same one) from `explicit_path`, else
// $CLIPKIT_CUDA_LIBRARY, else libclipkit_cuda.so beside the addon. Null with *error saying which
// file was tried and what to do when it is missing, cannot be opened, lacks a symbol or was built
// for another interface version. A failed load is retried by the next call (a library installed
// meanwhile is found).
const CudaLibrary* load_cuda_library(const std::string& explicit_path, std::string* error);

}  // namespace ck_binding
