#include "cli/cli_command.hpp"

#include "cli/job_format.hpp"
#include "common/bash_completion.hpp"
#include "common/duration.hpp"
#include "common/exit_codes.hpp"
#include "common/version.hpp"
#include "config/config.hpp"
#include "config/config_loader.hpp"
#include "config/model_registration.hpp"
#include "config/token.hpp"
#include "store/daemon_lock.hpp"
#include "store/job_store.hpp"

#include <CLI/CLI.hpp>
#include <boost/json.hpp>

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <charconv>
#include <csignal>
#include <cstring>
#include <iostream>
#include <thread>

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
  std::optional<std::string> name_glob;
  std::optional<std::string> since;
  bool follow = false;
  std::string interval = "2s";
  std::vector<std::string> id_words;  // as typed; checked into `ids` after parsing
  std::vector<JobId> ids;
  bool all_failed = false;
  bool force = false;
  std::vector<std::string> paths;
  std::optional<std::string> project;
  std::string validate = "archive";
  std::optional<std::string> register_base_model;
  std::optional<std::string> model_name;
  std::optional<std::string> token_file;
};

// Usage mistakes found after CLI11's own checks: said plainly, exit 2.
struct UsageError {
  std::string message;
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

Result<bool> daemon_is_running(JobStore& store) {
  auto daemon = store.daemon_record();
  if (!daemon) return daemon.error();
  return daemon_is_running(store, *daemon);
}

// What `jobs` shows as the upload rate of each uploading job, summed: status and jobs agree.
Result<double> current_upload_rate(JobStore& store) {
  store::JobFilter uploading;
  uploading.states = {JobState::uploading};
  auto page = store.find_jobs(uploading, 10'000);
  if (!page) return page.error();
  double rate = 0;
  for (const auto& job : page->jobs) rate += job.upload_rate_bytes_per_s.value_or(0.0);
  return rate;
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
  if (status.daemon_running) {
    auto rate = current_upload_rate(store);
    if (!rate) return runtime_failure(rate.error());
    status.upload_rate_bytes_per_s = *rate;
  }
  if (request.json) {
    print_json(status_json(status, now));
  } else {
    std::cout << render_status(status, now);
  }
  return exit_code::kSuccess;
}

Result<store::JobFilter> job_filter(const Request& request, WallTime now) {
  store::JobFilter filter;
  for (const auto& name : request.states) filter.states.push_back(*store::parse_job_state(name));
  filter.name_glob = request.name_glob;
  if (request.since) {
    auto span = parse_duration(*request.since);
    if (!span) return make_error("--since " + *request.since + ": " + span.error().message);
    filter.created_since = now - *span;
  }
  return filter;
}

// One listing: the table (with "... N more" when cut) or the JSON array.
Result<std::string> jobs_listing(JobStore& store, const Request& request, std::size_t limit) {
  const auto now = WallClock::now();
  auto filter = job_filter(request, now);
  if (!filter) return filter.error();
  auto page = store.find_jobs(*filter, limit);
  if (!page) return page.error();
  if (request.json) {
    boost::json::array array;
    for (const auto& job : page->jobs) array.push_back(job_json(job));
    return Result<std::string>(boost::system::in_place_value, boost::json::serialize(array) + "\n");
  }
  auto running = daemon_is_running(store);
  if (!running) return running.error();
  return Result<std::string>(boost::system::in_place_value,
                             render_jobs_table(page->jobs, View{now, *running}, page->attempts_made) +
                                 more_jobs_line(page->jobs.size(), page->total));
}

volatile std::sig_atomic_t follow_stop = 0;

// Rows that fit the terminal below the heading, so a redraw never scrolls.
std::size_t terminal_rows(std::size_t fallback) {
  struct winsize size {};
  if (::ioctl(STDOUT_FILENO, TIOCGWINSZ, &size) != 0 || size.ws_row < 6) return fallback;
  return std::min<std::size_t>(fallback, size.ws_row - 4u);
}

// `jobs --follow`: on a terminal the table is redrawn in place; elsewhere (a pipe, a log)
// each refresh is printed after a timestamped separator. Ctrl-C ends it with exit 0.
int follow_jobs(JobStore& store, const Request& request) {
  auto every = parse_duration(request.interval);
  if (!every || *every < std::chrono::milliseconds(100)) {
    print_error("--interval " + request.interval + ": must be a duration of at least 100ms");
    return exit_code::kUsage;
  }
  follow_stop = 0;
  std::signal(SIGINT, [](int) { follow_stop = 1; });
  std::signal(SIGTERM, [](int) { follow_stop = 1; });
  const bool terminal = ::isatty(STDOUT_FILENO) == 1;
  while (follow_stop == 0) {
    const std::size_t limit = terminal ? terminal_rows(request.limit) : request.limit;
    auto listing = jobs_listing(store, request, limit);
    if (!listing) return runtime_failure(listing.error());
    const std::string heading = format_timestamp(WallClock::now()) + "  every " + request.interval;
    if (terminal) {
      std::cout << "\x1b[H\x1b[2J" << heading << "  (Ctrl-C stops)\n\n" << *listing << std::flush;
    } else {
      std::cout << "--- " << heading << "\n" << *listing << std::flush;
    }
    // Sleep in short steps so Ctrl-C is answered at once.
    for (auto slept = std::chrono::milliseconds(0); slept < *every && follow_stop == 0;
         slept += std::chrono::milliseconds(50)) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  return exit_code::kSuccess;
}

int jobs_command(JobStore& store, const Request& request) {
  if (request.follow) return follow_jobs(store, request);
  auto listing = jobs_listing(store, request, request.limit);
  if (!listing) return runtime_failure(listing.error());
  std::cout << *listing;
  return exit_code::kSuccess;
}

int show_command(JobStore& store, const Request& request) {
  const JobId id = request.ids.at(0);
  auto job = store.job_with_attempts(id);
  if (!job) return runtime_failure(job.error());
  if (!*job) {
    print_error("job " + std::to_string(id) + ": no such job");
    return exit_code::kRuntimeError;
  }
  if (request.json) {
    print_json(job_with_attempts_json(**job));
    return exit_code::kSuccess;
  }
  auto running = daemon_is_running(store);
  if (!running) return runtime_failure(running.error());
  std::cout << render_job(**job, View{WallClock::now(), *running});
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
    if (result.previous_state == JobState::failed || result.previous_state == JobState::cancelled ||
        result.previous_state == JobState::succeeded) {
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
  auto results =
      store.retry(request.ids, WallClock::now(), request.force ? JobStore::Retry::again : JobStore::Retry::unfinished);
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

// --register-base-model and --model-name: the `register` of a watch, for these files alone.
std::optional<config::RegisterConfig> registration_of(const Request& request) {
  if (!request.register_base_model) return std::nullopt;
  config::RegisterConfig registration;
  registration.base_model = *request.register_base_model;
  if (request.model_name) registration.name = *request.model_name;
  return registration;
}

// `add --token-file F`: the daemon reads F for these jobs' token, as it reads a watch's token_file.
// Checked here as the daemon will read it (never printed); recorded by its absolute path.
Result<std::optional<std::string>> token_file_for_jobs(const Request& request) {
  if (!request.token_file) return Result<std::optional<std::string>>(boost::system::in_place_value, std::nullopt);
  std::error_code ec;
  const auto path = std::filesystem::absolute(*request.token_file, ec).lexically_normal();
  if (ec) return errno_error("--token-file " + *request.token_file, ec.value());
  const auto read = config::read_token_file(path);
  if (!read.token) return make_error("--token-file " + path.string() + ": cannot use it: " + read.error);
  for (const auto& warning : read.warnings) std::cerr << "modeldrop: warning: " << printable(warning) << "\n";
  if (const auto root = hidden_from_service(path)) {
    std::cerr << "modeldrop: warning: the token file " << printable(path.string()) << " is under " << *root
              << ", which the packaged modeldropd service cannot see; its jobs would wait for a token it can read\n";
  }
  return Result<std::optional<std::string>>(boost::system::in_place_value, path.string());
}

int add_command(JobStore& store, const Request& request) {
  const auto token_file = token_file_for_jobs(request);
  if (!token_file) {
    print_error(printable(token_file.error().message));
    return exit_code::kRuntimeError;
  }
  int rc = exit_code::kSuccess;
  const auto registration = registration_of(request);
  for (const auto& given : request.paths) {
    auto job = describe_file(
        given, request.project,
        preflight::parse_archive_validation(request.validate).value_or(preflight::ArchiveValidation::archive));
    if (!job) {
      print_error(printable(job.error().message));
      rc = exit_code::kRuntimeError;
      continue;
    }
    // A sidecar beside the file overrides the flags, as it overrides a watch's `register`; a
    // broken one keeps the file out of the queue.
    const auto model = config::registration_for_archive(job->path, registration, WallClock::now());
    if (model.problem) {
      print_error(printable(*model.problem));
      rc = exit_code::kRuntimeError;
      continue;
    }
    job->sidecar_path = model.sidecar;
    if (model.model) {
      job->model = store::ModelRequest{model.model->name, model.model->base_model, model.model->description};
    }
    job->token_file = *token_file;
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

// --db, else the config's `database`. A config that does not load is exit 78; one that is not
// there at all most often means the queue is elsewhere, so say how to name it.
std::optional<std::filesystem::path> database_path(const Request& request, int& rc) {
  if (request.db_flag) return std::filesystem::path(*request.db_flag);
  const auto file = config::config_path_from(request.config_flag);
  const auto loaded = config::load_config(file);
  if (!loaded.ok()) {
    for (const auto& problem : loaded.problems) std::cerr << problem << "\n";
    std::error_code ec;
    if (!std::filesystem::exists(file, ec)) {
      std::cerr << "modeldrop: name the queue with --config FILE (a modeldropd configuration), --db FILE "
                   "(its database) or $MODELDROP_CONFIG\n";
    }
    rc = exit_code::kConfigError;
    return std::nullopt;
  }
  return loaded.config->database;
}

// A validator that adds nothing to the help's type name (CLI11 would print its ranges).
CLI::Validator quiet_check(std::function<std::string(std::string&)> check) {
  return CLI::Validator(std::move(check), "");
}

std::optional<JobId> parse_job_id(std::string_view text) {
  JobId id = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), id);
  if (error != std::errc() || end != text.data() + text.size() || id <= 0) return std::nullopt;
  return id;
}

// The job ids as typed, into request.ids; `invalid job id "abc"` for anything else.
std::optional<UsageError> check_job_ids(Request& request) {
  for (const auto& word : request.id_words) {
    const auto id = parse_job_id(word);
    if (!id) return UsageError{"invalid job id \"" + printable(word) + "\""};
    request.ids.push_back(*id);
  }
  return std::nullopt;
}

// --config and --db on the program and on every command, so each command's help lists them.
void add_queue_options(CLI::App& app, Request& request) {
  app.add_option("--config", request.config_flag,
                 "modeldropd configuration naming the database (default $MODELDROP_CONFIG, else " +
                     std::string(config::kDefaultConfigPath) + ")")
      ->type_name("FILE");
  app.add_option("--db", request.db_flag, "the job database itself, instead of the configuration's `database`")
      ->type_name("FILE");
}

struct Commands {
  CLI::App* status = nullptr;
  CLI::App* jobs = nullptr;
  CLI::App* show = nullptr;
  CLI::App* retry = nullptr;
  CLI::App* cancel = nullptr;
  CLI::App* add = nullptr;
  CLI::App* pause = nullptr;
  CLI::App* resume = nullptr;
};

Commands define_commands(CLI::App& cli, Request& request) {
  Commands c;
  c.status = cli.add_subcommand("status", "is the daemon running, jobs and bytes per state, upload rate, holds");
  c.status->add_flag("--json", request.json, "one JSON document");
  c.jobs = cli.add_subcommand("jobs", "the jobs, newest first");
  c.jobs->add_option("--state", request.states, "only jobs in this state (repeatable)")
      ->type_name("pending|uploading|succeeded|failed|cancelled")
      ->check(quiet_check([](std::string& value) {
        return store::parse_job_state(value) ? std::string() : "no state \"" + value + "\"";
      }));
  c.jobs->add_option("--limit", request.limit, "at most N rows (default 50; the table says how many more there are)")
      ->type_name("N")
      ->check(quiet_check([](std::string& value) {
        const auto n = parse_job_id(value);
        return n && *n <= 1'000'000 ? std::string() : "must be a number from 1 to 1000000";
      }));
  c.jobs
      ->add_option("--name", request.name_glob,
                   "only files whose name matches this shell glob (case-insensitive; with a '/', the whole path)")
      ->type_name("GLOB");
  c.jobs->add_option("--since", request.since, "only jobs queued within this long (e.g. 30m, 1h, 2d)")
      ->type_name("DURATION");
  c.jobs->add_flag("--follow", request.follow, "redraw every --interval until Ctrl-C");
  c.jobs->add_option("--interval", request.interval, "how often --follow refreshes (default 2s)")
      ->type_name("DURATION");
  c.jobs->add_flag("--json", request.json, "one JSON array");
  c.show = cli.add_subcommand("show", "one job with its attempt history");
  c.show->add_option("ID", request.id_words, "job id")->required()->expected(1)->type_name("ID");
  c.show->add_flag("--json", request.json, "one JSON object");
  c.retry = cli.add_subcommand("retry", "failed or cancelled jobs back to pending, with a fresh budget");
  auto* retry_ids = c.retry->add_option("ID", request.id_words, "job ids")->type_name("ID");
  auto* retry_failed = c.retry->add_flag("--failed", request.all_failed, "every failed job");
  c.retry->add_flag("--force", request.force, "succeeded jobs too: upload the file again and record the new file id");
  retry_ids->excludes(retry_failed);
  c.cancel = cli.add_subcommand("cancel", "pending or uploading jobs become cancelled (the file stays)");
  c.cancel->add_option("ID", request.id_words, "job ids")->required()->type_name("ID");
  c.add = cli.add_subcommand("add", "queue files by hand, outside the watched directories");
  c.add->add_option("PATH", request.paths, "files to upload")->required()->type_name("PATH");
  c.add->add_option("--project", request.project, "ai_project_id to send (default: the daemon's api.project_id)")
      ->type_name("ID")
      ->check(quiet_check([](std::string& value) { return value.empty() ? std::string("must not be empty") : ""; }));
  c.add
      ->add_option("--validate", request.validate,
                   "archive check before the last bytes are sent: archive (default), adapter, none")
      ->type_name("KIND")
      ->check(CLI::IsMember({"archive", "adapter", "none"}));
  auto* base_model =
      c.add
          ->add_option("--register-base-model", request.register_base_model,
                       "after the upload, create a custom model on this base model (a sidecar FILE.yaml may override)")
          ->type_name("MODEL")
          ->check(
              quiet_check([](std::string& value) { return value.empty() ? std::string("must not be empty") : ""; }));
  c.add
      ->add_option("--model-name", request.model_name,
                   "the model's name (default {stem}: the file name without its archive extension; {date} too)")
      ->type_name("NAME")
      ->needs(base_model)
      ->check(quiet_check([](std::string& value) { return config::model_name_template_problem(value).value_or(""); }));
  c.add
      ->add_option("--token-file", request.token_file,
                   "the API token for these files: a file the daemon reads, as a watch's token_file (default: the "
                   "global token)")
      ->type_name("FILE")
      ->check(quiet_check([](std::string& value) { return value.empty() ? std::string("must not be empty") : ""; }));
  c.pause = cli.add_subcommand("pause", "hold all new uploads, across daemon restarts, until resume");
  c.resume = cli.add_subcommand("resume", "release the uploads held by pause");
  for (CLI::App* command : {c.status, c.jobs, c.show, c.retry, c.cancel, c.add, c.pause, c.resume}) {
    add_queue_options(*command, request);
  }
  return c;
}

// Mistakes CLI11 cannot see: ids, option pairs, and what a command needs.
std::optional<UsageError> check_request(Request& request, const Commands& c) {
  if (request.config_flag && request.db_flag) return UsageError{"--config and --db exclude each other: give one"};
  if (auto bad = check_job_ids(request)) return bad;
  if (c.retry->parsed() && request.ids.empty() && !request.all_failed) {
    return UsageError{"retry: name job ids or --failed"};
  }
  if (request.force && request.all_failed) return UsageError{"retry: --force takes job ids, not --failed"};
  if (request.follow && request.json) return UsageError{"jobs: --follow redraws a table; it does not take --json"};
  if (request.since) {
    if (auto span = parse_duration(*request.since); !span) {
      return UsageError{"--since " + printable(*request.since) + ": " + span.error().message};
    }
  }
  return std::nullopt;
}

int dispatch(JobStore& store, const Request& request, const Commands& c) {
  if (c.status->parsed()) return status_command(store, request);
  if (c.jobs->parsed()) return jobs_command(store, request);
  if (c.show->parsed()) return show_command(store, request);
  if (c.retry->parsed()) return retry_command(store, request);
  if (c.cancel->parsed()) return cancel_command(store, request);
  if (c.add->parsed()) return add_command(store, request);
  if (c.pause->parsed()) return pause_command(store);
  if (c.resume->parsed()) return resume_command(store);
  return exit_code::kUsage;
}

}  // namespace

int run_cli_command(int argc, char** argv) {
  CLI::App cli{"modeldrop: see and steer the modeldrop upload queue", "modeldrop"};
  cli.set_version_flag("--version", std::string("modeldrop ") + kVersion);
  // Options of the program may follow the command too: `modeldrop jobs --db x.db`.
  cli.fallthrough();
  cli.require_subcommand(0, 1);
  Request request;
  add_queue_options(cli, request);
  bool completion = false;
  cli.add_flag("--bash-completion", completion, "print the bash completion script")->group("");
  const Commands commands = define_commands(cli, request);

  try {
    cli.parse(argc, argv);
    if (completion) {
      std::cout << bash_completion_script(cli, "modeldrop");
      return exit_code::kSuccess;
    }
    if (cli.get_subcommands().empty()) throw CLI::RequiredError("A command");
  } catch (const CLI::ParseError& e) {
    const int rc = cli.exit(e);
    return rc == 0 ? exit_code::kSuccess : exit_code::kUsage;
  }
  if (auto bad = check_request(request, commands)) {
    print_error(bad->message);
    std::cerr << "Run with --help for more information.\n";
    return exit_code::kUsage;
  }

  int rc = exit_code::kSuccess;
  const auto db_path = database_path(request, rc);
  if (!db_path) return rc;
  auto opened = JobStore::open_existing(*db_path);
  if (!opened) {
    print_error(printable(opened.error().message));
    return exit_code::kDatabaseUnavailable;
  }
  return dispatch(*opened, request, commands);
}

}  // namespace modeldrop::cli
