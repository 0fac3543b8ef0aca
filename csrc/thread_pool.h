// The native thread pool (not libuv's) and the job dispatcher in front of it.
//
// Jobs (one op call each) are queued FIFO and run one at a time by the dispatcher thread, which is
// also worker 0 of the pool: an op splits its work with parallel_for and the pool's other workers
// join in. Ops never create threads and never block the JavaScript thread.
#pragma once
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>

#include "common.h"

namespace ck {

// The per-thread scratch buffers, by what holds them. A buffer stays valid until its thread asks
// for the same slot again, so two uses that can be live at once in one thread need two slots: an
// op's own memory is never GEMM's, and an op that calls the GEMM (patch_embed) keeps what it
// built across the call in a slot the GEMM does not touch.
enum class ScratchSlot : int {
  kOp = 0,           // an op's working memory: attention's tiles, the normalised rows of logits / infonce
  kOpSecond = 1,     // a second buffer live beside kOp or across a GEMM: patch_embed's columns, infonce's gradient
  kGemmPackedA = 2,  // the GEMM's packed A panels
  kGemmPackedB = 3,  // the GEMM's packed B panels (gemm_unpacked, a B packed per call)
  kGemmInputAct = 4, // X rows after the input activation (GemmArgs::x_act)
  kCount = 5,
};

class ThreadPool {
 public:
  // Runs fn(task, thread) for every task in [0, n_tasks); returns when all have finished.
  // `thread` is in [0, threads()) and identifies the calling worker (for per-thread scratch).
  // Called from inside a job; a nested call runs its tasks on the calling thread.
  void parallel_for(size_t n_tasks, const std::function<void(size_t task, int thread)>& fn);

  // Splits [0, n) into contiguous ranges of about equal size, one per thread (static schedule).
  void parallel_ranges(size_t n, const std::function<void(size_t begin, size_t end, int thread)>& fn);

  int threads() const;

  // The pool index of the calling thread: 0 for the dispatcher (a job's own code), the worker's
  // index inside parallel_for.
  static int current_thread();

  // A 64-byte-aligned buffer owned by one worker, reused across jobs; null if allocation fails.
  void* scratch(int thread, size_t bytes, ScratchSlot slot);
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

// Work units [0, count) that one thread, the owner, takes from the front in order while other
// threads (thieves, done with their own) take them from the back: each unit is claimed exactly
// once, and owner and thieves touch the same end only when few units are left. A thread the OS holds
// up then delays the work by one unit, not by its whole share.
//   lag:  a thief may take unit u only once unit u - lag is claimed (u waits for it: the same C
//         tile's previous K block); 0 when units are independent.
//   keep: the last units that thieves leave to the owner (whose cache holds what they read).
class UnitQueue {
 public:
  static constexpr size_t kNone = ~size_t(0);

  // Not while any thread may take units. count < 2^32.
  void reset(size_t count, size_t lag = 0, size_t keep = 0) {
    count_ = count;
    lag_ = lag;
    keep_ = keep;
    front_back_.store(count, std::memory_order_relaxed);
    done_.store(0, std::memory_order_relaxed);
  }
  size_t count() const { return count_; }

  // The owner's next unit; *next: the one after it while it is unclaimed (for fetching ahead), else kNone.
  bool take_front(size_t* unit, size_t* next) {
    for (uint64_t v = front_back_.load(std::memory_order_relaxed);;) {
      const size_t front = v >> 32, back = v & 0xFFFFFFFFu;
      if (front >= back) return false;
      if (front_back_.compare_exchange_weak(v, v + (uint64_t(1) << 32), std::memory_order_relaxed)) {
        *unit = front;
        *next = front + 1 < back ? front + 1 : kNone;
        return true;
      }
    }
  }

  // A thief's unit from the back; *next: the one before it (what this thief would take next), or
  // kNone. False when none is left for thieves (left_for_thieves() then says whether one may come
  // once the owner has claimed further).
  bool take_back(size_t* unit, size_t* next) {
    for (uint64_t v = front_back_.load(std::memory_order_relaxed);;) {
      if (!stealable(v)) return false;
      const size_t front = v >> 32, u = (v & 0xFFFFFFFFu) - 1;
      if (front_back_.compare_exchange_weak(v, v - 1, std::memory_order_relaxed)) {
        *unit = u;
        *next = u > front ? u - 1 : kNone;
        return true;
      }
    }
  }

  // Units remain that a thief may take now, or once the owner has claimed the ones they wait for.
  bool left_for_thieves() const {
    const uint64_t v = front_back_.load(std::memory_order_relaxed);
    return (v >> 32) + keep_ < (v & 0xFFFFFFFFu);
  }
  // A thief may take the last unclaimed unit now.
  bool stealable() const { return stealable(front_back_.load(std::memory_order_relaxed)); }

  // Called once a claimed unit's work is done; drained(): every unit's is.
  void finished() { done_.fetch_add(1, std::memory_order_release); }
  bool drained() const { return done_.load(std::memory_order_acquire) == count_; }

 private:
  bool stealable(uint64_t v) const {
    const size_t front = v >> 32, back = v & 0xFFFFFFFFu;
    if (front + keep_ >= back) return false;
    const size_t u = back - 1;
    return !lag_ || u < lag_ || u - lag_ < front;  // else the unit it waits for is not claimed yet
  }

  std::atomic<uint64_t> front_back_{0};  // next unit from the front (high half), end of the unclaimed ones (low)
  std::atomic<size_t> done_{0};
  size_t count_ = 0, lag_ = 0, keep_ = 0;
};

// Default pool size: the number of physical cores.
int default_threads();

// Queue a job; run(ThreadPool&) executes on the dispatcher thread with the given ISA and thread count,
// then done() is called on the dispatcher thread.
void submit(Isa isa, int threads, std::function<void()> run);

}  // namespace ck
