#include "store/store_worker.hpp"

#include <spdlog/spdlog.h>

#include <time.h>

#include <stdexcept>

namespace modeldrop::store {

namespace {

std::chrono::nanoseconds thread_cpu_time() {
  timespec now{};
  ::clock_gettime(CLOCK_THREAD_CPUTIME_ID, &now);
  return std::chrono::seconds(now.tv_sec) + std::chrono::nanoseconds(now.tv_nsec);
}

}  // namespace

StoreWorker::StoreWorker(JobStore store, Options options)
    : store_(std::move(store)), options_(options), thread_([this] { run(); }) {}

StoreWorker::~StoreWorker() {
  stop();
}

void StoreWorker::stop() {
  {
    std::lock_guard lock(mutex_);
    if (!stopping_) stop_requested_at_ = std::chrono::steady_clock::now();
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable() && thread_.get_id() != std::this_thread::get_id()) thread_.join();
}

void StoreWorker::enqueue(Task task) {
  {
    std::lock_guard lock(mutex_);
    if (stopping_) throw std::logic_error("StoreWorker::post after stop()");
    queue_.push_back(std::move(task));
  }
  wake_.notify_one();
}

void StoreWorker::run() {
  std::deque<Task> ready;
  std::vector<Completion> completions;
  for (;;) {
    if (ready.empty()) {
      std::unique_lock lock(mutex_);
      wake_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
      if (queue_.empty()) return;  // stopping, and nothing left to do
      ready.swap(queue_);
    }
    std::string failure;
    const std::size_t taken = try_batch(ready, completions, failure);
    if (taken == 0) {
      batch_retries_.fetch_add(1);
      if (note_failure(failure, ready.size())) {
        std::lock_guard lock(mutex_);
        const std::size_t dropped = ready.size() + queue_.size();
        abandoned_.fetch_add(dropped);
        spdlog::error(
            "job store: stopping with {} operations that cannot be written ({}); the next start resumes from "
            "what was saved before",
            dropped, failure);
        queue_.clear();
        return;
      }
      std::this_thread::sleep_for(options_.retry_pause);
      continue;
    }
    if (failures_in_a_row_ > 0) {
      spdlog::info("job store: writing again after {} failed attempts", failures_in_a_row_);
      failures_in_a_row_ = 0;
    }
    ready.erase(ready.begin(), ready.begin() + static_cast<std::ptrdiff_t>(taken));
    batches_committed_.fetch_add(1);
    if (taken > largest_batch_.load()) largest_batch_.store(taken);
    // Committed: now, and only now, the callers may act on the results.
    for (auto& completion : completions) completion();
    completions.clear();
    // Work that arrived meanwhile joins the next batch behind what is left.
    std::lock_guard lock(mutex_);
    while (!queue_.empty()) {
      ready.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
  }
}

bool StoreWorker::note_failure(const std::string& failure, std::size_t queued) {
  const auto now = std::chrono::steady_clock::now();
  // A full disk fails every batch until space returns: one line, then one per interval.
  if (failures_in_a_row_++ == 0 || now - last_failure_report_ >= options_.failure_report_interval) {
    last_failure_report_ = now;
    if (failures_in_a_row_ == 1) {
      spdlog::warn("job store: {}; {} operations wait and are tried again every {} ms", failure, queued,
                   options_.retry_pause.count());
    } else {
      spdlog::warn("job store: still cannot write ({} attempts so far): {}; {} operations wait", failures_in_a_row_,
                   failure, queued);
    }
  }
  std::lock_guard lock(mutex_);
  return stopping_ && now - stop_requested_at_ >= options_.stop_grace;
}

std::size_t StoreWorker::try_batch(std::deque<Task>& ready, std::vector<Completion>& completions,
                                   std::string& failure) {
  auto& db = store_.connection();
  completions.clear();
  const auto busy_before = db.busy_results();
  auto transaction = ImmediateTransaction::begin(db);
  if (!transaction) {
    failure = "cannot start a transaction (" + transaction.error().message + ")";
    return 0;
  }
  const auto started = std::chrono::steady_clock::now();
  // Measured in this thread's CPU time: on a busy machine a batch holds as much work as on an
  // idle one, instead of shrinking while the thread waits for a CPU (and paying more fsyncs).
  const auto cpu_deadline = thread_cpu_time() + options_.max_batch_time;
  std::size_t taken = 0;
  while (taken < ready.size() && taken < options_.max_batch_size && (taken == 0 || thread_cpu_time() < cpu_deadline)) {
    completions.push_back(ready[taken](store_));
    ++taken;
    // An I/O error or a full disk can roll the whole transaction back under us.
    if (!db.in_transaction()) break;
  }
  if (!db.in_transaction() || db.busy_results() != busy_before) {
    failure = "a batch of " + std::to_string(taken) + " operations was interrupted (lock or I/O error)";
    return 0;
  }
  const auto committing = std::chrono::steady_clock::now();
  operation_ns_.fetch_add((committing - started).count());
  auto committed = transaction->commit();
  commit_ns_.fetch_add((std::chrono::steady_clock::now() - committing).count());
  if (!committed) {
    failure = "cannot commit a batch of " + std::to_string(taken) + " operations (" + committed.error().message + ")";
    return 0;
  }
  return taken;
}

}  // namespace modeldrop::store
