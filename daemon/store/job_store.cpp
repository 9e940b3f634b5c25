#include "store/job_store.hpp"

#include "store/database_file.hpp"
#include "store/migrations.hpp"

#include <fcntl.h>
#include <fnmatch.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <string>

namespace modeldrop::store {

// ---- Names of states and outcomes, as stored

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

namespace {

// ---- Row mapping

// Every `jobs` column, in the order read_job expects.
constexpr std::string_view kJobColumns =
    "id, path, current_path, watch_dir, project_id, size_bytes, sha256, state, attempts, next_attempt_at, "
    "bytes_sent, file_id, file_status, file_status_details, http_status, last_error, created_at, updated_at, "
    "finished_at, device, inode, mtime_ns, budget_started_at, progress_at_ms, upload_rate_bytes_per_s, "
    "duplicate_of, ready_marker_path, validate, token_file";

// How many columns kJobColumns names: the first index after them.
constexpr int kJobColumnCount = static_cast<int>(std::count(kJobColumns.begin(), kJobColumns.end(), ',')) + 1;

// "SELECT <job columns> FROM jobs <rest>", built once per call site.
std::string select_jobs(std::string_view rest) {
  return "SELECT " + std::string(kJobColumns) + " FROM jobs " + std::string(rest);
}

// "<statement> RETURNING <job columns>".
std::string returning_job(std::string_view statement) {
  return std::string(statement) + " RETURNING " + std::string(kJobColumns);
}

std::string timestamp(WallTime t) {
  return format_timestamp(t);
}

std::optional<std::string> timestamp(const std::optional<WallTime>& t) {
  if (!t) return std::nullopt;
  return format_timestamp(*t);
}

std::int64_t unix_ms(WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// Timestamps are written only by modeldrop; an outside edit that breaks one reads as the epoch
// rather than failing every listing.
WallTime read_time(const Statement& row, int column) {
  return parse_timestamp(row.text(column)).value_or(WallTime{});
}

std::optional<WallTime> read_optional_time(const Statement& row, int column) {
  if (row.is_null(column)) return std::nullopt;
  return read_time(row, column);
}

std::optional<std::filesystem::path> read_optional_path(const Statement& row, int column) {
  auto text = row.optional_text(column);
  if (!text) return std::nullopt;
  return std::filesystem::path(std::move(*text));
}

std::optional<int> read_optional_int(const Statement& row, int column) {
  auto value = row.optional_int64(column);
  if (!value) return std::nullopt;
  return static_cast<int>(*value);
}

std::uint64_t read_uint64(const Statement& row, int column) {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(0, row.int64(column)));
}

Job read_job(const Statement& row) {
  Job job;
  job.id = row.int64(0);
  job.path = row.text(1);
  job.current_path = read_optional_path(row, 2);
  job.watch_dir = read_optional_path(row, 3);
  job.project_id = row.optional_text(4);
  job.size_bytes = read_uint64(row, 5);
  job.sha256 = row.optional_text(6);
  job.state = parse_job_state(row.text(7)).value_or(JobState::failed);
  job.attempts = row.int64(8);
  job.next_attempt_at = read_optional_time(row, 9);
  job.bytes_sent = read_uint64(row, 10);
  job.file_id = row.optional_text(11);
  job.file_status = row.optional_text(12);
  job.file_status_details = row.optional_text(13);
  job.http_status = read_optional_int(row, 14);
  job.last_error = row.optional_text(15);
  job.created_at = read_time(row, 16);
  job.updated_at = read_time(row, 17);
  job.finished_at = read_optional_time(row, 18);
  job.file.device = static_cast<std::uint64_t>(row.int64(19));
  job.file.inode = static_cast<std::uint64_t>(row.int64(20));
  job.file.size_bytes = job.size_bytes;
  job.file.mtime_ns = row.int64(21);
  job.budget_started_at = read_time(row, 22);
  if (auto ms = row.optional_int64(23)) job.progress_at = WallTime{std::chrono::milliseconds(*ms)};
  job.upload_rate_bytes_per_s = row.optional_real(24);
  job.duplicate_of = row.optional_int64(25);
  job.ready_marker_path = read_optional_path(row, 26);
  job.validate = preflight::parse_archive_validation(row.optional_text(27).value_or("archive"))
                     .value_or(preflight::ArchiveValidation::archive);
  job.token_file = row.optional_text(28);
  return job;
}

constexpr std::string_view kAttemptColumns =
    "job_id, attempt, started_at, finished_at, http_status, bytes_sent, outcome, error";

Attempt read_attempt(const Statement& row) {
  Attempt attempt;
  attempt.job_id = row.int64(0);
  attempt.attempt = static_cast<int>(row.int64(1));
  attempt.started_at = read_time(row, 2);
  attempt.finished_at = read_optional_time(row, 3);
  attempt.http_status = read_optional_int(row, 4);
  attempt.bytes_sent = read_uint64(row, 5);
  if (auto outcome = row.optional_text(6)) attempt.outcome = parse_attempt_outcome(*outcome);
  attempt.error = row.optional_text(7);
  return attempt;
}

// Runs a statement expected to return at most one job.
Result<std::optional<Job>> one_job(Statement& statement) {
  auto row = statement.step();
  if (!row) return row.error();
  if (!*row) return std::optional<Job>{};
  auto job = read_job(statement);
  // Finish the statement so that a RETURNING write is complete before the caller commits.
  if (auto rest = statement.run(); !rest) return rest.error();
  return std::optional<Job>(std::move(job));
}

Error unknown_job(JobId job) {
  return make_error("job " + std::to_string(job) + ": no such job", StoreErrc::unknown_job);
}

Error illegal(const Job& job, std::string_view allowed) {
  return make_error(
      "job " + std::to_string(job.id) + " is " + std::string(to_string(job.state)) + "; " + std::string(allowed),
      StoreErrc::illegal_transition);
}

Error invalid(std::string message) {
  return make_error(std::move(message), StoreErrc::invalid_request);
}

bool is_final(JobState state) {
  return state == JobState::succeeded || state == JobState::failed || state == JobState::cancelled;
}

bool is_sha256_hex(std::string_view text) {
  return text.size() == 64 &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}

constexpr std::string_view kCancelledByRequest = "cancelled by request (modeldrop cancel)";
constexpr std::string_view kSourceRemoved = "source removed";

}  // namespace

// ---- Opening

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

// ---- Helpers

Result<std::optional<Job>> JobStore::load_job(JobId job) {
  static const std::string sql = select_jobs("WHERE id = ?1");
  auto statement = db_.prepare(sql);
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  (*statement)->bind(1, job);
  return one_job(**statement);
}

Result<Job> JobStore::require_job(JobId job) {
  auto found = load_job(job);
  if (!found) return found.error();
  if (!*found) return unknown_job(job);
  return std::move(**found);
}

Result<bool> JobStore::has_open_attempt(JobId job) {
  auto statement = db_.prepare("SELECT EXISTS (SELECT 1 FROM attempts WHERE job_id = ?1 AND outcome IS NULL)");
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  (*statement)->bind(1, job);
  auto row = (*statement)->step();
  if (!row) return row.error();
  return *row && (*statement)->int64(0) != 0;
}

Result<void> JobStore::abort_open_attempt(JobId job, std::string_view error, WallTime now) {
  auto statement = db_.prepare(
      "UPDATE attempts SET outcome = 'aborted', finished_at = ?2, error = ?3, "
      "bytes_sent = (SELECT bytes_sent FROM jobs WHERE id = ?1) WHERE job_id = ?1 AND outcome IS NULL");
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  (*statement)->bind_all(job, timestamp(now), error);
  return (*statement)->run();
}

// ---- Daemon registration

Result<void> JobStore::register_daemon(int pid, std::string_view version, WallTime now, OtherDaemons others) {
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  {
    auto current = db_.prepare("SELECT pid, version FROM daemon WHERE id = 1");
    if (!current) return current.error();
    StatementReset reset(**current);
    auto row = (*current)->step();
    if (!row) return row.error();
    if (*row) {
      const auto other = static_cast<int>((*current)->int64(0));
      if (other != pid && others == OtherDaemons::check_pid && is_process_alive(other)) {
        return make_error("another modeldropd (pid " + std::to_string(other) + ", version " + (*current)->text(1) +
                              ") is already running on " + db_.file().string(),
                          StoreErrc::daemon_already_running);
      }
    }
  }
  auto insert = db_.prepare(
      "INSERT INTO daemon (id, pid, version, started_at, heartbeat_at, held_reason, upload_rate_bytes_per_s) "
      "VALUES (1, ?1, ?2, ?3, ?3, NULL, 0) ON CONFLICT (id) DO UPDATE SET pid = excluded.pid, "
      "version = excluded.version, started_at = excluded.started_at, heartbeat_at = excluded.heartbeat_at, "
      "held_reason = NULL, upload_rate_bytes_per_s = 0");
  if (!insert) return insert.error();
  {
    StatementReset reset(**insert);
    (*insert)->bind_all(pid, version, timestamp(now));
    if (auto done = (*insert)->run(); !done) return done.error();
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  registered_pid_ = pid;
  return {};
}

namespace {

Error not_registered(const std::filesystem::path& file) {
  return make_error("this process is not the daemon registered in " + file.string() +
                        " (another modeldropd replaced it, or register_daemon was not called)",
                    StoreErrc::daemon_not_registered);
}

}  // namespace

Result<void> JobStore::heartbeat(WallTime now, double upload_rate_bytes_per_s) {
  if (!registered_pid_) return not_registered(db_.file());
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  auto statement =
      db_.prepare("UPDATE daemon SET heartbeat_at = ?1, upload_rate_bytes_per_s = ?2 WHERE id = 1 AND pid = ?3");
  if (!statement) return statement.error();
  {
    StatementReset reset(**statement);
    (*statement)->bind_all(timestamp(now), std::max(0.0, upload_rate_bytes_per_s), *registered_pid_);
    if (auto done = (*statement)->run(); !done) return done.error();
  }
  if (db_.changes() == 0) return not_registered(db_.file());
  return write->commit();
}

Result<void> JobStore::set_held_reason(const std::optional<std::string>& reason) {
  if (!registered_pid_) return not_registered(db_.file());
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  auto statement = db_.prepare("UPDATE daemon SET held_reason = ?1 WHERE id = 1 AND pid = ?2");
  if (!statement) return statement.error();
  {
    StatementReset reset(**statement);
    (*statement)->bind_all(reason, *registered_pid_);
    if (auto done = (*statement)->run(); !done) return done.error();
  }
  if (db_.changes() == 0) return not_registered(db_.file());
  return write->commit();
}

Result<void> JobStore::unregister_daemon() {
  if (!registered_pid_) return {};
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  auto statement = db_.prepare("DELETE FROM daemon WHERE id = 1 AND pid = ?1");
  if (!statement) return statement.error();
  {
    StatementReset reset(**statement);
    (*statement)->bind(1, *registered_pid_);
    if (auto done = (*statement)->run(); !done) return done.error();
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  registered_pid_.reset();
  return {};
}

Result<std::optional<DaemonRecord>> JobStore::daemon_record() {
  auto statement = db_.prepare(
      "SELECT pid, version, started_at, heartbeat_at, held_reason, upload_rate_bytes_per_s FROM daemon WHERE id = 1");
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  auto row = (*statement)->step();
  if (!row) return row.error();
  if (!*row) return std::optional<DaemonRecord>{};
  const auto& s = **statement;
  return std::optional<DaemonRecord>(DaemonRecord{static_cast<int>(s.int64(0)), s.text(1), read_time(s, 2),
                                                  read_time(s, 3), s.optional_text(4), s.real(5)});
}

// ---- Pause

Result<bool> JobStore::pause(WallTime now) {
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  auto statement = db_.prepare("INSERT INTO settings (key, value) VALUES ('paused', ?1) ON CONFLICT (key) DO NOTHING");
  if (!statement) return statement.error();
  {
    StatementReset reset(**statement);
    (*statement)->bind(1, timestamp(now));
    if (auto done = (*statement)->run(); !done) return done.error();
  }
  const bool changed = db_.changes() > 0;
  if (auto committed = write->commit(); !committed) return committed.error();
  return changed;
}

Result<bool> JobStore::resume() {
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  auto statement = db_.prepare("DELETE FROM settings WHERE key = 'paused'");
  if (!statement) return statement.error();
  {
    StatementReset reset(**statement);
    if (auto done = (*statement)->run(); !done) return done.error();
  }
  const bool changed = db_.changes() > 0;
  if (auto committed = write->commit(); !committed) return committed.error();
  return changed;
}

Result<bool> JobStore::is_paused() {
  auto paused = db_.query_int64("SELECT EXISTS (SELECT 1 FROM settings WHERE key = 'paused')");
  if (!paused) return paused.error();
  return *paused != 0;
}

Result<std::optional<WallTime>> JobStore::paused_since() {
  auto statement = db_.prepare("SELECT value FROM settings WHERE key = 'paused'");
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  auto row = (*statement)->step();
  if (!row) return row.error();
  if (!*row) return std::optional<WallTime>{};
  return std::optional<WallTime>(read_time(**statement, 0));
}

// ---- Queueing

namespace {

// What the queued (or re-queued) file gets from where it was queued (its watch, or `modeldrop
// add`): the archive check and the token file.
Result<void> record_queue_settings(Connection& db, JobId job, const NewJob& settings) {
  auto update = db.prepare("UPDATE jobs SET validate = ?2, token_file = ?3 WHERE id = ?1");
  if (!update) return update.error();
  StatementReset reset(**update);
  (*update)->bind_all(job, std::string(preflight::to_string(settings.validate)), settings.token_file);
  return (*update)->run();
}

}  // namespace

Result<EnqueueResult> JobStore::enqueue(const NewJob& job, WallTime now) {
  if (!job.path.is_absolute()) return invalid("cannot queue " + job.path.string() + ": the path must be absolute");
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  const auto& file = job.file;

  // This very file if it was ever queued (never twice, whatever became of its job), else the
  // newest job for the path: unless it succeeded, the changed file is still its business.
  struct Latest {
    JobId id;
    JobState state;
    bool attempt_running;  // an upload in flight (or a cancelled one the daemon has not closed yet)
  };
  std::optional<Latest> latest;
  {
    auto lookup = db_.prepare(
        "SELECT id, state, inode = ?2 AND size_bytes = ?3 AND mtime_ns = ?4 AS same_file, "
        "EXISTS (SELECT 1 FROM attempts WHERE job_id = jobs.id AND outcome IS NULL) FROM jobs "
        "WHERE path = ?1 ORDER BY same_file DESC, id DESC LIMIT 1");
    if (!lookup) return lookup.error();
    StatementReset reset(**lookup);
    (*lookup)->bind_all(job.path.string(), file.inode, file.size_bytes, file.mtime_ns);
    auto row = (*lookup)->step();
    if (!row) return row.error();
    if (*row) {
      const JobId id = (*lookup)->int64(0);
      const auto state = parse_job_state((*lookup)->text(1)).value_or(JobState::failed);
      if ((*lookup)->int64(2) != 0) return EnqueueResult{id, EnqueueEffect::unchanged, state};
      latest = Latest{id, state, (*lookup)->int64(3) != 0};
    }
  }

  EnqueueResult result;
  if (latest && (latest->state == JobState::uploading || latest->attempt_running)) {
    // The upload in flight sent the old file; its own check after sending sees the change
    // (and finish_attempt refuses a success for a file the job no longer names). The state is
    // left to finish_attempt, which must find the attempt's job as it left it.
    auto update = db_.prepare(
        "UPDATE jobs SET device = ?2, inode = ?3, size_bytes = ?4, mtime_ns = ?5, sha256 = NULL, "
        "watch_dir = ?6, project_id = ?7, bytes_sent = min(bytes_sent, ?4), updated_at = ?8 WHERE id = ?1");
    if (!update) return update.error();
    StatementReset reset(**update);
    (*update)->bind_all(latest->id, file.device, file.inode, file.size_bytes, file.mtime_ns,
                        job.watch_dir ? std::optional<std::string>(job.watch_dir->string()) : std::nullopt,
                        job.project_id, timestamp(now));
    if (auto done = (*update)->run(); !done) return done.error();
    result = {latest->id, EnqueueEffect::updated, latest->state};
  } else if (latest && latest->state == JobState::pending) {
    auto update = db_.prepare(
        "UPDATE jobs SET device = ?2, inode = ?3, size_bytes = ?4, mtime_ns = ?5, sha256 = NULL, "
        "watch_dir = ?6, project_id = ?7, current_path = path, next_attempt_at = ?8, bytes_sent = 0, "
        "updated_at = ?9 WHERE id = ?1");
    if (!update) return update.error();
    StatementReset reset(**update);
    (*update)->bind_all(latest->id, file.device, file.inode, file.size_bytes, file.mtime_ns,
                        job.watch_dir ? std::optional<std::string>(job.watch_dir->string()) : std::nullopt,
                        job.project_id, timestamp(job.next_attempt_at), timestamp(now));
    if (auto done = (*update)->run(); !done) return done.error();
    result = {latest->id, EnqueueEffect::updated, JobState::pending};
  } else if (latest && latest->state != JobState::succeeded) {
    // Failed or cancelled, and the file has changed: a new file to send, with a fresh budget.
    auto update = db_.prepare(
        "UPDATE jobs SET device = ?2, inode = ?3, size_bytes = ?4, mtime_ns = ?5, sha256 = NULL, "
        "watch_dir = ?6, project_id = ?7, current_path = path, next_attempt_at = ?8, bytes_sent = 0, "
        "updated_at = ?9, state = 'pending', attempts = 0, budget_started_at = ?9, finished_at = NULL, "
        "last_error = NULL, file_id = NULL, file_status = NULL, file_status_details = NULL, "
        "duplicate_of = NULL WHERE id = ?1");
    if (!update) return update.error();
    StatementReset reset(**update);
    (*update)->bind_all(latest->id, file.device, file.inode, file.size_bytes, file.mtime_ns,
                        job.watch_dir ? std::optional<std::string>(job.watch_dir->string()) : std::nullopt,
                        job.project_id, timestamp(job.next_attempt_at), timestamp(now));
    if (auto done = (*update)->run(); !done) return done.error();
    result = {latest->id, EnqueueEffect::updated, JobState::pending};
  } else {
    auto insert = db_.prepare(
        "INSERT INTO jobs (path, current_path, watch_dir, project_id, size_bytes, state, next_attempt_at, "
        "created_at, updated_at, device, inode, mtime_ns, budget_started_at) "
        "VALUES (?1, ?1, ?2, ?3, ?4, 'pending', ?5, ?6, ?6, ?7, ?8, ?9, ?6) RETURNING id");
    if (!insert) return insert.error();
    StatementReset reset(**insert);
    (*insert)->bind_all(job.path.string(),
                        job.watch_dir ? std::optional<std::string>(job.watch_dir->string()) : std::nullopt,
                        job.project_id, file.size_bytes, timestamp(job.next_attempt_at), timestamp(now), file.device,
                        file.inode, file.mtime_ns);
    auto row = (*insert)->step();
    if (!row) return row.error();
    result = {(*insert)->int64(0), EnqueueEffect::inserted, JobState::pending};
    if (auto done = (*insert)->run(); !done) return done.error();
  }
  if (auto recorded = record_queue_settings(db_, result.job, job); !recorded) return recorded.error();
  if (auto committed = write->commit(); !committed) return committed.error();
  return result;
}

// ---- The upload cycle

namespace {

// " AND <alias>token_file IS NOT ?2 AND ...": the jobs of a held token wait (IS NOT, so a held
// global token, NULL, skips the jobs without a token_file). Bound by bind_held.
std::string skip_held(std::string_view alias, std::size_t held) {
  std::string clause;
  for (std::size_t i = 0; i < held; ++i) {
    clause += " AND " + std::string(alias) + "token_file IS NOT ?" + std::to_string(i + 2);
  }
  return clause;
}

void bind_held(Statement& statement, HeldTokens held) {
  for (std::size_t i = 0; i < held.size(); ++i) statement.bind(static_cast<int>(i + 2), held[i]);
}

// One statement: finding and taking the job cannot be split by another writer. The subquery
// walks index jobs_state (state, id, next_attempt_at) oldest first and stops at the first due job.
// With dedupe, a job may only be claimed once its content hash is known (docs/http.md).
std::string claim_next_sql(bool require_sha256, std::size_t held = 0) {
  return returning_job(
      "UPDATE jobs SET state = 'uploading', updated_at = ?1, bytes_sent = 0, progress_at_ms = NULL, "
      "upload_rate_bytes_per_s = NULL "
      "WHERE id = (SELECT id FROM jobs WHERE state = 'pending' AND (next_attempt_at IS NULL OR next_attempt_at <= "
      "?1)" +
      std::string(require_sha256 ? " AND sha256 IS NOT NULL" : "") + skip_held("", held) +
      " ORDER BY id LIMIT 1) AND NOT EXISTS (SELECT 1 FROM settings WHERE key = 'paused')");
}

// Runs one claim statement (?1 = now, then the held tokens) in its own write; the job it took, if any.
Result<std::optional<Job>> claim_one(Connection& db, const std::string& sql, WallTime now, HeldTokens held) {
  auto write = AtomicWrite::begin(db, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  auto statement = db.prepare(sql);
  if (!statement) return statement.error();
  std::optional<Job> claimed;
  {
    StatementReset reset(**statement);
    (*statement)->bind(1, timestamp(now));
    bind_held(**statement, held);
    auto job = one_job(**statement);
    if (!job) return job.error();
    claimed = std::move(*job);
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return claimed;
}

}  // namespace

Result<std::optional<Job>> JobStore::claim_next(WallTime now, bool require_sha256, HeldTokens held) {
  return claim_one(db_, claim_next_sql(require_sha256, held.size()), now, held);
}

Result<int> JobStore::begin_attempt(JobId job_id, WallTime now) {
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  std::optional<int> number;
  {
    // Only for an uploading job without an open attempt; anything else inserts nothing.
    auto insert = db_.prepare(
        "INSERT INTO attempts (job_id, attempt, started_at, sent_identity) "
        "SELECT ?1, coalesce((SELECT max(attempt) FROM attempts WHERE job_id = ?1), 0) + 1, ?2, "
        "(SELECT device || ':' || inode || ':' || size_bytes || ':' || mtime_ns FROM jobs WHERE id = ?1) "
        "WHERE EXISTS (SELECT 1 FROM jobs WHERE id = ?1 AND state = 'uploading') "
        "AND NOT EXISTS (SELECT 1 FROM attempts WHERE job_id = ?1 AND outcome IS NULL) RETURNING attempt");
    if (!insert) return insert.error();
    StatementReset reset(**insert);
    (*insert)->bind_all(job_id, timestamp(now));
    auto row = (*insert)->step();
    if (!row) return row.error();
    if (*row) number = static_cast<int>((*insert)->int64(0));
    if (auto done = (*insert)->run(); !done) return done.error();
  }
  if (!number) {
    auto job = require_job(job_id);
    if (!job) return job.error();
    if (job->state != JobState::uploading) return illegal(*job, "only an uploading job can start an attempt");
    return make_error("job " + std::to_string(job_id) + " already has an attempt running",
                      StoreErrc::illegal_transition);
  }
  {
    auto update = db_.prepare(
        "UPDATE jobs SET bytes_sent = 0, progress_at_ms = ?2, upload_rate_bytes_per_s = NULL, updated_at = ?3 "
        "WHERE id = ?1");
    if (!update) return update.error();
    StatementReset reset(**update);
    (*update)->bind_all(job_id, unix_ms(now), timestamp(now));
    if (auto done = (*update)->run(); !done) return done.error();
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return *number;
}

Result<void> JobStore::record_progress(JobId job_id, std::uint64_t bytes_sent, WallTime now) {
  // The rate is smoothed over a few calls (new sample weighs 0.3); the right-hand sides all see
  // the row as it was before this UPDATE.
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  auto statement = db_.prepare(
      "UPDATE jobs SET upload_rate_bytes_per_s = CASE "
      "WHEN progress_at_ms IS NULL OR ?3 <= progress_at_ms OR ?2 < bytes_sent THEN upload_rate_bytes_per_s "
      "WHEN upload_rate_bytes_per_s IS NULL THEN (?2 - bytes_sent) * 1000.0 / (?3 - progress_at_ms) "
      "ELSE 0.7 * upload_rate_bytes_per_s + 0.3 * ((?2 - bytes_sent) * 1000.0 / (?3 - progress_at_ms)) END, "
      "bytes_sent = min(?2, size_bytes), progress_at_ms = ?3, updated_at = ?4 "
      "WHERE id = ?1 AND state = 'uploading'");
  if (!statement) return statement.error();
  {
    StatementReset reset(**statement);
    (*statement)->bind_all(job_id, bytes_sent, unix_ms(now), timestamp(now));
    if (auto done = (*statement)->run(); !done) return done.error();
  }
  if (db_.changes() == 0) {
    auto job = require_job(job_id);
    if (!job) return job.error();
    // Cancelled by the CLI while the bytes were moving: the daemon learns of it separately.
    if (job->state != JobState::cancelled) return illegal(*job, "only an uploading job makes progress");
  }
  return write->commit();
}

Result<Job> JobStore::finish_attempt(const AttemptReport& report, WallTime now) {
  const bool success_outcome =
      report.outcome == AttemptOutcome::succeeded || report.outcome == AttemptOutcome::reconciled;
  const auto job_text = "job " + std::to_string(report.job);
  if (report.next_state == JobState::uploading || report.next_state == JobState::cancelled) {
    return invalid(job_text + ": an attempt cannot leave its job " + std::string(to_string(report.next_state)));
  }
  if (success_outcome != (report.next_state == JobState::succeeded)) {
    return invalid(job_text + ": outcome " + std::string(to_string(report.outcome)) + " cannot make the job " +
                   std::string(to_string(report.next_state)));
  }
  if (success_outcome && (!report.file_id || report.file_id->empty())) {
    return invalid(job_text + ": a successful attempt needs the file id");
  }
  if ((report.outcome == AttemptOutcome::held || report.outcome == AttemptOutcome::aborted) &&
      report.counts_toward_attempts) {
    return invalid(job_text + ": held and aborted attempts do not count toward attempts");
  }

  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  // Just what the decision needs: state, size, the file's identity and the open attempt.
  JobState state = JobState::pending;
  FileIdentity file;
  std::optional<int> open_attempt;
  {
    auto current = db_.prepare(
        "SELECT state, size_bytes, device, inode, mtime_ns, "
        "(SELECT attempt FROM attempts WHERE job_id = jobs.id AND outcome IS NULL) FROM jobs WHERE id = ?1");
    if (!current) return current.error();
    StatementReset reset(**current);
    (*current)->bind(1, report.job);
    auto row = (*current)->step();
    if (!row) return row.error();
    if (!*row) return unknown_job(report.job);
    const auto& r = **current;
    state = parse_job_state(r.text(0)).value_or(JobState::failed);
    file = {static_cast<std::uint64_t>(r.int64(2)), static_cast<std::uint64_t>(r.int64(3)), read_uint64(r, 1),
            r.int64(4)};
    if (!r.is_null(5)) open_attempt = static_cast<int>(r.int64(5));
  }
  const bool cancelled_meanwhile = state == JobState::cancelled && open_attempt.has_value();
  if (!cancelled_meanwhile) {
    if (state != JobState::uploading) {
      return make_error(
          job_text + " is " + std::string(to_string(state)) + "; only an uploading job can finish an attempt",
          StoreErrc::illegal_transition);
    }
    if (!open_attempt) {
      return make_error(job_text + " has no attempt running", StoreErrc::illegal_transition);
    }
  }

  AttemptReport effective = report;
  effective.bytes_sent = std::min(report.bytes_sent, file.size_bytes);
  if (cancelled_meanwhile) {
    // `modeldrop cancel` won: the job stays cancelled whatever the server said.
    std::string error = "cancelled during the attempt";
    if (success_outcome) error += "; the server had accepted the upload as " + *report.file_id;
    if (report.error) error += "; " + *report.error;
    effective.outcome = AttemptOutcome::aborted;
    effective.error = error;
  } else if (success_outcome && report.sent_file && *report.sent_file != file) {
    // The file changed while it was sent (docs/http.md): that success is not accepted.
    effective.outcome = AttemptOutcome::aborted;
    effective.error = "the file changed while it was sent";
    effective.next_state = JobState::pending;
    effective.counts_toward_attempts = false;
    effective.file_id.reset();
    effective.file_status.reset();
    effective.file_status_details.reset();
    effective.last_error = "the file changed while it was sent";
  }

  {
    auto close = db_.prepare(
        "UPDATE attempts SET finished_at = ?3, http_status = ?4, bytes_sent = ?5, outcome = ?6, error = ?7, "
        "in_doubt = ?8 WHERE job_id = ?1 AND attempt = ?2");
    if (!close) return close.error();
    StatementReset reset(**close);
    (*close)->bind_all(report.job, *open_attempt, timestamp(now), effective.http_status, effective.bytes_sent,
                       to_string(effective.outcome), effective.error, effective.in_doubt ? 1 : 0);
    if (auto done = (*close)->run(); !done) return done.error();
  }

  std::optional<Job> after;
  if (cancelled_meanwhile) {
    static const std::string sql = returning_job(
        "UPDATE jobs SET bytes_sent = ?2, http_status = ?3, updated_at = ?4, progress_at_ms = NULL, "
        "upload_rate_bytes_per_s = NULL WHERE id = ?1");
    auto update = db_.prepare(sql);
    if (!update) return update.error();
    StatementReset reset(**update);
    (*update)->bind_all(report.job, effective.bytes_sent, effective.http_status, timestamp(now));
    auto updated = one_job(**update);
    if (!updated) return updated.error();
    after = std::move(*updated);
  } else {
    const bool succeeded = effective.next_state == JobState::succeeded;
    static const std::string sql = returning_job(
        "UPDATE jobs SET state = ?2, attempts = attempts + ?3, next_attempt_at = ?4, bytes_sent = ?5, "
        "http_status = ?6, file_id = coalesce(?7, file_id), file_status = coalesce(?8, file_status), "
        "file_status_details = coalesce(?9, file_status_details), "
        "last_error = CASE WHEN ?10 THEN NULL ELSE coalesce(?11, last_error) END, "
        "updated_at = ?12, finished_at = ?13, progress_at_ms = NULL, upload_rate_bytes_per_s = NULL "
        "WHERE id = ?1");
    auto update = db_.prepare(sql);
    if (!update) return update.error();
    StatementReset reset(**update);
    (*update)->bind_all(report.job, to_string(effective.next_state), effective.counts_toward_attempts ? 1 : 0,
                        effective.next_state == JobState::pending ? timestamp(effective.next_attempt_at) : std::nullopt,
                        effective.bytes_sent, effective.http_status, effective.file_id, effective.file_status,
                        effective.file_status_details, succeeded ? 1 : 0, effective.last_error, timestamp(now),
                        is_final(effective.next_state) ? std::optional<std::string>(timestamp(now)) : std::nullopt);
    auto updated = one_job(**update);
    if (!updated) return updated.error();
    after = std::move(*updated);
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return std::move(*after);
}

Result<Job> JobStore::release_claim(JobId job_id, std::optional<WallTime> next_attempt_at, WallTime now) {
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  auto job = require_job(job_id);
  if (!job) return job.error();
  if (job->state != JobState::uploading && job->state != JobState::cancelled) {
    return illegal(*job, "only an uploading job can be released");
  }
  auto running = has_open_attempt(job_id);
  if (!running) return running.error();
  if (*running) {
    return make_error("job " + std::to_string(job_id) + " has an attempt running; finish_attempt ends it",
                      StoreErrc::illegal_transition);
  }
  if (job->state == JobState::cancelled) return std::move(*job);  // cancelled meanwhile: nothing to give back
  static const std::string sql = returning_job(
      "UPDATE jobs SET state = 'pending', next_attempt_at = ?2, bytes_sent = 0, updated_at = ?3, "
      "progress_at_ms = NULL, upload_rate_bytes_per_s = NULL WHERE id = ?1");
  auto update = db_.prepare(sql);
  if (!update) return update.error();
  std::optional<Job> after;
  {
    StatementReset reset(**update);
    (*update)->bind_all(job_id, timestamp(next_attempt_at), timestamp(now));
    auto updated = one_job(**update);
    if (!updated) return updated.error();
    after = std::move(*updated);
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return std::move(*after);
}

Result<RecoveryReport> JobStore::recover_after_crash(WallTime now) {
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  RecoveryReport report;
  {
    // The server may have stored what such an attempt sent: it is in doubt, and the job's next
    // attempt looks for that copy before sending again.
    auto attempts = db_.prepare(
        "UPDATE attempts SET outcome = 'aborted', finished_at = ?1, in_doubt = 1, "
        "error = coalesce(error, 'the daemon stopped during the attempt'), "
        "bytes_sent = max(bytes_sent, (SELECT bytes_sent FROM jobs WHERE jobs.id = attempts.job_id)) "
        "WHERE outcome IS NULL");
    if (!attempts) return attempts.error();
    StatementReset reset(**attempts);
    (*attempts)->bind(1, timestamp(now));
    if (auto done = (*attempts)->run(); !done) return done.error();
    report.attempts_aborted = db_.changes();
  }
  {
    auto jobs = db_.prepare(
        "UPDATE jobs SET state = 'pending', updated_at = ?1, progress_at_ms = NULL, upload_rate_bytes_per_s = NULL "
        "WHERE state = 'uploading'");
    if (!jobs) return jobs.error();
    StatementReset reset(**jobs);
    (*jobs)->bind(1, timestamp(now));
    if (auto done = (*jobs)->run(); !done) return done.error();
    report.jobs_requeued = db_.changes();
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return report;
}

// ---- Source file events

namespace {

// pending/uploading -> a final state, closing an open attempt as aborted.
constexpr std::string_view kEndJobSql =
    "UPDATE jobs SET state = ?2, last_error = ?3, finished_at = ?4, updated_at = ?4, next_attempt_at = NULL, "
    "progress_at_ms = NULL, upload_rate_bytes_per_s = NULL, "
    "current_path = CASE WHEN ?5 THEN NULL ELSE current_path END WHERE id = ?1";

}  // namespace

Result<Job> JobStore::mark_source_removed(JobId job_id, WallTime now) {
  return end_job(job_id, JobState::cancelled, kSourceRemoved, true, now);
}

Result<Job> JobStore::fail(JobId job_id, std::string_view reason, WallTime now) {
  return end_job(job_id, JobState::failed, reason, false, now);
}

// A pending or uploading job ends without an upload: its open attempt is aborted with the
// same reason, and a removed source leaves no current_path.
Result<Job> JobStore::end_job(JobId job_id, JobState final_state, std::string_view reason, bool source_gone,
                              WallTime now) {
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  auto job = require_job(job_id);
  if (!job) return job.error();
  if (job->state != JobState::pending && job->state != JobState::uploading) {
    return illegal(*job, source_gone ? "only a pending or uploading job can lose its source"
                                     : "only a pending or uploading job can fail");
  }
  if (auto aborted = abort_open_attempt(job_id, reason, now); !aborted) return aborted.error();
  static const std::string sql = returning_job(kEndJobSql);
  auto update = db_.prepare(sql);
  if (!update) return update.error();
  std::optional<Job> after;
  {
    StatementReset reset(**update);
    (*update)->bind_all(job_id, to_string(final_state), reason, timestamp(now), source_gone ? 1 : 0);
    auto updated = one_job(**update);
    if (!updated) return updated.error();
    after = std::move(*updated);
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return std::move(*after);
}

namespace {

// One job's path column (current_path or ready_marker_path) set, or cleared when `path` is empty.
Result<void> set_path_column(Connection& db, std::string_view update_sql, JobId job_id,
                             const std::optional<std::filesystem::path>& path, WallTime now) {
  auto write = AtomicWrite::begin(db, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  auto statement = db.prepare(update_sql);
  if (!statement) return statement.error();
  {
    StatementReset reset(**statement);
    (*statement)->bind_all(job_id, path ? std::optional<std::string>(path->string()) : std::nullopt, timestamp(now));
    if (auto done = (*statement)->run(); !done) return done.error();
  }
  if (db.changes() == 0) return unknown_job(job_id);
  return write->commit();
}

}  // namespace

Result<void> JobStore::set_current_path(JobId job_id, const std::optional<std::filesystem::path>& path, WallTime now) {
  return set_path_column(db_, "UPDATE jobs SET current_path = ?2, updated_at = ?3 WHERE id = ?1", job_id, path, now);
}

Result<void> JobStore::set_ready_marker_path(JobId job_id, const std::optional<std::filesystem::path>& path,
                                             WallTime now) {
  return set_path_column(db_, "UPDATE jobs SET ready_marker_path = ?2, updated_at = ?3 WHERE id = ?1", job_id, path,
                         now);
}

Result<std::optional<Job>> JobStore::pending_job_for_path(const std::filesystem::path& current_path) {
  static const std::string sql = select_jobs("WHERE current_path = ?1 AND state = 'pending' ORDER BY id LIMIT 1");
  auto statement = db_.prepare(sql);
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  (*statement)->bind(1, current_path.string());
  return one_job(**statement);
}

// ---- Dedupe

Result<bool> JobStore::set_sha256(JobId job_id, std::string_view sha256_hex, const FileIdentity& hashed_file,
                                  WallTime now) {
  if (!is_sha256_hex(sha256_hex)) {
    return invalid("job " + std::to_string(job_id) + ": \"" + std::string(sha256_hex) +
                   "\" is not a lowercase hex SHA-256");
  }
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  auto statement = db_.prepare(
      "UPDATE jobs SET sha256 = ?2, updated_at = ?3 "
      "WHERE id = ?1 AND device = ?4 AND inode = ?5 AND size_bytes = ?6 AND mtime_ns = ?7");
  if (!statement) return statement.error();
  {
    StatementReset reset(**statement);
    (*statement)
        ->bind_all(job_id, sha256_hex, timestamp(now), hashed_file.device, hashed_file.inode, hashed_file.size_bytes,
                   hashed_file.mtime_ns);
    if (auto done = (*statement)->run(); !done) return done.error();
  }
  const bool stored = db_.changes() > 0;
  if (!stored) {
    // Either no such job, or the hash is of a file the job no longer names.
    if (auto job = require_job(job_id); !job) return job.error();
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return stored;
}

Result<std::optional<Job>> JobStore::find_succeeded_by_sha256(std::string_view sha256_hex,
                                                              const std::optional<std::string>& project_id,
                                                              const std::optional<std::string>& token_file) {
  // IS: a job without a project matches only another job without one (docs/http.md).
  static const std::string sql = select_jobs(
      "WHERE sha256 = ?1 AND project_id IS ?2 AND token_file IS ?3 AND state = 'succeeded' ORDER BY id LIMIT 1");
  auto statement = db_.prepare(sql);
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  (*statement)->bind_all(sha256_hex, project_id, token_file);
  return one_job(**statement);
}

Result<Job> JobStore::complete_as_duplicate(JobId job_id, JobId of_job_id, WallTime now) {
  if (job_id == of_job_id) return invalid("job " + std::to_string(job_id) + " cannot duplicate itself");
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  auto job = require_job(job_id);
  if (!job) return job.error();
  auto original = require_job(of_job_id);
  if (!original) return original.error();
  if (job->state != JobState::pending && job->state != JobState::uploading) {
    return illegal(*job, "only a pending or uploading job can be completed as a duplicate");
  }
  if (original->state != JobState::succeeded) {
    return illegal(*original, "only a succeeded job's upload can be reused");
  }
  if (!job->sha256 || job->sha256 != original->sha256 || job->project_id != original->project_id ||
      job->token_file != original->token_file) {
    return invalid("job " + std::to_string(job_id) + " is not a duplicate of job " + std::to_string(of_job_id) +
                   " (the sha256, the project or the token differs)");
  }
  const auto reason = "the same content was uploaded by job " + std::to_string(of_job_id);
  if (auto aborted = abort_open_attempt(job_id, reason, now); !aborted) return aborted.error();
  static const std::string sql = returning_job(
      "UPDATE jobs SET state = 'succeeded', file_id = ?2, file_status = ?3, file_status_details = ?4, "
      "duplicate_of = ?5, last_error = NULL, next_attempt_at = NULL, finished_at = ?6, updated_at = ?6, "
      "progress_at_ms = NULL, upload_rate_bytes_per_s = NULL WHERE id = ?1");
  auto update = db_.prepare(sql);
  if (!update) return update.error();
  std::optional<Job> after;
  {
    StatementReset reset(**update);
    (*update)->bind_all(job_id, original->file_id, original->file_status, original->file_status_details, of_job_id,
                        timestamp(now));
    auto updated = one_job(**update);
    if (!updated) return updated.error();
    after = std::move(*updated);
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return std::move(*after);
}

// ---- Requests from `modeldrop`

Result<std::vector<JobRequestResult>> JobStore::for_each_requested_job(std::span<const JobId> jobs,
                                                                       const RequestRefusal& refusal,
                                                                       const RequestChange& change) {
  auto write = AtomicWrite::begin(db_);
  if (!write) return write.error();
  std::vector<JobRequestResult> results;
  for (const JobId id : jobs) {
    JobRequestResult result{id, std::nullopt, JobState::pending};
    auto job = load_job(id);
    if (!job) return job.error();
    if (!*job) {
      result.error = unknown_job(id);
    } else {
      result.previous_state = (*job)->state;
      auto refused = refusal(**job);
      if (!refused) return refused.error();
      if (*refused) {
        result.error = std::move(**refused);
      } else if (auto changed = change(id); !changed) {
        return changed.error();
      }
    }
    results.push_back(std::move(result));
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return results;
}

Result<std::vector<JobRequestResult>> JobStore::cancel(std::span<const JobId> jobs, WallTime now) {
  const auto refusal = [](const Job& job) -> Result<std::optional<Error>> {
    if (job.state != JobState::pending && job.state != JobState::uploading) {
      return std::optional<Error>{illegal(job, "only pending or uploading jobs can be cancelled")};
    }
    return std::nullopt;
  };
  const auto change = [&](JobId id) -> Result<void> {
    // An attempt in flight stays open: the daemon aborts the upload and records it.
    auto update = db_.prepare(
        "UPDATE jobs SET state = 'cancelled', last_error = ?2, finished_at = ?3, updated_at = ?3, "
        "next_attempt_at = NULL WHERE id = ?1");
    if (!update) return update.error();
    StatementReset reset(**update);
    (*update)->bind_all(id, kCancelledByRequest, timestamp(now));
    return (*update)->run();
  };
  return for_each_requested_job(jobs, refusal, change);
}

Result<std::vector<JobRequestResult>> JobStore::retry(std::span<const JobId> jobs, WallTime now, Retry which) {
  const auto refusal = [&](const Job& job) -> Result<std::optional<Error>> {
    if (job.state == JobState::succeeded && which == Retry::unfinished) {
      return std::optional<Error>{make_error("job " + std::to_string(job.id) + " has already succeeded (" +
                                                 job.file_id.value_or("no file id") +
                                                 "); `retry --force` uploads it again",
                                             StoreErrc::illegal_transition)};
    }
    if (job.state != JobState::failed && job.state != JobState::cancelled && job.state != JobState::succeeded) {
      return std::optional<Error>{illegal(job, "only failed or cancelled jobs can be retried")};
    }
    auto running = has_open_attempt(job.id);
    // (The error is named as such: an Error also converts to the optional<Error> value.)
    if (!running) return Result<std::optional<Error>>(boost::system::in_place_error, running.error());
    if (*running) {
      // Cancelled while uploading, and the daemon has not stopped that upload yet: a retry now
      // would let the old upload finish a job that is pending again.
      return std::optional<Error>{make_error(
          "job " + std::to_string(job.id) + ": its cancelled upload is still being stopped; retry it in a moment",
          StoreErrc::illegal_transition)};
    }
    if (!job.current_path) {
      return std::optional<Error>{make_error("job " + std::to_string(job.id) + ": its file is gone (" +
                                                 job.last_error.value_or("no current path") + "); nothing to retry",
                                             StoreErrc::illegal_transition)};
    }
    return std::nullopt;
  };
  const auto change = [&](JobId id) -> Result<void> {
    auto update = db_.prepare(
        "UPDATE jobs SET state = 'pending', attempts = 0, budget_started_at = ?2, next_attempt_at = NULL, "
        "finished_at = NULL, bytes_sent = 0, last_error = NULL, updated_at = ?2, "
        "file_id = NULL, file_status = NULL, file_status_details = NULL, http_status = NULL, duplicate_of = NULL "
        "WHERE id = ?1");
    if (!update) return update.error();
    StatementReset reset(**update);
    (*update)->bind_all(id, timestamp(now));
    return (*update)->run();
  };
  return for_each_requested_job(jobs, refusal, change);
}

Result<std::vector<JobId>> JobStore::retry_failed(WallTime now) {
  auto write = AtomicWrite::begin(db_, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  std::vector<JobId> retried;
  {
    auto update = db_.prepare(
        "UPDATE jobs SET state = 'pending', attempts = 0, budget_started_at = ?1, next_attempt_at = NULL, "
        "finished_at = NULL, bytes_sent = 0, last_error = NULL, updated_at = ?1 "
        "WHERE state = 'failed' AND current_path IS NOT NULL RETURNING id");
    if (!update) return update.error();
    StatementReset reset(**update);
    (*update)->bind(1, timestamp(now));
    for (;;) {
      auto row = (*update)->step();
      if (!row) return row.error();
      if (!*row) break;
      retried.push_back((*update)->int64(0));
    }
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  std::sort(retried.begin(), retried.end());
  return retried;
}

// ---- Reading

Result<std::optional<Job>> JobStore::find_job(JobId job) {
  return load_job(job);
}

Result<std::optional<JobWithAttempts>> JobStore::job_with_attempts(JobId job_id) {
  auto snapshot = ReadSnapshot::begin(db_);
  if (!snapshot) return snapshot.error();
  auto job = load_job(job_id);
  if (!job) return job.error();
  if (!*job) return std::optional<JobWithAttempts>{};
  JobWithAttempts result{std::move(**job), {}};
  static const std::string sql =
      "SELECT " + std::string(kAttemptColumns) + " FROM attempts WHERE job_id = ?1 ORDER BY attempt";
  auto statement = db_.prepare(sql);
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  (*statement)->bind(1, job_id);
  for (;;) {
    auto row = (*statement)->step();
    if (!row) return row.error();
    if (!*row) break;
    result.attempts.push_back(read_attempt(**statement));
  }
  return std::optional<JobWithAttempts>(std::move(result));
}

Result<std::vector<Job>> JobStore::list_jobs(std::span<const JobState> states, std::size_t limit) {
  std::vector<Job> jobs;
  const auto collect = [&](Statement& statement) -> Result<void> {
    for (;;) {
      auto row = statement.step();
      if (!row) return row.error();
      if (!*row) return {};
      jobs.push_back(read_job(statement));
    }
  };
  if (states.empty()) {
    static const std::string sql = select_jobs("ORDER BY id DESC LIMIT ?1");
    auto statement = db_.prepare(sql);
    if (!statement) return statement.error();
    StatementReset reset(**statement);
    (*statement)->bind(1, limit);
    if (auto done = collect(**statement); !done) return done.error();
    return jobs;
  }
  // Newest first per state through index jobs_state, then merged: never a sort of every row
  // of a state, however many there are.
  auto snapshot = ReadSnapshot::begin(db_);
  if (!snapshot) return snapshot.error();
  static const std::string sql = select_jobs("WHERE state = ?1 ORDER BY id DESC LIMIT ?2");
  std::vector<JobState> wanted(states.begin(), states.end());
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  for (const auto state : wanted) {
    auto statement = db_.prepare(sql);
    if (!statement) return statement.error();
    StatementReset reset(**statement);
    (*statement)->bind_all(to_string(state), limit);
    if (auto done = collect(**statement); !done) return done.error();
  }
  std::sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) { return a.id > b.id; });
  if (jobs.size() > limit) jobs.resize(limit);
  return jobs;
}

namespace {

// modeldrop_name_matches(path, glob): `modeldrop jobs --name`, with fnmatch as the watcher's
// patterns use it (case-insensitive); on the file name unless the glob names directories too.
void name_matches(sqlite3_context* context, int /*argc*/, sqlite3_value** values) {
  const auto* path = reinterpret_cast<const char*>(sqlite3_value_text(values[0]));
  const auto* glob = reinterpret_cast<const char*>(sqlite3_value_text(values[1]));
  if (path == nullptr || glob == nullptr) {
    sqlite3_result_int(context, 0);
    return;
  }
  const char* subject = path;
  if (std::strchr(glob, '/') == nullptr) {
    if (const char* slash = std::strrchr(path, '/')) subject = slash + 1;
  }
  sqlite3_result_int(context, ::fnmatch(glob, subject, FNM_CASEFOLD) == 0 ? 1 : 0);
}

// The WHERE clause of a JobFilter, its values bound from ?1 on.
struct FilterClause {
  std::string sql;
  std::vector<std::string> values;
};

FilterClause filter_clause(const JobFilter& filter) {
  FilterClause clause;
  std::vector<std::string> conditions;
  if (!filter.states.empty()) {
    std::string in;
    for (const auto state : filter.states) {
      clause.values.emplace_back(to_string(state));
      in += (in.empty() ? "?" : ", ?") + std::to_string(clause.values.size());
    }
    conditions.push_back("state IN (" + in + ")");
  }
  if (filter.created_since) {
    clause.values.push_back(timestamp(*filter.created_since));
    conditions.push_back("created_at >= ?" + std::to_string(clause.values.size()));
  }
  if (filter.name_glob) {
    clause.values.push_back(*filter.name_glob);
    conditions.push_back("modeldrop_name_matches(path, ?" + std::to_string(clause.values.size()) + ")");
  }
  for (const auto& condition : conditions) clause.sql += (clause.sql.empty() ? "WHERE " : " AND ") + condition;
  return clause;
}

}  // namespace

Result<JobPage> JobStore::find_jobs(const JobFilter& filter, std::size_t limit) {
  if (filter.name_glob) {
    const int rc =
        sqlite3_create_function_v2(db_.handle(), "modeldrop_name_matches", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                   nullptr, name_matches, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return make_error(std::string("cannot filter by name: ") + sqlite3_errstr(rc));
  }
  const FilterClause clause = filter_clause(filter);
  auto snapshot = ReadSnapshot::begin(db_);
  if (!snapshot) return snapshot.error();
  JobPage page;
  {
    auto count = db_.prepare("SELECT COUNT(*) FROM jobs " + clause.sql);
    if (!count) return count.error();
    StatementReset reset(**count);
    for (std::size_t i = 0; i < clause.values.size(); ++i) (*count)->bind(static_cast<int>(i + 1), clause.values[i]);
    auto row = (*count)->step();
    if (!row) return row.error();
    page.total = (*count)->int64(0);
  }
  const int limit_index = static_cast<int>(clause.values.size() + 1);
  // Attempt numbers run 1, 2, ... per job: the highest is how many were made (a primary-key lookup).
  auto list = db_.prepare("SELECT " + std::string(kJobColumns) +
                          ", (SELECT MAX(attempt) FROM attempts WHERE attempts.job_id = jobs.id) FROM jobs " +
                          clause.sql + " ORDER BY id DESC LIMIT ?" + std::to_string(limit_index));
  if (!list) return list.error();
  StatementReset reset(**list);
  for (std::size_t i = 0; i < clause.values.size(); ++i) (*list)->bind(static_cast<int>(i + 1), clause.values[i]);
  (*list)->bind(limit_index, limit);
  for (;;) {
    auto row = (*list)->step();
    if (!row) return row.error();
    if (!*row) break;
    page.jobs.push_back(read_job(**list));
    page.attempts_made.push_back(static_cast<int>((*list)->optional_int64(kJobColumnCount).value_or(0)));
  }
  return page;
}

Result<std::vector<StateSummary>> JobStore::summary() {
  std::vector<StateSummary> summary;
  for (const auto state : kAllJobStates) summary.push_back({state, 0, 0});
  auto statement = db_.prepare("SELECT state, jobs, bytes FROM queue_summary");
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  for (;;) {
    auto row = (*statement)->step();
    if (!row) return row.error();
    if (!*row) break;
    if (auto state = parse_job_state((*statement)->text(0))) {
      auto& entry = summary[static_cast<std::size_t>(*state)];
      entry.jobs = (*statement)->int64(1);
      entry.bytes = read_uint64(**statement, 2);
    }
  }
  return summary;
}

Result<std::optional<WallTime>> JobStore::next_due_at(WallTime now, bool require_sha256, HeldTokens held) {
  const std::string pending = "FROM jobs WHERE state = 'pending'" +
                              std::string(require_sha256 ? " AND sha256 IS NOT NULL" : "") + skip_held("", held.size());
  auto statement = db_.prepare("SELECT EXISTS (SELECT 1 " + pending + " AND next_attempt_at IS NULL), " +
                               "(SELECT min(next_attempt_at) " + pending + ")");
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  bind_held(**statement, held);
  auto row = (*statement)->step();
  if (!row) return row.error();
  if (!*row) return std::optional<WallTime>{};
  if ((*statement)->int64(0) != 0) return std::optional<WallTime>(now);
  return read_optional_time(**statement, 1);
}

Result<std::vector<Job>> JobStore::pending_without_sha256(std::size_t limit) {
  static const std::string sql = select_jobs("WHERE state = 'pending' AND sha256 IS NULL ORDER BY id LIMIT ?1");
  auto statement = db_.prepare(sql);
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  (*statement)->bind(1, limit);
  std::vector<Job> jobs;
  for (;;) {
    auto row = (*statement)->step();
    if (!row) return row.error();
    if (!*row) return jobs;
    jobs.push_back(read_job(**statement));
  }
}

Result<std::vector<std::optional<std::string>>> JobStore::tokens_in_use(HeldTokens held) {
  auto statement =
      db_.prepare("SELECT EXISTS (SELECT 1 FROM jobs WHERE state IN ('pending', 'uploading') AND token_file IS ?1)");
  if (!statement) return statement.error();
  std::vector<std::optional<std::string>> in_use;
  for (const auto& token : held) {
    StatementReset reset(**statement);
    (*statement)->bind(1, token);
    auto row = (*statement)->step();
    if (!row) return row.error();
    if (*row && (*statement)->int64(0) != 0) in_use.push_back(token);
  }
  return in_use;
}

Result<std::int64_t> JobStore::set_watch_token_file(const std::filesystem::path& watch_dir,
                                                    const std::optional<std::string>& token_file, WallTime now) {
  auto statement = db_.prepare(
      "UPDATE jobs SET token_file = ?2, updated_at = ?3 WHERE watch_dir = ?1 AND state <> 'succeeded' AND "
      "token_file IS NOT ?2");
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  (*statement)->bind_all(watch_dir.string(), token_file, timestamp(now));
  if (auto done = (*statement)->run(); !done) return done.error();
  return db_.changes();
}

Result<void> JobStore::set_project_id(JobId job_id, std::string_view project_id, WallTime now) {
  auto statement = db_.prepare("UPDATE jobs SET project_id = ?2, updated_at = ?3 WHERE id = ?1 AND project_id IS NULL");
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  (*statement)->bind_all(job_id, project_id, timestamp(now));
  if (auto done = (*statement)->run(); !done) return done.error();
  return {};
}

Result<std::vector<std::string>> JobStore::explain_claim_next() {
  auto statement = db_.prepare("EXPLAIN QUERY PLAN " + claim_next_sql(false));
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  std::vector<std::string> plan;
  for (;;) {
    auto row = (*statement)->step();
    if (!row) return row.error();
    if (!*row) return plan;
    plan.push_back((*statement)->text(3));
  }
}

// ---- Change detection

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
  auto statement = db_.prepare("SELECT state = 'cancelled' FROM jobs WHERE id = ?1");
  if (!statement) return statement.error();
  for (const JobId id : in_flight) {
    StatementReset reset(**statement);
    (*statement)->bind(1, id);
    auto row = (*statement)->step();
    if (!row) return row.error();
    if (*row && (*statement)->int64(0) != 0) cancelled.push_back(id);
  }
  return cancelled;
}

// ---- Dedupe between jobs in flight

namespace {

// Whether pending job `j` may be claimed under dedupe. Without a hash: only when no other job
// of its project, token and size is pending, uploading or succeeded (nothing it could duplicate;
// its hash is then computed beside the send). With one: only when no job of its project and
// token has the same content and is succeeded (it completes from that one instead), uploading,
// pending with a lower id (it waits for that one), and no job of that size uploads with its hash
// unknown yet. Jobs of another token never hold it back (that token may be on hold).
constexpr std::string_view kClaimableUnderDedupe =
    "(j.sha256 IS NULL AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.size_bytes = j.size_bytes "
    "AND o.state IN ('pending', 'uploading', 'succeeded') AND o.id <> j.id AND o.project_id IS j.project_id "
    "AND o.token_file IS j.token_file)) "
    "OR (j.sha256 IS NOT NULL AND NOT EXISTS (SELECT 1 FROM jobs o WHERE o.size_bytes = j.size_bytes "
    "AND o.state IN ('pending', 'uploading', 'succeeded') AND o.id <> j.id AND o.project_id IS j.project_id "
    "AND o.token_file IS j.token_file "
    "AND ((o.sha256 = j.sha256 AND (o.state <> 'pending' OR o.id < j.id)) "
    "OR (o.sha256 IS NULL AND o.state = 'uploading'))))";

Result<std::vector<Job>> all_jobs(Statement& statement) {
  std::vector<Job> jobs;
  for (;;) {
    auto row = statement.step();
    if (!row) return row.error();
    if (!*row) return jobs;
    jobs.push_back(read_job(statement));
  }
}

}  // namespace

Result<std::optional<Job>> JobStore::claim_next_unique(WallTime now, HeldTokens held) {
  const std::string sql = returning_job(
      "UPDATE jobs SET state = 'uploading', updated_at = ?1, bytes_sent = 0, progress_at_ms = NULL, "
      "upload_rate_bytes_per_s = NULL "
      "WHERE id = (SELECT j.id FROM jobs j WHERE j.state = 'pending' AND (j.next_attempt_at IS NULL OR "
      "j.next_attempt_at <= ?1) AND (" +
      std::string(kClaimableUnderDedupe) + ")" + skip_held("j.", held.size()) +
      " ORDER BY j.id LIMIT 1) AND NOT EXISTS (SELECT 1 FROM settings WHERE key = 'paused')");
  return claim_one(db_, sql, now, held);
}

Result<std::optional<WallTime>> JobStore::next_due_at_unique(WallTime now, HeldTokens held) {
  const std::string pending = "FROM jobs j WHERE j.state = 'pending' AND (" + std::string(kClaimableUnderDedupe) + ")" +
                              skip_held("j.", held.size());
  auto statement = db_.prepare("SELECT EXISTS (SELECT 1 " + pending + " AND j.next_attempt_at IS NULL), " +
                               "(SELECT min(j.next_attempt_at) " + pending + ")");
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  bind_held(**statement, held);
  auto row = (*statement)->step();
  if (!row) return row.error();
  if (!*row) return std::optional<WallTime>{};
  if ((*statement)->int64(0) != 0) return std::optional<WallTime>(now);
  return read_optional_time(**statement, 1);
}

Result<std::vector<Job>> JobStore::pending_to_hash_first(std::size_t limit) {
  static const std::string sql = select_jobs(
      "j WHERE j.state = 'pending' AND j.sha256 IS NULL AND EXISTS (SELECT 1 FROM jobs o WHERE o.size_bytes = "
      "j.size_bytes AND o.state IN ('pending', 'uploading', 'succeeded') AND o.id <> j.id AND o.project_id IS "
      "j.project_id AND o.token_file IS j.token_file) ORDER BY j.id LIMIT ?1");
  auto statement = db_.prepare(sql);
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  (*statement)->bind(1, limit);
  return all_jobs(**statement);
}

Result<std::vector<Job>> JobStore::pending_duplicates_of(JobId succeeded) {
  static const std::string sql = select_jobs(
      "j WHERE j.state = 'pending' AND j.id <> ?1 AND EXISTS (SELECT 1 FROM jobs o WHERE o.id = ?1 AND "
      "o.state = 'succeeded' AND o.sha256 = j.sha256 AND o.project_id IS j.project_id AND o.token_file IS "
      "j.token_file AND o.size_bytes = j.size_bytes) ORDER BY j.id");
  auto statement = db_.prepare(sql);
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  (*statement)->bind(1, succeeded);
  return all_jobs(**statement);
}

}  // namespace modeldrop::store
