// The store thread: results only after commit, group commit of work that arrives together,
// one failing operation never undoing its neighbours, retries instead of dropped work, and a
// clean stop. Runs under TSan too (label `threads`).
#include "store/store_worker.hpp"
#include "process_helpers.hpp"
#include "store_fixture.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <future>
#include <latch>
#include <thread>

namespace modeldrop::store {
namespace {

using namespace test_support;

constexpr auto kWait = std::chrono::seconds(30);

class StoreWorkerTest : public ::testing::Test {
 protected:
  std::filesystem::path db_path() const { return dir_ / "jobs.db"; }

  std::unique_ptr<StoreWorker> start(StoreWorker::Options options = {}, StoreOptions store_options = {}) {
    return std::make_unique<StoreWorker>(must(JobStore::open_for_daemon(db_path(), store_options)), options);
  }

  // A separate connection, as an outside reader sees the file.
  std::int64_t count_jobs() {
    auto reader = must(JobStore::open_existing(db_path()));
    return must(reader.connection().query_int64("SELECT count(*) FROM jobs"));
  }

  // Holds the store thread inside a batch of its own until release(), so that work piles up.
  struct Gate {
    std::promise<void> opened;
    std::shared_future<void> open = opened.get_future().share();
    std::shared_ptr<std::atomic<bool>> entered = std::make_shared<std::atomic<bool>>(false);
    void release() { opened.set_value(); }
  };
  void block(StoreWorker& worker, Gate& gate) {
    worker.post(
        [open = gate.open, entered = gate.entered](JobStore&) {
          entered->store(true);
          return open.wait_for(kWait) == std::future_status::ready;
        },
        [](bool) {});
    const auto deadline = std::chrono::steady_clock::now() + kWait;
    while (!gate.entered->load() && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    ASSERT_TRUE(gate.entered->load());
  }

  test::TempDir dir_;
};

TEST_F(StoreWorkerTest, ResultsArriveOnlyAfterTheirBatchIsCommitted) {
  auto worker = start();
  std::promise<std::int64_t> visible_to_others;
  worker->post([](JobStore& store) { return store.enqueue(new_job("/spool/in/a.zip", 1), t0()); },
               [&](const Result<EnqueueResult>& result) {
                 EXPECT_TRUE(result);
                 // Another connection already sees it: the COMMIT came first.
                 visible_to_others.set_value(count_jobs());
               });
  auto future = visible_to_others.get_future();
  ASSERT_EQ(future.wait_for(kWait), std::future_status::ready);
  EXPECT_EQ(future.get(), 1);
}

TEST_F(StoreWorkerTest, CompletionsRunOnTheStoreThread) {
  auto worker = start();
  std::promise<std::thread::id> ran_on;
  worker->post([](JobStore& store) { return store.is_paused(); },
               [&](const Result<bool>&) { ran_on.set_value(std::this_thread::get_id()); });
  auto future = ran_on.get_future();
  ASSERT_EQ(future.wait_for(kWait), std::future_status::ready);
  EXPECT_NE(future.get(), std::this_thread::get_id());
}

TEST_F(StoreWorkerTest, WorkThatArrivesTogetherIsCommittedTogether) {
  StoreWorker::Options options;
  options.max_batch_time = std::chrono::seconds(10);  // so that only the size limit could split
  auto worker = start(options);
  Gate gate;
  block(*worker, gate);
  std::vector<std::future<Result<EnqueueResult>>> results;
  for (std::uint64_t i = 1; i <= 1000; ++i) {
    results.push_back(worker->submit(
        [i](JobStore& store) { return store.enqueue(new_job("/spool/in/" + std::to_string(i) + ".zip", i), t0()); }));
  }
  gate.release();
  for (auto& result : results) {
    ASSERT_EQ(result.wait_for(kWait), std::future_status::ready);
    EXPECT_TRUE(result.get());
  }
  EXPECT_EQ(worker->batches_committed(), 2u) << "the gate's batch, then all 1000 in one";
  EXPECT_EQ(worker->largest_batch(), 1000u);
  EXPECT_EQ(count_jobs(), 1000);
}

TEST_F(StoreWorkerTest, ABatchNeverExceedsItsSizeLimit) {
  StoreWorker::Options options;
  options.max_batch_size = 100;
  auto worker = start(options);
  Gate gate;
  block(*worker, gate);
  std::vector<std::future<Result<EnqueueResult>>> results;
  for (std::uint64_t i = 1; i <= 250; ++i) {
    results.push_back(worker->submit(
        [i](JobStore& store) { return store.enqueue(new_job("/spool/in/" + std::to_string(i) + ".zip", i), t0()); }));
  }
  gate.release();
  for (auto& result : results) ASSERT_EQ(result.wait_for(kWait), std::future_status::ready);
  EXPECT_LE(worker->largest_batch(), 100u);
  EXPECT_GE(worker->batches_committed(), 4u);
  EXPECT_EQ(count_jobs(), 250);
}

TEST_F(StoreWorkerTest, AFailingOperationDoesNotUndoItsNeighbours) {
  StoreWorker::Options options;
  options.max_batch_time = std::chrono::seconds(10);  // all four in one batch, however slow the build
  auto worker = start(options);
  Gate gate;
  block(*worker, gate);
  auto first = worker->submit([](JobStore& store) { return store.enqueue(new_job("/spool/in/a.zip", 1), t0()); });
  // Writes, then fails: its savepoint is rolled back, the batch goes on.
  auto failing = worker->submit([](JobStore& store) -> Result<void> {
    auto write = AtomicWrite::begin(store.connection());
    if (!write) return write.error();
    if (auto done = store.connection().execute("INSERT INTO settings (key, value) VALUES ('half-done', 'x')"); !done) {
      return done.error();
    }
    return make_error("failed after writing");
  });
  auto illegal = worker->submit([](JobStore& store) { return store.begin_attempt(1, t0()); });  // job 1 is pending
  auto last = worker->submit([](JobStore& store) { return store.enqueue(new_job("/spool/in/b.zip", 2), t0()); });
  gate.release();
  ASSERT_EQ(last.wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(first.get());
  EXPECT_FALSE(failing.get());
  const auto illegal_result = illegal.get();
  ASSERT_FALSE(illegal_result);
  EXPECT_EQ(illegal_result.error().code, StoreErrc::illegal_transition);
  EXPECT_TRUE(last.get());
  EXPECT_EQ(worker->batches_committed(), 2u);
  EXPECT_EQ(count_jobs(), 2);
  auto reader = must(JobStore::open_existing(db_path()));
  EXPECT_EQ(must(reader.connection().query_int64("SELECT count(*) FROM settings WHERE key = 'half-done'")), 0);
}

TEST_F(StoreWorkerTest, ALockHeldPastBusyTimeoutDelaysWorkButNeverDropsIt) {
  must(JobStore::open_for_daemon(db_path()));
  ChildPipe pipe;
  const pid_t child = ::fork();  // before any thread of this test exists
  ASSERT_GE(child, 0);
  if (child == 0) {
    pipe.close_read();
    auto db = Connection::open(db_path(), OpenMode::existing_only, std::chrono::milliseconds(1000));
    if (!db || !db->execute("BEGIN IMMEDIATE")) ::_exit(2);
    pipe.send(1);
    ::usleep(1'500'000);
    ::_exit(db->execute("COMMIT") ? 0 : 2);
  }
  pipe.close_write();
  ASSERT_TRUE(pipe.receive(kWait));

  StoreWorker::Options options;
  options.retry_pause = std::chrono::milliseconds(20);
  StoreOptions store_options;
  store_options.busy_timeout = std::chrono::milliseconds(100);
  auto worker = start(options, store_options);
  const auto start_time = std::chrono::steady_clock::now();
  auto queued = worker->submit([](JobStore& store) { return store.enqueue(new_job("/spool/in/a.zip", 1), t0()); });
  ASSERT_EQ(queued.wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(queued.get());
  EXPECT_GT(std::chrono::steady_clock::now() - start_time, std::chrono::milliseconds(500));
  EXPECT_GT(worker->batch_retries(), 0u);
  const int status = wait_for_child(child, std::chrono::seconds(10));
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  EXPECT_EQ(count_jobs(), 1);
}

// A full disk (here: a write lock that is never released) must not keep the daemon from
// exiting: after stop(), a batch that still cannot be written is abandoned after stop_grace.
TEST_F(StoreWorkerTest, WorkThatCannotBeWrittenIsAbandonedShortlyAfterStop) {
  must(JobStore::open_for_daemon(db_path()));
  ChildPipe pipe;
  const pid_t child = ::fork();  // before any thread of this test exists
  ASSERT_GE(child, 0);
  if (child == 0) {
    pipe.close_read();
    auto db = Connection::open(db_path(), OpenMode::existing_only, std::chrono::milliseconds(1000));
    if (!db || !db->execute("BEGIN IMMEDIATE")) ::_exit(2);
    pipe.send(1);
    ::sleep(60);  // killed by the test
    ::_exit(0);
  }
  pipe.close_write();
  ASSERT_TRUE(pipe.receive(kWait));

  StoreWorker::Options options;
  options.retry_pause = std::chrono::milliseconds(20);
  options.stop_grace = std::chrono::milliseconds(300);
  StoreOptions store_options;
  store_options.busy_timeout = std::chrono::milliseconds(50);
  auto worker = start(options, store_options);
  std::atomic<bool> completed{false};
  worker->post([](JobStore& store) { return store.enqueue(new_job("/spool/in/a.zip", 1), t0()); },
               [&](const Result<EnqueueResult>&) { completed = true; });
  const auto deadline = std::chrono::steady_clock::now() + kWait;
  while (worker->batch_retries() < 3 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  ASSERT_GE(worker->batch_retries(), 3u);
  const auto stop_started = std::chrono::steady_clock::now();
  worker->stop();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_started, std::chrono::seconds(5));
  EXPECT_GE(std::chrono::steady_clock::now() - stop_started, options.stop_grace);
  EXPECT_EQ(worker->abandoned_operations(), 1u);
  EXPECT_FALSE(completed.load()) << "nothing is reported done that was not committed";
  ::kill(child, SIGKILL);
  wait_for_child(child, std::chrono::seconds(10));
  EXPECT_EQ(count_jobs(), 0);
}

TEST_F(StoreWorkerTest, StopRunsEverythingQueuedFirst) {
  auto worker = start();
  std::atomic<int> completed{0};
  for (std::uint64_t i = 1; i <= 200; ++i) {
    worker->post(
        [i](JobStore& store) { return store.enqueue(new_job("/spool/in/" + std::to_string(i) + ".zip", i), t0()); },
        [&](const Result<EnqueueResult>& result) {
          EXPECT_TRUE(result);
          completed.fetch_add(1);
        });
  }
  worker->stop();
  EXPECT_EQ(completed.load(), 200);
  EXPECT_EQ(worker->abandoned_operations(), 0u);
  EXPECT_EQ(count_jobs(), 200);
  EXPECT_THROW(worker->post([](JobStore&) { return 0; }, [](int) {}), std::logic_error);
  worker->stop();  // again: nothing happens
}

TEST_F(StoreWorkerTest, ManyThreadsPostAtOnce) {
  auto worker = start();
  constexpr int kThreads = 4;
  constexpr std::uint64_t kEach = 250;
  std::atomic<std::uint64_t> succeeded{0};
  std::latch all_done(static_cast<std::ptrdiff_t>(kThreads * kEach));
  std::vector<std::thread> posters;
  for (int t = 0; t < kThreads; ++t) {
    posters.emplace_back([&, t] {
      for (std::uint64_t i = 0; i < kEach; ++i) {
        const std::uint64_t inode = static_cast<std::uint64_t>(t) * kEach + i + 1;
        worker->post(
            [inode](JobStore& store) {
              return store.enqueue(new_job("/spool/in/" + std::to_string(inode) + ".zip", inode), t0());
            },
            [&](const Result<EnqueueResult>& result) {
              if (result) succeeded.fetch_add(1);
              all_done.count_down();
            });
      }
    });
  }
  for (auto& poster : posters) poster.join();
  worker->stop();
  EXPECT_TRUE(all_done.try_wait());
  EXPECT_EQ(succeeded.load(), kThreads * kEach);
  EXPECT_EQ(count_jobs(), static_cast<std::int64_t>(kThreads * kEach));
}

TEST_F(StoreWorkerTest, TheDaemonNoticesACliChangeThroughTheWorker) {
  auto worker = start();
  auto baseline = worker->submit([](JobStore& store) { return store.external_change_seen(); });
  ASSERT_EQ(baseline.wait_for(kWait), std::future_status::ready);
  EXPECT_FALSE(*baseline.get());
  auto cli = must(JobStore::open_existing(db_path()));
  must(cli.pause(t0()));
  auto seen = worker->submit([](JobStore& store) { return store.external_change_seen(); });
  ASSERT_EQ(seen.wait_for(kWait), std::future_status::ready);
  EXPECT_TRUE(*seen.get());
}

}  // namespace
}  // namespace modeldrop::store
