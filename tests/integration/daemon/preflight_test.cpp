// The preflight stage through the real daemon and the fake API: dedupe between jobs in flight,
// and an event loop that keeps serving while an after-action copies a multi-GiB archive to
// another filesystem.
#include "daemon_fixture.hpp"
#include "support/scoped_mount.hpp"

#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <mutex>
#include <thread>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;
using store::JobState;
using SteadyTime = std::chrono::steady_clock::time_point;

TEST_F(DaemonTest, FiveIdenticalArchivesDroppedTogetherMakeOneUpload) {
  // Slow enough that all five are queued while the first one is still being sent.
  Fault slow;
  slow.kind = FaultKind::throttle;
  slow.bytes_per_second = 2 * 1024 * 1024;
  api_->set_default_fault(slow);
  auto daemon = start_ready_daemon();
  const auto original = drop("same-0.zip", 2 * 1024 * 1024);
  const std::string sha = sha256_of(original);
  for (int i = 1; i < 5; ++i) {
    const auto temp = incoming_ / (".copy-" + std::to_string(i));
    std::filesystem::copy_file(original, temp);
    std::filesystem::rename(temp, incoming_ / ("same-" + std::to_string(i) + ".zip"));
  }
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 5); }, 60s)) << daemon->stderr_text();
  ASSERT_EQ(api_->files().size(), 1u) << "one upload for five identical archives";
  const auto all = jobs();
  std::vector<store::Job> uploaded;
  std::vector<store::Job> deduped;
  for (const auto& job : all) {
    EXPECT_EQ(job.sha256, sha);
    (job.duplicate_of ? deduped : uploaded).push_back(job);
  }
  ASSERT_EQ(uploaded.size(), 1u);
  ASSERT_EQ(deduped.size(), 4u);
  for (const auto& job : deduped) {
    EXPECT_EQ(job.duplicate_of, uploaded[0].id);
    EXPECT_EQ(job.file_id, uploaded[0].file_id);
    EXPECT_EQ(job.file_status, uploaded[0].file_status);
    EXPECT_EQ(job.attempts, 0) << "a dedupe completion makes no attempt";
  }
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(DaemonTest, AJobWaitingForAnIdenticalOneTakesOverWhenThatOneFails) {
  auto daemon = start_ready_daemon();
  // The first upload is refused for good; the job that waited for it uploads itself.
  Fault refused;
  refused.kind = FaultKind::status;
  refused.status = 422;
  refused.body = R"({"detail":"refused once"})";
  Fault slow;
  slow.kind = FaultKind::throttle;
  slow.bytes_per_second = 1024 * 1024;
  api_->push_fault(refused);
  api_->set_default_fault(slow);
  const auto original = drop("twin-a.zip", 1024 * 1024);
  const auto temp = incoming_ / ".copy";
  std::filesystem::copy_file(original, temp);
  std::filesystem::rename(temp, incoming_ / "twin-b.zip");
  ASSERT_TRUE(wait_until(
      [&] {
        const auto all = jobs();
        std::size_t ended = 0;
        for (const auto& job : all) ended += job.state == JobState::failed || job.state == JobState::succeeded;
        return all.size() == 2 && ended == 2;
      },
      60s))
      << daemon->stderr_text();
  std::size_t failed = 0;
  std::size_t succeeded = 0;
  for (const auto& job : jobs()) {
    failed += job.state == JobState::failed;
    succeeded += job.state == JobState::succeeded;
    EXPECT_FALSE(job.duplicate_of) << "nothing to complete from: the first one failed";
  }
  EXPECT_EQ(failed, 1u);
  EXPECT_EQ(succeeded, 1u);
  EXPECT_EQ(api_->files().size(), 1u);
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

// Receives the daemon's sd_notify datagrams and notes when each WATCHDOG=1 arrived.
class NotifyListener {
 public:
  explicit NotifyListener(const std::filesystem::path& path) : path_(path) {
    fd_ = ::socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un address{};
    address.sun_family = AF_UNIX;
    std::strncpy(address.sun_path, path.c_str(), sizeof(address.sun_path) - 1);
    if (fd_ < 0 || ::bind(fd_, reinterpret_cast<const sockaddr*>(&address), sizeof(address)) != 0) {
      throw std::runtime_error("cannot bind " + path.string() + ": " + std::strerror(errno));
    }
    timeval timeout{0, 100'000};
    ::setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &timeout, sizeof(timeout));
    thread_ = std::thread([this] { receive(); });
  }
  ~NotifyListener() {
    stop_ = true;
    thread_.join();
    ::close(fd_);
  }
  NotifyListener(const NotifyListener&) = delete;
  NotifyListener& operator=(const NotifyListener&) = delete;

  // The longest time without a WATCHDOG=1 between `from` and `to`.
  std::chrono::milliseconds longest_silence(SteadyTime from, SteadyTime to) const {
    std::lock_guard lock(mutex_);
    SteadyTime previous = from;
    std::chrono::steady_clock::duration longest{0};
    for (const auto at : pings_) {
      if (at < from) continue;
      if (at > to) break;
      longest = std::max(longest, at - previous);
      previous = at;
    }
    longest = std::max(longest, to - previous);
    return std::chrono::duration_cast<std::chrono::milliseconds>(longest);
  }

 private:
  void receive() {
    char buffer[4096];
    while (!stop_) {
      const ssize_t n = ::recv(fd_, buffer, sizeof(buffer), 0);
      if (n <= 0) continue;
      if (std::string_view(buffer, static_cast<std::size_t>(n)).find("WATCHDOG=1") == std::string_view::npos) continue;
      std::lock_guard lock(mutex_);
      pings_.push_back(std::chrono::steady_clock::now());
    }
  }

  std::filesystem::path path_;
  int fd_ = -1;
  std::atomic<bool> stop_{false};
  mutable std::mutex mutex_;
  std::vector<SteadyTime> pings_;
  std::thread thread_;
};

// The old daemon copied and fsynced on the loop thread: nothing else moved for the whole copy.
TEST_F(DaemonTest, TheLoopKeepsServingDuringAMultiGiBMoveToAnotherFilesystem) {
  constexpr std::uint64_t kBig = 2ULL << 30U;
  std::optional<ScopedMount> mounted;
  try {
    mounted.emplace(ScopedMount::tmpfs(dir_ / "elsewhere", "3g"));
  } catch (const std::exception& e) {
    GTEST_SKIP() << "no second filesystem for the move: " << e.what();
  }
  const auto elsewhere = dir_ / "elsewhere";
  config_options_.incoming_watch = "    failed_dir: " + elsewhere.string() + "\n";
  write_config();
  NotifyListener listener(dir_ / "notify.sock");
  daemon_environment_["NOTIFY_SOCKET"] = (dir_ / "notify.sock").string();
  daemon_environment_["WATCHDOG_USEC"] = "200000";  // a WATCHDOG=1 every 100 ms
  // The big archive is refused at once, so its after-action (the move) starts right away.
  Fault refused;
  refused.kind = FaultKind::early_status;
  refused.status = 400;
  refused.body = R"({"detail":"not a model"})";
  refused.linger_for = 0ms;
  api_->push_fault(refused);
  auto daemon = start_ready_daemon();
  const auto big = drop("big.bin.zip", kBig);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::failed, 1); }, 120s)) << daemon->stderr_text();
  const SteadyTime move_started = std::chrono::steady_clock::now();
  const auto big_id = jobs().front().id;

  // While the copy runs: a small archive is uploaded, a pause takes effect, the heartbeat moves.
  const auto heartbeat_before = [&] {
    auto store = store::JobStore::open_existing(database_);
    return (*store->daemon_record())->heartbeat_at;
  }();
  drop("small.zip", 64 * 1024);
  const bool small_uploaded = wait_until(
      [&] {
        for (const auto& job : jobs())
          if (job.path.filename() == "small.zip" && job.state == JobState::succeeded) return true;
        return false;
      },
      30s);
  const SteadyTime small_done = std::chrono::steady_clock::now();
  ASSERT_EQ(run_cli({"pause"}).exit_code, 0);
  const bool paused = wait_until([&] { return held_reason(database_) == "paused"; }, 10s);
  const SteadyTime pause_seen = std::chrono::steady_clock::now();
  bool still_moving = false;
  for (const auto& job : jobs())
    if (job.id == big_id) still_moving = job.current_path == big;
  const bool moved = wait_until(
      [&] {
        for (const auto& job : jobs())
          if (job.id == big_id && job.current_path && job.current_path->parent_path() == elsewhere) return true;
        return false;
      },
      120s);
  const SteadyTime move_ended = std::chrono::steady_clock::now();
  const auto heartbeat_after = [&] {
    auto store = store::JobStore::open_existing(database_);
    return (*store->daemon_record())->heartbeat_at;
  }();
  ASSERT_TRUE(moved) << daemon->stderr_text();
  ASSERT_TRUE(small_uploaded) << daemon->stderr_text();
  ASSERT_TRUE(paused) << daemon->stderr_text();
  EXPECT_FALSE(std::filesystem::exists(big));
  EXPECT_EQ(std::filesystem::file_size(elsewhere / "big.bin.zip"), kBig);

  const auto ms = [](auto d) { return std::chrono::duration_cast<std::chrono::milliseconds>(d).count(); };
  const auto silence = listener.longest_silence(move_started, move_ended);
  std::cout << "[ figures  ] move of 2 GiB to a tmpfs: " << ms(move_ended - move_started)
            << " ms; meanwhile small upload after " << ms(small_done - move_started) << " ms, pause seen after "
            << ms(pause_seen - small_done) << " ms, longest watchdog silence " << silence.count() << " ms\n";
  // WATCHDOG=1 every 100 ms. A loop blocked by the copy would be silent for all of it; a
  // silence of half the move or 2 s is a stopped loop even under ASan on a loaded machine.
  EXPECT_LT(silence, 2000ms);
  EXPECT_LT(silence * 2, move_ended - move_started);
  // The heartbeat row is written every 5 s: only a move longer than that must see it advance.
  if (move_ended - move_started > 6s) {
    EXPECT_GT(heartbeat_after, heartbeat_before) << "the heartbeat advanced during the move";
  }
  // The upload and the pause above happened while the copy ran only if it outlasted them.
  EXPECT_TRUE(still_moving) << "the move ended before the checks: nothing was measured during it";
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

}  // namespace
}  // namespace modeldrop::test
