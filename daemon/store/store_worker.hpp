#pragma once

// Threading model. The daemon's JobStore, and with it its only SQLite connection, belongs to
// one StoreWorker thread; no other thread touches it. Any thread (in the daemon: the Asio
// event loop) hands work over with post(): an operation on the JobStore and a completion
// for its result. The thread takes everything queued at that moment, runs it in one
// BEGIN IMMEDIATE transaction (each operation atomic on its own, in a savepoint) and commits
// once, so one fsync covers every state change that arrived together (group commit). It never
// waits for more work to arrive: a batch ends when the queue is empty, after max_batch_time of
// CPU or after max_batch_size operations. Only after the COMMIT has returned does it call each
// completion, on the store thread; a caller that lives on an event loop re-posts it there
// (the daemon wraps its completions in asio::post; the store knows nothing of Asio). So SQLite
// never blocks the network loop, and nothing the loop acts on is unsaved. A batch that cannot
// begin or commit (another process holds the write lock past busy_timeout, an I/O error) is
// rolled back and run again after retry_pause, as often as it takes: work is never dropped.

#include "store/job_store.hpp"

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>
#include <utility>

namespace modeldrop::store {

class StoreWorker {
 public:
  struct Options {
    // A batch stops taking work after this much of the store thread's CPU time, so whatever
    // queued behind it waits about this plus one fsync (on an idle machine); long enough that a
    // backlog is written in few commits.
    std::chrono::milliseconds max_batch_time{10};
    std::size_t max_batch_size = 1024;
    std::chrono::milliseconds retry_pause{50};  // before running a failed batch again
    // A batch that keeps failing (a full disk) is reported once, then at most this often.
    std::chrono::milliseconds failure_report_interval{30000};
    // After stop(), how long a batch that cannot be written is still tried before the rest of
    // the queue is abandoned (the daemon must exit within 10 s; docs/files.md).
    std::chrono::milliseconds stop_grace{500};
  };

  StoreWorker(JobStore store, Options options);
  explicit StoreWorker(JobStore store) : StoreWorker(std::move(store), Options{}) {}
  // stop()
  ~StoreWorker();
  StoreWorker(const StoreWorker&) = delete;
  StoreWorker& operator=(const StoreWorker&) = delete;

  // Runs `operation(JobStore&)` in the next batch and, once that batch is committed, calls
  // `done(result)` on the store thread. `operation` may run more than once (a failed batch is
  // run again) and must touch nothing but the store; `done` runs exactly once. Both are
  // copied into std::function. Posting after stop() is a programming error (std::logic_error).
  template <class Operation, class Done>
  void post(Operation operation, Done done) {
    using Value = std::invoke_result_t<Operation&, JobStore&>;
    enqueue([operation = std::move(operation), done = std::move(done)](JobStore& store) -> Completion {
      auto value = std::make_shared<Value>(operation(store));
      return [done, value]() mutable { done(std::move(*value)); };
    });
  }

  // post() for callers that want to block until the result is committed (startup, tests).
  template <class Operation>
  auto submit(Operation operation) -> std::future<std::invoke_result_t<Operation&, JobStore&>> {
    using Value = std::invoke_result_t<Operation&, JobStore&>;
    auto promise = std::make_shared<std::promise<Value>>();
    auto future = promise->get_future();
    post(std::move(operation), [promise](Value value) { promise->set_value(std::move(value)); });
    return future;
  }

  // Runs what is queued, then ends the thread. Idempotent. If the queue cannot be written
  // within Options::stop_grace (a full disk), what is left is abandoned: never committed and
  // its completions never run. The database keeps its last committed state.
  void stop();
  // Operations abandoned by stop(); nonzero means the last changes were not saved.
  [[nodiscard]] std::uint64_t abandoned_operations() const { return abandoned_.load(); }

  // For tests and the benchmark.
  [[nodiscard]] std::uint64_t batches_committed() const { return batches_committed_.load(); }
  [[nodiscard]] std::uint64_t batch_retries() const { return batch_retries_.load(); }
  [[nodiscard]] std::uint64_t largest_batch() const { return largest_batch_.load(); }
  // Time spent running operations, and in COMMIT (mostly the fsync), since the start.
  [[nodiscard]] std::chrono::nanoseconds operation_time() const {
    return std::chrono::nanoseconds(operation_ns_.load());
  }
  [[nodiscard]] std::chrono::nanoseconds commit_time() const { return std::chrono::nanoseconds(commit_ns_.load()); }

 private:
  using Completion = std::function<void()>;
  using Task = std::function<Completion(JobStore&)>;

  void enqueue(Task task);
  void run();
  // Runs the first tasks of `ready` in one transaction and commits; returns how many it took,
  // or 0 when the batch failed and must be run again.
  std::size_t try_batch(std::deque<Task>& ready, std::vector<Completion>& completions, std::string& failure);
  // After a failed batch: logs (rate-limited) and tells whether to give up (stopping, past grace).
  bool note_failure(const std::string& failure, std::size_t queued);

  JobStore store_;
  Options options_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Task> queue_;                                   // guarded by mutex_
  bool stopping_ = false;                                    // guarded by mutex_
  std::chrono::steady_clock::time_point stop_requested_at_;  // guarded by mutex_
  // Store thread only: the current run of failed batches.
  std::uint64_t failures_in_a_row_ = 0;
  std::chrono::steady_clock::time_point last_failure_report_;
  std::atomic<std::uint64_t> abandoned_{0};
  std::atomic<std::uint64_t> batches_committed_{0};
  std::atomic<std::uint64_t> batch_retries_{0};
  std::atomic<std::uint64_t> largest_batch_{0};
  std::atomic<std::int64_t> operation_ns_{0};
  std::atomic<std::int64_t> commit_ns_{0};
  std::thread thread_;  // last: starts once everything above exists
};

}  // namespace modeldrop::store
