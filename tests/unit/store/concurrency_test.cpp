// Outside readers and writers (docs/database.md): the store keeps working while another connection
// holds a read transaction for seconds, and waits, then succeeds, while another process holds
// the write lock; nothing is lost either way.
#include "process_helpers.hpp"
#include "store_fixture.hpp"

#include <gtest/gtest.h>

namespace modeldrop::store {
namespace {

using namespace test_support;
using Clock = std::chrono::steady_clock;

class ConcurrencyTest : public StoreTest {
 protected:
  // One job through the whole cycle; returns its id.
  JobId cycle(std::uint64_t inode) {
    const JobId id = add("/spool/in/" + std::to_string(inode) + ".zip", inode);
    const auto claimed = must(store().claim_next(t0()));
    EXPECT_TRUE(claimed);
    must(store().begin_attempt(claimed->id, t0()));
    must(store().finish_attempt(success(claimed->id), t0()));
    return id;
  }

  std::uintmax_t wal_size() {
    std::error_code ec;
    const auto size = std::filesystem::file_size(db_path().string() + "-wal", ec);
    return ec ? 0 : size;
  }
};

TEST_F(ConcurrencyTest, AReaderHoldingASnapshotForSecondsBlocksNothing) {
  for (std::uint64_t i = 1; i <= 10; ++i) cycle(i);
  auto reader = must(Connection::open(db_path(), OpenMode::existing_only, std::chrono::milliseconds(100)));
  must(reader.execute("BEGIN"));
  EXPECT_EQ(must(reader.query_int64("SELECT count(*) FROM jobs")), 10);

  // Two seconds of work while the snapshot stays open; every operation must succeed at once.
  const auto start = Clock::now();
  std::uint64_t done = 0;
  while (Clock::now() - start < std::chrono::seconds(2) && done < 100'000) {
    const auto before = Clock::now();
    cycle(100 + done);
    EXPECT_LT(Clock::now() - before, std::chrono::seconds(1)) << "an operation waited for the reader";
    ++done;
  }
  EXPECT_GT(done, 20u);
  EXPECT_EQ(must(reader.query_int64("SELECT count(*) FROM jobs")), 10) << "the reader's snapshot is stable";
  must(reader.execute("COMMIT"));
  EXPECT_EQ(must(reader.query_int64("SELECT count(*) FROM jobs WHERE state = 'succeeded'")),
            static_cast<std::int64_t>(10 + done));
}

TEST_F(ConcurrencyTest, AWalGrownBehindALongReaderShrinksAfterwards) {
  auto reader = must(Connection::open(db_path(), OpenMode::existing_only, std::chrono::milliseconds(100)));
  must(reader.execute("BEGIN"));
  must(reader.query_int64("SELECT count(*) FROM jobs"));
  constexpr std::uintmax_t kLimit = 8 * 1024 * 1024;
  // Long paths make every commit add many pages; the reader keeps checkpoints from recycling them.
  const std::string padding(3000, 'p');
  std::uint64_t inode = 1;
  while (wal_size() < kLimit + kLimit / 2 && inode < 5000) {
    must(store().enqueue(new_job("/spool/" + padding + std::to_string(inode) + ".zip", inode), t0()));
    ++inode;
  }
  ASSERT_GE(wal_size(), kLimit + kLimit / 2) << "the WAL did not grow behind the reader";
  must(reader.execute("COMMIT"));
  // The next checkpoints complete; when the WAL restarts it is truncated to journal_size_limit.
  for (int i = 0; i < 3000 && wal_size() > kLimit; ++i) {
    must(store().enqueue(
        new_job("/spool/after/" + std::to_string(i) + ".zip", 1'000'000 + static_cast<std::uint64_t>(i)), t0()));
  }
  EXPECT_LE(wal_size(), kLimit);
}

TEST_F(ConcurrencyTest, AnotherProcessHoldingTheWriteLockFor2sIsWaitedFor) {
  const JobId before = cycle(1);
  ChildPipe pipe;
  const pid_t child = ::fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    pipe.close_read();
    auto db = Connection::open(db_path(), OpenMode::existing_only, std::chrono::milliseconds(1000));
    if (!db || !db->execute("BEGIN IMMEDIATE") ||
        !db->execute("INSERT INTO settings (key, value) VALUES ('written-by-child', 'yes')")) {
      ::_exit(2);
    }
    pipe.send(1);
    ::sleep(2);
    ::_exit(db->execute("COMMIT") ? 0 : 2);
  }
  pipe.close_write();
  ASSERT_TRUE(pipe.receive(std::chrono::seconds(30))) << "the child did not take the lock";

  // Reading does not wait for a writer in WAL mode.
  auto start = Clock::now();
  EXPECT_EQ(must(store().list_jobs({}, 10)).size(), 1u);
  EXPECT_LT(Clock::now() - start, std::chrono::seconds(1));

  // Writing waits (busy_timeout 5 s) until the child commits, then succeeds.
  start = Clock::now();
  const auto added = store().enqueue(new_job("/spool/in/during-lock.zip", 2), t0());
  const auto waited = Clock::now() - start;
  ASSERT_TRUE(added) << added.error().message;
  EXPECT_GT(waited, std::chrono::milliseconds(1000)) << "the lock was not held";
  EXPECT_LT(waited, std::chrono::seconds(5));
  const int status = wait_for_child(child, std::chrono::seconds(10));
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0);

  // Nothing lost on either side.
  EXPECT_TRUE(must(store().find_job(before)));
  EXPECT_TRUE(must(store().find_job(added->job)));
  EXPECT_EQ(must(store().connection().query_text("SELECT value FROM settings WHERE key = 'written-by-child'")), "yes");
  EXPECT_EQ(must(store().claim_next(t0()))->id, added->job);
}

TEST_F(ConcurrencyTest, ALockHeldPastBusyTimeoutIsAnErrorValueNotACorruption) {
  auto holder = must(Connection::open(db_path(), OpenMode::existing_only, std::chrono::milliseconds(100)));
  must(holder.execute("BEGIN IMMEDIATE"));
  StoreOptions options;
  options.busy_timeout = std::chrono::milliseconds(50);
  auto impatient = must(JobStore::open_existing(db_path(), options));
  const auto result = impatient.enqueue(new_job("/spool/in/x.zip", 1), t0());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, SqliteCondition::busy);
  must(holder.execute("COMMIT"));
  EXPECT_TRUE(impatient.enqueue(new_job("/spool/in/x.zip", 1), t0()));
}

}  // namespace
}  // namespace modeldrop::store
