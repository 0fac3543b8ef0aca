// The native pieces of the packed-weight cache: a file of packed panels is written once, then mapped
// at later loads and its panels used where they lie (no copy, no packing).
//
// mapFile({ path, populate? }) -> Promise<ArrayBuffer>
//   The whole file mapped copy-on-write (MAP_PRIVATE, readable and writable): its pages stay the
//   page cache's, shared with every process mapping the file, until written; a write copies the page
//   and never reaches the file. populate: fault every page in now (from the page cache, reading the
//   file where it is not cached) instead of on first touch. The mapping lives as long as the
//   ArrayBuffer and every weight adopted from it (see adoptPackedWeight). The file must not be
//   truncated while mapped (a read past its new end is SIGBUS): replace it by renaming a new file
//   over it. Errors: E_IO naming the path and the system's reason (missing, unreadable, a folder or
//   another non-regular file), E_FORMAT for an empty file.
// packedWeightBytes(handle) | packedWeightBytes({ n, k, dtype? }) -> number
//   The bytes of a packed weight's panels one after another (ck::packed_weight_bytes), for a weight
//   or for a shape.
// copyPackedWeight({ w, dst: Uint8Array }) -> Promise<void>
//   w's panels one after another into dst (of exactly packedWeightBytes(w) bytes, not overlapping w).
// adoptPackedWeight({ data: Uint8Array, n, k, dtype? }) -> handle
//   A packed weight (packWeight's handle type) over data, not copied: data 64-byte aligned (E_ARG)
//   of exactly the packed size of [n, k] (E_SHAPE). The weight holds data's ArrayBuffer until it is
//   finalized, and, when data lies in a mapFile mapping, that mapping too, even if the ArrayBuffer is
//   detached and its new owner lets go. data must not be written while the weight is used.
// packWeightInto({ w: Float32Array, n, k, dtype?, dst: Uint8Array }) -> Promise<void>
//   W [n, k] packed straight into dst (4-byte aligned, exactly packedWeightBytes({ n, k, dtype })
//   bytes, not overlapping w): the bytes copyPackedWeight gives for a weight packWeight packed, with
//   no memory of the addon's own, so that a weight written to a file goes through one reused buffer.
// dropMappedPages({ data: Uint8Array }) -> number
//   Lets go of the whole pages inside data, which must lie in a mapFile mapping (E_ARG otherwise):
//   the process no longer counts them (its resident set shrinks), the page cache keeps them, and the
//   next read faults them in again. Bytes written through the mapping on those pages are lost (a
//   later read sees the file's), so only for pages read and never written: a checkpoint streamed
//   into the weight cache, dropped tensor by tensor once packed. Returns the bytes let go.
// packedLayoutId() -> string: ck::packed_layout_id(), the part of a cache key the packed bytes depend on.
// hashBytes({ data: Uint8Array }) -> Promise<string>: ck::hash_bytes as 16 hex digits.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <iterator>
#include <map>
#include <memory>
#include <mutex>

#include "hash.h"
#include "packed_weight.h"

namespace ck_binding {

namespace {

// ---- mappings ----
//
// A mapping is unmapped when its last holder lets go: the ArrayBuffer mapFile returned (its
// finalizer) and each weight adopted from it. Held by count rather than through the ArrayBuffer
// alone because an ArrayBuffer can be detached and its memory handed to another (a transfer), which
// a reference to the old object does not keep.

struct Mapping {
  char* base;
  size_t length;
  size_t holders = 1;  // guarded by g_maps_mu
};

std::mutex g_maps_mu;
std::map<const char*, Mapping*> g_maps;  // by base

Mapping* register_mapping(void* base, size_t length) {
  auto* m = new Mapping{static_cast<char*>(base), length};
  std::lock_guard<std::mutex> lock(g_maps_mu);
  g_maps[m->base] = m;
  return m;
}

// The mapping that holds [p, p + bytes), one holder more; null when none does.
Mapping* hold_mapping_of(const void* p, size_t bytes) {
  const char* c = static_cast<const char*>(p);
  std::lock_guard<std::mutex> lock(g_maps_mu);
  auto it = g_maps.upper_bound(c);
  if (it == g_maps.begin()) return nullptr;
  Mapping* m = std::prev(it)->second;
  if (c + bytes > m->base + m->length) return nullptr;
  m->holders += 1;
  return m;
}

void release_mapping(Mapping* m) {
  if (!m) return;
  {
    std::lock_guard<std::mutex> lock(g_maps_mu);
    if (--m->holders) return;
    g_maps.erase(m->base);
  }
  munmap(m->base, m->length);
  delete m;
}

void release_mapping_cb(napi_env, void*, void* hint) { release_mapping(static_cast<Mapping*>(hint)); }

// What the mapping job hands back: the mapping, or the error to reject with. A mapping never handed
// to JS (the job dropped at teardown) is released with it.
struct MapResult {
  Mapping* mapping = nullptr;
  std::string code, message;
  ~MapResult() { release_mapping(mapping); }
  void fail(const char* c, const std::string& m) {
    code = c;
    message = m;
  }
};

// O_NONBLOCK: open() on a FIFO returns at once instead of waiting for a writer (it is then refused
// as not a regular file); it changes nothing for a regular file.
void map_file(const std::string& path, bool populate, MapResult& r) {
  release_mapping(r.mapping);  // a job run more than once (`repeat`) keeps its last mapping only
  r.mapping = nullptr;
  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return r.fail("E_IO", "Cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  const int stat_err = fstat(fd, &st) == 0 ? 0 : errno;
  if (stat_err || !S_ISREG(st.st_mode) || st.st_size == 0) {
    close(fd);
    if (stat_err) return r.fail("E_IO", "Cannot map " + path + ": " + std::strerror(stat_err));
    if (S_ISDIR(st.st_mode)) return r.fail("E_IO", "Cannot map " + path + ": " + std::strerror(EISDIR));
    if (!S_ISREG(st.st_mode)) return r.fail("E_IO", "Cannot map " + path + ": not a regular file");
    return r.fail("E_FORMAT", "Cannot map " + path + ": the file is empty");
  }
  const size_t length = static_cast<size_t>(st.st_size);
  // Mapped read-only, then made writable: MAP_POPULATE on a writable private mapping faults every
  // page in for writing, which copies each one out of the page cache; read faults share them.
  int flags = MAP_PRIVATE;
#ifdef MAP_POPULATE
  if (populate) flags |= MAP_POPULATE;
#endif
  void* p = mmap(nullptr, length, PROT_READ, flags, fd, 0);
  const int map_err = errno;
  close(fd);
  if (p == MAP_FAILED) return r.fail("E_IO", "Cannot map " + path + ": " + std::strerror(map_err));
  if (mprotect(p, length, PROT_READ | PROT_WRITE) != 0) {
    const int err = errno;
    munmap(p, length);
    return r.fail("E_IO", "Cannot map " + path + " writable (copy-on-write): " + std::strerror(err));
  }
  // Without populate, start reading the file into the page cache now; the pages are mapped on first touch.
  if (!populate) madvise(p, length, MADV_WILLNEED);
  r.mapping = register_mapping(p, length);
}

// The mapping as an ArrayBuffer whose finalizer lets go of it.
Napi::Value mapping_buffer(Napi::Env env, MapResult& r) {
  if (!r.code.empty()) throw_error(env, r.code, r.message);
  Mapping* m = r.mapping;
  napi_value out;
  if (napi_create_external_arraybuffer(env, m->base, m->length, release_mapping_cb, m, &out) == napi_ok) {
    r.mapping = nullptr;  // the ArrayBuffer holds it now
    return Napi::Value(env, out);
  }
  // A runtime that refuses external buffers (a V8 sandbox): the bytes copied into one of its own.
  Napi::ArrayBuffer copy = Napi::ArrayBuffer::New(env, m->length);
  std::memcpy(copy.Data(), m->base, m->length);
  return copy;
}

// ---- packed weights ----

ck::WeightType weight_type(Args& a) {
  const std::string dtype = a.string_or("dtype", "float32");
  if (dtype != "float32" && dtype != "bfloat16")
    throw_range(a.env(), "E_DTYPE", std::string(a.op()) + ": expected float32 or bfloat16 for dtype but received " + dtype);
  return dtype == "bfloat16" ? ck::WeightType::BF16 : ck::WeightType::F32;
}

// The packed size of [n, k] of `type`, or E_SHAPE when it does not fit in memory.
size_t packed_size(Args& a, size_t n, size_t k, ck::WeightType type) {
  const size_t bytes = ck::packed_weight_bytes(n, k, type);
  if (bytes == SIZE_MAX) throw_range(a.env(), "E_SHAPE", std::string(a.op()) + ": shape is too large");
  return bytes;
}

View<uint8_t> u8(Args& a, const char* name) {
  View<uint8_t> v = a.u8_opt(name);
  if (!v) throw_type(a.env(), "E_DTYPE", std::string(a.op()) + ": expected Uint8Array for " + name + " but received nothing");
  return v;
}

std::string hex64(uint64_t h) {
  char s[17];
  std::snprintf(s, sizeof s, "%016llx", static_cast<unsigned long long>(h));
  return s;
}

}  // namespace

static Napi::Value MapFile(const Napi::CallbackInfo& info) {
  Args a(info, "mapFile");
  const std::string path = a.string_or("path", "");
  if (path.empty()) throw_type(a.env(), "E_ARG", "mapFile: expected a file path string for path");
  const bool populate = a.flag("populate", false);
  auto r = std::make_shared<MapResult>();
  return queue_job(
      a,
      [r, path, populate] {
        map_file(path, populate, *r);
        return ck::CK_OK;  // a failure is r's, rejected on the JS thread with its own code
      },
      [r](Napi::Env env) { return mapping_buffer(env, *r); });
}
CK_EXPORT("mapFile", MapFile);

static Napi::Value PackedWeightBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() >= 1 && info[0].IsExternal()) {
    auto ext = info[0].As<Napi::External<ck::PackedWeight>>();
    if (!ext.CheckTypeTag(&kPackedWeightTag)) throw_type(env, "E_ARG", "packedWeightBytes: expected a packed weight");
    const ck::PackedWeight* w = ext.Data();
    return Napi::Number::New(env, double(ck::packed_weight_bytes(w->n, w->k, w->type)));
  }
  Args a(info, "packedWeightBytes");
  const size_t n = a.size("n"), k = a.size("k");
  return Napi::Number::New(env, double(packed_size(a, n, k, weight_type(a))));
}
CK_EXPORT("packedWeightBytes", PackedWeightBytes);

static Napi::Value CopyPackedWeight(const Napi::CallbackInfo& info) {
  Args a(info, "copyPackedWeight");
  const ck::PackedWeight* w = packed_weight_arg(a, "w");
  View<uint8_t> dst = u8(a, "dst");
  const size_t bytes = ck::packed_weight_bytes(w->n, w->k, w->type);
  a.expect_length("dst", dst, bytes);
  if (ck::packed_weight_overlaps(*w, dst.data, bytes))
    throw_range(a.env(), "E_ARG", "copyPackedWeight: expected dst not to overlap the weight's own panels");
  return queue_job(a, [w, d = dst.data, bytes] { return ck::packed_weight_copy(*w, d, bytes); });
}
CK_EXPORT("copyPackedWeight", CopyPackedWeight);

static Napi::Value AdoptPackedWeight(const Napi::CallbackInfo& info) {
  Args a(info, "adoptPackedWeight");
  Napi::Env env = a.env();
  const size_t n = a.size("n"), k = a.size("k");
  const ck::WeightType type = weight_type(a);
  View<uint8_t> data = u8(a, "data");
  const size_t bytes = packed_size(a, n, k, type);
  if (data.length != bytes)
    throw_range(env, "E_SHAPE", "adoptPackedWeight: expected data of length " + std::to_string(bytes) + " (the packed size of [" +
                                    std::to_string(n) + ", " + std::to_string(k) + "]) but received length " + std::to_string(data.length));
  if (bytes && reinterpret_cast<uintptr_t>(data.data) % 64)
    throw_range(env, "E_ARG", "adoptPackedWeight: expected data at a 64-byte-aligned address but it is " +
                                  std::to_string(reinterpret_cast<uintptr_t>(data.data) % 64) + " bytes past one");
  auto w = std::make_unique<ck::PackedWeight>();
  if (ck::pack_weight_adopt(data.data, bytes, n, k, type, w.get()) != ck::CK_OK)
    throw_error(env, "E_NATIVE", "adoptPackedWeight: the kernel refused the panels");
  auto buffer = std::make_shared<Napi::Reference<Napi::ArrayBuffer>>(Napi::Persistent(a.value("data").As<Napi::TypedArray>().ArrayBuffer()));
  Mapping* mapping = hold_mapping_of(data.data, bytes);
  Napi::External<ck::PackedWeight> ext;
  try {
    ext = Napi::External<ck::PackedWeight>::New(env, w.get(), [buffer, mapping](Napi::Env, ck::PackedWeight* p) {
      delete p;
      release_mapping(mapping);  // the ArrayBuffer reference goes with this callback
    });
  } catch (...) {
    release_mapping(mapping);
    throw;
  }
  w.release();
  ext.TypeTag(&kPackedWeightTag);
  return ext;
}
CK_EXPORT("adoptPackedWeight", AdoptPackedWeight);

static Napi::Value PackWeightInto(const Napi::CallbackInfo& info) {
  Args a(info, "packWeightInto");
  const size_t n = a.size("n"), k = a.size("k");
  const ck::WeightType type = weight_type(a);
  auto w = a.f32("w");
  a.expect_length("w", w, a.product({n, k}));
  View<uint8_t> dst = u8(a, "dst");
  const size_t bytes = packed_size(a, n, k, type);
  a.expect_length("dst", dst, bytes);
  if (reinterpret_cast<uintptr_t>(dst.data) % 4)
    throw_range(a.env(), "E_ARG", "packWeightInto: expected dst at a 4-byte-aligned address");
  const char *d = reinterpret_cast<const char*>(dst.data), *wb = reinterpret_cast<const char*>(w.data);
  if (bytes && (n * k) != 0 && d < wb + n * k * sizeof(float) && wb < d + bytes)
    throw_range(a.env(), "E_ARG", "packWeightInto: expected dst not to overlap w");
  return queue_job(a, [wd = w.data, n, k, type, dd = dst.data, bytes] { return ck::pack_weight_into(wd, n, k, k, type, dd, bytes); });
}
CK_EXPORT("packWeightInto", PackWeightInto);

static Napi::Value DropMappedPages(const Napi::CallbackInfo& info) {
  Args a(info, "dropMappedPages");
  View<uint8_t> data = u8(a, "data");
  Mapping* m = hold_mapping_of(data.data, data.length);
  if (!m) throw_range(a.env(), "E_ARG", "dropMappedPages: expected bytes of a mapped file (mapFile)");
  const uintptr_t page = static_cast<uintptr_t>(sysconf(_SC_PAGESIZE));
  const uintptr_t lo = (reinterpret_cast<uintptr_t>(data.data) + page - 1) / page * page;
  const uintptr_t hi = (reinterpret_cast<uintptr_t>(data.data) + data.length) / page * page;
  double dropped = 0;
  // Only pages wholly inside data: a page shared with a neighbour stays (it is dropped with it, or never).
  if (hi > lo && madvise(reinterpret_cast<void*>(lo), hi - lo, MADV_DONTNEED) == 0) dropped = double(hi - lo);
  release_mapping(m);
  return Napi::Number::New(a.env(), dropped);
}
CK_EXPORT("dropMappedPages", DropMappedPages);

static Napi::Value PackedLayoutId(const Napi::CallbackInfo& info) { return Napi::String::New(info.Env(), ck::packed_layout_id()); }
CK_EXPORT("packedLayoutId", PackedLayoutId);

static Napi::Value HashBytes(const Napi::CallbackInfo& info) {
  Args a(info, "hashBytes");
  View<uint8_t> data = u8(a, "data");
  auto h = std::make_shared<uint64_t>(0);
  return queue_job(
      a, [h, p = data.data, len = data.length] { return ck::hash_bytes(p, len, h.get()); },
      [h](Napi::Env env) { return Napi::String::New(env, hex64(*h)); });
}
CK_EXPORT("hashBytes", HashBytes);

}  // namespace ck_binding
