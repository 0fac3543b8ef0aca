// The native thread pool (not libuv's) and the job dispatcher in front of it.
//
// Jobs (one op call each) are queued FIFO and run one at a time by the dispatcher thread, which is
// also worker 0 of the pool: an op splits its work with parallel_for and the pool's other workers
// join in. Ops never create threads and never block the JavaScript thread.
#pragma once
#include <cstddef>
#include <functional>

#include "common.h"

namespace ck {

class ThreadPool {
 public:
  // Runs fn(task, thread) for every task in [0, n_tasks); returns when all have finished.
  // `thread` is in [0, threads()) and identifies the calling worker (for per-thread scratch).
  // Called from inside a job; a nested call runs its tasks on the calling thread.
  void parallel_for(size_t n_tasks, const std::function<void(size_t task, int thread)>& fn);

  // Splits [0, n) into contiguous ranges of about equal size, one per thread (static schedule).
  void parallel_ranges(size_t n, const std::function<void(size_t begin, size_t end, int thread)>& fn);

  int threads() const;

  // A 64-byte-aligned buffer owned by one worker, reused across jobs; null if allocation fails.
  void* scratch(int thread, size_t bytes, int slot = 0);
};

ThreadPool& pool();

// Waits until ready() holds: spinning (a pause per test) for a short while, then yielding the core
// at each test, so that a thread the OS has held up can finish what ready() waits for.
void spin_pause();
void spin_yield();
template <typename Ready>
void spin_until(Ready&& ready) {
  for (int spin = 0; !ready(); ++spin) {
    if (spin < 4000) spin_pause();
    else spin_yield();
  }
}

// Default pool size: the number of physical cores.
int default_threads();

// Queue a job; run(ThreadPool&) executes on the dispatcher thread with the given ISA and thread count,
// then done() is called on the dispatcher thread.
void submit(Isa isa, int threads, std::function<void()> run);

}  // namespace ck
