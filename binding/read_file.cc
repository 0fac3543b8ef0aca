// readFile({ path, offset, length, threads? }) -> ArrayBuffer
//
// Reads `length` bytes of a file from `offset` into a new 64-byte-aligned buffer, with up to
// `threads` threads reading 8 MiB chunks side by side. A checkpoint's data section is read this way
// because filling fresh memory is bound by page faults (each first touch of a 4 KiB page), not by
// the copy, and two threads take those faults side by side (readFile in docs/perf-log.md has the
// figures).
//
// Synchronous, like the fs.readSync it replaces (model loading reads its files before anything
// else runs); its threads are its own, not the op pool's, so a running job is not disturbed.
// Errors: E_IO naming the file and the system's reason; E_FORMAT when the file ends early.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "addon.h"

namespace ck_binding {

namespace {

constexpr size_t kChunk = size_t(8) << 20;

struct ReadResult {
  int err = 0;           // errno of the first failure
  bool short_read = false;
  uint64_t short_at = 0;  // file offset where the file ended
};

// Reads [offset, offset + length) of fd into dst, chunk by chunk, on `threads` threads.
ReadResult read_parallel(int fd, uint64_t offset, size_t length, char* dst, int threads) {
  const size_t chunks = (length + kChunk - 1) / kChunk;
  std::atomic<size_t> next{0};
  std::atomic<int> err{0};
  std::atomic<bool> short_read{false};
  std::atomic<uint64_t> short_at{0};
  auto worker = [&] {
    for (size_t c; (c = next.fetch_add(1)) < chunks && !err.load() && !short_read.load();) {
      size_t done = c * kChunk;
      const size_t end = std::min(length, done + kChunk);
      while (done < end) {
        const ssize_t got = pread(fd, dst + done, end - done, static_cast<off_t>(offset + done));
        if (got < 0) {
          if (errno == EINTR) continue;
          err.store(errno);
          return;
        }
        if (got == 0) {
          short_at.store(offset + done);
          short_read.store(true);
          return;
        }
        done += static_cast<size_t>(got);
      }
    }
  };
  const int n = static_cast<int>(std::max<size_t>(1, std::min<size_t>(static_cast<size_t>(threads), chunks)));
  std::vector<std::thread> pool;
  for (int t = 1; t < n; ++t) pool.emplace_back(worker);
  worker();
  for (auto& t : pool) t.join();
  return {err.load(), short_read.load(), short_at.load()};
}

void free_aligned(napi_env, void* data, void*) { std::free(data); }

}  // namespace

static Napi::Value ReadFile(const Napi::CallbackInfo& info) {
  Args a(info, "readFile");
  Napi::Env env = a.env();
  const std::string path = a.string_or("path", "");
  if (path.empty()) throw_type(env, "E_ARG", "readFile: expected a file path string for path");
  const size_t offset = a.size("offset"), length = a.size("length");
  const size_t threads = a.size_or("threads", 2);
  if (threads < 1 || threads > 64) throw_range(env, "E_ARG", "readFile: expected threads in [1, 64]");

  const int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) throw_error(env, "E_IO", "Cannot open " + path + ": " + std::strerror(errno));
  struct stat st;
  const bool stat_ok = fstat(fd, &st) == 0;
  if (!stat_ok || static_cast<uint64_t>(st.st_size) < uint64_t(offset) + length) {
    const std::string why = !stat_ok ? std::strerror(errno)
                                     : "the file has " + std::to_string(st.st_size) + " bytes, fewer than " +
                                           std::to_string(uint64_t(offset) + length);
    close(fd);
    throw_error(env, "E_FORMAT", "Cannot read " + std::to_string(length) + " bytes at " + std::to_string(offset) + " of " +
                                     path + ": " + why);
  }
  char* data = static_cast<char*>(std::aligned_alloc(64, (std::max<size_t>(length, 1) + 63) / 64 * 64));
  if (!data) {
    close(fd);
    throw_error(env, "E_NOMEM", "readFile: cannot allocate " + std::to_string(length) + " bytes for " + path);
  }
  const ReadResult r = read_parallel(fd, offset, length, data, static_cast<int>(threads));
  close(fd);
  if (r.err || r.short_read) {
    std::free(data);
    if (r.err) throw_error(env, "E_IO", "Cannot read " + path + ": " + std::strerror(r.err));
    throw_error(env, "E_FORMAT", "File " + path + " ended after " + std::to_string(r.short_at) +
                                     " bytes while reading (changed while being read?)");
  }
  napi_value out;
  if (napi_create_external_arraybuffer(env, data, length, free_aligned, nullptr, &out) == napi_ok) return Napi::Value(env, out);
  // A runtime that refuses external buffers (a V8 sandbox): copy into one of its own.
  Napi::ArrayBuffer copy = Napi::ArrayBuffer::New(env, length);
  std::memcpy(copy.Data(), data, length);
  std::free(data);
  return copy;
}
CK_EXPORT("readFile", ReadFile);

}  // namespace ck_binding
