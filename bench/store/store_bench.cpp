// Job store benchmarks (figures in bench/README.md; run by bench/store/run).
//
//   store_bench throughput DB [JOBS]   JOBS jobs (default 100000) through enqueue -> claim ->
//                                      begin_attempt -> finish_attempt on the StoreWorker, with
//                                      the shipped durability (synchronous=FULL, group commit).
//                                      Completions hop to an "event loop" thread before the next
//                                      step is posted, as the daemon's asio::post does.
//   store_bench fill DB [ROWS]         a database of ROWS jobs (default 1000000) in a realistic
//                                      mix of states, each with an attempt, for `modeldrop jobs`.
#include "common/timestamp.hpp"
#include "store/job_store.hpp"
#include "store/store_worker.hpp"

#include <fmt/format.h>

#include <algorithm>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <functional>
#include <iostream>
#include <mutex>
#include <thread>
#include <vector>

namespace {

using namespace modeldrop;
using namespace modeldrop::store;
using SteadyClock = std::chrono::steady_clock;

// A minimal single-threaded event loop standing in for the daemon's Asio loop.
class EventLoop {
 public:
  void post(std::function<void()> work) {
    {
      std::lock_guard lock(mutex_);
      queue_.push_back(std::move(work));
    }
    wake_.notify_one();
  }
  void run_until(const std::function<bool()>& done) {
    while (!done()) {
      std::function<void()> work;
      {
        std::unique_lock lock(mutex_);
        wake_.wait(lock, [&] { return !queue_.empty(); });
        work = std::move(queue_.front());
        queue_.pop_front();
      }
      work();
    }
  }

 private:
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::function<void()>> queue_;
};

template <class T>
T must(Result<T> result) {
  if (!result) {
    std::cerr << "store_bench: " << result.error().message << "\n";
    std::exit(1);
  }
  return std::move(*result);
}

void must(Result<void> result) {
  if (!result) {
    std::cerr << "store_bench: " << result.error().message << "\n";
    std::exit(1);
  }
}

double percentile(std::vector<double>& values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return values[std::min(values.size() - 1, static_cast<std::size_t>(p * static_cast<double>(values.size())))];
}

int throughput(const std::filesystem::path& db, std::uint64_t jobs) {
  std::filesystem::remove(db);
  std::filesystem::remove(db.string() + "-wal");
  std::filesystem::remove(db.string() + "-shm");
  auto store = must(JobStore::open_for_daemon(db));
  const auto sync = must(store.connection().query_int64("PRAGMA synchronous"));
  StoreWorker worker(std::move(store));
  EventLoop loop;
  std::uint64_t finished = 0;  // touched on the loop thread only
  std::vector<double> op_latency_ms;
  op_latency_ms.reserve(jobs * 4);
  const auto now = WallClock::now();

  // post() from the loop thread; the completion hops back to the loop (the daemon's asio::post).
  const auto step = [&](auto operation, auto on_result) {
    const auto posted = SteadyClock::now();
    worker.post(std::move(operation), [&loop, &op_latency_ms, posted, on_result](auto result) {
      loop.post([&op_latency_ms, posted, on_result, result = std::move(result)]() mutable {
        op_latency_ms.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - posted).count());
        on_result(std::move(result));
      });
    });
  };

  const auto start = SteadyClock::now();
  loop.post([&] {
    // Every file found at once, as a startup scan of a full drop directory finds them.
    for (std::uint64_t i = 1; i <= jobs; ++i) {
      NewJob job;
      job.path = fmt::format("/var/spool/modeldrop/incoming/model-{:06}.tar.gz", i);
      job.watch_dir = "/var/spool/modeldrop/incoming";
      job.file = {2049, i, 100'000'000 + i, 1'700'000'000'000'000'000};
      step([job, now](JobStore& s) { return s.enqueue(job, now); },
           [&, now](Result<EnqueueResult> queued) {
             must(std::move(queued));
             step([now](JobStore& s) { return s.claim_next(now); },
                  [&, now](Result<std::optional<Job>> claimed) {
                    const auto job_claimed = must(std::move(claimed));
                    if (!job_claimed) {
                      std::cerr << "store_bench: nothing to claim\n";
                      std::exit(1);
                    }
                    const JobId id = job_claimed->id;
                    const auto size = job_claimed->size_bytes;
                    step([id, now](JobStore& s) { return s.begin_attempt(id, now); },
                         [&, id, size, now](Result<int> begun) {
                           must(std::move(begun));
                           AttemptReport report;
                           report.job = id;
                           report.outcome = AttemptOutcome::succeeded;
                           report.http_status = 200;
                           report.bytes_sent = size;
                           report.next_state = JobState::succeeded;
                           report.file_id = fmt::format("file-{}", id);
                           report.file_status = "uploaded";
                           step([report, now](JobStore& s) { return s.finish_attempt(report, now); },
                                [&](Result<Job> done) {
                                  must(std::move(done));
                                  ++finished;
                                });
                         });
                  });
           });
    }
  });
  loop.run_until([&] { return finished == jobs; });
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  const auto batches = worker.batches_committed();
  worker.stop();

  std::cout << fmt::format("throughput: {} jobs enqueue->claim->begin->finish in {:.2f} s = {:.0f} jobs/s\n", jobs,
                           seconds, static_cast<double>(jobs) / seconds);
  std::cout << fmt::format(
      "  synchronous={} (2 = FULL), {} store operations in {} commits ({:.0f} per commit, "
      "largest {}), {} retries\n",
      sync, jobs * 4, batches, static_cast<double>(jobs * 4) / static_cast<double>(batches), worker.largest_batch(),
      worker.batch_retries());
  std::cout << fmt::format("  store thread: {:.2f} s running operations, {:.2f} s in COMMIT (fsync)\n",
                           std::chrono::duration<double>(worker.operation_time()).count(),
                           std::chrono::duration<double>(worker.commit_time()).count());
  std::cout << fmt::format("  post -> completion on the loop (queueing included): p50 {:.1f} ms, p99 {:.1f} ms\n",
                           percentile(op_latency_ms, 0.5), percentile(op_latency_ms, 0.99));
  return 0;
}

// One steady stream: a new job every `gap`, as a watcher delivers them, to show the latency
// that group commit adds when nothing is queued behind.
int trickle(const std::filesystem::path& db, std::uint64_t jobs) {
  std::filesystem::remove(db);
  std::filesystem::remove(db.string() + "-wal");
  std::filesystem::remove(db.string() + "-shm");
  StoreWorker worker(must(JobStore::open_for_daemon(db)));
  std::vector<double> latency_ms;
  const auto now = WallClock::now();
  for (std::uint64_t i = 1; i <= jobs; ++i) {
    NewJob job;
    job.path = fmt::format("/var/spool/modeldrop/incoming/t-{:06}.zip", i);
    job.file = {2049, i, 1000, 1};
    const auto posted = SteadyClock::now();
    auto done = worker.submit([job, now](JobStore& s) { return s.enqueue(job, now); });
    must(done.get());
    latency_ms.push_back(std::chrono::duration<double, std::milli>(SteadyClock::now() - posted).count());
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  std::cout << fmt::format(
      "trickle: {} single enqueues, post -> committed: p50 {:.2f} ms, p99 {:.2f} ms, max {:.2f} ms\n", jobs,
      percentile(latency_ms, 0.5), percentile(latency_ms, 0.99), percentile(latency_ms, 1.0));
  return 0;
}

int fill(const std::filesystem::path& db, std::uint64_t rows) {
  std::filesystem::remove(db);
  std::filesystem::remove(db.string() + "-wal");
  std::filesystem::remove(db.string() + "-shm");
  auto store = must(JobStore::open_for_daemon(db));
  auto& connection = store.connection();
  const auto start = SteadyClock::now();
  // Bulk-built with plain SQL (this is a fixture, not the daemon's path): 90 % succeeded,
  // 5 % failed, 3 % cancelled, the rest pending, the newest 4 uploading; one attempt each.
  must(connection.execute("PRAGMA synchronous = OFF"));
  must(connection.execute(fmt::format(
      "BEGIN; "
      "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {0}), "
      "numbered(i, s, t) AS (SELECT i, CASE WHEN i > {0} - 4 THEN 'uploading' WHEN i % 100 < 90 THEN 'succeeded' "
      "WHEN i % 100 < 95 THEN 'failed' WHEN i % 100 < 98 THEN 'cancelled' ELSE 'pending' END, "
      "strftime('%Y-%m-%dT%H:%M:%fZ', 1700000000 + i, 'unixepoch') FROM n) "
      "INSERT INTO jobs (id, path, current_path, watch_dir, size_bytes, sha256, state, attempts, bytes_sent, "
      "file_id, file_status, http_status, last_error, created_at, updated_at, finished_at, device, inode, "
      "mtime_ns, budget_started_at) "
      "SELECT i, printf('/var/spool/modeldrop/incoming/batch-%04d/model-%07d.tar.gz', i / 1000, i), "
      "printf('/var/spool/modeldrop/incoming/done/batch-%04d/model-%07d.tar.gz', i / 1000, i), "
      "'/var/spool/modeldrop/incoming', 50000000 + i, NULL, s, 1, 0, printf('file-%08x', i), 'uploaded', 201, NULL, "
      "t, t, CASE WHEN s IN ('succeeded', 'failed', 'cancelled') THEN t END, 2049, i, i, t FROM numbered; "
      "UPDATE jobs SET file_id = NULL, file_status = NULL, http_status = 422, "
      "last_error = 'HTTP 422: adapter_config.json is missing' WHERE state = 'failed'; "
      "UPDATE jobs SET file_id = NULL, file_status = NULL, http_status = NULL, "
      "last_error = 'cancelled by request (modeldrop cancel)' WHERE state = 'cancelled'; "
      "UPDATE jobs SET file_id = NULL, file_status = NULL, http_status = 503, attempts = 1, "
      "next_attempt_at = '2030-01-01T00:00:00.000Z', current_path = path, last_error = 'HTTP 503' "
      "WHERE state IN ('pending', 'uploading'); "
      "UPDATE jobs SET bytes_sent = size_bytes / 3, upload_rate_bytes_per_s = 40000000.0, current_path = path, "
      "progress_at_ms = 1700000000000 WHERE state = 'uploading'; "
      "INSERT INTO attempts (job_id, attempt, started_at, finished_at, http_status, bytes_sent, outcome, error) "
      "SELECT id, 1, created_at, coalesce(finished_at, updated_at), http_status, size_bytes, "
      "CASE state WHEN 'succeeded' THEN 'succeeded' WHEN 'failed' THEN 'failed' WHEN 'cancelled' THEN 'aborted' "
      "ELSE 'retry' END, last_error FROM jobs; "
      "COMMIT; PRAGMA wal_checkpoint(TRUNCATE);",
      rows)));
  const double seconds = std::chrono::duration<double>(SteadyClock::now() - start).count();
  for (const auto& state : must(store.summary())) {
    std::cout << fmt::format("  {:<10} {:>8} jobs\n", to_string(state.state), state.jobs);
  }
  std::cout << fmt::format("fill: {} jobs in {:.1f} s, {} MiB\n", rows, seconds,
                           std::filesystem::file_size(db) / (1024 * 1024));
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string usage = "usage: store_bench throughput|trickle|fill DB [COUNT]\n";
  if (argc < 3) {
    std::cerr << usage;
    return 2;
  }
  const std::string mode = argv[1];
  const std::filesystem::path db = argv[2];
  const auto count = [&](std::uint64_t fallback) { return argc > 3 ? std::strtoull(argv[3], nullptr, 10) : fallback; };
  if (mode == "throughput") return throughput(db, count(100'000));
  if (mode == "trickle") return trickle(db, count(500));
  if (mode == "fill") return fill(db, count(1'000'000));
  std::cerr << usage;
  return 2;
}
