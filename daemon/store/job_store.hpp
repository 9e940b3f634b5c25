#pragma once

// The durable job queue (docs/database.md and docs/http.md): the only code that speaks SQL. Synchronous and
// single-threaded: the daemon runs it on its store thread (StoreWorker), the CLI directly.
// Every method that changes something is atomic on its own (its own transaction, or a
// savepoint inside the store worker's batch). Times come from the caller.

#include "common/error.hpp"
#include "common/timestamp.hpp"
#include "preflight/archive_validation.hpp"
#include "store/sqlite.hpp"
#include "store/store_error.hpp"

#include <array>
#include <chrono>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

namespace modeldrop::store {

using JobId = std::int64_t;

enum class JobState { pending, uploading, succeeded, failed, cancelled };
inline constexpr std::array kAllJobStates{JobState::pending, JobState::uploading, JobState::succeeded, JobState::failed,
                                          JobState::cancelled};
std::string_view to_string(JobState state);
std::optional<JobState> parse_job_state(std::string_view text);

enum class AttemptOutcome { succeeded, retry, failed, held, aborted, reconciled };
std::string_view to_string(AttemptOutcome outcome);
std::optional<AttemptOutcome> parse_attempt_outcome(std::string_view text);

// What makes a file "the same file" (docs/database.md), as stat() reports it.
struct FileIdentity {
  std::uint64_t device = 0;
  std::uint64_t inode = 0;
  std::uint64_t size_bytes = 0;
  std::int64_t mtime_ns = 0;  // st_mtim in nanoseconds since the epoch
  friend bool operator==(const FileIdentity&, const FileIdentity&) = default;
};

// The custom model a job registers once its upload succeeded, as resolved when it was queued
// (the watch's `register`, a sidecar, or `modeldrop add --register-base-model`).
struct ModelRequest {
  std::string name;
  std::string base_model;
  std::optional<std::string> description;
  friend bool operator==(const ModelRequest&, const ModelRequest&) = default;
};

// model_status while a registration is in progress; it then ends `active`, `error` or in
// another word of the API's.
inline constexpr std::string_view kModelRegistering = "registering";  // POST /v0/models not answered yet
inline constexpr std::string_view kModelValidating = "validating";    // created; polled until it is usable
// How last_error begins for a job whose sidecar could not be used (it is never retried as it is).
inline constexpr std::string_view kSidecarProblem = "sidecar: ";

// One row of `jobs`: the public columns (docs/database.md), then modeldrop's own.
struct Job {
  JobId id = 0;
  std::filesystem::path path;
  std::optional<std::filesystem::path> current_path;
  std::optional<std::filesystem::path> watch_dir;
  std::optional<std::string> project_id;
  std::uint64_t size_bytes = 0;
  std::optional<std::string> sha256;
  JobState state = JobState::pending;
  std::int64_t attempts = 0;
  std::optional<WallTime> next_attempt_at;  // none: due now
  std::uint64_t bytes_sent = 0;
  std::optional<std::string> file_id;
  std::optional<std::string> file_status;
  std::optional<std::string> file_status_details;
  std::optional<int> http_status;
  std::optional<std::string> last_error;
  WallTime created_at;
  WallTime updated_at;
  std::optional<WallTime> finished_at;

  FileIdentity file;                                       // file.size_bytes == size_bytes
  WallTime budget_started_at;                              // give_up_after counts from here: creation or the last retry
  std::optional<WallTime> progress_at;                     // last record_progress of the current attempt
  std::optional<double> upload_rate_bytes_per_s;           // smoothed, of the current attempt
  std::optional<JobId> duplicate_of;                       // dedupe: the succeeded job whose upload this one reuses
  std::optional<std::filesystem::path> ready_marker_path;  // the marker that queued it, where it is now
  preflight::ArchiveValidation validate = preflight::ArchiveValidation::archive;  // NULL (version 1 jobs): archive
  std::optional<std::filesystem::path> sidecar_path;  // the sidecar read when it was queued, where it is now

  std::optional<ModelRequest> model;               // none: the job registers no model
  std::optional<std::string> model_status;         // none until the upload succeeded (see kModelRegistering)
  std::optional<std::string> model_status_reason;  // why it is `error`, or why the last look failed
  std::optional<WallTime> model_checked_at;        // the API's last answer about the model
  std::optional<WallTime> model_started_at;        // registration began; polling gives up 24 h later
  std::optional<WallTime> model_next_check_at;     // while in progress: the next look (none: now)
  // The token file its requests use (its watch's token_file, or `modeldrop add --token-file`);
  // none: the global token. A name, never the token itself.
  std::optional<std::string> token_file;
};

// One row of `attempts`.
struct Attempt {
  JobId job_id = 0;
  int attempt = 0;  // 1, 2, ... per job
  WallTime started_at;
  std::optional<WallTime> finished_at;
  std::optional<int> http_status;
  std::uint64_t bytes_sent = 0;
  std::optional<AttemptOutcome> outcome;  // none while the attempt runs
  std::optional<std::string> error;
};

struct JobWithAttempts {
  Job job;
  std::vector<Attempt> attempts;  // oldest first
};

// A file to queue, from the watcher or `modeldrop add`.
struct NewJob {
  std::filesystem::path path;                      // absolute
  std::optional<std::filesystem::path> watch_dir;  // none for `modeldrop add`
  std::optional<std::string> project_id;           // none: the daemon sends api.project_id, if any
  FileIdentity file;
  std::optional<WallTime> next_attempt_at;                                        // none: due now
  preflight::ArchiveValidation validate = preflight::ArchiveValidation::archive;  // the watch's, or `add --validate`
  std::optional<ModelRequest> model;                                              // the model to register, if any
  std::optional<std::filesystem::path> sidecar_path;                              // the sidecar that was read
  // An existing job keeps the model (and sidecar) it was queued with: the sidecar read now is
  // broken, and the job cannot be failed for it (its upload is running).
  bool keep_registration = false;
  std::optional<std::string> token_file;  // the watch's, or `add --token-file`; none: the global token
};

enum class EnqueueEffect {
  inserted,  // a new job
  updated,   // an unfinished job for this path took the file's new identity (docs/http.md)
  unchanged  // this very file is already queued, or was (never queued twice)
};

struct EnqueueResult {
  JobId job = 0;
  EnqueueEffect effect = EnqueueEffect::inserted;
  JobState state = JobState::pending;  // the job's state afterwards
};

// The daemon's report of a finished attempt; finish_attempt records it and moves the job.
struct AttemptReport {
  JobId job = 0;
  AttemptOutcome outcome = AttemptOutcome::retry;
  std::optional<int> http_status;
  std::optional<std::string> error;  // for the attempt row
  std::uint64_t bytes_sent = 0;
  // The job afterwards: pending (retry/held/aborted), succeeded (succeeded/reconciled) or failed.
  JobState next_state = JobState::pending;
  std::optional<WallTime> next_attempt_at;
  bool counts_toward_attempts = true;  // false for held and aborted attempts
  std::optional<std::string> file_id;  // required for succeeded
  std::optional<std::string> file_status;
  std::optional<std::string> file_status_details;
  std::optional<std::string> last_error;  // the job's; left as it was when none
  // The server may have stored the file although no usable answer came (the whole body went
  // out, then a reset, a timeout, a malformed 2xx, or the daemon stopped waiting).
  bool in_doubt = false;
  // The file the upload sent. A success is only accepted for the file the job still names:
  // if the job took a new identity meanwhile (the file changed), the attempt counts as aborted.
  std::optional<FileIdentity> sent_file;
};

// A file as the API lists it (GET /v1/files), what in-doubt reconciliation compares.
struct ListedFile {
  std::string id;
  std::string filename;
  std::uint64_t bytes = 0;
  WallTime created_at;
  std::optional<std::string> status;
  std::optional<std::string> status_details;
};

// How an in-doubt job's files are looked for: the name the API records for an upload from
// this basename (it differs from the basename for names with control characters).
using RecordedName = std::function<std::string(std::string_view basename)>;

// The margin below an in-doubt attempt's start within which the server's created_at may fall
// (clocks differ); also the extra reach when looking for other jobs' unrecorded copies.
inline constexpr std::chrono::seconds kInDoubtClockMargin{60};

struct Reconciliation {
  bool adopted = false;
  std::optional<Job> job;  // after adoption: succeeded with the adopted file
  std::string reason;      // why a file was adopted, or why the upload is sent again
};

// The token files whose jobs wait for now (an auth or rate-limit hold on that token, or a token
// file that cannot be read): claims and next_due_at skip their jobs. None stands for the global
// token (jobs.token_file NULL).
using HeldTokens = std::span<const std::optional<std::string>>;

struct RecoveryReport {
  std::int64_t jobs_requeued = 0;     // uploading -> pending
  std::int64_t attempts_aborted = 0;  // open attempts -> aborted
};

// What a look at a job's model found (JobStore::record_model_status).
struct ModelUpdate {
  std::string status;                     // model_status from now on
  std::optional<std::string> reason;      // model_status_reason (replaced; none clears it)
  std::optional<WallTime> next_check_at;  // none: the registration has ended
  bool answered = true;                   // the API said something about the model: model_checked_at = now
};

// A job whose completion hook is due, with what the hook is told about it.
struct DueHook {
  JobId job = 0;
  JobState state = JobState::succeeded;
  std::filesystem::path path;
  std::optional<std::filesystem::path> current_path;
  std::optional<std::filesystem::path> watch_dir;
  std::optional<std::string> file_id;
  std::optional<std::string> project_id;
  std::optional<std::string> model_name;
  std::optional<std::string> last_error;
};

// The result of a request on one named job (`modeldrop retry 3 4 5`).
struct JobRequestResult {
  JobId job = 0;
  std::optional<Error> error;                   // unknown_job or illegal_transition, with the line to show
  JobState previous_state = JobState::pending;  // when known
};

// Which jobs `modeldrop jobs` lists: every condition given must hold.
struct JobFilter {
  std::vector<JobState> states;  // any of these; every state when empty
  // A shell glob, case-insensitive, on the file name; on the whole path when it contains a '/'.
  std::optional<std::string> name_glob;
  std::optional<WallTime> created_since;
};

struct JobPage {
  std::vector<Job> jobs;           // newest first, at most the limit
  std::vector<int> attempts_made;  // per job: every attempt row (held, aborted, running included)
  std::int64_t total = 0;          // jobs the filter matches, the limit aside
};

struct StateSummary {
  JobState state = JobState::pending;
  std::int64_t jobs = 0;
  std::uint64_t bytes = 0;
};

struct DaemonRecord {
  int pid = 0;
  std::string version;
  WallTime started_at;
  WallTime heartbeat_at;
  std::optional<std::string> held_reason;
  double upload_rate_bytes_per_s = 0;
};

// Whether a process with this pid exists (kill(pid, 0)); how a daemon row is told live from stale.
bool is_process_alive(int pid);

struct StoreOptions {
  // How long one statement waits for another connection's lock (outside readers never block
  // it in WAL mode; an outside writer may).
  std::chrono::milliseconds busy_timeout{5000};
  // Owner group of a database the daemon creates, when the group exists (docs/database.md).
  std::string group = "modeldrop";
};

class JobStore {
 public:
  // The daemon's store: creates the database (and its directory) when absent, configures the
  // connection, applies the migrations. Refuses a database written by a newer modeldrop.
  // `warnings` receives what the caller should log (e.g. the group could not be set).
  static Result<JobStore> open_for_daemon(const std::filesystem::path& file, const StoreOptions& options = {},
                                          std::vector<std::string>* warnings = nullptr);
  // The CLI's store: an existing modeldrop database only (StoreErrc::no_database otherwise).
  static Result<JobStore> open_existing(const std::filesystem::path& file, const StoreOptions& options = {});

  // -- Daemon registration (docs/database.md `daemon`): one daemon per database.
  // Fails with daemon_already_running when another live process is registered; a row whose
  // pid is gone is stale and replaced. A caller holding the DaemonLock knows every other row
  // is stale, even one whose pid now belongs to an unrelated process (after a reboot).
  enum class OtherDaemons { check_pid, known_gone };
  Result<void> register_daemon(int pid, std::string_view version, WallTime now,
                               OtherDaemons others = OtherDaemons::check_pid);
  // Refreshes heartbeat_at and the current upload rate (every few seconds).
  Result<void> heartbeat(WallTime now, double upload_rate_bytes_per_s);
  // Why uploads wait (auth, rate limit, "paused"), or none when they do not.
  Result<void> set_held_reason(const std::optional<std::string>& reason);
  // On clean exit.
  Result<void> unregister_daemon();
  Result<std::optional<DaemonRecord>> daemon_record();

  // -- Pause (kept apart from the daemon row, so it outlives restarts). True when it changed.
  Result<bool> pause(WallTime now);
  Result<bool> resume();
  Result<bool> is_paused();
  // When `modeldrop pause` was given; none when not paused.
  Result<std::optional<WallTime>> paused_since();

  // -- Queueing. The same path, inode, size and mtime is never queued twice, whatever the
  // state of its job. A changed file at a path whose job has not succeeded updates that job:
  // a pending one takes the new identity (and next_attempt_at), a failed or cancelled one
  // also goes back to pending with a fresh budget, an uploading one (or one whose cancelled
  // upload is still running) only takes the new identity. After a success it is a new job.
  Result<EnqueueResult> enqueue(const NewJob& job, WallTime now);

  // -- The upload cycle.
  // Atomically takes the oldest due pending job (next_attempt_at none or <= now) and makes
  // it `uploading`; none when nothing is due or uploads are paused.
  // With `require_sha256` (upload.dedupe), only jobs whose content hash is known.
  // Jobs of a `held` token are skipped.
  Result<std::optional<Job>> claim_next(WallTime now, bool require_sha256 = false, HeldTokens held = {});
  // Opens the next attempt of an uploading job; returns its number.
  Result<int> begin_attempt(JobId job, WallTime now);
  // Bytes of the file sent so far in the current attempt; cheap enough for once a second.
  Result<void> record_progress(JobId job, std::uint64_t bytes_sent, WallTime now);
  // Closes the open attempt and moves the job as the report says. A job cancelled while the
  // attempt ran stays cancelled (the attempt is recorded `aborted`). Returns the job after.
  Result<Job> finish_attempt(const AttemptReport& report, WallTime now);
  // Gives a claimed job back without an attempt (shutdown before it started, a file to settle).
  // A job cancelled meanwhile is returned as it is.
  Result<Job> release_claim(JobId job, std::optional<WallTime> next_attempt_at, WallTime now);
  // At startup: jobs left uploading go back to pending, open attempts become aborted and in doubt.
  Result<RecoveryReport> recover_after_crash(WallTime now);

  // -- In-doubt reconciliation (in_doubt.cpp).
  // When the job's earliest attempt in doubt since its last success started; none when no
  // attempt of the job is in doubt. The open attempt does not count.
  Result<std::optional<WallTime>> in_doubt_since(JobId job);
  // With the API's listing of the job's project: adopts the one file that can only be this job's
  // lost upload (same recorded name and size, created no earlier than `since` minus the margin,
  // nobody's file_id) when no other job of that name, size and project has an attempt that may
  // have stored an unrecorded copy in that time. Adoption closes the open attempt `reconciled`
  // and the job `succeeded`, in the same transaction as the checks.
  Result<Reconciliation> reconcile(JobId job, WallTime since, std::span<const ListedFile> listing,
                                   const RecordedName& recorded_name, WallTime now);

  // -- Source file events.
  // The source is gone before its upload succeeded: cancelled, `source removed`.
  Result<Job> mark_source_removed(JobId job, WallTime now);
  // Unreadable, not a regular file, archive check, give-up: failed with `reason`.
  Result<Job> fail(JobId job, std::string_view reason, WallTime now);
  // Where the file is now (after a move); none once deleted.
  Result<void> set_current_path(JobId job, const std::optional<std::filesystem::path>& path, WallTime now);
  // The ready marker that queued the job, and later where it went; none once removed.
  Result<void> set_ready_marker_path(JobId job, const std::optional<std::filesystem::path>& path, WallTime now);
  // The pending job whose file is at `current_path` (for a watcher event on a queued file).
  Result<std::optional<Job>> pending_job_for_path(const std::filesystem::path& current_path);

  // -- Dedupe (docs/http.md).
  // Records the content hash of `hashed_file`; ignored (false) if the job's file has changed since.
  Result<bool> set_sha256(JobId job, std::string_view sha256_hex, const FileIdentity& hashed_file, WallTime now);
  // A succeeded job with this content for this project (none equals none), sent with the same
  // token_file (none: the global token): another team's key may be another account, whose file
  // id would be wrong here, so dedupe never crosses tokens.
  Result<std::optional<Job>> find_succeeded_by_sha256(std::string_view sha256_hex,
                                                      const std::optional<std::string>& project_id,
                                                      const std::optional<std::string>& token_file = std::nullopt);
  // `job` succeeds at once with `of_job`'s file id and status; no attempt is recorded.
  Result<Job> complete_as_duplicate(JobId job, JobId of_job, WallTime now);

  // -- Dedupe between jobs in flight: a job never uploads what another job of its project (and
  // token) is uploading or waiting to upload (the lower id goes first), and waits while that is
  // unknown.
  // claim_next(now, true) and next_due_at(now, true) under these rules.
  Result<std::optional<Job>> claim_next_unique(WallTime now, HeldTokens held = {});
  Result<std::optional<WallTime>> next_due_at_unique(WallTime now, HeldTokens held = {});
  // Pending jobs without a hash that another job of their project and size could duplicate:
  // hashed before they may be claimed. Oldest first.
  Result<std::vector<Job>> pending_to_hash_first(std::size_t limit);
  // Pending jobs with the content and project of `succeeded` (they complete from it).
  Result<std::vector<Job>> pending_duplicates_of(JobId succeeded);
  // Each of those succeeds from it (complete_as_duplicate), all or none; returns them.
  Result<std::vector<Job>> complete_duplicates_of(JobId succeeded, WallTime now);

  // -- Requests from `modeldrop`, one result per named job.
  // Pending or uploading -> cancelled (a running upload learns of it via cancelled_among).
  Result<std::vector<JobRequestResult>> cancel(std::span<const JobId> jobs, WallTime now);
  // Failed or cancelled -> pending with a fresh budget, from current_path. Refused for a job
  // whose file is gone, or whose cancelled upload the daemon has not stopped yet. With
  // `again`, a succeeded job too: its file id is forgotten and the file is sent once more
  // (its known sha256 is kept, so dedupe does not answer with the job's own earlier upload).
  enum class Retry { unfinished, again };
  Result<std::vector<JobRequestResult>> retry(std::span<const JobId> jobs, WallTime now,
                                              Retry which = Retry::unfinished);
  // A job that failed on its sidecar is refused by both (retried, it would register nothing).
  // Every failed job whose file is still there; returns the ids retried.
  Result<std::vector<JobId>> retry_failed(WallTime now);

  // -- Reading.
  Result<std::optional<Job>> find_job(JobId job);
  Result<std::optional<JobWithAttempts>> job_with_attempts(JobId job);
  // Newest first; every state when `states` is empty.
  Result<std::vector<Job>> list_jobs(std::span<const JobState> states, std::size_t limit);
  // Newest first, with how many match in all (for "... N more").
  Result<JobPage> find_jobs(const JobFilter& filter, std::size_t limit);
  // Jobs and bytes for every state, zeros included, in lifecycle order.
  Result<std::vector<StateSummary>> summary();
  // The earliest time a pending job is due (now for one without next_attempt_at); none when
  // nothing is pending. The daemon sleeps until then.
  Result<std::optional<WallTime>> next_due_at(WallTime now, bool require_sha256 = false, HeldTokens held = {});
  // Pending jobs whose content hash is not known yet, oldest first (the daemon's hash stage).
  Result<std::vector<Job>> pending_without_sha256(std::size_t limit);
  // Of `held`, the tokens some pending or uploading job still uses (a hold on any other holds
  // nothing: the daemon forgets it).
  Result<std::vector<std::optional<std::string>>> tokens_in_use(HeldTokens held);
  // A watch's token_file changed (or the daemon starts): its unfinished jobs (pending, uploading,
  // failed, cancelled) use the new one from their next attempt. Returns how many changed.
  Result<std::int64_t> set_watch_token_file(const std::filesystem::path& watch_dir,
                                            const std::optional<std::string>& token_file, WallTime now);
  // Records the ai_project_id the daemon sends for a job queued without one (`modeldrop add`
  // without --project gets api.project_id, docs/cli.md); a job with a project keeps it.
  Result<void> set_project_id(JobId job, std::string_view project_id, WallTime now);
  // SQLite's plan for claim_next, one line per step (the index test checks it).
  Result<std::vector<std::string>> explain_claim_next();

  // -- Model registration (store/job_models.cpp). A job that registers a model starts its
  // registration (`registering`, due now) in the transaction that makes it succeeded.
  // Registrations in progress whose next look is due, the earliest first.
  Result<std::vector<Job>> registrations_due(WallTime now, std::size_t limit);
  // When the next registration look is due (now for one due already); none when none is in progress.
  Result<std::optional<WallTime>> next_registration_check(WallTime now);
  // Records a look at the job's model; none when its registration is no longer in progress
  // (`modeldrop retry --force` started the job again meanwhile).
  Result<std::optional<Job>> record_model_status(JobId job, const ModelUpdate& update, WallTime now);
  // The sidecar's new place after its archive moved; none once removed.
  Result<void> set_sidecar_path(JobId job, const std::optional<std::filesystem::path>& path, WallTime now);

  // -- Completion hooks (store/job_hooks.cpp).
  // Whether jobs that end from now on owe a hook (the daemon says so at start and reload).
  Result<void> set_hooks_enabled(bool enabled);
  // Due hooks, oldest first. A succeeded job that registers a model is due only once its
  // registration has ended (model_status active, error or another final word of the API's).
  Result<std::vector<DueHook>> due_hooks(std::size_t limit);
  // The hook ran (whatever its exit status): never again.
  Result<void> finish_hook(JobId job, WallTime now);

  // -- Change detection for the daemon.
  // True when another connection (`modeldrop`, sqlite3) committed a change since the last
  // call. Cheap enough to poll every few hundred milliseconds; polled every 250-500 ms, the
  // daemon sees a CLI request well within the 1 second docs/cli.md promises.
  Result<bool> external_change_seen();
  // Of `in_flight` (jobs this daemon is uploading), those that are now cancelled.
  Result<std::vector<JobId>> cancelled_among(std::span<const JobId> in_flight);

  [[nodiscard]] Connection& connection() { return db_; }
  [[nodiscard]] const std::filesystem::path& file() const { return db_.file(); }

 private:
  explicit JobStore(Connection db) : db_(std::move(db)) {}
  static Result<JobStore> configure(Connection db, bool for_daemon);

  Result<std::optional<Job>> load_job(JobId job);
  Result<Job> require_job(JobId job);
  Result<bool> has_open_attempt(JobId job);
  Result<Job> end_job(JobId job, JobState final_state, std::string_view reason, bool source_gone, WallTime now);
  Result<void> abort_open_attempt(JobId job, std::string_view error, WallTime now);
  // The shape of every request on named jobs (`cancel 3 4`, `retry 5`): in one transaction,
  // each job is loaded, then `refusal` says why it may not be changed, or `change` changes it.
  using RequestRefusal = std::function<Result<std::optional<Error>>(const Job&)>;
  using RequestChange = std::function<Result<void>(JobId)>;
  Result<std::vector<JobRequestResult>> for_each_requested_job(std::span<const JobId> jobs,
                                                               const RequestRefusal& refusal,
                                                               const RequestChange& change);

  Connection db_;
  std::optional<int> registered_pid_;
  std::optional<std::int64_t> data_version_;
};

}  // namespace modeldrop::store
