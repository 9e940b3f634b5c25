// The metrics endpoint of a real modeldropd uploading to the fake API: a live scrape checked
// by promtool, holds and queue age, startup and reload rules for metrics.listen, and hostile
// clients that must stall neither the uploads nor the scrapes.
#include "integration/daemon/metrics_fixture.hpp"

#include "support/run_process.hpp"

#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <csignal>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;

constexpr std::size_t kArchive = 100 * 1000;

std::size_t open_fds(int pid) {
  std::size_t count = 0;
  for ([[maybe_unused]] const auto& entry :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/fd")) {
    ++count;
  }
  return count;
}

TEST_F(MetricsDaemonTest, LiveScrapeCountsTheUploadsAndPassesPromtool) {
  auto daemon = start_ready_daemon();
  port_ = metrics_port(*daemon);
  ASSERT_NE(port_, 0) << daemon->stderr_text();
  for (int i = 0; i < 3; ++i) drop("model-" + std::to_string(i) + ".zip", kArchive);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(store::JobState::succeeded, 3); }, 30s)) << daemon->stderr_text();
  ASSERT_TRUE(wait_for_sample(R"(modeldrop_jobs{state="succeeded"})", 3)) << scrape();

  const auto text = scrape();
  EXPECT_EQ(sample(text, "modeldrop_uploaded_bytes_total"), 3 * kArchive);
  EXPECT_EQ(sample(text, "modeldrop_sent_bytes_total"), 3 * kArchive);
  EXPECT_EQ(sample(text, R"(modeldrop_upload_attempts_total{outcome="succeeded"})"), 3);
  EXPECT_EQ(sample(text, R"(modeldrop_http_responses_total{code="200"})"), 3);
  EXPECT_EQ(sample(text, "modeldrop_upload_duration_seconds_count"), 3);
  EXPECT_EQ(sample(text, R"(modeldrop_jobs{state="pending"})"), 0);
  EXPECT_EQ(sample(text, "modeldrop_oldest_pending_seconds"), 0);
  EXPECT_EQ(sample(text, R"(modeldrop_held{reason="auth"})"), 0);

  ProcessOptions options;
  options.stdin_data = text;
  const auto check = run_process({PROMTOOL_PATH, "check", "metrics"}, options);
  EXPECT_EQ(check.exit_code, 0) << check.out << check.err;
  EXPECT_EQ(check.out + check.err, "") << "promtool found something to report";

  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(MetricsDaemonTest, PauseShowsAsAHoldAndTheQueueAges) {
  auto daemon = start_ready_daemon();
  port_ = metrics_port(*daemon);
  ASSERT_NE(port_, 0);
  ASSERT_EQ(run_cli({"pause"}).exit_code, 0);
  ASSERT_TRUE(wait_for_sample(R"(modeldrop_held{reason="paused"})", 1)) << scrape();
  drop("waiting.zip", kArchive);
  ASSERT_TRUE(wait_for_sample(R"(modeldrop_jobs{state="pending"})", 1)) << scrape();
  ASSERT_TRUE(wait_until([&] { return sample(scrape(), "modeldrop_oldest_pending_seconds") >= 1.0; }, 10s));
  EXPECT_EQ(sample(scrape(), "modeldrop_pending_bytes"), kArchive);

  ASSERT_EQ(run_cli({"resume"}).exit_code, 0);
  ASSERT_TRUE(wait_for_sample(R"(modeldrop_jobs{state="succeeded"})", 1)) << scrape();
  const auto text = scrape();
  EXPECT_EQ(sample(text, R"(modeldrop_held{reason="paused"})"), 0);
  EXPECT_EQ(sample(text, "modeldrop_oldest_pending_seconds"), 0);
  EXPECT_EQ(sample(text, "modeldrop_pending_bytes"), 0);
}

TEST_F(MetricsDaemonTest, PortInUseIsAStartupErrorNamingIt) {
  std::uint16_t port = 0;
  const int fd = listen_on_loopback(port);
  ASSERT_GE(fd, 0);
  const std::string taken = "127.0.0.1:" + std::to_string(port);
  config_options_.top_level = "metrics:\n  listen: " + taken + "\n";
  write_config();

  auto daemon = start_daemon();
  EXPECT_EQ(daemon->wait(15s), 1);
  ::close(fd);
  const auto log = daemon->stderr_text();
  EXPECT_NE(log.find("metrics.listen " + taken), std::string::npos) << log;
  EXPECT_NE(log.find("in use"), std::string::npos) << log;
  EXPECT_FALSE(std::filesystem::exists(database_)) << "nothing started before the port was bound";
}

TEST_F(MetricsDaemonTest, ListenChangeOnSighupIsLoggedAsNeedingARestart) {
  auto daemon = start_ready_daemon();
  port_ = metrics_port(*daemon);
  ASSERT_NE(port_, 0);
  config_options_.top_level = "metrics:\n  listen: '[::1]:9464'\n";
  write_config();
  daemon->signal(SIGHUP);
  ASSERT_TRUE(
      wait_until([&] { return daemon->stderr_text().find("configuration reloaded") != std::string::npos; }, 10s));
  EXPECT_NE(daemon->stderr_text().find(
                "metrics.listen changed to [::1]:9464: takes effect only after a restart; still 127.0.0.1:0"),
            std::string::npos)
      << daemon->stderr_text();
  EXPECT_NE(scrape(), "") << "the endpoint stays where it was";
}

// 1,000 idle connections, trickling clients and garbage at once, while archives upload.
TEST_F(MetricsDaemonTest, HostileClientsStallNeitherUploadsNorScrapes) {
  rlimit files{};
  ASSERT_EQ(::getrlimit(RLIMIT_NOFILE, &files), 0);
  files.rlim_cur = std::max<rlim_t>(files.rlim_cur, std::min<rlim_t>(files.rlim_max, 4096));
  ASSERT_EQ(::setrlimit(RLIMIT_NOFILE, &files), 0);
  ASSERT_GE(files.rlim_cur, 1100U) << "this test needs 1,000 sockets";

  auto daemon = start_ready_daemon();
  port_ = metrics_port(*daemon);
  ASSERT_NE(port_, 0);
  const auto fds_before = open_fds(daemon->pid());
  for (int i = 0; i < 6; ++i) drop("under-siege-" + std::to_string(i) + ".zip", 1024 * 1024);

  std::vector<int> idle;
  for (int i = 0; i < 1000; ++i) {
    const int fd = connect_tcp("127.0.0.1", port_);
    ASSERT_GE(fd, 0) << "connection " << i;
    idle.push_back(fd);
    // Every tenth one starts a request and never finishes it.
    if (i % 10 == 0) (void)::send(fd, "GET /metrics HTTP/1.1\r\nHost: x\r\nX-", 34, MSG_NOSIGNAL);
  }
  // Some of these are a valid start of a request that never ends: the client does not wait.
  for (int i = 0; i < 100; ++i) {
    const std::string garbage =
        i % 2 == 0 ? std::string(4096, static_cast<char>(i)) : "BREW /coffee HTCPCP/1.0\r\n\r\n";
    (void)exchange("127.0.0.1", port_, garbage, 300ms);
  }
  const auto started = std::chrono::steady_clock::now();
  const auto text = scrape(5s);
  EXPECT_NE(text, "") << "no scrape behind 1,000 open connections";
  EXPECT_LT(std::chrono::steady_clock::now() - started, 3s);
  EXPECT_TRUE(wait_until([&] { return all_jobs_in(store::JobState::succeeded, 6); }, 60s))
      << "uploads stalled while the endpoint was flooded";
  EXPECT_TRUE(daemon->running());
  EXPECT_LT(open_fds(daemon->pid()), fds_before + 80) << "connections are bounded";
  for (int fd : idle) ::close(fd);
  EXPECT_TRUE(wait_for_sample(R"(modeldrop_jobs{state="succeeded"})", 6));
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

}  // namespace
}  // namespace modeldrop::test
