// A real Prometheus (Debian's package) on loopback scrapes a real modeldropd that uploads to
// the fake API, and its query API shows what was uploaded: the scrape config the README gives
// works end to end. Bounded: Prometheus gets 60 s to see the count.
#include "integration/daemon/metrics_fixture.hpp"

#include <sys/socket.h>
#include <unistd.h>

#include <csignal>
#include <fstream>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;

// A port free a moment ago, for a program that cannot be told to pick one itself.
std::uint16_t free_port() {
  std::uint16_t port = 0;
  const int fd = listen_on_loopback(port);
  if (fd < 0) return 0;
  ::close(fd);
  return port;
}

// The value of an instant query's single sample, as Prometheus writes it ("4"), or "".
std::string query_value(std::uint16_t port, const std::string& encoded_query) {
  auto reply = http_get(port, "/api/v1/query?query=" + encoded_query, 2s);
  if (!reply || reply->status != 200) return "";
  const auto value = reply->body.find("\"value\":[");
  if (value == std::string::npos) return "";
  const auto open = reply->body.find(",\"", value);
  const auto close = reply->body.find('"', open + 2);
  if (open == std::string::npos || close == std::string::npos) return "";
  return reply->body.substr(open + 2, close - open - 2);
}

TEST_F(MetricsDaemonTest, RealPrometheusScrapesTheUploadedCount) {
  auto daemon = start_ready_daemon();
  port_ = metrics_port(*daemon);
  ASSERT_NE(port_, 0) << daemon->stderr_text();

  const std::uint16_t prometheus_port = free_port();
  ASSERT_NE(prometheus_port, 0);
  dir_.write("prometheus.yml",
             "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
             "scrape_configs:\n  - job_name: modeldrop\n    static_configs:\n"
             "      - targets: ['127.0.0.1:" +
                 std::to_string(port_) + "']\n");
  std::filesystem::create_directories(dir_ / "prometheus-log");
  ChildProcess prometheus({PROMETHEUS_PATH, "--config.file=" + (dir_ / "prometheus.yml").string(),
                           "--storage.tsdb.path=" + (dir_ / "tsdb").string(),
                           "--web.listen-address=127.0.0.1:" + std::to_string(prometheus_port), "--log.level=warn"},
                          dir_ / "prometheus-log");

  constexpr int kArchives = 4;
  for (int i = 0; i < kArchives; ++i) drop("scraped-" + std::to_string(i) + ".zip", 200 * 1000);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(store::JobState::succeeded, kArchives); }, 30s))
      << daemon->stderr_text();

  const bool seen = wait_until(
      [&] { return query_value(prometheus_port, "modeldrop_jobs%7Bstate%3D%22succeeded%22%7D") == "4"; }, 60s);
  EXPECT_TRUE(seen) << "Prometheus never showed modeldrop_jobs{state=\"succeeded\"} 4; its log:\n"
                    << prometheus.stderr_text();
  EXPECT_EQ(query_value(prometheus_port, "up%7Bjob%3D%22modeldrop%22%7D"), "1");
  EXPECT_EQ(query_value(prometheus_port, "modeldrop_uploaded_bytes_total"), "800000");

  prometheus.signal(SIGTERM);
  EXPECT_TRUE(prometheus.wait(20s));
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

}  // namespace
}  // namespace modeldrop::test
