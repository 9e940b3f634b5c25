// The archive checks through the real daemon and the fake API: every broken archive of the
// corpus fails with its problem and the server never stores it, good ones go through, a large
// broken archive is cut off while it is being sent, and the hash-first path checks before any
// byte goes out.
#include "daemon_fixture.hpp"
#include "support/archive_corpus.hpp"

#include <csignal>
#include <fstream>
#include <map>
#include <random>
#include <set>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;
using store::JobState;

class ArchiveCheckTest : public DaemonTest {
 protected:
  void use(const std::string& validate) {
    config_options_.validate = validate;
    config_options_.incoming_watch =
        "    patterns: [\"*.zip\", \"*.tar\", \"*.tar.gz\", \"*.tgz\", \"*.safetensors\"]\n";
    write_config();
  }

  // Written under a temporary name and renamed into place: complete at once.
  std::filesystem::path drop_bytes(const std::string& name, const std::string& bytes) {
    const auto temp = incoming_ / (".incoming-" + name + ".part");
    {
      std::ofstream out(temp, std::ios::binary);
      out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    }
    const auto final_path = incoming_ / name;
    std::filesystem::rename(temp, final_path);
    return final_path;
  }

  bool all_ended(std::size_t count) const {
    const auto all = jobs();
    if (all.size() != count) return false;
    for (const auto& job : all) {
      if (job.state != JobState::succeeded && job.state != JobState::failed) return false;
    }
    return true;
  }

  std::string unended() const {
    std::string text;
    for (const auto& job : jobs()) {
      if (job.state != JobState::succeeded && job.state != JobState::failed) {
        text += job.path.filename().string() + " is " + std::string(store::to_string(job.state)) + "\n";
      }
    }
    return text;
  }

  std::map<std::string, store::Job> jobs_by_name() const {
    std::map<std::string, store::Job> by_name;
    for (const auto& job : jobs()) by_name[job.path.filename().string()] = job;
    return by_name;
  }

  std::set<std::string> stored_names() const {
    std::set<std::string> names;
    for (const auto& file : api_->files()) names.insert(file.filename);
    return names;
  }

  void expect_outcomes(const std::vector<ArchiveCase>& cases) {
    const auto by_name = jobs_by_name();
    const auto stored = stored_names();
    for (const auto& c : cases) {
      const auto it = by_name.find(c.file_name);
      ASSERT_NE(it, by_name.end()) << c.file_name << " was never queued";
      const store::Job& job = it->second;
      if (c.problem) {
        EXPECT_EQ(job.state, JobState::failed) << c.file_name;
        EXPECT_EQ(job.last_error, "archive check: " + *c.problem) << c.file_name;
        EXPECT_EQ(stored.count(c.file_name), 0U) << c.file_name << ": the server stored a broken archive";
      } else {
        EXPECT_EQ(job.state, JobState::succeeded) << c.file_name << ": " << job.last_error.value_or("");
        // Or completed from an earlier job with the same bytes (GOOD.TGZ is good.tar.gz).
        EXPECT_TRUE(stored.count(c.file_name) == 1 || job.duplicate_of) << c.file_name;
      }
    }
  }
};

std::string pseudo_random_bytes(std::size_t size, unsigned seed) {
  std::mt19937 rng(seed);
  std::string bytes(size, '\0');
  for (auto& c : bytes) c = static_cast<char>(rng() & 0xFFU);
  return bytes;
}

std::vector<ArchiveCase> without_empty_files(std::vector<ArchiveCase> cases) {
  std::erase_if(cases, [](const ArchiveCase& c) { return c.bytes.empty(); });
  return cases;
}

TEST_F(ArchiveCheckTest, EveryBrokenArchiveFailsWithItsProblemAndTheServerStoresNone) {
  use("archive");
  auto cases = broken_archive_cases();
  for (auto& good : good_archive_cases()) cases.push_back(std::move(good));
  auto daemon = start_ready_daemon();
  for (const auto& c : cases) drop_bytes(c.file_name, c.bytes);
  ASSERT_TRUE(wait_until([&] { return all_ended(cases.size()); }, 90s))
      << jobs().size() << " of " << cases.size() << " queued\n"
      << unended() << daemon->stderr_text();
  expect_outcomes(cases);
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(ArchiveCheckTest, AdapterLayoutsAreJudgedAsTheWatchAsks) {
  use("adapter");
  const auto cases = adapter_cases();
  auto daemon = start_ready_daemon();
  for (const auto& c : cases) drop_bytes(c.file_name, c.bytes);
  ASSERT_TRUE(wait_until([&] { return all_ended(cases.size()); }, 60s)) << daemon->stderr_text();
  expect_outcomes(cases);
}

TEST_F(ArchiveCheckTest, WithValidateNoneABrokenArchiveIsSentAsItIs) {
  use("none");
  const auto broken = without_empty_files(broken_archive_cases()).front();
  auto daemon = start_ready_daemon();
  drop_bytes(broken.file_name, broken.bytes);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 1); }, 30s)) << daemon->stderr_text();
  EXPECT_EQ(stored_names(), std::set<std::string>{broken.file_name});
}

// A truncated archive many blocks long: the upload starts at once (no same-size job could be
// its duplicate), the check reads beside the send, and the body's final bytes never go out.
TEST_F(ArchiveCheckTest, ALargeBrokenArchiveIsCutOffWhileItIsBeingSent) {
  use("archive");
  Fault slow;
  slow.kind = FaultKind::throttle;
  slow.bytes_per_second = 16 * 1024 * 1024;
  api_->set_default_fault(slow);
  std::vector<ArchiveMember> members{{"model/weights.bin", pseudo_random_bytes(24 * 1024 * 1024, 11)},
                                     {"model/config.json", "{}"}};
  const std::string whole = make_archive(ArchiveFormat::tar_gz, members);
  const std::string cut = whole.substr(0, whole.size() - 4096);
  auto daemon = start_ready_daemon();
  drop_bytes("cut-short.tar.gz", cut);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::failed, 1); }, 60s)) << daemon->stderr_text();
  const auto job = jobs().front();
  EXPECT_EQ(job.last_error, "archive check: truncated gzip stream");
  EXPECT_TRUE(api_->files().empty()) << "the server stored a truncated archive";
  // The daemon's own count of what it wrote (the server may not have read it all yet).
  const auto attempts = job_with_attempts(database_, job.id);
  ASSERT_TRUE(attempts);
  ASSERT_EQ(attempts->attempts.size(), 1U);
  EXPECT_GT(attempts->attempts[0].bytes_sent, cut.size() / 2) << "the send overlapped the check instead of waiting";
  EXPECT_LT(attempts->attempts[0].bytes_sent, cut.size()) << "the body's final bytes went out";
}

// Where a succeeded job of the same size exists, the archive is hashed and checked before it
// may be sent: a broken one then fails without any request.
TEST_F(ArchiveCheckTest, OnTheHashFirstPathABrokenArchiveFailsBeforeAnyRequest) {
  use("archive");
  const std::string good = make_archive(ArchiveFormat::zip_stored, {{"weights.bin", pseudo_random_bytes(300'000, 5)}});
  std::string damaged = good;
  damaged[damaged.size() / 2] = static_cast<char>(damaged[damaged.size() / 2] ^ 0x40);  // in the stored data
  auto daemon = start_ready_daemon();
  drop_bytes("good.zip", good);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 1); }, 30s)) << daemon->stderr_text();
  const auto requests_before = api_->requests().size();
  drop_bytes("damaged.zip", damaged);
  ASSERT_TRUE(wait_until([&] { return all_ended(2); }, 30s)) << daemon->stderr_text();
  const auto damaged_job = jobs_by_name().at("damaged.zip");
  EXPECT_EQ(damaged_job.state, JobState::failed);
  EXPECT_TRUE(damaged_job.last_error.value_or("").starts_with("archive check: damaged data in member"))
      << damaged_job.last_error.value_or("");
  EXPECT_EQ(damaged_job.attempts, 0);
  EXPECT_EQ(api_->requests().size(), requests_before) << "nothing was sent for the damaged archive";
}

TEST_F(ArchiveCheckTest, RetryOfAJobThatFailedItsCheckChecksAgain) {
  use("archive");
  const auto broken = without_empty_files(broken_archive_cases()).front();
  auto daemon = start_ready_daemon();
  drop_bytes(broken.file_name, broken.bytes);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::failed, 1); }, 30s)) << daemon->stderr_text();
  const auto first = jobs().front();
  ASSERT_EQ(run_cli({"retry", std::to_string(first.id)}).exit_code, 0);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto all = jobs();
        return all.size() == 1 && all.front().state == JobState::failed && all.front().finished_at != first.finished_at;
      },
      30s))
      << daemon->stderr_text();
  EXPECT_EQ(jobs().front().last_error, "archive check: " + *broken.problem);
  EXPECT_TRUE(api_->files().empty());
}

}  // namespace
}  // namespace modeldrop::test
