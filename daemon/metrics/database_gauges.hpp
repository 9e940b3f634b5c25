#pragma once

// The gauges that come from the job database, read on a read-only connection of their own:
// in WAL mode a reader never blocks the store's writer, and each read is one short
// transaction, so the WAL can always be checkpointed.

#include "common/error.hpp"
#include "common/timestamp.hpp"
#include "store/job_store.hpp"
#include "store/sqlite.hpp"

#include <array>
#include <cstdint>
#include <filesystem>
#include <map>
#include <string>

namespace modeldrop::metrics {

struct DatabaseGauges {
  std::array<std::int64_t, store::kAllJobStates.size()> jobs{};  // by JobState, in kAllJobStates order
  std::int64_t pending_bytes = 0;
  double oldest_pending_seconds = 0;
  std::map<std::string, std::int64_t> models;  // model_status -> jobs
};

class DatabaseGaugeReader {
 public:
  static Result<DatabaseGaugeReader> open(const std::filesystem::path& database);

  // Not on the event loop: the queries scan the jobs index.
  Result<DatabaseGauges> read(WallTime now);

 private:
  explicit DatabaseGaugeReader(store::Connection connection) : db_(std::move(connection)) {}
  store::Connection db_;
};

}  // namespace modeldrop::metrics
