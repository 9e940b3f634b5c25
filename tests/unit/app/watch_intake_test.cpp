// The intake's store traffic for removals: a removal the daemon caused itself (the after-action
// of an ended job) is not looked up; every other removal cancels the path's pending job.
#include "app/watch_intake.hpp"

#include "store/sqlite.hpp"
#include "store/store_worker.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <boost/asio/io_context.hpp>

namespace modeldrop::app {
namespace {

class WatchIntakeTest : public ::testing::Test {
 protected:
  WatchIntakeTest()
      : worker_(check(store::JobStore::open_for_daemon(dir_ / "jobs.db"))),
        client_(io_, worker_),
        intake_(io_, client_, clock_, [] {}) {}

  static store::JobStore check(Result<store::JobStore> store) {
    if (!store) throw std::runtime_error(store.error().message);
    return std::move(*store);
  }

  // Runs the loop until every store operation posted so far is committed and its result is back.
  void settle() {
    for (int i = 0; i < 3; ++i) {
      worker_.submit([](store::JobStore&) { return true; }).get();
      io_.restart();
      io_.poll();
    }
  }

  watch::ReadyFile ready(const std::string& name, ino_t inode) {
    watch::ReadyFile file;
    file.path = dir_ / "in" / name;
    file.watch_dir = dir_ / "in";
    file.device = 1;
    file.inode = inode;
    file.size = 1000;
    file.mtime_ns = 1;
    return file;
  }

  store::JobState state_of(const std::filesystem::path& path) {
    auto state = worker_
                     .submit([path](store::JobStore& s) {
                       return s.connection().query_one(
                           "SELECT state FROM jobs WHERE path = ?1",
                           [](const store::Statement& row) { return row.text(0); }, path.string());
                     })
                     .get();
    if (!state || !*state) throw std::runtime_error("no job for " + path.string());
    return store::parse_job_state(**state).value();
  }

  test::TempDir dir_;
  boost::asio::io_context io_;
  SystemClock clock_;
  store::StoreWorker worker_;
  StoreClient client_;
  WatchIntake intake_;
};

TEST_F(WatchIntakeTest, ARemovalTheDaemonCausedIsNotLookedUp) {
  const auto a = ready("a.tar", 1);
  intake_.file_ready(a);
  settle();
  ASSERT_EQ(state_of(a.path), store::JobState::pending);

  // Expected (the job ended and its file is being moved): the report costs no store operation,
  // even for a path whose job is pending (a test of the skip, not a case the daemon makes).
  const auto batches = worker_.batches_committed();
  intake_.expect_removal(a.path);
  intake_.file_removed(a.path);
  settle();
  EXPECT_EQ(worker_.batches_committed(), batches + 3) << "only settle()'s own three";
  EXPECT_EQ(state_of(a.path), store::JobState::pending);

  // Each expectation covers one report: the next removal is looked up and cancels the job.
  intake_.file_removed(a.path);
  settle();
  EXPECT_EQ(state_of(a.path), store::JobState::cancelled);
}

TEST_F(WatchIntakeTest, ANewFileUnderTheNameVoidsTheExpectation) {
  const auto b = ready("b.tar", 2);
  intake_.expect_removal(b.path);
  intake_.file_ready(b);  // a new archive dropped under the name before the removal came
  settle();
  ASSERT_EQ(state_of(b.path), store::JobState::pending);
  intake_.file_removed(b.path);
  settle();
  EXPECT_EQ(state_of(b.path), store::JobState::cancelled) << "the new file's removal cancels its job";
}

}  // namespace
}  // namespace modeldrop::app
