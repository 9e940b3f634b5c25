#pragma once

// Shared pieces of the store tests: a fresh database in a temp dir, fixed times, files.

#include "common/timestamp.hpp"
#include "store/job_store.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <chrono>
#include <string>

namespace modeldrop::store::test_support {

using namespace std::chrono_literals;

inline WallTime t0() {
  return *parse_timestamp("2026-03-01T12:00:00.000Z");
}

inline FileIdentity file_identity(std::uint64_t inode, std::uint64_t size = 1000, std::int64_t mtime_ns = 1'000'000) {
  return FileIdentity{64769, inode, size, mtime_ns};
}

inline NewJob new_job(const std::string& path, std::uint64_t inode, std::uint64_t size = 1000,
                      std::int64_t mtime_ns = 1'000'000) {
  NewJob job;
  job.path = path;
  job.watch_dir = "/spool/in";
  job.file = file_identity(inode, size, mtime_ns);
  return job;
}

// Value or test failure, for Result<T> in tests.
template <class T>
T must(Result<T> result) {
  if (!result) throw std::runtime_error("unexpected error: " + result.error().message);
  return std::move(*result);
}

inline void must(Result<void> result) {
  if (!result) throw std::runtime_error("unexpected error: " + result.error().message);
}

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override { store_.emplace(must(JobStore::open_for_daemon(db_path()))); }

  [[nodiscard]] std::filesystem::path db_path() const { return dir_ / "jobs.db"; }
  JobStore& store() { return *store_; }

  JobId add(const std::string& path, std::uint64_t inode, std::uint64_t size = 1000) {
    return must(store().enqueue(new_job(path, inode, size), t0())).job;
  }

  // A job claimed and with its first attempt open.
  JobId uploading_job(const std::string& path, std::uint64_t inode) {
    const JobId id = add(path, inode);
    auto claimed = must(store().claim_next(t0()));
    EXPECT_TRUE(claimed.has_value());
    EXPECT_EQ(claimed->id, id);
    must(store().begin_attempt(id, t0()));
    return id;
  }

  AttemptReport success(JobId job, std::string file_id = "file-abc") {
    AttemptReport report;
    report.job = job;
    report.outcome = AttemptOutcome::succeeded;
    report.http_status = 200;
    report.bytes_sent = 1000;
    report.next_state = JobState::succeeded;
    report.file_id = std::move(file_id);
    report.file_status = "uploaded";
    return report;
  }

  AttemptReport retry_later(JobId job, WallTime when) {
    AttemptReport report;
    report.job = job;
    report.outcome = AttemptOutcome::retry;
    report.http_status = 503;
    report.bytes_sent = 400;
    report.next_state = JobState::pending;
    report.next_attempt_at = when;
    report.last_error = "HTTP 503";
    report.error = "HTTP 503";
    return report;
  }

  AttemptReport failure(JobId job) {
    AttemptReport report;
    report.job = job;
    report.outcome = AttemptOutcome::failed;
    report.http_status = 422;
    report.next_state = JobState::failed;
    report.last_error = "HTTP 422: bad archive";
    return report;
  }

  test::TempDir dir_;
  std::optional<JobStore> store_;
};

}  // namespace modeldrop::store::test_support
