// modeldropd end to end (docs/files.md): real binary, real fake API over TLS, real SQLite,
// real inotify, in throwaway directories. Every wait is bounded.
#include "daemon_fixture.hpp"

#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <csignal>
#include <map>
#include <set>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;
using store::JobState;

std::map<std::string, std::string> received_sha_by_name(const FakeApi& api) {
  std::map<std::string, std::string> by_name;
  for (const auto& file : api.files()) by_name[file.filename] = file.sha256;
  return by_name;
}

TEST_F(DaemonTest, DroppedArchiveIsUploadedAndMovedToDone) {
  auto daemon = start_ready_daemon();
  const auto file = drop("adapter.zip", 300 * 1024);
  const std::string sha = sha256_of(file);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 1); }, 30s)) << daemon->stderr_text();
  // The move to done/ (and its record) follows the state change.
  ASSERT_TRUE(wait_until([&] { return jobs().front().current_path == incoming_ / "done" / "adapter.zip"; }, 10s));
  const auto job = jobs().front();
  ASSERT_TRUE(job.file_id);
  EXPECT_EQ(job.file_id->rfind("file-", 0), 0u);
  EXPECT_EQ(job.sha256, sha);
  EXPECT_EQ(job.current_path, incoming_ / "done" / "adapter.zip");
  EXPECT_TRUE(std::filesystem::exists(incoming_ / "done" / "adapter.zip"));
  EXPECT_FALSE(std::filesystem::exists(file));
  const auto files = api_->files();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].filename, "adapter.zip");
  EXPECT_EQ(files[0].sha256, sha);
  EXPECT_EQ(files[0].bytes, 300u * 1024);
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
  EXPECT_EQ(daemon->stderr_text().find("test-token"), std::string::npos) << "the token never reaches a log line";
}

TEST_F(DaemonTest, SigkillFiveTimesLosesNothing) {
  constexpr int kArchives = 6;
  std::map<std::string, std::string> expected;
  for (int i = 0; i < kArchives; ++i) {
    const auto name = "model-" + std::to_string(i) + ".tar.gz";
    expected[name] = sha256_of(drop(name, 3 * 1024 * 1024 + static_cast<std::size_t>(i)));
  }
  // Slow uploads, so that every kill lands while bytes are moving.
  Fault slow;
  slow.kind = FaultKind::throttle;
  slow.bytes_per_second = 256 * 1024;
  api_->set_default_fault(slow);
  for (int round = 0; round < 5; ++round) {
    auto daemon = start_daemon();
    const bool uploading = wait_until(
        [&] {
          for (const auto& job : jobs()) {
            if (job.state == JobState::uploading && job.bytes_sent > 0) return true;
          }
          return false;
        },
        30s);
    EXPECT_TRUE(uploading) << "round " << round << "\n" << daemon->stderr_text();
    daemon->signal(SIGKILL);
    daemon->wait(10s);
  }
  api_->set_default_fault(Fault{});
  auto daemon = start_daemon();
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, kArchives); }, 60s)) << daemon->stderr_text();
  const auto received = received_sha_by_name(*api_);
  for (const auto& [name, sha] : expected) {
    ASSERT_TRUE(received.count(name)) << name << " never arrived";
    EXPECT_EQ(received.at(name), sha) << name;
  }
  for (const auto& job : jobs()) {
    EXPECT_EQ(job.sha256, expected.at(job.path.filename().string()));
    // The move to done/ follows the state change.
    EXPECT_TRUE(wait_until([&] { return std::filesystem::exists(incoming_ / "done" / job.path.filename()); }, 10s));
  }
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(DaemonTest, SigtermMidUploadExitsCleanlyAndTheJobResumes) {
  Fault slow;
  slow.kind = FaultKind::throttle;
  slow.bytes_per_second = 1024 * 1024;
  api_->set_default_fault(slow);
  auto daemon = start_ready_daemon();
  drop("big.zip", 8 * 1024 * 1024);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto all = jobs();
        return !all.empty() && all[0].state == JobState::uploading && all[0].bytes_sent > 0;
      },
      30s))
      << daemon->stderr_text();
  const auto stop_started = std::chrono::steady_clock::now();
  daemon->signal(SIGTERM);
  const auto rc = daemon->wait(10s);
  EXPECT_EQ(rc, 0) << daemon->stderr_text();
  EXPECT_LT(std::chrono::steady_clock::now() - stop_started, 10s);
  ASSERT_EQ(jobs().size(), 1u);
  EXPECT_EQ(jobs()[0].state, JobState::pending) << "an interrupted upload goes back to pending";

  api_->set_default_fault(Fault{});
  auto again = start_daemon();
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 1); }, 30s)) << again->stderr_text();
  again->signal(SIGINT);
  EXPECT_EQ(again->wait(10s), 0);
}

TEST_F(DaemonTest, BrokenConfigOnSighupKeepsTheOldOneRunning) {
  auto daemon = start_ready_daemon();
  dir_.write("modeldrop.yaml", "upload:\n  sessions: 0\n");
  daemon->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return daemon->stderr_text().find("reload rejected") != std::string::npos; }, 10s))
      << daemon->stderr_text();
  EXPECT_NE(daemon->stderr_text().find("upload.sessions"), std::string::npos);
  EXPECT_TRUE(daemon->running());
  drop("after-reload.zip", 1000);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 1); }, 30s)) << daemon->stderr_text();
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(DaemonTest, SighupAddingAWatchDirectoryPicksUpItsFiles) {
  const auto second = dir_ / "second";
  std::filesystem::create_directories(second);
  drop("waiting.tgz", 2000, second);
  auto daemon = start_ready_daemon();
  write_config("  - path: second\n    settle: 200ms\n    project_id: proj-second\n    validate: none\n");
  daemon->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 1); }, 30s)) << daemon->stderr_text();
  const auto files = api_->files();
  ASSERT_EQ(files.size(), 1u);
  EXPECT_EQ(files[0].filename, "waiting.tgz");
  EXPECT_EQ(files[0].project_id, "proj-second");
  drop("later.zip", 100, second);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 2); }, 30s)) << daemon->stderr_text();
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

// A reload that changes nothing but a watch's `validate` still takes effect: the watch
// settings are compared whole, so no key can be left out of the comparison.
TEST_F(DaemonTest, SighupChangingOnlyValidateTakesEffect) {
  config_options_.validate = "archive";
  write_config();
  auto daemon = start_ready_daemon();
  drop("before.zip", 1000);  // pseudo-random bytes: not a zip
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(store::JobState::failed, 1); }, 30s)) << daemon->stderr_text();
  config_options_.validate = "none";
  write_config();
  daemon->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return daemon->stderr_text().find("1 added, 1 dropped") != std::string::npos; }, 10s))
      << daemon->stderr_text();
  drop("after.zip", 1000);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto all = jobs();
        return all.size() == 2 && std::any_of(all.begin(), all.end(), [](const store::Job& job) {
                 return job.state == store::JobState::succeeded;
               });
      },
      30s))
      << daemon->stderr_text();
  for (const auto& job : jobs()) {
    const bool after = job.path.filename() == "after.zip";
    EXPECT_EQ(job.validate, after ? preflight::ArchiveValidation::none : preflight::ArchiveValidation::archive)
        << job.path;
    EXPECT_EQ(job.state, after ? store::JobState::succeeded : store::JobState::failed) << job.path;
    if (!after) {
      EXPECT_EQ(job.last_error, "archive check: not a zip archive");
    }
  }
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(DaemonTest, SecondDaemonOnTheSameDatabaseExits1) {
  auto first = start_ready_daemon();
  auto second = start_daemon();
  EXPECT_EQ(second->wait(20s), 1);
  EXPECT_NE(second->stderr_text().find(std::to_string(first->pid())), std::string::npos) << second->stderr_text();
  EXPECT_TRUE(first->running());
  first->signal(SIGTERM);
  EXPECT_EQ(first->wait(10s), 0);
}

TEST_F(DaemonTest, StaleDaemonRowIsReplaced) {
  auto first = start_ready_daemon();
  first->signal(SIGKILL);
  first->wait(10s);
  auto second = start_ready_daemon();
  EXPECT_TRUE(second->running());
  second->signal(SIGTERM);
  EXPECT_EQ(second->wait(10s), 0);
}

TEST_F(DaemonTest, ARowWhosePidWasReusedAfterARebootDoesNotBlockTheStart) {
  // The old daemon's row names a pid that now belongs to an unrelated live process (this test),
  // as after a reboot. Its lock died with it, so the new daemon starts and takes over.
  {
    auto store = store::JobStore::open_for_daemon(database_);
    ASSERT_TRUE(store) << store.error().message;
    ASSERT_TRUE(store->register_daemon(::getpid(), "0.0.1", WallClock::now()));
  }
  auto daemon = start_ready_daemon();
  drop("after-reboot.zip", 1000);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 1); }, 30s)) << daemon->stderr_text();
  auto store = store::JobStore::open_existing(database_);
  ASSERT_TRUE(store);
  const auto record = store->daemon_record();
  ASSERT_TRUE(record && *record);
  EXPECT_EQ((*record)->pid, daemon->pid());
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(DaemonTest, NoTokenExits78) {
  dir_.write("token", "", 0600);
  auto daemon = start_daemon();
  EXPECT_EQ(daemon->wait(10s), 78);
}

TEST_F(DaemonTest, DatabaseThatIsNotSqliteExits69) {
  std::filesystem::create_directories(database_.parent_path());
  dir_.write("state/jobs.db", std::string(4096, 'x'));
  auto daemon = start_daemon();
  EXPECT_EQ(daemon->wait(10s), 69) << daemon->stderr_text();
  EXPECT_NE(daemon->stderr_text().find("jobs.db"), std::string::npos);
  EXPECT_NE(daemon->stderr_text().find("is not a SQLite database"), std::string::npos) << daemon->stderr_text();
}

TEST_F(DaemonTest, FilesPresentAtStartupAreQueued) {
  drop("early-1.zip", 500);
  drop("early-2.tar", 600);
  drop("ignored.txt", 10);
  auto daemon = start_daemon();
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 2); }, 30s)) << daemon->stderr_text();
  std::set<std::string> names;
  for (const auto& f : api_->files()) names.insert(f.filename);
  EXPECT_EQ(names, (std::set<std::string>{"early-1.zip", "early-2.tar"}));
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(DaemonTest, SameContentIsNotSentTwice) {
  auto daemon = start_ready_daemon();
  const auto first = drop("one.zip", 4096);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 1); }, 30s)) << daemon->stderr_text();
  // The move to done/ follows the committed success (a flake under load copied too early).
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(incoming_ / "done" / "one.zip"); }, 10s));
  std::filesystem::copy_file(incoming_ / "done" / "one.zip", dir_ / "copy.zip");
  std::filesystem::rename(dir_ / "copy.zip", incoming_ / "two.zip");
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 2); }, 30s)) << daemon->stderr_text();
  EXPECT_EQ(api_->files().size(), 1u) << "dedupe: identical content is not uploaded again";
  const auto all = jobs();
  EXPECT_EQ(all[0].file_id, all[1].file_id);
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

// Found by the soak (tests/soak): a SIGKILL after a success was committed but before the file
// was moved (a cross-filesystem move copies for seconds) left the file in the drop directory
// for good, since the same file is never queued twice. The restart's scan must finish the move.
TEST_F(DaemonTest, FileOfASucceededJobLeftInPlaceByACrashIsMovedAtRestart) {
  const auto file = drop("crashed.zip", 2048);
  struct stat st {};
  ASSERT_EQ(::stat(file.c_str(), &st), 0);
  const store::FileIdentity identity{st.st_dev, st.st_ino, static_cast<std::uint64_t>(st.st_size),
                                     std::int64_t{st.st_mtim.tv_sec} * 1000000000 + st.st_mtim.tv_nsec};
  {
    // What the killed daemon had committed: the job succeeded, its file not yet moved.
    auto store = store::JobStore::open_for_daemon(database_);
    ASSERT_TRUE(store) << store.error().message;
    const auto now = std::chrono::system_clock::now();
    store::NewJob job;
    job.path = file;
    job.watch_dir = incoming_;
    job.file = identity;
    const auto queued = store->enqueue(job, now);
    ASSERT_TRUE(queued);
    ASSERT_TRUE(store->claim_next(now));
    ASSERT_TRUE(store->begin_attempt(queued->job, now));
    store::AttemptReport report;
    report.job = queued->job;
    report.outcome = store::AttemptOutcome::succeeded;
    report.http_status = 200;
    report.bytes_sent = 2048;
    report.next_state = JobState::succeeded;
    report.file_id = "file-stored-before-the-crash";
    report.file_status = "uploaded";
    report.sent_file = identity;
    ASSERT_TRUE(store->finish_attempt(report, now));
  }
  auto daemon = start_ready_daemon();
  const auto moved = incoming_ / "done" / "crashed.zip";
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(moved); }, 20s)) << daemon->stderr_text();
  EXPECT_FALSE(std::filesystem::exists(file));
  EXPECT_TRUE(wait_until([&] { return !jobs().empty() && jobs().front().current_path == moved; }, 10s));
  ASSERT_EQ(jobs().size(), 1u);
  EXPECT_EQ(jobs().front().state, JobState::succeeded);
  EXPECT_TRUE(api_->requests().empty()) << "a succeeded job is not sent again";
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

// Found by the soak: a SIGTERM that arrived while the daemon was still starting (here: waiting
// for an outside write lock to register itself) killed it by the signal's default action,
// instead of the orderly stop and exit 0 of docs/files.md.
TEST_F(DaemonTest, SigtermDuringStartupIsAnOrderlyStop) {
  ASSERT_TRUE(store::JobStore::open_for_daemon(database_));
  sqlite3* outside = nullptr;
  ASSERT_EQ(sqlite3_open(database_.c_str(), &outside), SQLITE_OK);
  ASSERT_EQ(sqlite3_exec(outside, "BEGIN IMMEDIATE", nullptr, nullptr, nullptr), SQLITE_OK);
  auto daemon = start_daemon();
  const bool starting = wait_until([&] { return daemon->stderr_text().find("starting") != std::string::npos; }, 10s);
  daemon->signal(SIGTERM);  // while it waits for the lock (busy_timeout 5 s)
  EXPECT_EQ(sqlite3_exec(outside, "COMMIT", nullptr, nullptr, nullptr), SQLITE_OK);
  sqlite3_close(outside);
  ASSERT_TRUE(starting) << daemon->stderr_text();
  EXPECT_EQ(daemon->wait(15s), 0) << "signal " << daemon->terminating_signal().value_or(0) << "\n"
                                  << daemon->stderr_text();
  EXPECT_NE(daemon->stderr_text().find("SIGTERM: stopping"), std::string::npos) << daemon->stderr_text();
}

}  // namespace
}  // namespace modeldrop::test
