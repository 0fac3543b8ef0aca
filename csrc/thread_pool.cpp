// Thread pool: a dispatcher thread that takes jobs off a FIFO queue and worker threads that help
// it with parallel_for. Workers spin briefly for the next parallel region (ops come in bursts during
// a forward pass) and then sleep on a condition variable.
#include "thread_pool.h"

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "cpu_features.h"

#if defined(CK_X86)
#include <immintrin.h>
#define CK_PAUSE() _mm_pause()
#elif defined(CK_ARM64)
#define CK_PAUSE() __asm__ __volatile__("yield")
#else
#define CK_PAUSE() ((void)0)
#endif

namespace ck {

namespace {

struct AlignedBuf {
  void* ptr = nullptr;
  size_t size = 0;
  ~AlignedBuf() { std::free(ptr); }
  void* get(size_t bytes) {
    if (bytes <= size) return ptr;
    std::free(ptr);
    size_t rounded = (bytes + 63) & ~size_t(63);
    ptr = std::aligned_alloc(64, rounded);
    size = ptr ? rounded : 0;
    return ptr;
  }
};

constexpr int kScratchSlots = static_cast<int>(ScratchSlot::kCount);
thread_local bool t_in_region = false;
thread_local int t_thread = 0;  // this thread's index in the pool (0: the dispatcher)

// Parallel regions. A region's tasks are claimed one at a time through `claim_`, which holds the
// region's generation (high 32 bits) and the next task index (low 32 bits); a claim is a CAS that
// fails once the generation has moved on. So a worker that wakes late (descheduled on a busy machine)
// can never run a task of a finished region, and the caller never waits for it: it waits only for
// the tasks actually claimed to finish. The descriptor of region g lives in slots_[g & 1]; it is
// written before claim_ publishes g, and only read by a claimer whose CAS proves g is still current.
class Pool {
 public:
  ~Pool() { resize(1); }

  int threads() const { return static_cast<int>(workers_.size()) + 1; }

  // Only called by the dispatcher between jobs.
  void resize(int n) {
    if (n < 1) n = 1;
    if (n == threads()) return;
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_.store(true);
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_.store(false);
    scratch_.resize(n);
    for (auto& s : scratch_)
      if (!s) s.reset(new AlignedBuf[kScratchSlots]);
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i] { worker_loop(i); });
  }

  void* scratch(int thread, size_t bytes, int slot) {
    if (thread < 0 || thread >= static_cast<int>(scratch_.size()) || slot < 0 || slot >= kScratchSlots) return nullptr;
    return scratch_[thread][slot].get(bytes);
  }

  void run(size_t n_tasks, const std::function<void(size_t, int)>& fn) {
    if (n_tasks == 0) return;
    if (t_in_region || workers_.empty() || n_tasks == 1 || n_tasks > 0xFFFFFFFFu) {
      for (size_t i = 0; i < n_tasks; ++i) fn(i, t_thread);
      return;
    }
    const uint64_t g = ++generation_counter_ & 0xFFFFFFFFu;
    Region& r = slots_[g & 1];
    r.fn.store(&fn, std::memory_order_relaxed);
    r.n.store(n_tasks, std::memory_order_relaxed);
    r.done.store(0, std::memory_order_relaxed);
    claim_.store(g << 32, std::memory_order_release);
    { std::lock_guard<std::mutex> lock(mu_); }  // a sleeper checks claim_ under mu_: no lost wake-up
    cv_.notify_all();
    t_in_region = true;
    take_tasks(g, 0);
    t_in_region = false;
    // Wait for tasks other threads claimed; yield now and then so a preempted worker can finish.
    spin_until([&] { return r.done.load(std::memory_order_acquire) == n_tasks; });
  }

  void ensure_scratch() {
    if (scratch_.empty()) {
      scratch_.resize(1);
      scratch_[0].reset(new AlignedBuf[kScratchSlots]);
    }
  }

 private:
  struct Region {
    std::atomic<const std::function<void(size_t, int)>*> fn{nullptr};
    std::atomic<size_t> n{0};
    std::atomic<size_t> done{0};
  };

  // Claims and runs tasks of region g until none are left or the region is over.
  void take_tasks(uint64_t g, int thread) {
    Region& r = slots_[g & 1];
    for (;;) {
      uint64_t c = claim_.load(std::memory_order_acquire);
      if ((c >> 32) != g) return;
      const size_t n = r.n.load(std::memory_order_relaxed);
      const auto* fn = r.fn.load(std::memory_order_relaxed);
      const size_t i = c & 0xFFFFFFFFu;
      if (i >= n) return;
      if (!claim_.compare_exchange_weak(c, c + 1, std::memory_order_acq_rel)) continue;
      (*fn)(i, thread);
      r.done.fetch_add(1, std::memory_order_release);
    }
  }

  void worker_loop(int thread) {
    t_in_region = true;
    t_thread = thread;
    uint64_t seen = claim_.load(std::memory_order_acquire) >> 32;
    for (;;) {
      // Spin a little (the next region of a forward pass usually follows within microseconds), then sleep.
      uint64_t g = seen;
      for (int spin = 0; spin < 4000 && g == seen && !stop_.load(std::memory_order_relaxed); ++spin) {
        CK_PAUSE();
        g = claim_.load(std::memory_order_acquire) >> 32;
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return stop_.load() || (claim_.load(std::memory_order_acquire) >> 32) != seen; });
        g = claim_.load(std::memory_order_acquire) >> 32;
      }
      if (stop_.load(std::memory_order_acquire)) return;
      seen = g;
      take_tasks(g, thread);
    }
  }

  std::vector<std::thread> workers_;
  std::vector<std::unique_ptr<AlignedBuf[]>> scratch_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stop_{false};    // set under mu_
  uint64_t generation_counter_ = 0;  // dispatcher only
  std::atomic<uint64_t> claim_{0};
  Region slots_[2];
};

struct Job {
  Isa isa;
  int threads;
  std::function<void()> run;
};

class Dispatcher {
 public:
  static Dispatcher& get() {
    // Never destroyed: worker threads may outlive static destructors at process exit.
    static Dispatcher* d = new Dispatcher();
    return *d;
  }

  void submit(Job job) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      queue_.push_back(std::move(job));
      if (!started_) {
        started_ = true;
        std::thread([this] { loop(); }).detach();
      }
    }
    cv_.notify_one();
  }

  Pool& pool() { return pool_; }

 private:
  void loop() {
    pool_.ensure_scratch();
    for (;;) {
      Job job;
      {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return !queue_.empty(); });
        job = std::move(queue_.front());
        queue_.pop_front();
      }
      pool_.resize(job.threads);
      set_current_isa(job.isa);
      job.run();
    }
  }

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Job> queue_;
  bool started_ = false;
  Pool pool_;
};

}  // namespace

void ThreadPool::parallel_for(size_t n_tasks, const std::function<void(size_t, int)>& fn) {
  Dispatcher::get().pool().run(n_tasks, fn);
}

void ThreadPool::parallel_ranges(size_t n, const std::function<void(size_t, size_t, int)>& fn) {
  const size_t t = static_cast<size_t>(threads());
  const size_t parts = n < t ? n : t;
  parallel_for(parts, [&](size_t p, int thread) {
    size_t b = n * p / parts, e = n * (p + 1) / parts;
    if (b < e) fn(b, e, thread);
  });
}

int ThreadPool::threads() const { return Dispatcher::get().pool().threads(); }

void* ThreadPool::scratch(int thread, size_t bytes, ScratchSlot slot) {
  return Dispatcher::get().pool().scratch(thread, bytes, static_cast<int>(slot));
}

int ThreadPool::current_thread() { return t_thread; }

ThreadPool& pool() {
  static ThreadPool p;
  return p;
}

void spin_pause() { CK_PAUSE(); }
void spin_yield() { std::this_thread::yield(); }

int default_threads() { return cpu_features().physical_cores; }

void submit(Isa isa, int threads, std::function<void()> run) {
  Dispatcher::get().submit(Job{isa, threads, std::move(run)});
}

}  // namespace ck
