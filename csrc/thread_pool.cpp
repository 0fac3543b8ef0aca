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

constexpr int kScratchSlots = 4;
thread_local bool t_in_region = false;
thread_local int t_thread = 0;  // this thread's index in the pool (0: the dispatcher)

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
      stop_ = true;
      stop_atomic_.store(true);
      ++generation_;
    }
    cv_.notify_all();
    for (auto& t : workers_) t.join();
    workers_.clear();
    stop_ = false;
    stop_atomic_.store(false);
    scratch_.resize(n);
    for (auto& s : scratch_)
      if (!s) s.reset(new AlignedBuf[kScratchSlots]);
    // A new worker starts from the generation current now, not from whatever it reads once it runs:
    // a parallel region may begin before the thread is scheduled, and it must not be missed.
    gen_atomic_.store(generation_, std::memory_order_release);
    for (int i = 1; i < n; ++i) workers_.emplace_back([this, i, g = generation_] { worker_loop(i, g); });
  }

  void* scratch(int thread, size_t bytes, int slot) {
    if (thread < 0 || thread >= static_cast<int>(scratch_.size()) || slot < 0 || slot >= kScratchSlots) return nullptr;
    return scratch_[thread][slot].get(bytes);
  }

  void run(size_t n_tasks, const std::function<void(size_t, int)>& fn) {
    if (n_tasks == 0) return;
    if (t_in_region || workers_.empty() || n_tasks == 1) {
      for (size_t i = 0; i < n_tasks; ++i) fn(i, t_thread);
      return;
    }
    fn_ = &fn;
    n_tasks_ = n_tasks;
    next_.store(0, std::memory_order_relaxed);
    pending_.store(static_cast<int>(workers_.size()), std::memory_order_relaxed);
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++generation_;
      gen_atomic_.store(generation_, std::memory_order_release);
    }
    cv_.notify_all();
    t_in_region = true;
    take_tasks(0);
    t_in_region = false;
    while (pending_.load(std::memory_order_acquire) != 0) CK_PAUSE();
    fn_ = nullptr;
  }

  void ensure_scratch() {
    if (scratch_.empty()) {
      scratch_.resize(1);
      scratch_[0].reset(new AlignedBuf[kScratchSlots]);
    }
  }

 private:
  void take_tasks(int thread) {
    for (;;) {
      size_t i = next_.fetch_add(1, std::memory_order_relaxed);
      if (i >= n_tasks_) break;
      (*fn_)(i, thread);
    }
  }

  void worker_loop(int thread, uint64_t seen) {
    t_in_region = true;
    t_thread = thread;
    for (;;) {
      // Spin a little: the next parallel region of a forward pass usually follows within microseconds.
      uint64_t g = seen;
      for (int spin = 0; spin < 20000; ++spin) {
        g = gen_atomic_.load(std::memory_order_acquire);
        if (g != seen || stop_flag()) break;
        CK_PAUSE();
      }
      if (g == seen) {
        std::unique_lock<std::mutex> lock(mu_);
        cv_.wait(lock, [&] { return generation_ != seen || stop_; });
        if (stop_) return;
        g = generation_;
      }
      if (stop_flag()) return;
      seen = g;
      take_tasks(thread);
      pending_.fetch_sub(1, std::memory_order_acq_rel);
    }
  }

  bool stop_flag() const { return stop_atomic_.load(std::memory_order_acquire); }

  std::vector<std::thread> workers_;
  std::vector<std::unique_ptr<AlignedBuf[]>> scratch_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;
  std::atomic<uint64_t> gen_atomic_{0};
  bool stop_ = false;
  std::atomic<bool> stop_atomic_{false};
  const std::function<void(size_t, int)>* fn_ = nullptr;
  size_t n_tasks_ = 0;
  std::atomic<size_t> next_{0};
  std::atomic<int> pending_{0};
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

void* ThreadPool::scratch(int thread, size_t bytes, int slot) {
  return Dispatcher::get().pool().scratch(thread, bytes, slot);
}

ThreadPool& pool() {
  static ThreadPool p;
  return p;
}

int default_threads() { return cpu_features().physical_cores; }

void submit(Isa isa, int threads, std::function<void()> run) {
  Dispatcher::get().submit(Job{isa, threads, std::move(run)});
}

}  // namespace ck
