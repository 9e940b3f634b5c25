#include "metrics/database_gauges.hpp"

#include <chrono>

namespace modeldrop::metrics {
namespace {

using store::Connection;
using store::StatementReset;

// A read while the store commits waits for it at most this long (WAL readers rarely wait).
constexpr std::chrono::milliseconds kBusyTimeout{2000};

Result<void> read_states(Connection& db, DatabaseGauges& gauges) {
  auto statement = db.prepare("SELECT state, jobs, bytes FROM queue_summary");
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  for (;;) {
    auto row = (*statement)->step();
    if (!row) return row.error();
    if (!*row) return {};
    auto state = store::parse_job_state((*statement)->text(0));
    if (!state) continue;
    gauges.jobs[static_cast<std::size_t>(*state)] = (*statement)->int64(1);
    if (*state == store::JobState::pending) gauges.pending_bytes = (*statement)->int64(2);
  }
}

// Job ids grow with creation, so the lowest pending id is the oldest pending job (an index seek).
Result<void> read_oldest_pending(Connection& db, WallTime now, DatabaseGauges& gauges) {
  auto statement = db.prepare("SELECT created_at FROM jobs WHERE state = 'pending' ORDER BY id LIMIT 1");
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  auto row = (*statement)->step();
  if (!row) return row.error();
  if (!*row) return {};
  if (auto created = parse_timestamp((*statement)->text(0)); created && *created < now) {
    gauges.oldest_pending_seconds = std::chrono::duration<double>(now - *created).count();
  }
  return {};
}

Result<void> read_models(Connection& db, DatabaseGauges& gauges) {
  auto statement =
      db.prepare("SELECT model_status, count(*) FROM jobs WHERE model_status IS NOT NULL GROUP BY model_status");
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  for (;;) {
    auto row = (*statement)->step();
    if (!row) return row.error();
    if (!*row) return {};
    gauges.models[(*statement)->text(0)] = (*statement)->int64(1);
  }
}

}  // namespace

Result<DatabaseGaugeReader> DatabaseGaugeReader::open(const std::filesystem::path& database) {
  auto db = Connection::open(database, store::OpenMode::read_only, kBusyTimeout);
  if (!db) return db.error();
  return DatabaseGaugeReader(std::move(*db));
}

Result<DatabaseGauges> DatabaseGaugeReader::read(WallTime now) {
  // One snapshot for all three queries, ended at once so it never pins the WAL.
  if (auto r = db_.execute("BEGIN"); !r) return r.error();
  DatabaseGauges gauges;
  Result<void> result = read_states(db_, gauges);
  if (result) result = read_oldest_pending(db_, now, gauges);
  if (result) result = read_models(db_, gauges);
  (void)db_.execute(result ? "COMMIT" : "ROLLBACK");
  if (!result) return result.error();
  return gauges;
}

}  // namespace modeldrop::metrics
