#include "integration/daemon/metrics_fixture.hpp"

#include <cstdlib>

namespace modeldrop::test {

void MetricsDaemonTest::SetUp() {
  DaemonTest::SetUp();
  config_options_.top_level = "metrics:\n  listen: 127.0.0.1:0\n";
  write_config();
}

std::uint16_t MetricsDaemonTest::metrics_port(const ChildProcess& daemon) {
  const std::string marker = "metrics: serving http://127.0.0.1:";
  const auto log = daemon.stderr_text();
  const auto at = log.find(marker);
  if (at == std::string::npos) return 0;
  return static_cast<std::uint16_t>(std::atoi(log.c_str() + at + marker.size()));
}

std::string MetricsDaemonTest::scrape(std::chrono::milliseconds timeout) const {
  auto reply = http_get(port_, "/metrics", timeout);
  return reply && reply->status == 200 ? reply->body : std::string();
}

std::optional<double> MetricsDaemonTest::sample(const std::string& text, const std::string& series) {
  const auto at = text.find("\n" + series + " ");
  if (at == std::string::npos) return std::nullopt;
  return std::strtod(text.c_str() + at + series.size() + 2, nullptr);
}

bool MetricsDaemonTest::wait_for_sample(const std::string& series, double value,
                                        std::chrono::milliseconds bound) const {
  return wait_until([&] { return sample(scrape(), series) == value; }, bound);
}

}  // namespace modeldrop::test
