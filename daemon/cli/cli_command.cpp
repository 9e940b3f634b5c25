#include "cli/cli_command.hpp"

#include "cli/job_format.hpp"
#include "common/exit_codes.hpp"
#include "common/version.hpp"
#include "config/config.hpp"
#include "config/config_loader.hpp"
#include "store/daemon_lock.hpp"
#include "store/job_store.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <iostream>

namespace modeldrop::cli {

namespace {

using store::JobId;
using store::JobState;
using store::JobStore;

// Everything the command line said, before anything is opened.
struct Request {
  std::optional<std::string> config_flag;
  std::optional<std::string> db_flag;
  bool json = false;
  std::vector<std::string> states;
  std::size_t limit = 50;
  JobId show_id = 0;
  std::vector<JobId> ids;
  bool all_failed = false;
  std::vector<std::string> paths;
  std::optional<std::string> project;
  std::string validate = "archive";
};

void print_error(const std::string& message) {
  std::cerr << "modeldrop: " << message << "\n";
}

void print_json(const boost::json::value& value) {
  std::cout << boost::json::serialize(value) << "\n";
}

// Expected failures while a command runs (a lock held too long, an I/O error).
int runtime_failure(const Error& error) {
  print_error(error.message);
  return exit_code::kRuntimeError;
}

// The daemon's lock says whether it runs; the row's pid only when the lock file cannot be
// read (a pid may belong to another process after a reboot).
bool daemon_is_running(const JobStore& store, const std::optional<store::DaemonRecord>& daemon) {
  if (!daemon) return false;
  switch (store::DaemonLock::holder(store.file())) {
    case store::DaemonLock::Holder::daemon:
      return true;
    case store::DaemonLock::Holder::nobody:
      return false;
    case store::DaemonLock::Holder::unknown:
      break;
  }
  return store::is_process_alive(daemon->pid);
}

int status_command(JobStore& store, const Request& request) {
  const auto now = WallClock::now();
  StatusReport status;
  auto daemon = store.daemon_record();
  if (!daemon) return runtime_failure(daemon.error());
  status.daemon = *daemon;
  status.daemon_running = daemon_is_running(store, status.daemon);
  auto paused = store.paused_since();
  if (!paused) return runtime_failure(paused.error());
  status.paused_since = *paused;
  auto summary = store.summary();
  if (!summary) return runtime_failure(summary.error());
  status.states = std::move(*summary);
  if (request.json) {
    print_json(status_json(status, now));
  } else {
    std::cout << render_status(status, now);
  }
  return exit_code::kSuccess;
}

int jobs_command(JobStore& store, const Request& request) {
  std::vector<JobState> states;
  for (const auto& name : request.states) states.push_back(*store::parse_job_state(name));
  auto jobs = store.list_jobs(states, request.limit);
  if (!jobs) return runtime_failure(jobs.error());
  if (request.json) {
    boost::json::array array;
    for (const auto& job : *jobs) array.push_back(job_json(job));
    print_json(array);
  } else {
    std::cout << render_jobs_table(*jobs, WallClock::now());
  }
  return exit_code::kSuccess;
}

int show_command(JobStore& store, const Request& request) {
  auto job = store.job_with_attempts(request.show_id);
  if (!job) return runtime_failure(job.error());
  if (!*job) {
    print_error("job " + std::to_string(request.show_id) + ": no such job");
    return exit_code::kRuntimeError;
  }
  if (request.json) {
    print_json(job_with_attempts_json(**job));
  } else {
    std::cout << render_job(**job, WallClock::now());
  }
  return exit_code::kSuccess;
}

// Reports each job's result: what was done on stdout, what could not be on stderr.
int report_requests(const std::vector<store::JobRequestResult>& results, std::string_view done_text) {
  int rc = exit_code::kSuccess;
  for (const auto& result : results) {
    if (result.error) {
      print_error(result.error->message);
      rc = exit_code::kRuntimeError;
      continue;
    }
    std::cout << "job " << result.job << ": " << done_text;
    if (result.previous_state == JobState::uploading) std::cout << " (the daemon aborts its upload in flight)";
    if (result.previous_state == JobState::failed || result.previous_state == JobState::cancelled) {
      std::cout << " (was " << store::to_string(result.previous_state) << ")";
    }
    std::cout << "\n";
  }
  return rc;
}

int retry_command(JobStore& store, const Request& request) {
  if (request.all_failed) {
    auto retried = store.retry_failed(WallClock::now());
    if (!retried) return runtime_failure(retried.error());
    if (retried->empty()) {
      std::cout << "no failed jobs to retry\n";
    } else {
      std::cout << retried->size() << " failed job" << (retried->size() == 1 ? "" : "s") << " back to pending:";
      for (const JobId id : *retried) std::cout << " " << id;
      std::cout << "\n";
    }
    return exit_code::kSuccess;
  }
  auto results = store.retry(request.ids, WallClock::now());
  if (!results) return runtime_failure(results.error());
  return report_requests(*results, "back to pending");
}

int cancel_command(JobStore& store, const Request& request) {
  auto results = store.cancel(request.ids, WallClock::now());
  if (!results) return runtime_failure(results.error());
  return report_requests(*results, "cancelled");
}

// The packaged service cannot see these (ProtectHome=, PrivateTmp=).
std::optional<std::string_view> hidden_from_service(const std::filesystem::path& path) {
  for (const std::string_view root : {"/home", "/root", "/tmp", "/var/tmp"}) {
    const std::string text = path.string();
    if (text == root ||
        (text.size() > root.size() && text.compare(0, root.size(), root) == 0 && text[root.size()] == '/')) {
      return root;
    }
  }
  return std::nullopt;
}

// A readable regular file, as the daemon will find it: its real path and identity.
Result<store::NewJob> describe_file(const std::string& given, const std::optional<std::string>& project,
                                    preflight::ArchiveValidation validate) {
  std::error_code ec;
  const auto real = std::filesystem::canonical(given, ec);
  if (ec) return errno_error("cannot add " + given, ec.value());
  const int fd = ::open(real.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0) return errno_error("cannot add " + given, errno);
  struct stat info {};
  const int stat_rc = ::fstat(fd, &info);
  const int stat_errno = errno;
  ::close(fd);
  if (stat_rc != 0) return errno_error("cannot add " + given, stat_errno);
  if (!S_ISREG(info.st_mode)) return make_error("cannot add " + given + ": not a regular file");
  store::NewJob job;
  job.path = real;
  job.project_id = project;
  job.validate = validate;
  // dev_t, ino_t and time_t are 64-bit on Linux; st_size is never negative for a regular file.
  job.file.device = info.st_dev;
  job.file.inode = info.st_ino;
  job.file.size_bytes = static_cast<std::uint64_t>(info.st_size);
  job.file.mtime_ns = info.st_mtim.tv_sec * 1'000'000'000 + info.st_mtim.tv_nsec;
  return job;
}

int add_command(JobStore& store, const Request& request) {
  int rc = exit_code::kSuccess;
  for (const auto& given : request.paths) {
    auto job = describe_file(
        given, request.project,
        preflight::parse_archive_validation(request.validate).value_or(preflight::ArchiveValidation::archive));
    if (!job) {
      print_error(printable(job.error().message));
      rc = exit_code::kRuntimeError;
      continue;
    }
    const auto shown = printable(job->path.string());
    if (const auto root = hidden_from_service(job->path)) {
      std::cerr << "modeldrop: warning: " << shown << " is under " << *root
                << ", which the packaged modeldropd service cannot see; move it elsewhere if its upload fails\n";
    }
    auto queued = store.enqueue(*job, WallClock::now());
    if (!queued) {
      print_error(printable(queued.error().message));
      rc = exit_code::kRuntimeError;
      continue;
    }
    switch (queued->effect) {
      case store::EnqueueEffect::inserted:
        std::cout << "job " << queued->job << ": queued " << shown << "\n";
        break;
      case store::EnqueueEffect::updated:
        std::cout << "job " << queued->job << ": updated for the changed file " << shown << "\n";
        break;
      case store::EnqueueEffect::unchanged:
        std::cout << "job " << queued->job << ": already queued (" << store::to_string(queued->state) << ") " << shown
                  << "\n";
        break;
    }
  }
  return rc;
}

int pause_command(JobStore& store) {
  auto changed = store.pause(WallClock::now());
  if (!changed) return runtime_failure(changed.error());
  std::cout << (*changed ? "uploads paused: uploads in flight finish, no new one starts until `modeldrop resume`\n"
                         : "uploads were already paused\n");
  return exit_code::kSuccess;
}

int resume_command(JobStore& store) {
  auto changed = store.resume();
  if (!changed) return runtime_failure(changed.error());
  std::cout << (*changed ? "uploads resumed\n" : "uploads were not paused\n");
  return exit_code::kSuccess;
}

// --db, else the config's `database` (CONTRACT §2). A config that does not load is exit 78.
std::optional<std::filesystem::path> database_path(const Request& request, int& rc) {
  if (request.db_flag) return std::filesystem::path(*request.db_flag);
  const auto file = config::config_path_from(request.config_flag);
  const auto loaded = config::load_config(file);
  if (!loaded.ok()) {
    for (const auto& problem : loaded.problems) std::cerr << problem << "\n";
    rc = exit_code::kConfigError;
    return std::nullopt;
  }
  return loaded.config->database;
}

}  // namespace

int run_cli_command(int argc, char** argv) {
  CLI::App cli{"modeldrop: see and steer the modeldrop upload queue", "modeldrop"};
  cli.set_version_flag("--version", std::string("modeldrop ") + kVersion);
  cli.require_subcommand(1);
  // Options of the program may follow the command too: `modeldrop jobs --db x.db`.
  cli.fallthrough();
  Request request;
  auto* config_option = cli.add_option("--config", request.config_flag,
                                       "configuration file naming the database (default $MODELDROP_CONFIG, else " +
                                           std::string(config::kDefaultConfigPath) + ")");
  auto* db_option = cli.add_option("--db", request.db_flag, "the job database (instead of the config's `database`)");
  config_option->excludes(db_option);

  auto* status = cli.add_subcommand("status", "is the daemon running, jobs and bytes per state, upload rate, holds");
  status->add_flag("--json", request.json, "one JSON document");
  auto* jobs = cli.add_subcommand("jobs", "the jobs, newest first");
  jobs->add_option("--state", request.states, "only jobs in this state (repeatable)")
      ->check(CLI::IsMember({"pending", "uploading", "succeeded", "failed", "cancelled"}));
  jobs->add_option("--limit", request.limit, "at most this many (default 50)")->check(CLI::Range(1, 1'000'000));
  jobs->add_flag("--json", request.json, "one JSON array");
  auto* show = cli.add_subcommand("show", "one job with its attempt history");
  show->add_option("ID", request.show_id, "job id")->required()->check(CLI::PositiveNumber);
  show->add_flag("--json", request.json, "one JSON object");
  auto* retry = cli.add_subcommand("retry", "failed or cancelled jobs back to pending, with a fresh budget");
  auto* retry_ids = retry->add_option("ID", request.ids, "job ids")->check(CLI::PositiveNumber);
  auto* retry_failed = retry->add_flag("--failed", request.all_failed, "every failed job");
  retry_ids->excludes(retry_failed);
  auto* cancel = cli.add_subcommand("cancel", "pending or uploading jobs become cancelled (the file stays)");
  cancel->add_option("ID", request.ids, "job ids")->required()->check(CLI::PositiveNumber);
  auto* add = cli.add_subcommand("add", "queue files by hand, outside the watched directories");
  add->add_option("PATH", request.paths, "files to upload")->required();
  add->add_option("--project", request.project, "ai_project_id to send (default: the daemon's api.project_id)")
      ->check([](const std::string& value) { return value.empty() ? std::string("must not be empty") : ""; });
  add->add_option("--validate", request.validate,
                  "archive check before the last bytes are sent: archive (default), adapter, none")
      ->check(CLI::IsMember({"archive", "adapter", "none"}));
  auto* pause = cli.add_subcommand("pause", "hold all new uploads, across daemon restarts, until resume");
  auto* resume = cli.add_subcommand("resume", "release the uploads held by pause");

  try {
    cli.parse(argc, argv);
    if (retry->parsed() && request.ids.empty() && !request.all_failed) {
      throw CLI::ValidationError("retry", "name job ids or --failed");
    }
  } catch (const CLI::ParseError& e) {
    const int rc = cli.exit(e);
    return rc == 0 ? exit_code::kSuccess : exit_code::kUsage;
  }

  int rc = exit_code::kSuccess;
  const auto db_path = database_path(request, rc);
  if (!db_path) return rc;
  auto opened = JobStore::open_existing(*db_path);
  if (!opened) {
    print_error(printable(opened.error().message));
    return exit_code::kDatabaseUnavailable;
  }
  JobStore& store = *opened;
  if (status->parsed()) return status_command(store, request);
  if (jobs->parsed()) return jobs_command(store, request);
  if (show->parsed()) return show_command(store, request);
  if (retry->parsed()) return retry_command(store, request);
  if (cancel->parsed()) return cancel_command(store, request);
  if (add->parsed()) return add_command(store, request);
  if (pause->parsed()) return pause_command(store);
  if (resume->parsed()) return resume_command(store);
  return exit_code::kUsage;
}

}  // namespace modeldrop::cli
