#pragma once

// Every metric family the daemon exports, kept in a prometheus-cpp registry and written in
// the Prometheus text format. Counters start at 0 with each daemon; gauges are set from the
// database and the scheduler just before each scrape. Used on the event loop only.

#include "metrics/database_gauges.hpp"
#include "store/job_store.hpp"

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace modeldrop::metrics {

// Which holds keep uploads waiting (several may hold at once).
struct Holds {
  bool auth = false;
  bool rate_limit = false;
  bool paused = false;
};

struct AttemptSample {
  store::AttemptOutcome outcome = store::AttemptOutcome::aborted;
  std::optional<int> http_status;
  std::uint64_t bytes_sent = 0;
  std::uint64_t file_bytes = 0;  // the archive's size, counted as uploaded when it succeeded
  std::chrono::duration<double> elapsed{};
};

class DaemonMetrics {
 public:
  explicit DaemonMetrics(std::string_view version);
  ~DaemonMetrics();
  DaemonMetrics(const DaemonMetrics&) = delete;
  DaemonMetrics& operator=(const DaemonMetrics&) = delete;

  void attempt_finished(const AttemptSample& sample);
  // Any answer of the API (uploads, probes, status checks).
  void api_response(int status);
  void set_database(const DatabaseGauges& gauges);
  void set_holds(const Holds& holds);

  // Text format 0.0.4, every family with HELP and TYPE.
  [[nodiscard]] std::string exposition() const;

 private:
  struct Families;
  std::unique_ptr<Families> families_;
};

}  // namespace modeldrop::metrics
