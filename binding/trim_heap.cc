// trimHeap({}) -> Promise<boolean>
//
// Hands the C heap's free pages back to the system (glibc's malloc_trim(0)) on the native pool;
// true when memory was released. Elsewhere (musl, macOS, Windows) it does nothing and gives false.
// Why: libvips decodes each image on its own threads, and glibc keeps what they free in per-thread
// arenas, scattered between blocks still in use, so a long decode job's RSS climbs although nothing
// leaks; a trim returns those pages.
#include <cstdlib>  // defines __GLIBC__ where the C library is glibc
#include <memory>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "addon.h"

namespace ck_binding {

static Napi::Value TrimHeap(const Napi::CallbackInfo& info) {
  Args a(info, "trimHeap");
  auto released = std::make_shared<bool>(false);
  return queue_job(
      a,
      [released] {
#if defined(__GLIBC__)
        *released = malloc_trim(0) != 0;
#endif
        return ck::CK_OK;
      },
      [released](Napi::Env env) { return Napi::Boolean::New(env, *released); });
}
CK_EXPORT("trimHeap", TrimHeap);

}  // namespace ck_binding
