// The `daemon` row (one daemon per database) and the pause, which is kept apart from that row
// so that it outlives restarts.

#include "store/job_rows.hpp"
#include "store/job_store.hpp"

#include <algorithm>

namespace modeldrop::store {

namespace {

Error not_registered(const std::filesystem::path& file) {
  return make_error("this process is not the daemon registered in " + file.string() +
                        " (another modeldropd replaced it, or register_daemon was not called)",
                    StoreErrc::daemon_not_registered);
}

// One statement on this daemon's row, which must still be ours.
template <class... Values>
Result<void> update_own_row(Connection& db, std::optional<int> registered_pid, std::string_view sql,
                            const Values&... values) {
  if (!registered_pid) return not_registered(db.file());
  auto write = AtomicWrite::begin(db, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  if (auto done = db.exec(sql, values..., *registered_pid); !done) return done.error();
  if (db.changes() == 0) return not_registered(db.file());
  return write->commit();
}

// One statement on the settings table; true when it changed a row.
template <class... Values>
Result<bool> change_setting(Connection& db, std::string_view sql, const Values&... values) {
  auto write = AtomicWrite::begin(db, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  if (auto done = db.exec(sql, values...); !done) return done.error();
  const bool changed = db.changes() > 0;
  if (auto committed = write->commit(); !committed) return committed.error();
  return changed;
}

}  // namespace

Result<void> JobStore::register_daemon(int pid, std::string_view version, WallTime now, OtherDaemons others) {
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  struct Registered {
    int pid;
    std::string version;
  };
  auto current = db_.query_one("SELECT pid, version FROM daemon WHERE id = 1", [](const Statement& row) {
    return Registered{static_cast<int>(row.int64(0)), row.text(1)};
  });
  if (!current) return current.error();
  if (const auto& other = *current;
      other && other->pid != pid && others == OtherDaemons::check_pid && is_process_alive(other->pid)) {
    return make_error("another modeldropd (pid " + std::to_string(other->pid) + ", version " + other->version +
                          ") is already running on " + db_.file().string(),
                      StoreErrc::daemon_already_running);
  }
  if (auto done = db_.exec(
          "INSERT INTO daemon (id, pid, version, started_at, heartbeat_at, held_reason, upload_rate_bytes_per_s) "
          "VALUES (1, ?1, ?2, ?3, ?3, NULL, 0) ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, "
          "version = excluded.version, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, "
          "held_reason = NULL, upload_rate_bytes_per_s = 0",
          pid, version, timestamp(now));
      !done) {
    return done.error();
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  registered_pid_ = pid;
  return {};
}

Result<void> JobStore::heartbeat(WallTime now, double upload_rate_bytes_per_s) {
  return update_own_row(db_, registered_pid_,
                        "UPDATE daemon SET heartbeat_at = ?1, upload_rate_bytes_per_s = ?2 WHERE id = 1 AND pid = ?3",
                        timestamp(now), std::max(0.0, upload_rate_bytes_per_s));
}

Result<void> JobStore::set_held_reason(const std::optional<std::string>& reason) {
  return update_own_row(db_, registered_pid_, "UPDATE daemon SET held_reason = ?1 WHERE id = 1 AND pid = ?2", reason);
}

Result<void> JobStore::unregister_daemon() {
  if (!registered_pid_) return {};
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  if (auto done = db_.exec("DELETE FROM daemon WHERE id = 1 AND pid = ?1", *registered_pid_); !done) {
    return done.error();
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  registered_pid_.reset();
  return {};
}

Result<std::optional<DaemonRecord>> JobStore::daemon_record() {
  return db_.query_one(
      "SELECT pid, version, started_at, heartbeat_at, held_reason, upload_rate_bytes_per_s FROM daemon WHERE id = 1",
      [](const Statement& s) {
        return DaemonRecord{static_cast<int>(s.int64(0)), s.text(1), read_time(s, 2), read_time(s, 3),
                            s.optional_text(4),           s.real(5)};
      });
}

Result<bool> JobStore::pause(WallTime now) {
  return change_setting(db_, "INSERT INTO settings (key, value) VALUES ('paused', ?1) ON CONFLICT (key) DO NOTHING",
                        timestamp(now));
}

Result<bool> JobStore::resume() {
  return change_setting(db_, "DELETE FROM settings WHERE key = 'paused'");
}

Result<bool> JobStore::is_paused() {
  auto paused = db_.query_int64("SELECT EXISTS (SELECT 1 FROM settings WHERE key = 'paused')");
  if (!paused) return paused.error();
  return *paused != 0;
}

Result<std::optional<WallTime>> JobStore::paused_since() {
  return db_.query_one("SELECT value FROM settings WHERE key = 'paused'",
                       [](const Statement& row) { return read_time(row, 0); });
}

}  // namespace modeldrop::store
