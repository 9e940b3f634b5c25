// The gauges read from the database on their own read-only connection, and that reading them
// never makes the store's writer wait.
#include "metrics/database_gauges.hpp"

#include "store/sqlite.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

namespace modeldrop::metrics {
namespace {

using namespace std::chrono_literals;
using store::JobState;

const WallTime kT0{std::chrono::sys_days{std::chrono::year{2026} / 12 / 1}.time_since_epoch()};

class DatabaseGaugesTest : public ::testing::Test {
 protected:
  DatabaseGaugesTest() {
    auto opened = store::JobStore::open_for_daemon(file_);
    EXPECT_TRUE(opened) << opened.error().message;
    store_.emplace(std::move(*opened));
  }

  store::JobId add(std::uint64_t size, WallTime at) {
    store::NewJob job;
    job.path = dir_ / ("archive-" + std::to_string(++added_) + ".zip");
    job.file = {1, static_cast<std::uint64_t>(added_), size, 1};
    auto queued = store_->enqueue(job, at);
    EXPECT_TRUE(queued) << queued.error().message;
    return queued ? queued->job : 0;
  }

  void sql(const std::string& statement) {
    auto db = store::Connection::open(file_, store::OpenMode::existing_only, 1s);
    ASSERT_TRUE(db);
    ASSERT_TRUE(db->execute(statement)) << statement;
  }

  test::TempDir dir_;
  std::filesystem::path file_ = dir_ / "jobs.db";
  std::optional<store::JobStore> store_;
  int added_ = 0;
};

TEST_F(DatabaseGaugesTest, CountsStatesPendingBytesOldestAndModels) {
  auto reader = DatabaseGaugeReader::open(file_);
  ASSERT_TRUE(reader) << reader.error().message;
  auto empty = reader->read(kT0);
  ASSERT_TRUE(empty);
  EXPECT_EQ(empty->jobs, (std::array<std::int64_t, 5>{0, 0, 0, 0, 0}));
  EXPECT_EQ(empty->oldest_pending_seconds, 0);

  const auto first = add(100, kT0);
  add(200, kT0 + 30s);
  const auto done = add(400, kT0 + 40s);
  const auto broken = add(800, kT0 + 50s);
  sql("UPDATE jobs SET state = 'succeeded', file_id = 'file-1', finished_at = created_at, model_status = 'active' "
      "WHERE id = " +
      std::to_string(done));
  sql("UPDATE jobs SET state = 'failed', finished_at = created_at, model_status = 'error' WHERE id = " +
      std::to_string(broken));
  auto gauges = reader->read(kT0 + 100s);
  ASSERT_TRUE(gauges) << gauges.error().message;
  EXPECT_EQ(gauges->jobs[static_cast<std::size_t>(JobState::pending)], 2);
  EXPECT_EQ(gauges->jobs[static_cast<std::size_t>(JobState::succeeded)], 1);
  EXPECT_EQ(gauges->jobs[static_cast<std::size_t>(JobState::failed)], 1);
  EXPECT_EQ(gauges->pending_bytes, 300);
  EXPECT_DOUBLE_EQ(gauges->oldest_pending_seconds, 100);
  EXPECT_EQ(gauges->models, (std::map<std::string, std::int64_t>{{"active", 1}, {"error", 1}}));

  sql("UPDATE jobs SET state = 'cancelled', finished_at = created_at WHERE id = " + std::to_string(first));
  gauges = reader->read(kT0 + 100s);
  ASSERT_TRUE(gauges);
  EXPECT_DOUBLE_EQ(gauges->oldest_pending_seconds, 70) << "the next oldest";
}

TEST_F(DatabaseGaugesTest, ReadingNeverMakesTheWriterWait) {
  add(100, kT0);
  auto reader = DatabaseGaugeReader::open(file_);
  ASSERT_TRUE(reader);
  // A writer that must not wait at all: any lock left by the reader would fail it at once.
  auto writer = store::Connection::open(file_, store::OpenMode::existing_only, 0ms);
  ASSERT_TRUE(writer);
  ASSERT_TRUE(reader->read(kT0));
  ASSERT_TRUE(writer->execute("BEGIN IMMEDIATE; UPDATE jobs SET updated_at = updated_at; COMMIT"));
  // And while the writer holds its write transaction open, the reader still reads.
  ASSERT_TRUE(writer->execute("BEGIN IMMEDIATE; UPDATE jobs SET updated_at = updated_at"));
  const auto started = std::chrono::steady_clock::now();
  auto gauges = reader->read(kT0);
  ASSERT_TRUE(gauges) << gauges.error().message;
  EXPECT_LT(std::chrono::steady_clock::now() - started, 1s);
  EXPECT_EQ(gauges->jobs[0], 1);
  ASSERT_TRUE(writer->execute("COMMIT"));
  // A checkpoint can finish: the reader keeps no snapshot between reads.
  auto busy = writer->query_int64("PRAGMA wal_checkpoint(TRUNCATE)");
  ASSERT_TRUE(busy);
  EXPECT_EQ(*busy, 0) << "the checkpoint was blocked by a reader";
}

TEST_F(DatabaseGaugesTest, ReaderNeverWrites) {
  auto reader = DatabaseGaugeReader::open(dir_ / "missing.db");
  EXPECT_FALSE(reader) << "a read-only connection never creates a database";
  EXPECT_FALSE(std::filesystem::exists(dir_ / "missing.db"));
}

}  // namespace
}  // namespace modeldrop::metrics
