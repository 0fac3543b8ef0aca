// lockFile({ fd }) -> boolean
//
// Takes an exclusive advisory lock (flock, LOCK_EX | LOCK_NB) on an open file: true when taken,
// false when another open file description holds it. Never waits. The kernel drops the lock when
// the descriptor is closed or the process ends in any way, SIGKILL included, so a killed run never
// leaves a stale lock behind for the next one to guess about (which a lock *file* would).
// Used where two clipkit processes writing one output would interleave their records.
// Errors: E_IO with the system's reason (e.g. a file system without locks).
#include <sys/file.h>

#include <cerrno>
#include <cstring>

#include "addon.h"

namespace ck_binding {

static Napi::Value LockFile(const Napi::CallbackInfo& info) {
  Args a(info, "lockFile");
  Napi::Env env = a.env();
  const size_t fd = a.size("fd");
  if (fd > 0x7fffffff) throw_range(env, "E_ARG", "lockFile: expected a file descriptor for fd");
  int rc;
  do rc = flock(static_cast<int>(fd), LOCK_EX | LOCK_NB);
  while (rc != 0 && errno == EINTR);
  if (rc == 0) return Napi::Boolean::New(env, true);
  if (errno == EWOULDBLOCK) return Napi::Boolean::New(env, false);
  throw_error(env, "E_IO", std::string("Cannot lock file descriptor ") + std::to_string(fd) + ": " + std::strerror(errno));
}
CK_EXPORT("lockFile", LockFile);

}  // namespace ck_binding
