#include "metrics/database_gauges.hpp"

#include <chrono>

namespace modeldrop::metrics {
namespace {

using store::Connection;
using store::StatementReset;

// A read while the store commits waits for it at most this long (WAL readers rarely wait).
constexpr std::chrono::milliseconds kBusyTimeout{2000};

// Runs `sql` and hands each row to `row`; the statement is reset whatever happens.
template <class Row>
Result<void> each_row(Connection& db, std::string_view sql, Row row) {
  auto statement = db.prepare(sql);
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  for (;;) {
    auto stepped = (*statement)->step();
    if (!stepped) return stepped.error();
    if (!*stepped) return {};
    row(**statement);
  }
}

Result<void> read_states(Connection& db, DatabaseGauges& gauges) {
  return each_row(db, "SELECT state, jobs, bytes FROM queue_summary", [&](const store::Statement& row) {
    auto state = store::parse_job_state(row.text(0));
    if (!state) return;
    gauges.jobs[static_cast<std::size_t>(*state)] = row.int64(1);
    if (*state == store::JobState::pending) gauges.pending_bytes = row.int64(2);
  });
}

// Job ids grow with creation, so the lowest pending id is the oldest pending job (an index seek).
Result<void> read_oldest_pending(Connection& db, WallTime now, DatabaseGauges& gauges) {
  return each_row(db, "SELECT created_at FROM jobs WHERE state = 'pending' ORDER BY id LIMIT 1",
                  [&](const store::Statement& row) {
                    auto created = parse_timestamp(row.text(0));
                    if (created && *created < now) {
                      gauges.oldest_pending_seconds = std::chrono::duration<double>(now - *created).count();
                    }
                  });
}

Result<void> read_models(Connection& db, DatabaseGauges& gauges) {
  return each_row(db, "SELECT model_status, count(*) FROM jobs WHERE model_status IS NOT NULL GROUP BY model_status",
                  [&](const store::Statement& row) { gauges.models[row.text(0)] = row.int64(1); });
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
