// modeldrop-soak: the chaos soak of issue #9 (README.md here). One program drives everything:
// the fake API in process (seeded 30 % fault mix), modeldropd as a child that is SIGKILLed and
// restarted every ~15 s, writers dropping 500 archives into a small tmpfs, an outside write
// lock on the database, a phase where the tmpfs is full. Then it checks the end state: one
// server copy per archive, each job naming a copy of its own content. Exit 0 when every check
// holds, 1 otherwise.

#include "soak_parts.hpp"
#include "store/job_store.hpp"
#include "support/child_process.hpp"
#include "support/fake_api/fake_api.hpp"
#include "support/fake_api/fake_api_json.hpp"
#include "support/temp_dir.hpp"

#include <CLI/CLI.hpp>

#include <sys/mount.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <csignal>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <thread>

namespace modeldrop::soak {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using test::ChildProcess;
using test::Fault;
using test::FaultKind;

std::atomic<bool> g_interrupted{false};

struct Options {
  fs::path work_dir = "build/soak";
  fs::path daemon = MODELDROPD_PATH;
  int archives = 500;
  std::uint64_t seed = 1;
  double fault_probability = 0.3;
  int time_limit_s = 600;
  int spread_s = 200;     // writers start their archives over this long
  int kill_every_s = 15;  // mean; uniform in [2/3, 4/3] of it
  int enospc_at_s = 45;   // the filesystem-full phase starts here...
  int enospc_for_s = 25;  // ...and lasts this long
  std::string tmpfs_size = "512m";
};

double seconds_between(WallTime a, WallTime b) {
  return std::chrono::duration<double>(b - a).count();
}

std::string format_bytes(std::uint64_t bytes) {
  char text[64];
  std::snprintf(text, sizeof text, "%.1f MiB", static_cast<double>(bytes) / (1 << 20));
  return text;
}

// The tmpfs under the drop directories; unmounted however the soak ends.
class TmpfsMount {
 public:
  TmpfsMount(const fs::path& where, const std::string& size) : where_(where) {
    if (::geteuid() != 0) {
      skip_reason_ = "not root: cannot mount a tmpfs";
      return;
    }
    const std::string options = "size=" + size + ",mode=0755";
    if (::mount("tmpfs", where.c_str(), "tmpfs", 0, options.c_str()) != 0) {
      skip_reason_ = std::string("mount tmpfs failed: ") + std::strerror(errno);
      return;
    }
    mounted_ = true;
  }
  ~TmpfsMount() { unmount(); }
  TmpfsMount(const TmpfsMount&) = delete;
  TmpfsMount& operator=(const TmpfsMount&) = delete;
  void unmount() {
    if (mounted_ && ::umount2(where_.c_str(), MNT_DETACH) != 0) {
      std::cerr << "soak: cannot unmount " << where_ << ": " << std::strerror(errno) << "\n";
    }
    mounted_ = false;
  }
  [[nodiscard]] bool mounted() const { return mounted_; }
  [[nodiscard]] const std::string& skip_reason() const { return skip_reason_; }

 private:
  fs::path where_;
  bool mounted_ = false;
  std::string skip_reason_;
};

// A tmpfs left mounted by a soak that was itself killed.
void unmount_leftover(const fs::path& where) {
  std::ifstream mounts("/proc/self/mounts");
  std::string line;
  const std::string target = " " + fs::absolute(where).lexically_normal().string() + " ";
  while (std::getline(mounts, line)) {
    if (line.find(target) != std::string::npos) ::umount2(where.c_str(), MNT_DETACH);
  }
}

std::string config_yaml(const std::string& base_url, const fs::path& ca, const fs::path& run, const fs::path& drop) {
  std::ostringstream yaml;
  // Timeouts and backoff shortened so that the queue converges within minutes.
  yaml << "api:\n"
       << "  base_url: " << base_url << "\n"
       << "  token_file: " << (run / "token").string() << "\n"
       << "  ca_file: " << ca.string() << "\n"
       << "  connect_timeout: 2s\n"
       << "  idle_timeout: 3s\n"
       << "upload:\n  sessions: 4\n  dedupe: true\n"
       << "retry:\n  initial_backoff: 200ms\n  max_backoff: 2s\n  max_attempts: 0\n  give_up_after: 0\n"
       << "database: " << (run / "state" / "jobs.db").string() << "\n"
       << "watch:\n"
       // The writers write pseudo-random bytes, not archives: the checks would refuse them all
       // (they are tested with real archives in ArchiveCheckTest).
       << "  - path: " << (drop / "a").string() << "\n    settle: 2s\n    on_success: delete\n    validate: none\n"
       << "  - path: " << (drop / "b").string() << "\n    settle: 2s\n    on_success: move\n    validate: none\n"
       << "    done_dir: " << (run / "done-b").string() << "\n"
       << "log:\n  level: info\n";
  return yaml.str();
}

// The faults drawn for 30 % of the upload requests: every kind the issue names.
std::vector<Fault> fault_kinds() {
  return {
      {.kind = FaultKind::status, .status = 500},
      {.kind = FaultKind::status, .status = 502},
      {.kind = FaultKind::status, .status = 503, .headers = {{"Retry-After", "1"}}},
      {.kind = FaultKind::early_status, .status = 503, .linger_for = 500ms},
      {.kind = FaultKind::reset_after_bytes, .after_bytes = 64 * 1024},
      {.kind = FaultKind::reset_after_bytes, .after_bytes = 3 << 20},
      {.kind = FaultKind::reset_after_body},
      {.kind = FaultKind::stall, .stall_for = 5s},
      // The server stores the file, then the answer is lost: the next attempt must adopt that copy.
      {.kind = FaultKind::reset_after_body, .store_first = true},
      {.kind = FaultKind::stall, .stall_for = 5s, .store_first = true},
      {.kind = FaultKind::slow, .stall_for = 5s},
      {.kind = FaultKind::status, .status = 429, .headers = {{"Retry-After", "1"}}},
      {.kind = FaultKind::status, .status = 429, .headers = {{"retry-after-ms", "700"}}},
      {.kind = FaultKind::malformed_json},
  };
}

std::string fault_label(const test::RequestRecord& record) {
  std::string label(test::fault_kind_name(record.fault));
  if (record.fault == FaultKind::status || record.fault == FaultKind::early_status) {
    // 0: the client went away (a SIGKILL) before the whole body was read, so nothing was answered.
    label += record.status != 0 ? " " + std::to_string(record.status) : " (client gone)";
  }
  return label;
}

// Every daemon process the soak started and how it ended.
struct DaemonLife {
  int pid = 0;
  fs::path log;
  bool killed_by_us = false;
  bool stopped_by_us = false;  // the final SIGTERM
  std::optional<int> exit_code;
  std::optional<int> signal;
};

class Soak {
 public:
  explicit Soak(Options options) : options_(std::move(options)) {}
  int run();

 private:
  void start_daemon();
  void kill_daemon();
  void reap_unexpected_exit();
  bool converged(std::string& status);
  void check_end_state();
  void classify_duplicates(const std::vector<store::JobWithAttempts>& jobs,
                           const std::vector<test::ReceivedFile>& files,
                           const std::vector<test::RequestRecord>& requests);
  void write_summary();
  void problem(std::string text) { events_.problem(std::move(text)); }

  Options options_;
  fs::path run_;
  fs::path drop_;
  fs::path database_;
  std::unique_ptr<test::FakeApi> api_;
  std::unique_ptr<ChildProcess> daemon_;
  std::vector<DaemonLife> lives_;
  std::vector<Archive> archives_;
  EventLog events_;
  std::atomic<int> written_{0};
  std::atomic<int> enospc_failures_{0};
  std::string enospc_skipped_;
  SteadyTime start_;
  WallTime wall_start_;
  double converged_after_s_ = 0;
  double total_s_ = 0;
  std::map<std::string, std::vector<std::string>> duplicates_;  // reason -> copies
  std::size_t reconciled_ = 0;                                  // attempts that adopted an in-doubt copy
};

void Soak::start_daemon() {
  daemon_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{options_.daemon.string(), "--config", (run_ / "modeldrop.yaml").string()}, run_ / "logs",
      std::map<std::string, std::string>{},
      std::vector<std::string>{"NEBIUS_API_KEY", "CREDENTIALS_DIRECTORY", "NOTIFY_SOCKET", "WATCHDOG_USEC",
                               "JOURNAL_STREAM", "HTTPS_PROXY", "https_proxy"});
  DaemonLife life;
  life.pid = daemon_->pid();
  life.log = run_ / "logs" / ("modeldropd." + std::to_string(lives_.size()) + ".stderr");
  lives_.push_back(life);
}

void Soak::kill_daemon() {
  auto& life = lives_.back();
  life.killed_by_us = true;
  {
    std::lock_guard lock(events_.mutex);
    events_.kills.push_back({life.pid, std::chrono::system_clock::now()});
  }
  daemon_->signal(SIGKILL);
  if (!daemon_->wait(10s)) problem("daemon pid " + std::to_string(life.pid) + " survived SIGKILL for 10 s");
  life.signal = daemon_->terminating_signal();
  if (life.signal != SIGKILL) {
    // It died of something else just before our signal arrived.
    problem("daemon pid " + std::to_string(life.pid) + " ended otherwise than by our SIGKILL (see " +
            life.log.string() + ")");
  }
}

void Soak::reap_unexpected_exit() {
  auto& life = lives_.back();
  (void)daemon_->wait(1s);
  life.signal = daemon_->terminating_signal();
  if (!life.signal) life.exit_code = daemon_->wait(0ms);
  std::string tail = daemon_->stderr_text();
  if (tail.size() > 2000) tail = tail.substr(tail.size() - 2000);
  problem(
      "daemon pid " + std::to_string(life.pid) + " exited on its own (" +
      (life.signal ? "signal " + std::to_string(*life.signal) : "exit " + std::to_string(life.exit_code.value_or(-1))) +
      "); log " + life.log.string() + ", last lines:\n" + tail);
}

bool Soak::converged(std::string& status) {
  if (written_ < options_.archives) {
    status = std::to_string(written_.load()) + "/" + std::to_string(options_.archives) + " written";
  }
  auto store = store::JobStore::open_existing(database_);
  if (!store) {
    status += " (database: " + store.error().message + ")";
    return false;
  }
  auto summary = store->summary();
  if (!summary) return false;
  std::ostringstream states;
  std::int64_t unfinished = 0;
  for (const auto& row : *summary) {
    if (row.jobs > 0) states << " " << store::to_string(row.state) << "=" << row.jobs;
    if (row.state == store::JobState::pending || row.state == store::JobState::uploading) unfinished += row.jobs;
  }
  std::set<std::string> stored;
  for (const auto& file : api_->files()) stored.insert(file.sha256);
  status += " jobs:" + states.str() + "; distinct contents stored: " + std::to_string(stored.size());
  // The writers set an archive's fields before they count it: once all are counted, all are set.
  if (written_ < options_.archives) return false;
  int missing = 0;
  for (const auto& archive : archives_) {
    if (!stored.contains(archive.sha256)) ++missing;
  }
  status += ", archives missing: " + std::to_string(missing);
  return unfinished == 0 && missing == 0;
}

int Soak::run() {
  run_ = fs::absolute(options_.work_dir);
  drop_ = run_ / "drop";
  database_ = run_ / "state" / "jobs.db";
  unmount_leftover(drop_);
  fs::remove_all(run_);
  fs::create_directories(run_ / "logs");
  fs::create_directories(drop_);
  fs::create_directories(run_ / "state");
  fs::create_directories(run_ / "done-b");
  if (!fs::exists(options_.daemon)) {
    std::cerr << "soak: no daemon at " << options_.daemon << "\n";
    return 1;
  }

  TmpfsMount tmpfs(drop_, options_.tmpfs_size);
  if (!tmpfs.mounted()) {
    enospc_skipped_ = tmpfs.skip_reason();
    std::cerr << "\n*** soak: " << enospc_skipped_ << ": THE FILESYSTEM-FULL PHASE IS SKIPPED ***\n\n";
  }
  fs::create_directories(drop_ / "a");
  fs::create_directories(drop_ / "b");

  const auto pki = test::TestPki::generate(run_ / "pki");
  api_ = std::make_unique<test::FakeApi>(
      test::FakeApiOptions{.cert_file = pki.server_cert, .key_file = pki.server_key, .threads = 2});
  api_->set_fault_mix(options_.fault_probability, fault_kinds(), options_.seed);
  {
    std::ofstream token(run_ / "token");
    token << "test-token\n";
  }
  fs::permissions(run_ / "token", fs::perms::owner_read | fs::perms::owner_write);
  {
    std::ofstream config(run_ / "modeldrop.yaml");
    config << config_yaml(api_->base_url(), pki.ca_cert, run_, drop_);
  }

  archives_ = plan_archives(options_.archives, options_.seed, {drop_ / "a", drop_ / "b"},
                            std::chrono::seconds(options_.spread_s));
  start_ = std::chrono::steady_clock::now();
  wall_start_ = std::chrono::system_clock::now();
  const auto deadline = start_ + std::chrono::seconds(options_.time_limit_s) - 30s;  // room to stop and check

  std::atomic<bool> stop_chaos{false};
  std::atomic<bool> stop_writers{false};
  start_daemon();
  std::vector<std::thread> threads;
  constexpr int kWriters = 4;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back(
        [&, w] { run_writer(archives_, w, kWriters, start_, stop_writers, written_, enospc_failures_, events_); });
  }
  threads.emplace_back([&] { run_lock_holder(database_, options_.seed + 1, stop_chaos, events_); });
  if (tmpfs.mounted()) {
    threads.emplace_back([&] {
      run_filler(drop_, start_ + std::chrono::seconds(options_.enospc_at_s),
                 std::chrono::seconds(options_.enospc_for_s), stop_chaos, events_);
    });
  }

  std::mt19937_64 random(options_.seed + 2);
  const auto kill_gap = [&] {
    std::uniform_int_distribution<int> ms(options_.kill_every_s * 2000 / 3, options_.kill_every_s * 4000 / 3);
    return std::chrono::milliseconds(ms(random));
  };
  auto next_kill = std::chrono::steady_clock::now() + kill_gap();
  auto next_check = std::chrono::steady_clock::now() + 2s;
  auto next_progress = std::chrono::steady_clock::now() + 10s;
  bool done = false;
  std::string status;
  while (!done) {
    std::this_thread::sleep_for(100ms);
    const auto now = std::chrono::steady_clock::now();
    if (g_interrupted) {
      problem("interrupted");
      break;
    }
    if (now >= deadline) {
      problem("not converged within " + std::to_string(options_.time_limit_s) + " s: " + status);
      break;
    }
    if (!daemon_->running()) {
      reap_unexpected_exit();
      start_daemon();
    } else if (now >= next_kill) {
      kill_daemon();
      std::this_thread::sleep_for(std::chrono::milliseconds(std::uniform_int_distribution<int>(0, 1000)(random)));
      start_daemon();
      next_kill = std::chrono::steady_clock::now() + kill_gap();
    }
    if (now >= next_check) {
      next_check = now + 2s;
      status.clear();
      done = converged(status);
    }
    if (now >= next_progress || done) {
      next_progress = now + 10s;
      std::cerr << "soak: " << static_cast<int>(std::chrono::duration<double>(now - start_).count()) << " s: " << status
                << "; kills " << events_.kills.size() << "\n";
    }
  }
  converged_after_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  stop_chaos = true;
  stop_writers = true;
  for (auto& thread : threads) thread.join();

  // The last after-actions (delete, move) follow the last success within moments.
  const auto leftovers = [&] {
    int count = 0;
    for (const auto& dir : {drop_ / "a", drop_ / "b"}) {
      for (const auto& entry : fs::directory_iterator(dir)) {
        if (!entry.path().filename().string().starts_with(".")) ++count;
      }
    }
    return count;
  };
  if (done) (void)test::wait_until([&] { return leftovers() == 0; }, 10s);

  // The final stop: SIGTERM, exit 0 within 10 s (docs/files.md).
  if (daemon_->running()) {
    lives_.back().stopped_by_us = true;
    daemon_->signal(SIGTERM);
    const auto code = daemon_->wait(15s);
    lives_.back().exit_code = code;
    lives_.back().signal = daemon_->terminating_signal();
    if (!code || *code != 0) {
      problem("the final SIGTERM did not end the daemon with exit 0 (" +
              (code ? "exit " + std::to_string(*code) : std::string("still running after 15 s")) + ")");
    }
  } else {
    reap_unexpected_exit();
  }
  daemon_.reset();
  if (done) check_end_state();
  total_s_ = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  write_summary();
  // Free the disk: the archives moved to done-b are checked; logs, database and summary stay.
  std::error_code ignored;
  fs::remove_all(run_ / "done-b", ignored);
  tmpfs.unmount();
  return events_.problems.empty() ? 0 : 1;
}

void Soak::check_end_state() {
  const auto files = api_->files();
  const auto requests = api_->requests();
  auto store = store::JobStore::open_existing(database_);
  if (!store) {
    problem("cannot open the database at the end: " + store.error().message);
    return;
  }
  auto listed = store->list_jobs({}, 1000000);
  if (!listed) {
    problem("cannot list jobs: " + listed.error().message);
    return;
  }
  std::vector<store::JobWithAttempts> jobs;
  for (const auto& job : *listed) {
    auto full = store->job_with_attempts(job.id);
    if (full && *full) jobs.push_back(std::move(**full));
  }

  // 1. Every job succeeded.
  for (const auto& [job, attempts] : jobs) {
    if (job.state != store::JobState::succeeded) {
      problem("job " + std::to_string(job.id) + " (" + job.path.filename().string() + ") ended " +
              std::string(store::to_string(job.state)) + ": " + job.last_error.value_or(""));
    }
  }
  // 2. Every archive: one succeeded job for its path with its content, and that content on the server.
  std::map<std::string, const store::Job*> job_by_path;
  for (const auto& entry : jobs) job_by_path[entry.job.path.string()] = &entry.job;
  std::multimap<std::string, const test::ReceivedFile*> files_by_sha;
  for (const auto& file : files) files_by_sha.emplace(file.sha256, &file);
  std::set<std::string> archive_shas;
  for (const auto& archive : archives_) {
    archive_shas.insert(archive.sha256);
    const auto path = (archive.dir / archive.name).string();
    const auto stored = files_by_sha.equal_range(archive.sha256);
    if (stored.first == stored.second) problem(archive.name + ": its sha256 is not among the stored files");
    for (auto it = stored.first; it != stored.second; ++it) {
      if (it->second->bytes != archive.size || it->second->filename != archive.name) {
        problem(archive.name + ": a stored copy has " + std::to_string(it->second->bytes) + " bytes named " +
                it->second->filename);
      }
    }
    const auto job = job_by_path.find(path);
    if (job == job_by_path.end()) {
      problem(archive.name + ": no job");
      continue;
    }
    if (job->second->sha256 != archive.sha256) problem(archive.name + ": the job's sha256 differs from the archive's");
    bool recorded_copy_exists = false;
    for (auto it = stored.first; it != stored.second; ++it)
      recorded_copy_exists |= it->second->id == job->second->file_id;
    if (!recorded_copy_exists) problem(archive.name + ": the job's file_id is not a stored copy of the archive");
  }
  if (jobs.size() != archives_.size()) {
    problem(std::to_string(jobs.size()) + " jobs for " + std::to_string(archives_.size()) + " archives");
  }
  for (const auto& file : files) {
    if (!archive_shas.contains(file.sha256)) problem("stored " + file.filename + " has content no writer completed");
  }
  // 3. The drop directories are empty (deleted, or moved to done-b with every B archive there).
  for (const auto& dir : {drop_ / "a", drop_ / "b"}) {
    for (const auto& entry : fs::directory_iterator(dir)) {
      if (entry.path().filename().string().starts_with(".")) continue;
      const auto job = job_by_path.find(entry.path().string());
      problem("left in the drop directory: " + entry.path().string() +
              (job != job_by_path.end() ? " (job " + std::to_string(job->second->id) + ", " +
                                              std::string(store::to_string(job->second->state)) + ")"
                                        : ""));
    }
  }
  std::set<std::string> b_names;
  for (const auto& archive : archives_) {
    if (archive.dir.filename() == "b") b_names.insert(archive.name);
  }
  for (const auto& entry : fs::directory_iterator(run_ / "done-b")) {
    // A second copy (name.1.tar) or a temporary copy left by a kill during a cross-device move.
    if (!b_names.contains(entry.path().filename().string())) problem("unexpected in done-b: " + entry.path().string());
  }
  for (const auto& archive : archives_) {
    if (archive.dir.filename() != "b") continue;
    const auto moved = run_ / "done-b" / archive.name;
    std::error_code ec;
    if (fs::file_size(moved, ec) != archive.size) problem(archive.name + ": not in done-b with its size");
  }
  // 4. Every daemon process ended by our hand: SIGKILL, or the final SIGTERM with exit 0.
  for (const auto& life : lives_) {
    const bool expected =
        (life.killed_by_us && life.signal == SIGKILL) || (life.stopped_by_us && life.exit_code == 0 && !life.signal);
    if (!expected) problem("daemon pid " + std::to_string(life.pid) + " did not end by our hand");
  }
  classify_duplicates(jobs, files, requests);
}

void Soak::classify_duplicates(const std::vector<store::JobWithAttempts>& jobs,
                               const std::vector<test::ReceivedFile>& files,
                               const std::vector<test::RequestRecord>& requests) {
  std::map<std::string, const store::JobWithAttempts*> job_by_sha;
  for (const auto& entry : jobs) {
    if (entry.job.sha256) job_by_sha[*entry.job.sha256] = &entry;
    for (const auto& attempt : entry.attempts)
      reconciled_ += attempt.outcome == store::AttemptOutcome::reconciled ? 1U : 0U;
  }
  std::map<std::string, const test::RequestRecord*> request_by_file;
  for (const auto& record : requests) {
    if (!record.file_id.empty()) request_by_file[record.file_id] = &record;
  }
  std::string logs;
  for (const auto& life : lives_) logs += test::read_file(life.log);
  std::vector<EventLog::Kill> kills;
  {
    std::lock_guard lock(events_.mutex);
    kills = events_.kills;
  }
  for (const auto& file : files) {
    const auto job = job_by_sha.find(file.sha256);
    if (job == job_by_sha.end() || job->second->job.file_id == file.id) continue;  // the recorded copy
    const auto& [the_job, attempts] = *job->second;
    const std::string copy = file.filename + " (" + file.id + ", job " + std::to_string(the_job.id) + ")";
    const auto record = request_by_file.find(file.id);
    if (record == request_by_file.end()) {
      problem("duplicate " + copy + ": no request stored it");
      continue;
    }
    // Every copy beyond the recorded one is a failure: in-doubt attempts are reconciled. The
    // label says what the stored copy's request went through, to find why it was not adopted.
    problem("duplicate " + copy + " (its request: " + fault_label(*record->second) + ")");
    if (record->second->fault != FaultKind::none) {
      duplicates_["after a fault (" + fault_label(*record->second) + ")"].push_back(copy);
      continue;
    }
    // A clean 200 the daemon did not record: it was killed between the server storing the file and
    // the commit of the answer. The fake's created_at has whole seconds, and the kill may land while
    // the server still parses the last bytes: a second of slack before, 12 s after (lock waits).
    const auto stored_at = WallTime(std::chrono::seconds(file.created_at));
    const EventLog::Kill* kill = nullptr;
    for (const auto& k : kills) {
      const double after = seconds_between(stored_at, k.at);
      if (after >= -1 && after < 12 && kill == nullptr) kill = &k;
    }
    const bool aborted_attempt = std::any_of(attempts.begin(), attempts.end(), [](const store::Attempt& a) {
      return a.outcome == store::AttemptOutcome::aborted;
    });
    const bool logged = logs.find("uploaded as " + file.id) != std::string::npos;
    if (kill != nullptr && aborted_attempt) {
      duplicates_[std::string("SIGKILL after the server stored it, before the daemon committed the answer") +
                  (logged ? " (the success was logged, not yet committed)" : " (the answer was not yet read)")]
          .push_back(copy + ", killed pid " + std::to_string(kill->pid));
      continue;
    }
    duplicates_[std::string("a clean 200, no kill near it") + (logged ? " (the daemon logged the success)" : "")]
        .push_back(copy);
  }
}

void Soak::write_summary() {
  std::ostringstream out;
  std::uint64_t bytes = 0;
  std::uint64_t largest = 0;
  std::uint64_t smallest = UINT64_MAX;
  int careful = 0;
  for (const auto& archive : archives_) {
    bytes += archive.size;
    largest = std::max(largest, archive.size);
    smallest = std::min(smallest, archive.size);
    careful += archive.careful ? 1 : 0;
  }
  const auto requests = api_->requests();
  std::map<std::string, int> faults;
  int uploads = 0;
  std::uint64_t body_bytes = 0;
  for (const auto& record : requests) {
    if (record.target.rfind("/v0/models/upload", 0) != 0) continue;
    ++uploads;
    body_bytes += record.body_bytes_read;
    if (record.fault != FaultKind::none) ++faults[fault_label(record)];
  }
  std::lock_guard lock(events_.mutex);
  double locked_s = 0;
  double longest_lock = 0;
  for (const auto& period : events_.lock_periods) {
    locked_s += seconds_between(period.from, period.to);
    longest_lock = std::max(longest_lock, seconds_between(period.from, period.to));
  }
  out << "modeldrop chaos soak, seed " << options_.seed << ": " << (events_.problems.empty() ? "PASSED" : "FAILED")
      << (enospc_skipped_.empty() ? "" : " (WITHOUT the filesystem-full phase)") << "\n";
  out << "archives: " << written_.load() << "/" << archives_.size() << " written (" << careful << " temp+rename, "
      << archives_.size() - static_cast<std::size_t>(careful) << " in place), " << format_bytes(bytes) << ", "
      << smallest << " B .. " << format_bytes(largest) << "\n";
  out << "daemon: " << lives_.size() << " processes, " << events_.kills.size() << " SIGKILLs (every "
      << options_.kill_every_s * 2 / 3 << "-" << options_.kill_every_s * 4 / 3 << " s), final SIGTERM\n";
  out << "outside write lock: " << events_.lock_periods.size() << " periods, " << static_cast<int>(locked_s)
      << " s in all, longest " << std::to_string(longest_lock).substr(0, 4) << " s\n";
  if (!enospc_skipped_.empty()) {
    out << "filesystem full: SKIPPED (" << enospc_skipped_ << ")\n";
  } else {
    for (const auto& phase : events_.enospc_phases) {
      out << "filesystem full: " << std::to_string(seconds_between(phase.from, phase.to)).substr(0, 4) << " s from +"
          << static_cast<int>(seconds_between(wall_start_, phase.from)) << " s on a " << options_.tmpfs_size
          << " tmpfs; " << enospc_failures_.load() << " writes failed with ENOSPC and were redone\n";
    }
  }
  out << "upload requests: " << uploads << " (" << format_bytes(body_bytes) << " of body read), faults injected ("
      << options_.fault_probability * 100 << " % mix):";
  int injected = 0;
  for (const auto& [label, count] : faults) {
    out << " " << label << "=" << count;
    injected += count;
  }
  out << " (total " << injected << ")\n";
  const auto files = api_->files();
  std::size_t copies = 0;
  for (const auto& [reason, list] : duplicates_) copies += list.size();
  out << "server copies: " << files.size() << " for " << archives_.size()
      << " archives; copies beyond one per archive: " << copies
      << "; attempts reconciled with a stored copy: " << reconciled_ << "\n";
  for (const auto& [reason, list] : duplicates_) {
    out << "  " << list.size() << " x " << reason << "\n";
    for (const auto& copy : list) out << "      " << copy << "\n";
  }
  out << "time: converged after " << static_cast<int>(converged_after_s_) << " s (writers spread over "
      << options_.spread_s << " s), " << static_cast<int>(total_s_) << " s in all (limit " << options_.time_limit_s
      << " s)\n";
  if (!events_.problems.empty()) {
    out << "problems (" << events_.problems.size() << "):\n";
    for (const auto& p : events_.problems) out << "  - " << p << "\n";
  }
  out << "logs and database: " << run_.string() << "\n";
  std::ofstream(run_ / "summary.txt") << out.str();
  std::cout << out.str();
}

int run(int argc, char** argv) {
  Options options;
  CLI::App cli{"modeldrop-soak: the chaos soak (tests/soak/README.md)", "modeldrop-soak"};
  cli.add_option("--work-dir", options.work_dir, "run directory (emptied first; logs and summary stay)")
      ->capture_default_str();
  cli.add_option("--daemon", options.daemon, "modeldropd to run")->capture_default_str();
  cli.add_option("--archives", options.archives)->capture_default_str();
  cli.add_option("--seed", options.seed)->capture_default_str();
  cli.add_option("--fault-probability", options.fault_probability)->capture_default_str();
  cli.add_option("--time-limit", options.time_limit_s, "seconds")->capture_default_str();
  cli.add_option("--spread", options.spread_s, "seconds over which archives are written")->capture_default_str();
  cli.add_option("--kill-every", options.kill_every_s, "mean seconds between SIGKILLs")->capture_default_str();
  cli.add_option("--enospc-at", options.enospc_at_s)->capture_default_str();
  cli.add_option("--enospc-for", options.enospc_for_s)->capture_default_str();
  cli.add_option("--tmpfs-size", options.tmpfs_size)->capture_default_str();
  CLI11_PARSE(cli, argc, argv);
  std::signal(SIGPIPE, SIG_IGN);
  std::signal(SIGINT, [](int) { g_interrupted = true; });
  std::signal(SIGTERM, [](int) { g_interrupted = true; });
  return Soak(options).run();
}

}  // namespace
}  // namespace modeldrop::soak

int main(int argc, char** argv) {
  try {
    return modeldrop::soak::run(argc, argv);
  } catch (const std::exception& e) {
    std::cerr << "modeldrop-soak: fatal: " << e.what() << "\n";
    return 1;
  }
}
