// The job queue: queue_job, which runs an op's kernel on the native dispatcher and settles its
// promise on the JS thread, and the setQuiet / fence exports that batch the hand-backs.
#include "jobs.h"

#include <condition_variable>
#include <mutex>
#include <exception>
#include <memory>
#include <new>
#include <utility>

#include "cpu_features.h"
#include "thread_pool.h"

namespace ck_binding {

// ---- jobs ----
//
// Every op is a job: queued on the native dispatcher (FIFO, one at a time), it runs its kernel off
// the JS thread and hands itself back through its environment's one thread-safe function, whose
// callback settles the op's promise on the JS thread.
//
// A job submitted quietly (setQuiet(true), as OpQueue does for the ops of a forward pass) that
// finishes while a later job of its environment is still queued is not handed back yet: it waits
// (parked) and goes back together with the next job that is handed back — a job not submitted
// quietly (OpQueue's fence), or one that finds no later job of its environment queued. So the JS
// thread wakes once per forward pass instead of once per op (on a machine with few cores each
// wake-up takes one from the kernels), and a parked job always has a later job that will carry it
// back: nothing waits forever.

namespace {

struct Job;
struct EnvJobs;
using Batch = std::vector<Job*>;
void settle(Napi::Env env, Napi::Function, EnvJobs* ej, Batch* batch);
using Tsfn = Napi::TypedThreadSafeFunction<EnvJobs, Batch, settle>;

enum class JobState { Queued, Running, Done };

// Teardown (process exit, worker.terminate()): the environment's typed arrays are about to be freed
// and its thread-safe function closed. Each job registers a cleanup hook, and hooks run in reverse
// order of registration, so every job's hook runs before its environment's (registered when the
// environment queued its first job), which runs before the thread-safe function's own. A job's hook
// marks it abandoned and waits while its kernel runs; an abandoned job is not run if still queued.
// The environment's hook marks it closing: from then on nothing is handed back to it.
std::mutex g_jobs_mu;
std::condition_variable g_jobs_cv;

struct Job {
  JobState state = JobState::Queued;  // guarded by g_jobs_mu
  bool abandoned = false;             // guarded by g_jobs_mu
  bool quiet = false;
  EnvJobs* owner;
  Napi::Promise::Deferred deferred;
  std::vector<Napi::Reference<Napi::Value>> keep;
  std::function<ck::ck_status()> run;
  std::function<Napi::Value(Napi::Env)> result;
  ck::ck_status status = ck::CK_OK;
  std::string op;
  Job(Napi::Env e, EnvJobs* o) : owner(o), deferred(Napi::Promise::Deferred::New(e)) {}
};

// One per environment (JS thread). Freed by whoever sees it closing with no job left.
struct EnvJobs {
  Tsfn tsfn;
  size_t unsettled = 0;       // JS thread: jobs queued and not yet settled; the function is ref'd while > 0
  size_t queued = 0;          // guarded by g_jobs_mu: jobs queued or running
  bool closing = false;       // guarded by g_jobs_mu
  Batch parked;               // guarded by g_jobs_mu: quiet jobs done, waiting for a later one
};

// The environment of the JS thread this runs on (each JS thread hosts at most one).
thread_local EnvJobs* t_env_jobs = nullptr;
thread_local bool t_quiet = false;

// Drops a job without touching its environment (torn down, or being torn down).
void drop(Job* job) {
  for (auto& r : job->keep) r.SuppressDestruct();
  delete job;
}

void abandon_job(void* arg) {
  Job* job = static_cast<Job*>(arg);
  std::unique_lock<std::mutex> lock(g_jobs_mu);
  job->abandoned = true;
  g_jobs_cv.wait(lock, [&] { return job->state != JobState::Running; });
}

void close_env(void* arg) {
  EnvJobs* ej = static_cast<EnvJobs*>(arg);
  bool last;
  {
    std::lock_guard<std::mutex> lock(g_jobs_mu);
    ej->closing = true;
    for (Job* j : ej->parked) drop(j);
    ej->parked.clear();
    last = ej->queued == 0;
  }
  if (t_env_jobs == ej) t_env_jobs = nullptr;
  if (last) delete ej;
}

EnvJobs* env_jobs(Napi::Env env) {
  if (!t_env_jobs) {
    auto ej = std::make_unique<EnvJobs>();
    ej->tsfn = Tsfn::New(env, "clipkit", 0, 1, ej.get());
    ej->tsfn.Unref(env);  // an idle addon does not keep the process alive
    napi_add_env_cleanup_hook(env, close_env, ej.get());
    t_env_jobs = ej.release();
  }
  return t_env_jobs;
}

void settle_now(Napi::Env env, Job* job) {
  Napi::HandleScope scope(env);
  if (job->status == ck::CK_OK) {
    Napi::Value v = env.Undefined();
    if (job->result) {
      try {
        v = job->result(env);
      } catch (const Napi::Error& e) {
        job->deferred.Reject(e.Value());
        return;
      }
    }
    job->deferred.Resolve(v);
  } else {
    Napi::Error e = Napi::Error::New(env, job->op + ": " + ck::status_message(job->status));
    e.Set("code", Napi::String::New(env, job->status == ck::CK_ERR_NOMEM ? "E_NOMEM" : "E_NATIVE"));
    job->deferred.Reject(e.Value());
  }
}

// Runs on the JS thread, the batch's jobs in the order they ran. Nothing may throw out of here (it
// is called from C): while a worker is being terminated, settling a promise fails with a pending
// termination exception, which is dropped.
void settle(Napi::Env env, Napi::Function, EnvJobs* ej, Batch* batch) {
  std::unique_ptr<Batch> owned(batch);
  if (env == nullptr) {  // the function is being torn down: settle nothing, touch no JS
    for (Job* j : *owned) drop(j);
    return;
  }
  // The dispatcher hands a batch over under g_jobs_mu; wait for it to let go before removing hooks.
  { std::lock_guard<std::mutex> lock(g_jobs_mu); }
  for (Job* j : *owned) {
    std::unique_ptr<Job> job(j);
    napi_remove_env_cleanup_hook(env, abandon_job, j);
    try {
      settle_now(env, j);
    } catch (...) {
      // The environment is terminating (worker.terminate()): there is no one left to tell.
    }
  }
  ej->unsettled -= owned->size();
  if (ej->unsettled == 0) ej->tsfn.Unref(env);
}

// Hands every parked job back to JS in one batch (dropping those whose environment is going away).
// Under g_jobs_mu.
void hand_back_parked(EnvJobs* ej) {
  auto batch = std::make_unique<Batch>();
  for (Job* j : ej->parked) {
    if (j->abandoned || ej->closing) drop(j);
    else batch->push_back(j);
  }
  ej->parked.clear();
  // The queue is unbounded: the call never waits for JS.
  if (!batch->empty() && ej->tsfn.BlockingCall(batch.get()) == napi_ok) batch.release();
  if (batch)
    for (Job* j : *batch) drop(j);
}

// Dispatcher thread, after a job ran (or was skipped as abandoned).
void job_done(Job* job) {
  std::unique_lock<std::mutex> lock(g_jobs_mu);
  EnvJobs* ej = job->owner;
  job->state = JobState::Done;
  ej->queued -= 1;
  ej->parked.push_back(job);
  if (!(job->quiet && ej->queued > 0 && !ej->closing && !job->abandoned)) hand_back_parked(ej);
  const bool last = ej->closing && ej->queued == 0;
  lock.unlock();
  g_jobs_cv.notify_all();
  if (last) delete ej;
}

}  // namespace

Napi::Value queue_job(Args& args, std::function<ck::ck_status()> run, std::function<Napi::Value(Napi::Env)> result) {
  Napi::Env env = args.env();
  EnvJobs* ej = env_jobs(env);
  auto job = std::make_unique<Job>(env, ej);
  for (Napi::Value& v : args.kept()) job->keep.push_back(Napi::Persistent(v));
  // `repeat` (benchmarks only) runs the kernel that many times in one job, so a timing of a small op
  // is not dominated by the hand-off to the pool and back.
  const size_t repeat = args.size_or("repeat", 1);
  if (repeat < 1 || repeat > 1000000) throw_range(env, "E_ARG", std::string(args.op()) + ": repeat must be in [1, 1e6]");
  if (repeat == 1) {
    job->run = std::move(run);
  } else {
    job->run = [run = std::move(run), repeat] {
      ck::ck_status s = ck::CK_OK;
      for (size_t i = 0; i < repeat && s == ck::CK_OK; ++i) s = run();
      return s;
    };
  }
  job->result = std::move(result);
  job->op = args.op();
  job->quiet = t_quiet;
  Napi::Promise promise = job->deferred.Promise();
  Job* raw = job.release();
  napi_add_env_cleanup_hook(env, abandon_job, raw);
  if (ej->unsettled++ == 0) ej->tsfn.Ref(env);
  {
    std::lock_guard<std::mutex> lock(g_jobs_mu);
    ej->queued += 1;
  }
  auto body = [raw] {
    {
      std::lock_guard<std::mutex> lock(g_jobs_mu);
      if (!raw->abandoned) raw->state = JobState::Running;
    }
    if (raw->state == JobState::Running) {
      try {
        raw->status = raw->run();
      } catch (const std::bad_alloc&) {
        raw->status = ck::CK_ERR_NOMEM;
      } catch (...) {
        raw->status = ck::CK_ERR_ARG;
      }
    }
    job_done(raw);
  };
  try {
    ck::submit(ck::requested_isa(), requested_threads(), std::move(body));
  } catch (const std::exception& e) {
    // Not queued (no memory for the queue, or no dispatcher thread): undo, so that no parked job
    // waits for this one, and say so.
    {
      std::lock_guard<std::mutex> lock(g_jobs_mu);
      ej->queued -= 1;
      if (ej->queued == 0) hand_back_parked(ej);  // a quiet job may have parked to wait for this one
    }
    napi_remove_env_cleanup_hook(env, abandon_job, raw);
    if (--ej->unsettled == 0) ej->tsfn.Unref(env);
    delete raw;
    throw_error(env, "E_NOMEM", std::string(args.op()) + ": cannot queue the job: " + e.what());
  }
  return promise;
}

// setQuiet(on): jobs this thread queues from now on may wait for a later job to be handed back.
Napi::Value SetQuiet(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsBoolean()) throw_type(env, "E_ARG", "setQuiet: expected a boolean");
  t_quiet = info[0].As<Napi::Boolean>().Value();
  return env.Undefined();
}

// fence({}): a job that does nothing; it resolves once every job queued before it has run, and hands
// back every quiet job parked before it.
Napi::Value Fence(const Napi::CallbackInfo& info) {
  Args args(info, "fence");
  const bool quiet = t_quiet;
  t_quiet = false;
  Napi::Value p = queue_job(args, [] { return ck::CK_OK; });
  t_quiet = quiet;
  return p;
}

}  // namespace ck_binding
