// Archive checks through the real daemon and the fake API: a broken archive fails with its
// problem and the fake never stores it; a good one of each kind is uploaded; a check that
// fails late in a big archive finds the body's final bytes still held back.
#include "daemon_fixture.hpp"
#include "support/archive_corpus.hpp"

#include <csignal>
#include <map>
#include <random>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;
using store::JobState;

// Writes `bytes` under a temporary name, then renames it into `dir` as `name`.
void drop_bytes(const std::filesystem::path& dir, const std::string& name, const std::string& bytes) {
  const auto temp = dir / (".part-" + name);
  {
    std::ofstream out(temp, std::ios::binary);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  std::filesystem::rename(temp, dir / name);
}

bool all_ended(const std::vector<store::Job>& jobs, std::size_t count) {
  if (jobs.size() != count) return false;
  for (const auto& job : jobs)
    if (job.state == JobState::pending || job.state == JobState::uploading) return false;
  return true;
}

class ArchiveCheckDaemonTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    config_options_.validate = "archive";
    std::filesystem::create_directories(dir_ / "adapters");
    write_config("  - path: adapters\n    settle: 200ms\n    validate: adapter\n");
  }
};

TEST_F(ArchiveCheckDaemonTest, EveryBrokenArchiveFailsWithItsProblemAndNothingIsStored) {
  auto daemon = start_ready_daemon();
  std::map<std::string, std::string> expected;  // file name -> last_error
  for (const auto& c : broken_archive_cases()) {
    drop_bytes(incoming_, c.file_name, c.bytes);
    expected[c.file_name] = "archive check: " + *c.problem;
  }
  for (const auto& c : adapter_cases()) {
    if (!c.problem) continue;
    drop_bytes(dir_ / "adapters", c.file_name, c.bytes);
    expected[c.file_name] = "archive check: " + *c.problem;
  }
  ASSERT_TRUE(wait_until([&] { return all_ended(jobs(), expected.size()); }, 120s)) << daemon->stderr_text();
  for (const auto& job : jobs()) {
    const auto name = job.path.filename().string();
    EXPECT_EQ(job.state, JobState::failed) << name;
    EXPECT_EQ(job.last_error, expected.at(name)) << name;
  }
  EXPECT_TRUE(api_->files().empty()) << "the fake stored a broken archive";
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(ArchiveCheckDaemonTest, AGoodArchiveOfEachKindAndAGoodAdapterAreUploaded) {
  auto daemon = start_ready_daemon();
  std::map<std::string, std::string> sha_by_name;
  for (const auto& c : good_archive_cases()) {
    drop_bytes(incoming_, c.file_name, c.bytes);
    sha_by_name[c.file_name] = sha256_of(incoming_ / c.file_name);
  }
  for (const auto& c : adapter_cases()) {
    if (c.problem) continue;
    drop_bytes(dir_ / "adapters", c.file_name, c.bytes);
    sha_by_name[c.file_name] = sha256_of(dir_ / "adapters" / c.file_name);
  }
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, sha_by_name.size()); }, 120s))
      << daemon->stderr_text();
  std::map<std::string, std::string> stored;
  for (const auto& file : api_->files()) stored[file.filename] = file.sha256;
  for (const auto& [name, sha] : sha_by_name) {
    EXPECT_EQ(stored[name], sha) << name;
  }
  for (const auto& job : jobs()) EXPECT_EQ(job.sha256, sha_by_name.at(job.path.filename().string()));
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(ArchiveCheckDaemonTest, ACheckFailingLateInABigArchiveFindsTheFinalBytesHeldBack) {
  // 48 MiB of incompressible weights in a .tar.gz whose gzip CRC (its last 8 bytes but 4) is
  // wrong: only the very end of the stream tells, long after the send has started.
  std::mt19937_64 rng(42);
  std::string weights(48U << 20U, '\0');
  for (std::size_t i = 0; i + 8 <= weights.size(); i += 8) {
    const std::uint64_t v = rng();
    std::memcpy(weights.data() + i, &v, 8);
  }
  std::string archive = make_archive(ArchiveFormat::tar_gz, {{"adapter_model.safetensors", weights}});
  archive[archive.size() - 8] = static_cast<char>(archive[archive.size() - 8] ^ 0x5A);
  auto daemon = start_ready_daemon();
  drop_bytes(incoming_, "late.tar.gz", archive);
  ASSERT_TRUE(wait_until([&] { return all_ended(jobs(), 1); }, 120s)) << daemon->stderr_text();
  const auto job = jobs().front();
  EXPECT_EQ(job.state, JobState::failed);
  ASSERT_TRUE(job.last_error);
  EXPECT_EQ(job.last_error->rfind("archive check: ", 0), 0u) << *job.last_error;
  EXPECT_TRUE(api_->files().empty()) << "the server never held the whole body";
  // The send ran beside the check: most of the body was out before the verdict came.
  auto store = store::JobStore::open_existing(database_);
  ASSERT_TRUE(store);
  auto detail = store->job_with_attempts(job.id);
  ASSERT_TRUE(detail && *detail);
  ASSERT_EQ((*detail)->attempts.size(), 1u);
  const auto& attempt = (*detail)->attempts[0];
  EXPECT_EQ(attempt.outcome, store::AttemptOutcome::failed);
  EXPECT_GT(attempt.bytes_sent, archive.size() / 2) << "the upload did not overlap the check";
  EXPECT_LT(attempt.bytes_sent, archive.size()) << "the final bytes went out before the verdict";
  for (const auto& request : api_->requests()) EXPECT_LT(request.body_bytes_read, archive.size());
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

}  // namespace
}  // namespace modeldrop::test
