// Resource bounds of the real modeldropd (issue #9): memory with 100,000 pending jobs, and open
// file descriptors during a 5,000-file burst. The bounds are stated here, with the figures they
// were set from; ASan builds get their own memory bound (its allocator keeps a quarantine of
// freed memory and redzones, so RSS means something else there).
#include "daemon_fixture.hpp"

#include <boost/json/parse.hpp>

#include <dirent.h>
#include <csignal>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;
using store::JobState;
namespace fs = std::filesystem;

#if defined(__SANITIZE_ADDRESS__)
constexpr bool kAsanBuild = true;
#else
constexpr bool kAsanBuild = false;
#endif

// A "VmRSS:" style line of /proc/<pid>/status, in KiB; 0 when absent.
std::uint64_t status_kib(int pid, const std::string& field) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(in, line)) {
    if (line.starts_with(field + ":")) return std::stoull(line.substr(field.size() + 1));
  }
  return 0;
}

std::size_t open_descriptors(int pid) {
  const std::string dir = "/proc/" + std::to_string(pid) + "/fd";
  DIR* listing = ::opendir(dir.c_str());
  if (listing == nullptr) return 0;
  std::size_t count = 0;
  while (const dirent* entry = ::readdir(listing)) {
    if (entry->d_name[0] != '.') ++count;
  }
  ::closedir(listing);
  return count;
}

// Inserts `count` pending jobs with their content hash known (so the hash stage leaves them
// alone), in one transaction of a second connection, as `modeldrop add` would one by one.
void insert_pending_jobs(const fs::path& database, const fs::path& watch_dir, std::uint64_t first, std::uint64_t last) {
  auto store = store::JobStore::open_existing(database);
  ASSERT_TRUE(store) << store.error().message;
  auto transaction = store::ImmediateTransaction::begin(store->connection());
  ASSERT_TRUE(transaction) << transaction.error().message;
  const WallTime now = SystemClock{}.now();
  for (std::uint64_t i = first; i <= last; ++i) {
    store::NewJob job;
    job.path = watch_dir / "queue" / ("model-" + std::to_string(i) + ".tar.gz");
    job.watch_dir = watch_dir;
    job.file = store::FileIdentity{1, i, 100'000 + i, 1'700'000'000'000'000'000};
    auto queued = store->enqueue(job, now);
    ASSERT_TRUE(queued) << queued.error().message;
    std::string sha = std::to_string(i);
    sha.insert(0, 64 - sha.size(), '0');
    auto hashed = store->set_sha256(queued->job, sha, job.file, now);
    ASSERT_TRUE(hashed && *hashed);
  }
  ASSERT_TRUE(transaction->commit());
}

// Waits until the daemon's own count (through `modeldrop status --json`) shows `jobs` pending, then
// for one more state count and heartbeat; returns that status.
boost::json::value settled_status(ChildProcess& daemon, std::uint64_t jobs,
                                  const std::function<ProcessResult(const std::vector<std::string>&)>& cli) {
  boost::json::value status;
  const bool counted = wait_until(
      [&] {
        const auto result = cli({"status", "--json"});
        if (result.exit_code != 0) return false;
        status = boost::json::parse(result.out);
        return status.at("states").at("pending").at("jobs").to_number<std::uint64_t>() == jobs;
      },
      60s);
  EXPECT_TRUE(counted) << daemon.stderr_text();
  (void)wait_until([] { return false; }, 7s);  // the daemon counts states every ~6 s
  const auto fresh = cli({"status", "--json"});
  EXPECT_EQ(fresh.exit_code, 0) << fresh.err;
  return boost::json::parse(fresh.out);
}

TEST_F(DaemonTest, HundredThousandPendingJobsKeepMemoryBounded) {
  constexpr std::uint64_t kJobs = 100'000;
  const auto cli = [this](const std::vector<std::string>& args) { return run_cli(args); };
  if (kAsanBuild) {
    // ASan keeps up to 256 MiB of freed memory in quarantine, resident: RSS would measure how
    // much was ever freed. A small quarantine keeps the use-after-free checks and a meaningful RSS.
    const char* inherited = std::getenv("ASAN_OPTIONS");
    daemon_environment_["ASAN_OPTIONS"] =
        std::string(inherited != nullptr ? inherited : "") + (inherited != nullptr ? ":" : "") + "quarantine_size_mb=4";
  }
  auto daemon = start_ready_daemon();
  ASSERT_EQ(run_cli({"pause"}).exit_code, 0);
  ASSERT_TRUE(wait_until([&] { return daemon->stderr_text().find("uploads paused") != std::string::npos; }, 10s))
      << daemon->stderr_text();
  (void)wait_until([] { return false; }, 2s);  // a heartbeat or two: the steady state of an idle daemon
  const std::uint64_t baseline_kib = status_kib(daemon->pid(), "VmRSS");
  ASSERT_GT(baseline_kib, 0u);

  const auto insert_started = std::chrono::steady_clock::now();
  insert_pending_jobs(database_, incoming_, 1, kJobs);
  const auto insert_time = std::chrono::steady_clock::now() - insert_started;
  auto status = settled_status(*daemon, kJobs, cli);
  EXPECT_TRUE(status.at("daemon").at("running").as_bool());
  EXPECT_LT(status.at("daemon").at("heartbeat_age_s").to_number<double>(), 5.0) << status;
  EXPECT_TRUE(status.at("paused").as_bool());

  const auto list_started = std::chrono::steady_clock::now();
  const auto listed = run_cli({"jobs", "--limit", "20"});
  const auto list_time = std::chrono::steady_clock::now() - list_started;
  EXPECT_EQ(listed.exit_code, 0) << listed.err;
  EXPECT_NE(listed.out.find("model-100000.tar.gz"), std::string::npos) << "newest first";
  EXPECT_LT(list_time, 10s);
  const std::uint64_t peak_kib = status_kib(daemon->pid(), "VmHWM");

  // Twice as many: SQLite's page cache was full already, so nothing more may grow.
  insert_pending_jobs(database_, incoming_, kJobs + 1, 2 * kJobs);
  status = settled_status(*daemon, 2 * kJobs, cli);
  EXPECT_LT(status.at("daemon").at("heartbeat_age_s").to_number<double>(), 5.0) << status;
  const std::uint64_t doubled_peak_kib = status_kib(daemon->pid(), "VmHWM");

  const std::uint64_t growth_kib = peak_kib > baseline_kib ? peak_kib - baseline_kib : 0;
  const std::uint64_t second_growth_kib = doubled_peak_kib > peak_kib ? doubled_peak_kib - peak_kib : 0;
  // The daemon holds no per-job state while jobs wait; SQLite's page cache is capped at 32 MiB
  // (PRAGMA cache_size = -32768) and a scan of 100,000 jobs fills it. Measured: dev +33 MiB for
  // the first 100,000 and +0 MiB for the next; asan +44 MiB and +4 MiB (its redzones and small
  // quarantine): the ASan bounds are wider, not a different claim.
  const std::uint64_t bound_kib = kAsanBuild ? 128 * 1024 : 48 * 1024;
  const std::uint64_t second_bound_kib = kAsanBuild ? 32 * 1024 : 8 * 1024;
  std::cout << "[ figures  ] " << kJobs << " pending jobs: inserted in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(insert_time).count() << " ms; daemon RSS "
            << baseline_kib << " KiB before, peak " << peak_kib << " KiB (growth " << growth_kib << " KiB, bound "
            << bound_kib << " KiB" << (kAsanBuild ? ", ASan" : "") << "); with " << 2 * kJobs << ": peak "
            << doubled_peak_kib << " KiB (growth " << second_growth_kib << " KiB, bound " << second_bound_kib
            << " KiB); `modeldrop jobs --limit 20` took "
            << std::chrono::duration_cast<std::chrono::milliseconds>(list_time).count() << " ms\n";
  EXPECT_LE(growth_kib, bound_kib);
  EXPECT_LE(second_growth_kib, second_bound_kib);
  EXPECT_TRUE(daemon->running());
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0) << daemon->stderr_text();
}

TEST_F(DaemonTest, FiveThousandFileBurstKeepsDescriptorsBounded) {
  constexpr int kFiles = 5000;
  auto daemon = start_ready_daemon();
  const std::size_t idle = open_descriptors(daemon->pid());
  ASSERT_GT(idle, 0u);
  std::size_t peak = idle;
  std::size_t samples = 0;
  const auto sample = [&] {
    peak = std::max(peak, open_descriptors(daemon->pid()));
    ++samples;
  };
  const auto burst_started = std::chrono::steady_clock::now();
  for (int i = 0; i < kFiles; ++i) {
    drop("burst-" + std::to_string(i) + ".zip", 512 + static_cast<std::size_t>(i % 97));
    if (i % 50 == 0) sample();
  }
  ASSERT_TRUE(wait_until(
      [&] {
        sample();
        return api_->files().size() == static_cast<std::size_t>(kFiles);
      },
      600s))
      << api_->files().size() << " of " << kFiles << " uploaded";
  ASSERT_TRUE(wait_until(
      [&] {
        sample();
        return all_jobs_in(JobState::succeeded, kFiles);
      },
      60s));
  const auto burst_time = std::chrono::steady_clock::now() - burst_started;
  // Sessions (2 TLS sockets, each sending from one open file) and the hash stage (one file) are
  // the only things that scale with work; the watcher, the store and the loop hold a fixed set.
  // Measured (dev): idle 16, peak 21. The bound is well below the burst.
  const std::size_t bound = idle + 16;
  std::cout << "[ figures  ] " << kFiles << "-file burst: uploaded in "
            << std::chrono::duration_cast<std::chrono::milliseconds>(burst_time).count() << " ms; descriptors idle "
            << idle << ", peak " << peak << " over " << samples << " samples (bound " << bound << ")\n";
  EXPECT_LE(peak, bound);
  std::size_t moved = 0;
  for (const auto& entry : fs::directory_iterator(incoming_ / "done"))
    if (entry.is_regular_file()) ++moved;
  EXPECT_EQ(moved, static_cast<std::size_t>(kFiles));
  EXPECT_TRUE(daemon->running());
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

}  // namespace
}  // namespace modeldrop::test
