// A process killed with SIGKILL in the middle of a transaction leaves a database that opens,
// passes SQLite's integrity check, holds every change that was reported committed and none
// of the uncommitted ones.
#include "process_helpers.hpp"
#include "store/store_worker.hpp"
#include "store_fixture.hpp"

#include <gtest/gtest.h>

#include <set>

namespace modeldrop::store {
namespace {

using namespace test_support;

constexpr std::int64_t kInsideTransaction = -1;

void expect_consistent(JobStore& store) {
  auto& db = store.connection();
  EXPECT_EQ(must(db.query_text("PRAGMA integrity_check")), "ok");
  EXPECT_EQ(must(db.query_int64("SELECT count(*) FROM pragma_foreign_key_check")), 0);
}

TEST(Crash, SigkillInsideATransactionLosesOnlyThatTransaction) {
  test::TempDir dir;
  const auto db_path = dir / "jobs.db";
  must(JobStore::open_for_daemon(db_path));  // the schema exists before the child starts
  ChildPipe pipe;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pipe.close_read();
    auto store = JobStore::open_for_daemon(db_path);
    if (!store) ::_exit(2);
    for (std::uint64_t i = 0; i < 20; ++i) {
      auto job = store->enqueue(new_job("/spool/committed/" + std::to_string(i) + ".zip", 1 + i), t0());
      if (!job) ::_exit(2);
      pipe.send(job->job);  // committed: it must survive
    }
    // A long transaction, big enough to spill pages into the WAL before it is killed.
    auto transaction = ImmediateTransaction::begin(store->connection());
    if (!transaction) ::_exit(2);
    for (int i = 0;; ++i) {
      const auto path = "/spool/uncommitted/" + std::string(200, 'x') + std::to_string(i) + ".zip";
      if (!store->enqueue(new_job(path, 100'000 + static_cast<std::uint64_t>(i)), t0())) ::_exit(2);
      if (i == 5000) pipe.send(kInsideTransaction);
    }
  }
  pipe.close_write();
  std::set<JobId> committed;
  bool inside = false;
  for (int i = 0; i < 21 && !inside; ++i) {
    const auto value = pipe.receive(std::chrono::seconds(60));
    ASSERT_TRUE(value) << "the child stopped reporting";
    if (*value == kInsideTransaction) {
      inside = true;
    } else {
      committed.insert(*value);
    }
  }
  ASSERT_TRUE(inside);
  ::kill(child, SIGKILL);
  const int status = wait_for_child(child, std::chrono::seconds(10));
  ASSERT_TRUE(WIFSIGNALED(status));
  EXPECT_GT(std::filesystem::file_size(dir / "jobs.db-wal"), 0u);

  auto store = must(JobStore::open_for_daemon(db_path));
  expect_consistent(store);
  std::set<JobId> found;
  for (const auto& job : must(store.list_jobs({}, 1000))) found.insert(job.id);
  EXPECT_EQ(found, committed);
  // And it keeps working.
  const auto added = must(store.enqueue(new_job("/spool/after.zip", 999'999), t0()));
  EXPECT_EQ(added.effect, EnqueueEffect::inserted);
  EXPECT_TRUE(must(store.claim_next(t0())));
}

TEST(Crash, SigkillDuringGroupCommitKeepsEveryReportedCommit) {
  test::TempDir dir;
  const auto db_path = dir / "jobs.db";
  must(JobStore::open_for_daemon(db_path));
  ChildPipe pipe;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pipe.close_read();
    auto store = JobStore::open_for_daemon(db_path);
    if (!store) ::_exit(2);
    StoreWorker worker(std::move(*store));
    // Jobs flow through enqueue -> claim -> attempt -> success; each success is reported once
    // its batch has committed, while later batches are still being written.
    for (std::uint64_t i = 1;; ++i) {
      worker.post(
          [i](JobStore& s) -> Result<Job> {
            auto queued = s.enqueue(new_job("/spool/in/" + std::to_string(i) + ".zip", i), t0());
            if (!queued) return queued.error();
            auto claimed = s.claim_next(t0());
            if (!claimed) return claimed.error();
            if (!*claimed) return make_error("nothing to claim");
            if (auto begun = s.begin_attempt((*claimed)->id, t0()); !begun) return begun.error();
            AttemptReport report;
            report.job = (*claimed)->id;
            report.outcome = AttemptOutcome::succeeded;
            report.next_state = JobState::succeeded;
            report.file_id = "file-" + std::to_string(i);
            return s.finish_attempt(report, t0());
          },
          [&pipe](const Result<Job>& job) {
            if (!job) ::_exit(4);
            pipe.send(job->id);
          });
      if (i % 64 == 0) ::usleep(1000);  // let batches form and commit continuously
    }
  }
  pipe.close_write();
  std::set<JobId> reported;
  while (reported.size() < 300) {
    const auto value = pipe.receive(std::chrono::seconds(60));
    ASSERT_TRUE(value) << "the child stopped reporting after " << reported.size();
    reported.insert(*value);
  }
  ::kill(child, SIGKILL);
  const int status = wait_for_child(child, std::chrono::seconds(10));
  ASSERT_TRUE(WIFSIGNALED(status));

  auto store = must(JobStore::open_for_daemon(db_path));
  expect_consistent(store);
  for (const JobId id : reported) {
    const auto job = must(store.find_job(id));
    ASSERT_TRUE(job) << "job " << id << " was reported committed but is gone";
    EXPECT_EQ(job->state, JobState::succeeded) << id;
  }
  must(store.recover_after_crash(t0()));
  const JobState uploading[] = {JobState::uploading};
  EXPECT_TRUE(must(store.list_jobs(uploading, 10)).empty());
}

}  // namespace
}  // namespace modeldrop::store
