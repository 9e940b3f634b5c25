#pragma once

// A real modeldropd with its metrics endpoint on an ephemeral loopback port.

#include "integration/daemon/daemon_fixture.hpp"
#include "support/http_client.hpp"

#include <optional>
#include <string>

namespace modeldrop::test {

class MetricsDaemonTest : public DaemonTest {
 protected:
  void SetUp() override;

  // The port the daemon logged ("metrics: serving http://127.0.0.1:N/metrics"); 0 if none.
  static std::uint16_t metrics_port(const ChildProcess& daemon);
  // The exposition text, or "" when the scrape failed.
  std::string scrape(std::chrono::milliseconds timeout = std::chrono::seconds(5)) const;
  // The value of the sample `series` (e.g. `modeldrop_jobs{state="pending"}`) in `text`.
  static std::optional<double> sample(const std::string& text, const std::string& series);
  // Scrapes until `series` has `value` or `bound` passes.
  bool wait_for_sample(const std::string& series, double value,
                       std::chrono::milliseconds bound = std::chrono::seconds(30)) const;

  std::uint16_t port_ = 0;  // set by the test once the daemon is ready
};

}  // namespace modeldrop::test
