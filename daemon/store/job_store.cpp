// The job store's opening, the names of states and the pieces its parts share; the parts are job_rows.cpp (row
// mapping), daemon_row.cpp, job_queue.cpp, job_attempts.cpp, job_dedupe.cpp, job_requests.cpp,
// job_queries.cpp, in_doubt.cpp and job_hooks.cpp.

#include "store/job_store.hpp"

#include "store/database_file.hpp"
#include "store/job_rows.hpp"
#include "store/migrations.hpp"

#include <fcntl.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <string>

namespace modeldrop::store {

// Names of states and outcomes, as stored.
namespace {

constexpr std::array<std::string_view, 5> kStateNames{"pending", "uploading", "succeeded", "failed", "cancelled"};
constexpr std::array<std::string_view, 6> kOutcomeNames{"succeeded", "retry",   "failed",
                                                        "held",      "aborted", "reconciled"};

}  // namespace

std::string_view to_string(JobState state) {
  return kStateNames.at(static_cast<std::size_t>(state));
}

std::optional<JobState> parse_job_state(std::string_view text) {
  for (std::size_t i = 0; i < kStateNames.size(); ++i) {
    if (kStateNames[i] == text) return static_cast<JobState>(i);
  }
  return std::nullopt;
}

std::string_view to_string(AttemptOutcome outcome) {
  return kOutcomeNames.at(static_cast<std::size_t>(outcome));
}

std::optional<AttemptOutcome> parse_attempt_outcome(std::string_view text) {
  for (std::size_t i = 0; i < kOutcomeNames.size(); ++i) {
    if (kOutcomeNames[i] == text) return static_cast<AttemptOutcome>(i);
  }
  return std::nullopt;
}

bool is_process_alive(int pid) {
  if (pid <= 0) return false;
  // EPERM: it exists but belongs to another user, which still makes it a live daemon.
  return ::kill(pid, 0) == 0 || errno == EPERM;
}

// Opening.

Result<JobStore> JobStore::open_for_daemon(const std::filesystem::path& file, const StoreOptions& options,
                                           std::vector<std::string>* warnings) {
  auto created = create_database_file(file, options.group);
  if (!created) return created.error();
  if (warnings != nullptr) warnings->insert(warnings->end(), created->begin(), created->end());
  // WAL mode creates -wal and -shm beside the database: otherwise SQLite only says "unable to
  // open database file" at the first read.
  const auto dir = file.parent_path().empty() ? std::filesystem::path(".") : file.parent_path();
  if (::faccessat(AT_FDCWD, dir.c_str(), W_OK, AT_EACCESS) != 0) {
    return errno_error("cannot write to the database directory " + dir.string() + " (its -wal and -shm files go there)",
                       errno);
  }
  auto db = Connection::open(file, OpenMode::create_if_missing, options.busy_timeout);
  if (!db) return db.error();
  return configure(std::move(*db), true);
}

Result<JobStore> JobStore::open_existing(const std::filesystem::path& file, const StoreOptions& options) {
  struct stat info {};
  if (::stat(file.c_str(), &info) != 0) {
    if (errno == ENOENT) {
      return make_error("no database at " + file.string() + " (modeldropd creates it when it first starts)",
                        StoreErrc::no_database);
    }
    return errno_error("cannot open the database " + file.string(), errno);
  }
  if (!S_ISREG(info.st_mode)) {
    return make_error(file.string() + " is not a database file", StoreErrc::not_a_modeldrop_database);
  }
  auto db = Connection::open(file, OpenMode::existing_only, options.busy_timeout);
  if (!db) return db.error();
  return configure(std::move(*db), false);
}

Result<JobStore> JobStore::configure(Connection db, bool for_daemon) {
  // The first read of the file: this is where a file that is not SQLite shows.
  auto version = schema_version(db);
  if (!version) {
    if (version.error().code == SqliteCondition::not_a_database) {
      return make_error(db.file().string() + " is not a SQLite database", StoreErrc::not_a_modeldrop_database);
    }
    return version.error();
  }
  if (*version == 0) {
    // Version 0 is a file no migration has touched: empty (the daemon's to set up), or another
    // program's database, which must not receive modeldrop's tables.
    auto objects = db.query_int64("SELECT count(*) FROM sqlite_schema");
    if (!objects) return objects.error();
    if (*objects != 0) {
      return make_error(db.file().string() + " is a SQLite database of another program, not modeldrop's",
                        StoreErrc::not_a_modeldrop_database);
    }
    if (!for_daemon) {
      return make_error(db.file().string() + " holds no modeldrop job tables (modeldropd creates them when it starts)",
                        StoreErrc::not_a_modeldrop_database);
    }
  }
  // FULL: in WAL mode every COMMIT fsyncs the WAL, so a job state reported committed survives
  // power loss (NORMAL may lose the last commits); the store worker's group commit pays for it.
  // journal_size_limit: a WAL grown behind a long outside reader is truncated back to 8 MiB at
  // the next checkpoint that resets it.
  // cache_size 32 MiB: a group-commit batch touches pages at both ends of several indexes; with
  // SQLite's 2 MiB default it spills them mid-transaction and rereads them (half the throughput).
  // secure_delete OFF (Debian builds it ON): the database holds no secret worth zeroing, and
  // zeroing costs writes. temp_store MEMORY: the savepoint journals of a batch stay off disk.
  if (auto configured =
          db.execute("PRAGMA foreign_keys = ON; PRAGMA synchronous = FULL; PRAGMA journal_size_limit = 8388608; "
                     "PRAGMA cache_size = -32768; PRAGMA secure_delete = OFF; PRAGMA temp_store = MEMORY;");
      !configured) {
    return configured.error();
  }
  auto mode = db.query_text("PRAGMA journal_mode = WAL");
  if (!mode) return mode.error();
  if (*mode != "wal") {
    return make_error(db.file().string() + ": cannot switch to WAL mode (journal_mode is " + *mode + ")",
                      make_sqlite_error_code(static_cast<int>(SqliteCondition::cannot_open)));
  }
  // An older schema is brought forward by either program: migrations only ever add.
  if (auto migrated = apply_migrations(db); !migrated) return migrated.error();
  JobStore store(std::move(db));
  // Start change detection from here: what happened before opening is not news.
  if (auto seen = store.external_change_seen(); !seen) return seen.error();
  return store;
}

// Helpers the other parts of JobStore share.

Result<std::optional<Job>> JobStore::load_job(JobId job) {
  static const std::string sql = select_jobs("WHERE id = ?1");
  return db_.query_one(sql, read_job, job);
}

Result<Job> JobStore::require_job(JobId job) {
  auto found = load_job(job);
  if (!found) return found.error();
  if (!*found) return unknown_job(job);
  return std::move(**found);
}

Result<bool> JobStore::has_open_attempt(JobId job) {
  auto open =
      db_.query_one("SELECT EXISTS (SELECT 1 FROM attempts WHERE job_id = ?1 AND outcome IS NULL)", first_int64, job);
  if (!open) return open.error();
  return open->value_or(0) != 0;
}

Result<void> JobStore::abort_open_attempt(JobId job, std::string_view error, WallTime now) {
  return db_.exec(
      "UPDATE attempts SET outcome = 'aborted', finished_at = ?2, error = ?3, "
      "bytes_sent = (SELECT bytes_sent FROM jobs WHERE id = ?1) WHERE job_id = ?1 AND outcome IS NULL",
      job, timestamp(now), error);
}

// Change detection for the daemon.

Result<bool> JobStore::external_change_seen() {
  // PRAGMA data_version changes exactly when another connection commits to the file, and
  // reading it costs no disk I/O, so the daemon can poll it a few times a second and notice a
  // CLI request within 1 s. (Alternatives: inotify on the -wal file also fires for the
  // daemon's own writes and for checkpoints; an update hook sees only this connection.)
  auto version = db_.query_int64("PRAGMA data_version");
  if (!version) return version.error();
  const bool changed = data_version_.has_value() && *data_version_ != *version;
  data_version_ = *version;
  return changed;
}

Result<std::vector<JobId>> JobStore::cancelled_among(std::span<const JobId> in_flight) {
  std::vector<JobId> cancelled;
  for (const JobId id : in_flight) {
    auto is_cancelled = db_.query_one("SELECT state = 'cancelled' FROM jobs WHERE id = ?1", first_int64, id);
    if (!is_cancelled) return is_cancelled.error();
    if (is_cancelled->value_or(0) != 0) cancelled.push_back(id);
  }
  return cancelled;
}

}  // namespace modeldrop::store
