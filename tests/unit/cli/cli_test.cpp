// The real `modeldrop` binary on fixture databases (built here with the job store): output,
// --json shapes and exit codes of docs/cli.md.
#include "common/version.hpp"
#include "store/daemon_lock.hpp"
#include "store/job_store.hpp"
#include "support/child_process.hpp"
#include "support/run_process.hpp"
#include "support/temp_dir.hpp"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <boost/json.hpp>

#include <gtest/gtest.h>

#include <csignal>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

namespace modeldrop {
namespace {

using namespace std::chrono_literals;
using store::AttemptOutcome;
using store::AttemptReport;
using store::JobId;
using store::JobState;
using store::JobStore;
using test::ProcessOptions;
using test::ProcessResult;
using test::run_process;
using test::TempDir;

template <class T>
T must(Result<T> result) {
  if (!result) throw std::runtime_error("unexpected error: " + result.error().message);
  return std::move(*result);
}

void must(Result<void> result) {
  if (!result) throw std::runtime_error("unexpected error: " + result.error().message);
}

bool contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

const std::vector<std::string> kJobKeys{"id",
                                        "path",
                                        "current_path",
                                        "watch_dir",
                                        "project_id",
                                        "size_bytes",
                                        "sha256",
                                        "state",
                                        "attempts",
                                        "next_attempt_at",
                                        "bytes_sent",
                                        "file_id",
                                        "file_status",
                                        "file_status_details",
                                        "http_status",
                                        "last_error",
                                        "created_at",
                                        "updated_at",
                                        "finished_at",
                                        "duplicate_of",
                                        "model_name",
                                        "model_base_model",
                                        "model_description",
                                        "model_status",
                                        "model_status_reason",
                                        "model_checked_at",
                                        "sidecar_path"};

std::set<std::string> keys_of(const boost::json::object& object) {
  std::set<std::string> keys;
  for (const auto& entry : object) keys.insert(std::string(entry.key()));
  return keys;
}

class CliTest : public ::testing::Test {
 protected:
  void SetUp() override { store_.emplace(must(JobStore::open_for_daemon(db()))); }

  [[nodiscard]] std::filesystem::path db() const { return dir_ / "state" / "jobs.db"; }
  JobStore& store() { return *store_; }

  // modeldrop with `args`, on the fixture database unless the args say otherwise.
  ProcessResult modeldrop(std::vector<std::string> args, bool with_db = true) {
    std::vector<std::string> argv{MODELDROP_CLI_PATH};
    argv.insert(argv.end(), args.begin(), args.end());
    if (with_db) {
      argv.push_back("--db");
      argv.push_back(db().string());
    }
    ProcessOptions options;
    options.env_unset = {"MODELDROP_CONFIG"};
    options.timeout = std::chrono::seconds(30);
    return run_process(argv, options);
  }

  boost::json::value json_of(const ProcessResult& result) {
    EXPECT_EQ(result.exit_code, 0) << result.err;
    boost::system::error_code ec;
    auto value = boost::json::parse(result.out, ec);
    EXPECT_FALSE(ec) << "not JSON: " << result.out;
    return value;
  }

  static WallTime now() { return WallClock::now(); }

  store::NewJob new_job(const std::string& name, std::uint64_t inode, std::uint64_t size = 1000) {
    store::NewJob job;
    job.path = "/spool/in/" + name;
    job.watch_dir = "/spool/in";
    job.file = {1, inode, size, 1};
    return job;
  }

  JobId add(const std::string& name, std::uint64_t inode, std::uint64_t size = 1000) {
    return must(store().enqueue(new_job(name, inode, size), now())).job;
  }

  // Claimed, with an attempt open.
  JobId uploading(const std::string& name, std::uint64_t inode, std::uint64_t size = 1000) {
    const JobId id = add(name, inode, size);
    auto claimed = must(store().claim_next(now()));
    EXPECT_EQ(claimed->id, id);
    must(store().begin_attempt(id, now()));
    return id;
  }

  JobId finished(const std::string& name, std::uint64_t inode, JobState state) {
    const JobId id = uploading(name, inode);
    AttemptReport report;
    report.job = id;
    report.bytes_sent = 1000;
    report.next_state = state;
    if (state == JobState::succeeded) {
      report.outcome = AttemptOutcome::succeeded;
      report.http_status = 200;
      report.file_id = "file-" + name;
      report.file_status = "uploaded";
    } else {
      report.outcome = AttemptOutcome::failed;
      report.http_status = 422;
      report.last_error = "HTTP 422: archive rejected";
      report.error = "HTTP 422: archive rejected";
    }
    must(store().finish_attempt(report, now()));
    return id;
  }

  JobState state_of(JobId id) { return must(store().find_job(id))->state; }

  // This process plays a running daemon: its row and its lock.
  store::DaemonLock play_daemon() {
    auto lock = must(store::DaemonLock::try_acquire(db()));
    EXPECT_TRUE(lock);
    must(store().register_daemon(::getpid(), "0.1.0", now() - 3s));
    return std::move(*lock);
  }

  static std::vector<std::string> lines_of(const std::string& text) {
    std::vector<std::string> lines;
    std::stringstream stream(text);
    for (std::string line; std::getline(stream, line);) lines.push_back(line);
    return lines;
  }

  TempDir dir_;
  std::optional<JobStore> store_;
};

// ---- Databases that cannot be used: exit 69

TEST(CliDatabase, MissingDatabaseIsExit69AndNothingIsCreated) {
  TempDir dir;
  const auto result =
      run_process({MODELDROP_CLI_PATH, "status", "--db", (dir / "nowhere" / "jobs.db").string()}, ProcessOptions{});
  EXPECT_EQ(result.exit_code, 69);
  EXPECT_TRUE(contains(result.err, "no database at")) << result.err;
  EXPECT_TRUE(contains(result.err, "modeldropd creates it")) << result.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "nowhere"));
}

TEST(CliDatabase, AFileThatIsNotSqliteIsExit69) {
  TempDir dir;
  const auto file = dir.write("jobs.db", "this is not a database, just text that is long enough for a header\n");
  const auto result = run_process({MODELDROP_CLI_PATH, "jobs", "--db", file.string()});
  EXPECT_EQ(result.exit_code, 69);
  EXPECT_TRUE(contains(result.err, "is not a SQLite database")) << result.err;
}

TEST(CliDatabase, ADatabaseFromANewerModeldropIsExit69) {
  TempDir dir;
  {
    auto store = must(JobStore::open_for_daemon(dir / "jobs.db"));
    must(store.connection().execute("PRAGMA user_version = 999"));
  }
  const auto result = run_process({MODELDROP_CLI_PATH, "status", "--db", (dir / "jobs.db").string()});
  EXPECT_EQ(result.exit_code, 69);
  EXPECT_TRUE(contains(result.err, "newer than this modeldrop")) << result.err;
}

// ---- The database path: --db, or the config's `database`

TEST_F(CliTest, TheDatabaseComesFromTheConfigWithoutDb) {
  add("a.zip", 1);
  const auto config = dir_.write("modeldrop.yaml", "database: state/jobs.db\n");  // relative to the config
  auto result = modeldrop({"jobs", "--config", config.string()}, false);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(contains(result.out, "/spool/in/a.zip"));
  // $MODELDROP_CONFIG when --config is not given.
  ProcessOptions options;
  options.env_set = {{"MODELDROP_CONFIG", config.string()}};
  result = run_process({MODELDROP_CLI_PATH, "jobs"}, options);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(contains(result.out, "/spool/in/a.zip"));
}

TEST_F(CliTest, AConfigThatDoesNotLoadIsExit78WithItsProblems) {
  const auto config = dir_.write("bad.yaml", "upload:\n  sessions: many\n");
  const auto result = modeldrop({"status", "--config", config.string()}, false);
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_TRUE(contains(result.err, "bad.yaml:2: upload.sessions: must be an integer")) << result.err;
}

TEST_F(CliTest, OptionsMayComeBeforeOrAfterTheCommand) {
  add("a.zip", 1);
  const auto before = run_process({MODELDROP_CLI_PATH, "--db", db().string(), "jobs"});
  const auto after = run_process({MODELDROP_CLI_PATH, "jobs", "--db", db().string()});
  EXPECT_EQ(before.exit_code, 0) << before.err;
  EXPECT_EQ(after.exit_code, 0) << after.err;
  EXPECT_EQ(before.out, after.out);
}

// ---- Usage: exit 2

TEST_F(CliTest, UsageErrorsAreExit2) {
  const std::vector<std::vector<std::string>> bad = {
      {},
      {"frobnicate"},
      {"show"},
      {"show", "abc"},
      {"jobs", "--state", "done"},
      {"jobs", "--limit", "0"},
      {"retry"},
      {"retry", "1", "--failed"},
      {"cancel"},
      {"add"},
      {"add", "x.zip", "--project", ""},
      {"add", "x.zip", "--validate", "zip"},
      {"add", "x.zip", "--model-name", "n"},  // a name needs --register-base-model
      {"add", "x.zip", "--register-base-model", "b", "--model-name", "{version}"},
      {"add", "x.zip", "--register-base-model", ""},
      {"status", "--config", "c.yaml"},  // with --db: one or the other
  };
  for (const auto& args : bad) {
    const auto result = modeldrop(args);
    std::string joined;
    for (const auto& arg : args) joined += arg + " ";
    EXPECT_EQ(result.exit_code, 2) << joined << "\n" << result.err;
  }
}

TEST(CliUsage, VersionAndHelp) {
  auto result = run_process({MODELDROP_CLI_PATH, "--version"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, std::string("modeldrop ") + kVersion + "\n");
  result = run_process({MODELDROP_CLI_PATH, "--help"});
  EXPECT_EQ(result.exit_code, 0);
  for (const auto* command : {"status", "jobs", "show", "retry", "cancel", "add", "pause", "resume"}) {
    EXPECT_TRUE(contains(result.out, command)) << command;
  }
}

// ---- status

TEST_F(CliTest, StatusShowsTheDaemonTheStatesAndTheRate) {
  auto daemon = play_daemon();
  must(store().heartbeat(now() - 2s, 400.0));  // the daemon's own figure is not what status shows
  must(store().set_held_reason(std::string("rate limited (HTTP 429) until 12:00:05")));
  finished("b.zip", 2, JobState::failed);
  const JobId up = uploading("c.zip", 3, 10 * 1024 * 1024);
  const WallTime t = now();  // one reading: the rate must not depend on how long the calls take
  must(store().record_progress(up, 0, t - 2s));
  must(store().record_progress(up, 3 * 1024 * 1024, t - 1s));  // 3 MiB/s, as `jobs` shows it
  add("a.zip", 1, 2048);
  const auto result = modeldrop({"status"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(contains(result.out, "running (pid " + std::to_string(::getpid()) + ", version 0.1.0, heartbeat "))
      << result.out;
  EXPECT_TRUE(contains(result.out, "held: rate limited (HTTP 429)")) << result.out;
  EXPECT_TRUE(contains(result.out, "\nrate:     3.0 MiB/s\n")) << result.out;
  EXPECT_TRUE(contains(modeldrop({"jobs"}).out, "3.0 MiB/s")) << "status and jobs agree";
  EXPECT_TRUE(contains(result.out, "pending            1     2.0 KiB")) << result.out;
  EXPECT_TRUE(contains(result.out, "failed             1")) << result.out;
  EXPECT_TRUE(contains(result.out, "cancelled          0         0 B")) << result.out;
}

TEST_F(CliTest, StatusJsonHasTheContractShape) {
  auto lock = must(store::DaemonLock::try_acquire(db()));
  ASSERT_TRUE(lock);
  must(store().register_daemon(::getpid(), "0.1.0", now() - 10s));
  must(store().heartbeat(now() - 4s, 1000.0));
  const JobId up = uploading("u.zip", 3, 100'000);
  const WallTime t = now();  // one reading: the rate must not depend on how long the calls take
  must(store().record_progress(up, 0, t - 2s));
  must(store().record_progress(up, 2000, t - 1s));  // 2000 B/s
  add("a.zip", 1, 100);
  add("b.zip", 2, 250);
  must(store().pause(now()));
  const auto value = json_of(modeldrop({"status", "--json"}));
  const auto& o = value.as_object();
  EXPECT_EQ(keys_of(o), (std::set<std::string>{"daemon", "paused", "states", "upload_rate_bytes_per_s"}));
  const auto& daemon = o.at("daemon").as_object();
  EXPECT_EQ(keys_of(daemon), (std::set<std::string>{"running", "pid", "version", "heartbeat_age_s", "held_reason"}));
  EXPECT_EQ(daemon.at("running"), true);
  EXPECT_EQ(daemon.at("pid").as_int64(), ::getpid());
  EXPECT_EQ(daemon.at("version"), "0.1.0");
  EXPECT_GE(daemon.at("heartbeat_age_s").as_int64(), 3);
  EXPECT_LE(daemon.at("heartbeat_age_s").as_int64(), 60);
  EXPECT_TRUE(daemon.at("held_reason").is_null());
  EXPECT_EQ(o.at("paused"), true);
  EXPECT_EQ(o.at("upload_rate_bytes_per_s").to_number<std::int64_t>(), 2000);
  const auto& states = o.at("states").as_object();
  EXPECT_EQ(keys_of(states), (std::set<std::string>{"pending", "uploading", "succeeded", "failed", "cancelled"}));
  EXPECT_EQ(states.at("pending").at("jobs").to_number<std::int64_t>(), 2);
  EXPECT_EQ(states.at("pending").at("bytes").to_number<std::int64_t>(), 350);
  EXPECT_EQ(states.at("failed").at("jobs").to_number<std::int64_t>(), 0);
  EXPECT_EQ(states.at("failed").at("bytes").to_number<std::int64_t>(), 0);
}

TEST_F(CliTest, StatusWithoutADaemonSaysSo) {
  // A row left by a daemon that died: its pid is not alive.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);
  must(store().register_daemon(child, "0.0.1", now() - 1h));
  auto result = modeldrop({"status"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(contains(result.out, "not running (pid " + std::to_string(child) + " last seen")) << result.out;
  const auto value = json_of(modeldrop({"status", "--json"}));
  EXPECT_EQ(value.at("daemon").at("running"), false);
  EXPECT_TRUE(value.at("daemon").at("pid").is_null());
  EXPECT_EQ(value.at("upload_rate_bytes_per_s").to_number<std::int64_t>(), 0);
}

TEST_F(CliTest, StatusIsNotFooledByAPidReusedAfterAReboot) {
  // The row names a live process (this one) that holds no daemon lock, as after a reboot
  // when the old daemon's pid went to something else.
  must(store().register_daemon(::getpid(), "0.0.1", now() - 1h));
  auto result = modeldrop({"status"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(contains(result.out, "not running (pid " + std::to_string(::getpid()) + " last seen")) << result.out;
  // The same row with the lock held is a running daemon.
  auto lock = must(store::DaemonLock::try_acquire(db()));
  ASSERT_TRUE(lock);
  EXPECT_TRUE(contains(modeldrop({"status"}).out, "running (pid " + std::to_string(::getpid()) + ", version 0.0.1"));
}

// ---- jobs

TEST_F(CliTest, JobsIsAnAlignedTableNewestFirstWithProgressForUploads) {
  auto daemon = play_daemon();
  finished("done.zip", 1, JobState::succeeded);
  const JobId up = uploading("big.tar.gz", 2, 10 * 1024 * 1024);
  const WallTime t = now();  // one reading: the rate must not depend on how long the calls take
  must(store().record_progress(up, 0, t - 2s));
  must(store().record_progress(up, 4 * 1024 * 1024, t - 1s));  // 4 MiB/s, 40%
  store::NewJob waiting = new_job("later.zip", 3);
  waiting.next_attempt_at = now() + 90s;
  const JobId later = must(store().enqueue(waiting, now())).job;

  const auto result = modeldrop({"jobs"});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  std::vector<std::string> lines;
  std::stringstream stream(result.out);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  ASSERT_EQ(lines.size(), 4u) << result.out;
  EXPECT_TRUE(lines[0].starts_with("ID  STATE")) << result.out;
  EXPECT_TRUE(contains(lines[1], " " + std::to_string(later) + "  pending")) << result.out;
  EXPECT_TRUE(contains(lines[1], "next attempt in 1m")) << result.out;
  EXPECT_TRUE(contains(lines[2], "uploading")) << result.out;
  EXPECT_TRUE(contains(lines[2], "[########------------]  40%  4.0 MiB/s  ETA 2s")) << result.out;
  EXPECT_TRUE(contains(lines[3], "succeeded")) << result.out;
  EXPECT_TRUE(contains(lines[3], "file-done.zip")) << result.out;
  // Aligned: every row's path starts in the same column.
  const auto path_column = lines[0].find("PATH");
  EXPECT_EQ(lines[1].find("/spool/in/later.zip"), path_column) << result.out;
  EXPECT_EQ(lines[2].find("/spool/in/big.tar.gz"), path_column) << result.out;
  EXPECT_EQ(lines[3].find("/spool/in/done.zip"), path_column) << result.out;
}

TEST_F(CliTest, JobsFiltersByStateAndLimits) {
  const JobId failed = finished("f.zip", 1, JobState::failed);
  const JobId ok = finished("s.zip", 2, JobState::succeeded);
  add("p1.zip", 3);
  add("p2.zip", 4);
  auto value = json_of(modeldrop({"jobs", "--json", "--state", "failed", "--state", "succeeded"}));
  ASSERT_EQ(value.as_array().size(), 2u);
  EXPECT_EQ(value.as_array()[0].at("id").as_int64(), ok);
  EXPECT_EQ(value.as_array()[1].at("id").as_int64(), failed);
  value = json_of(modeldrop({"jobs", "--json", "--limit", "3"}));
  EXPECT_EQ(value.as_array().size(), 3u);
  const auto empty = modeldrop({"jobs", "--state", "cancelled"});
  EXPECT_EQ(empty.exit_code, 0);
  EXPECT_EQ(empty.out, "no jobs\n");
  EXPECT_EQ(json_of(modeldrop({"jobs", "--state", "cancelled", "--json"})).as_array().size(), 0u);
}

TEST_F(CliTest, JobsJsonIsKeyedByTheContractColumns) {
  store::NewJob job = new_job("a.zip", 1, 4096);
  job.project_id = "proj-7";
  const JobId id = must(store().enqueue(job, now())).job;
  const auto value = json_of(modeldrop({"jobs", "--json"}));
  ASSERT_EQ(value.as_array().size(), 1u);
  const auto& o = value.as_array()[0].as_object();
  EXPECT_EQ(keys_of(o), std::set<std::string>(kJobKeys.begin(), kJobKeys.end()));
  EXPECT_EQ(o.at("id").as_int64(), id);
  EXPECT_EQ(o.at("path"), "/spool/in/a.zip");
  EXPECT_EQ(o.at("watch_dir"), "/spool/in");
  EXPECT_EQ(o.at("project_id"), "proj-7");
  EXPECT_EQ(o.at("size_bytes").to_number<std::int64_t>(), 4096);
  EXPECT_EQ(o.at("state"), "pending");
  EXPECT_EQ(o.at("attempts").to_number<std::int64_t>(), 0);
  EXPECT_TRUE(o.at("sha256").is_null());
  EXPECT_TRUE(o.at("next_attempt_at").is_null());
  EXPECT_TRUE(o.at("finished_at").is_null());
  EXPECT_TRUE(parse_timestamp(o.at("created_at").as_string().c_str()));
}

TEST_F(CliTest, PathsThatAreNotUtf8AppearWithReplacementCharacters) {
  store::NewJob job = new_job("caf\xe9.zip", 1);  // Latin-1 é
  must(store().enqueue(job, now()));
  const auto value = json_of(modeldrop({"jobs", "--json"}));
  EXPECT_EQ(value.as_array()[0].at("path"), "/spool/in/caf\xEF\xBF\xBD.zip");
  const auto table = modeldrop({"jobs"});
  EXPECT_TRUE(contains(table.out, "/spool/in/caf\xEF\xBF\xBD.zip")) << table.out;
}

// ---- show

TEST_F(CliTest, ShowPrintsTheJobAndItsAttempts) {
  auto daemon = play_daemon();
  const JobId id = uploading("a.zip", 1);
  AttemptReport retry;
  retry.job = id;
  retry.outcome = AttemptOutcome::retry;
  retry.http_status = 503;
  retry.bytes_sent = 300;
  retry.next_state = JobState::pending;
  retry.error = "HTTP 503: try later";
  retry.last_error = "HTTP 503: try later";
  must(store().finish_attempt(retry, now()));
  must(store().claim_next(now()));
  must(store().begin_attempt(id, now()));

  const auto result = modeldrop({"show", std::to_string(id)});
  ASSERT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(contains(result.out, "job " + std::to_string(id) + "\n")) << result.out;
  EXPECT_TRUE(contains(result.out, "state:               uploading")) << result.out;
  EXPECT_TRUE(contains(result.out, "last error:          HTTP 503: try later")) << result.out;
  EXPECT_TRUE(contains(result.out, "retry")) << result.out;
  EXPECT_TRUE(contains(result.out, "running")) << result.out;

  const auto value = json_of(modeldrop({"show", std::to_string(id), "--json"}));
  auto expected_keys = std::set<std::string>(kJobKeys.begin(), kJobKeys.end());
  expected_keys.insert("attempt_history");
  EXPECT_EQ(keys_of(value.as_object()), expected_keys);
  const auto& history = value.at("attempt_history").as_array();
  ASSERT_EQ(history.size(), 2u);
  EXPECT_EQ(keys_of(history[0].as_object()), (std::set<std::string>{"job_id", "attempt", "started_at", "finished_at",
                                                                    "http_status", "bytes_sent", "outcome", "error"}));
  EXPECT_EQ(history[0].at("attempt").as_int64(), 1);
  EXPECT_EQ(history[0].at("outcome"), "retry");
  EXPECT_EQ(history[0].at("http_status").as_int64(), 503);
  EXPECT_EQ(history[0].at("bytes_sent").to_number<std::int64_t>(), 300);
  EXPECT_EQ(history[1].at("attempt").as_int64(), 2);
  EXPECT_TRUE(history[1].at("outcome").is_null());
  EXPECT_TRUE(history[1].at("finished_at").is_null());
}

TEST_F(CliTest, JobsShowAndJsonSayHowFarTheModelGot) {
  store::NewJob registering = new_job("lora.zip", 1);
  registering.model = store::ModelRequest{"my-lora", "meta-llama/Llama-3.1-8B", "nightly"};
  registering.sidecar_path = "/spool/in/lora.zip.yaml";
  const JobId id = must(store().enqueue(registering, now())).job;
  auto claimed = must(store().claim_next(now()));
  must(store().begin_attempt(id, now()));
  AttemptReport report;
  report.job = id;
  report.outcome = AttemptOutcome::succeeded;
  report.http_status = 200;
  report.bytes_sent = 1000;
  report.next_state = JobState::succeeded;
  report.file_id = "file-lora";
  must(store().finish_attempt(report, now()));
  must(store().record_model_status(id, {"validating", std::nullopt, now() + 20s}, now()));

  const auto table = modeldrop({"jobs"});
  EXPECT_TRUE(contains(table.out, "model my-lora: validating (next look in 1")) << table.out;
  const auto shown = modeldrop({"show", std::to_string(id)});
  EXPECT_TRUE(contains(shown.out, "model:               my-lora (base meta-llama/Llama-3.1-8B)")) << shown.out;
  EXPECT_TRUE(contains(shown.out, "model description:   nightly")) << shown.out;
  EXPECT_TRUE(contains(shown.out, "model status:        validating (next look in")) << shown.out;
  EXPECT_TRUE(contains(shown.out, "sidecar:             /spool/in/lora.zip.yaml")) << shown.out;

  must(store().record_model_status(id, {"error", std::string("adapter rank too high"), std::nullopt}, now()));
  EXPECT_TRUE(contains(modeldrop({"jobs"}).out, "model my-lora: error: adapter rank too high"))
      << modeldrop({"jobs"}).out;
  const auto value = json_of(modeldrop({"show", std::to_string(id), "--json"}));
  EXPECT_EQ(value.at("model_name"), "my-lora");
  EXPECT_EQ(value.at("model_base_model"), "meta-llama/Llama-3.1-8B");
  EXPECT_EQ(value.at("model_status"), "error");
  EXPECT_EQ(value.at("model_status_reason"), "adapter rank too high");
  EXPECT_TRUE(parse_timestamp(value.at("model_checked_at").as_string().c_str()));
  EXPECT_EQ(value.at("sidecar_path"), "/spool/in/lora.zip.yaml");

  const JobId plain = add("plain.zip", 2);
  const auto plain_json = json_of(modeldrop({"show", std::to_string(plain), "--json"}));
  EXPECT_TRUE(plain_json.at("model_name").is_null());
  EXPECT_FALSE(contains(modeldrop({"show", std::to_string(plain)}).out, "model")) << "no model lines for a plain job";
}

TEST_F(CliTest, ShowOfAnUnknownJobIsExit1) {
  const auto result = modeldrop({"show", "77"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_EQ(result.err, "modeldrop: job 77: no such job\n");
  EXPECT_TRUE(result.out.empty());
}

// ---- retry and cancel

TEST_F(CliTest, RetryActsOnTheJobsItCanAndReportsTheOthers) {
  const JobId failed = finished("f.zip", 1, JobState::failed);
  const JobId ok = finished("s.zip", 2, JobState::succeeded);
  const auto result = modeldrop({"retry", std::to_string(failed), "999", std::to_string(ok)});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(contains(result.out, "job " + std::to_string(failed) + ": back to pending (was failed)")) << result.out;
  EXPECT_TRUE(contains(result.err, "modeldrop: job 999: no such job")) << result.err;
  EXPECT_TRUE(contains(result.err, "modeldrop: job " + std::to_string(ok) +
                                       " has already succeeded (file-s.zip); `retry --force` uploads it again\n"))
      << result.err;
  EXPECT_EQ(state_of(failed), JobState::pending);
  EXPECT_EQ(state_of(ok), JobState::succeeded);
  EXPECT_EQ(must(store().find_job(failed))->attempts, 0);
}

TEST_F(CliTest, RetryFailedTakesEveryFailedJob) {
  const JobId a = finished("a.zip", 1, JobState::failed);
  const JobId b = finished("b.zip", 2, JobState::failed);
  const auto result = modeldrop({"retry", "--failed"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "2 failed jobs back to pending: " + std::to_string(a) + " " + std::to_string(b) + "\n");
  EXPECT_EQ(state_of(a), JobState::pending);
  EXPECT_EQ(state_of(b), JobState::pending);
  EXPECT_EQ(modeldrop({"retry", "--failed"}).out, "no failed jobs to retry\n");
}

TEST_F(CliTest, CancelStopsPendingAndUploadingJobs) {
  const JobId ok = finished("s.zip", 3, JobState::succeeded);
  const JobId up = uploading("u.zip", 1);
  const JobId waiting = add("p.zip", 2);
  EXPECT_FALSE(must(store().external_change_seen()));
  const auto result = modeldrop({"cancel", std::to_string(up), std::to_string(waiting), std::to_string(ok)});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(contains(result.out, "job " + std::to_string(up) + ": cancelled (the daemon aborts its upload"))
      << result.out;
  EXPECT_TRUE(contains(result.out, "job " + std::to_string(waiting) + ": cancelled\n")) << result.out;
  EXPECT_TRUE(contains(result.err, "is succeeded; only pending or uploading jobs can be cancelled")) << result.err;
  EXPECT_EQ(state_of(up), JobState::cancelled);
  EXPECT_EQ(state_of(waiting), JobState::cancelled);
  // A daemon polling its connection learns of it, and which upload to abort.
  EXPECT_TRUE(must(store().external_change_seen()));
  const JobId in_flight[] = {up};
  EXPECT_EQ(must(store().cancelled_among(in_flight)), std::vector<JobId>{up});
  EXPECT_EQ(modeldrop({"cancel", std::to_string(up), std::to_string(waiting)}).exit_code, 1) << "already cancelled";
}

// ---- add

TEST_F(CliTest, AddQueuesARegularFileWithItsIdentity) {
  const auto file = dir_.write("upload/model.zip", std::string(5000, 'm'));
  const auto result = modeldrop({"add", file.string(), "--project", "proj-1"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(contains(result.out, ": queued " + file.string())) << result.out;
  const auto jobs = must(store().list_jobs({}, 10));
  ASSERT_EQ(jobs.size(), 1u);
  struct stat info {};
  ASSERT_EQ(::stat(file.c_str(), &info), 0);
  EXPECT_EQ(jobs[0].path, file);
  EXPECT_FALSE(jobs[0].watch_dir);
  EXPECT_EQ(jobs[0].project_id, "proj-1");
  EXPECT_EQ(jobs[0].size_bytes, 5000u);
  EXPECT_EQ(jobs[0].file.inode, info.st_ino);
  EXPECT_EQ(jobs[0].file.device, info.st_dev);
  EXPECT_EQ(jobs[0].file.mtime_ns, info.st_mtim.tv_sec * 1'000'000'000 + info.st_mtim.tv_nsec);
  EXPECT_TRUE(std::filesystem::exists(file)) << "added files stay where they are";
}

TEST_F(CliTest, AddRecordsTheArchiveCheckAsked) {
  const auto lora = dir_.write("lora.zip", "adapter");
  const auto plain = dir_.write("plain.zip", "archive");
  ASSERT_EQ(modeldrop({"add", lora.string(), "--validate", "adapter"}).exit_code, 0);
  ASSERT_EQ(modeldrop({"add", plain.string()}).exit_code, 0);
  const auto jobs = must(store().list_jobs({}, 10));
  ASSERT_EQ(jobs.size(), 2u);
  for (const auto& job : jobs) {
    EXPECT_EQ(job.validate,
              job.path == lora ? preflight::ArchiveValidation::adapter : preflight::ArchiveValidation::archive)
        << job.path;
  }
}

TEST_F(CliTest, AddRegistersAModelNamedByFlagOrSidecar) {
  const auto lora = dir_.write("lora.tar.gz", "adapter");
  const auto named = dir_.write("named.zip", "adapter 2");
  const auto plain = dir_.write("plain.zip", "archive");
  const auto sidecar_one = dir_.write("side.zip", "adapter 3");
  dir_.write("side.zip.yaml", "name: from-sidecar\ndescription: what it is\n");
  ASSERT_EQ(modeldrop({"add", lora.string(), "--register-base-model", "meta-llama/Llama-3.1-8B"}).exit_code, 0);
  ASSERT_EQ(modeldrop({"add", named.string(), "--register-base-model", "b", "--model-name", "team-{stem}"}).exit_code,
            0);
  ASSERT_EQ(modeldrop({"add", plain.string()}).exit_code, 0);
  ASSERT_EQ(modeldrop({"add", sidecar_one.string(), "--register-base-model", "b", "--model-name", "flag"}).exit_code,
            0);
  std::map<std::filesystem::path, store::Job> by_path;
  for (auto& job : must(store().list_jobs({}, 10))) by_path.emplace(job.path, std::move(job));
  ASSERT_TRUE(by_path.at(lora).model);
  EXPECT_EQ(*by_path.at(lora).model, (store::ModelRequest{"lora", "meta-llama/Llama-3.1-8B", std::nullopt}));
  EXPECT_EQ(by_path.at(named).model->name, "team-named");
  EXPECT_FALSE(by_path.at(plain).model) << "no --register-base-model, no model";
  EXPECT_EQ(*by_path.at(sidecar_one).model, (store::ModelRequest{"from-sidecar", "b", "what it is"}))
      << "the sidecar overrides the flags, as it overrides a watch's register";
  EXPECT_EQ(by_path.at(sidecar_one).sidecar_path, dir_ / "side.zip.yaml");
}

TEST_F(CliTest, AddKeepsAFileWithABrokenSidecarOutOfTheQueue) {
  const auto file = dir_.write("lora.zip", "adapter");
  dir_.write("lora.zip.yaml", "name: ok\nbase_modle: typo\n");
  const auto result = modeldrop({"add", file.string(), "--register-base-model", "b"});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(contains(result.err, "sidecar: " + (dir_ / "lora.zip.yaml").string() + ":2: base_modle: unknown key"))
      << result.err;
  EXPECT_TRUE(must(store().list_jobs({}, 10)).empty());
  EXPECT_EQ(modeldrop({"add", file.string()}).exit_code, 0) << "without registration the sidecar is not read";
}

TEST_F(CliTest, AddRecordsTheTokenFileByItsPathAndNeverShowsTheToken) {
  const auto token = dir_.write("keys/team-b.token", "sk-team-b-secret\n", 0600);
  const auto file = dir_.write("b.zip", "archive");
  const auto plain = dir_.write("plain.zip", "other");
  const auto result = modeldrop({"add", file.string(), "--token-file", token.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  ASSERT_EQ(modeldrop({"add", plain.string()}).exit_code, 0);
  const auto jobs = must(store().list_jobs({}, 10));
  ASSERT_EQ(jobs.size(), 2u);
  for (const auto& job : jobs) {
    EXPECT_EQ(job.token_file, job.path == file ? std::optional<std::string>(token.string()) : std::nullopt) << job.path;
  }
  const auto shown = modeldrop({"show", std::to_string(jobs[1].id)});
  EXPECT_TRUE(contains(shown.out, "token file:          " + token.string())) << shown.out;
  EXPECT_TRUE(contains(modeldrop({"show", std::to_string(jobs[0].id)}).out, "- (the global token)"));
  for (const auto& output : {result.out, result.err, shown.out}) EXPECT_FALSE(contains(output, "sk-team-b-secret"));
}

TEST_F(CliTest, AddRefusesATokenFileItCannotUseAndQueuesNothing) {
  const auto file = dir_.write("b.zip", "archive");
  const auto missing = modeldrop({"add", file.string(), "--token-file", (dir_ / "nope").string()});
  EXPECT_EQ(missing.exit_code, 1);
  EXPECT_EQ(missing.err,
            "modeldrop: --token-file " + (dir_ / "nope").string() + ": cannot use it: No such file or directory\n");
  const auto blank = dir_.write("blank.token", "  \n", 0600);
  const auto empty = modeldrop({"add", file.string(), "--token-file", blank.string()});
  EXPECT_EQ(empty.exit_code, 1);
  EXPECT_TRUE(contains(empty.err, blank.string() + ": cannot use it: empty")) << empty.err;
  EXPECT_TRUE(must(store().list_jobs({}, 10)).empty());
  EXPECT_EQ(modeldrop({"add", file.string(), "--token-file", ""}).exit_code, 2);
}

TEST_F(CliTest, AddWarnsAboutATokenFileOthersMayRead) {
  const auto token = dir_.write("team-b.token", "sk-team-b\n", 0644);
  const auto result = modeldrop({"add", dir_.write("b.zip", "x").string(), "--token-file", token.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(contains(result.err, "warning: token file " + token.string() + " is readable by group or others"))
      << result.err;
}

TEST_F(CliTest, AddFollowsTheSameFileRule) {
  const auto file = dir_.write("model.zip", "first");
  ASSERT_EQ(modeldrop({"add", file.string()}).exit_code, 0);
  auto again = modeldrop({"add", file.string()});
  EXPECT_EQ(again.exit_code, 0) << again.err;
  EXPECT_TRUE(contains(again.out, "already queued (pending)")) << again.out;
  dir_.write("model.zip", "second, longer content");
  auto changed = modeldrop({"add", file.string()});
  EXPECT_EQ(changed.exit_code, 0) << changed.err;
  EXPECT_TRUE(contains(changed.out, "updated for the changed file")) << changed.out;
  const auto jobs = must(store().list_jobs({}, 10));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].size_bytes, 22u);
}

TEST_F(CliTest, AddRefusesWhatIsNotAReadableRegularFileAndQueuesTheRest) {
  const auto good = dir_.write("good.zip", "x");
  std::filesystem::create_directories(dir_ / "a-directory.zip");
  ASSERT_EQ(::mkfifo((dir_ / "fifo.zip").c_str(), 0600), 0);
  const auto result = modeldrop({"add", (dir_ / "missing.zip").string(), (dir_ / "a-directory.zip").string(),
                                 (dir_ / "fifo.zip").string(), good.string()});
  EXPECT_EQ(result.exit_code, 1);
  EXPECT_TRUE(contains(result.err, "missing.zip: No such file or directory")) << result.err;
  EXPECT_TRUE(contains(result.err, "a-directory.zip: not a regular file")) << result.err;
  EXPECT_TRUE(contains(result.err, "fifo.zip: not a regular file")) << result.err;
  const auto jobs = must(store().list_jobs({}, 10));
  ASSERT_EQ(jobs.size(), 1u);
  EXPECT_EQ(jobs[0].path, good);
}

TEST_F(CliTest, AddQueuesTheRealFileBehindASymlink) {
  const auto target = dir_.write("real/model.zip", "content");
  std::filesystem::create_symlink(target, dir_ / "link.zip");
  const auto result = modeldrop({"add", (dir_ / "link.zip").string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(must(store().list_jobs({}, 1)).at(0).path, target);
}

TEST_F(CliTest, AddWarnsAboutDirectoriesTheServiceCannotSee) {
  // The temp dir is under /tmp (unless $TMPDIR says otherwise).
  const auto file = dir_.write("m.zip", "x");
  const auto result = modeldrop({"add", file.string()});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  if (std::filesystem::canonical(file).string().starts_with("/tmp/")) {
    EXPECT_TRUE(contains(result.err, "warning: " + std::filesystem::canonical(file).string() + " is under /tmp"))
        << result.err;
  }
}

// ---- pause and resume

TEST_F(CliTest, PauseAndResumeLastAcrossRuns) {
  auto result = modeldrop({"pause"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_TRUE(contains(result.out, "uploads paused"));
  EXPECT_TRUE(must(store().is_paused()));
  EXPECT_TRUE(contains(modeldrop({"pause"}).out, "already paused"));
  EXPECT_TRUE(contains(modeldrop({"status"}).out, "uploads:  paused since"));
  EXPECT_EQ(json_of(modeldrop({"status", "--json"})).at("paused"), true);
  add("a.zip", 1);
  EXPECT_FALSE(must(store().claim_next(now())));
  result = modeldrop({"resume"});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "uploads resumed\n");
  EXPECT_FALSE(must(store().is_paused()));
  EXPECT_EQ(modeldrop({"resume"}).out, "uploads were not paused\n");
}

// ---- what a newcomer meets: finding the queue, reading the numbers, steering

TEST(CliNewcomer, AConfigThatIsNotThereSaysHowToNameTheQueue) {
  ProcessOptions options;
  options.env_unset = {"MODELDROP_CONFIG"};
  const auto result = run_process({MODELDROP_CLI_PATH, "status", "--config", "/nonexistent/modeldrop.yaml"}, options);
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_EQ(result.err,
            "/nonexistent/modeldrop.yaml: cannot read the configuration file: no such file\n"
            "modeldrop: name the queue with --config FILE (a modeldropd configuration), --db FILE (its database) "
            "or $MODELDROP_CONFIG\n");
}

TEST(CliNewcomer, AJobIdThatIsNotANumberIsSaidPlainly) {
  for (const char* word : {"abc", "0", "-3", "1e9999", "18446744073709551616"}) {
    const auto result = run_process({MODELDROP_CLI_PATH, "show", word, "--db", "/nonexistent/jobs.db"});
    EXPECT_EQ(result.exit_code, 2) << word;
    EXPECT_EQ(result.err,
              std::string("modeldrop: invalid job id \"") + word + "\"\nRun with --help for more information.\n");
  }
}

TEST(CliNewcomer, CommandHelpListsTheQueueOptionsWithoutTypeNoise) {
  const auto result = run_process({MODELDROP_CLI_PATH, "jobs", "--help"});
  EXPECT_EQ(result.exit_code, 0);
  const std::string& help = result.out;
  EXPECT_FALSE(contains(help, "UINT")) << help;
  EXPECT_FALSE(contains(help, "INT in")) << help;
  EXPECT_FALSE(contains(help, "TEXT")) << help;
  for (const char* line :
       {"  --limit N                   at most N rows (default 50; the table says how many more there are)\n",
        "  --since DURATION            only jobs queued within this long (e.g. 30m, 1h, 2d)\n",
        "  --db FILE                   the job database itself, instead of the configuration's `database`\n"}) {
    EXPECT_TRUE(contains(help, line)) << line << "\nin:\n" << help;
  }
  EXPECT_TRUE(contains(help, "  --config FILE               modeldropd configuration naming the database")) << help;
}

TEST_F(CliTest, AnUploadLeftByADeadDaemonIsNotShownAsLive) {
  const JobId up = uploading("big.zip", 1, 1000);
  must(store().record_progress(up, 0, now() - 2s));
  must(store().record_progress(up, 420, now() - 1s));
  const auto lines = lines_of(modeldrop({"jobs"}).out);
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[1], " " + std::to_string(up) +
                          "  uploading  1000 B      1  interrupted (modeldropd is not running; sent again when it "
                          "starts)  /spool/in/big.zip");
  const auto shown = modeldrop({"show", std::to_string(up)}).out;
  EXPECT_TRUE(contains(shown,
                       "\n  state:               uploading  interrupted (modeldropd is not running; sent "
                       "again when it starts)\n"))
      << shown;
  EXPECT_TRUE(contains(shown, "\n  attempts:            1 (0 counted toward max_attempts, 1 interrupted)\n")) << shown;
  EXPECT_TRUE(contains(shown, "  interrupted     -      420 B  -\n")) << shown;
}

TEST_F(CliTest, JobsSaysHowManyMoreTheLimitHid) {
  for (std::uint64_t i = 1; i <= 5; ++i) add("f" + std::to_string(i) + ".zip", i);
  auto lines = lines_of(modeldrop({"jobs", "--limit", "3"}).out);
  ASSERT_EQ(lines.size(), 5u);
  EXPECT_EQ(lines[4], "\u2026 2 more, use --limit 5 to see them");
  lines = lines_of(modeldrop({"jobs", "--limit", "5"}).out);
  EXPECT_EQ(lines.size(), 6u) << "nothing hidden, no note";
  EXPECT_EQ(json_of(modeldrop({"jobs", "--json", "--limit", "3"})).as_array().size(), 3u);
}

TEST_F(CliTest, JobsFiltersByNameAndByAge) {
  store::NewJob old = new_job("Old-LoRA.zip", 1);
  must(store().enqueue(old, now() - 3h));
  add("lora-new.zip", 2);
  store::NewJob elsewhere = new_job("x.zip", 3);
  elsewhere.path = "/srv/other/lora-elsewhere.zip";
  must(store().enqueue(elsewhere, now()));
  const auto names = [&](std::vector<std::string> args) {
    args.insert(args.begin(), {"jobs", "--json"});
    std::vector<std::string> paths;
    const auto listing = json_of(modeldrop(args));
    for (const auto& job : listing.as_array()) paths.emplace_back(job.at("path").as_string());
    return paths;
  };
  // A glob without '/' is on the file name, case-insensitive; with one, on the whole path.
  EXPECT_EQ(
      names({"--name", "*lora*"}),
      (std::vector<std::string>{"/srv/other/lora-elsewhere.zip", "/spool/in/lora-new.zip", "/spool/in/Old-LoRA.zip"}));
  EXPECT_EQ(names({"--name", "*lora.zip"}), (std::vector<std::string>{"/spool/in/Old-LoRA.zip"}));
  EXPECT_EQ(names({"--name", "/srv/*"}), (std::vector<std::string>{"/srv/other/lora-elsewhere.zip"}));
  EXPECT_EQ(names({"--since", "1h"}),
            (std::vector<std::string>{"/srv/other/lora-elsewhere.zip", "/spool/in/lora-new.zip"}));
  EXPECT_EQ(names({"--since", "1h", "--name", "*.zip", "--state", "pending", "--limit", "1"}),
            (std::vector<std::string>{"/srv/other/lora-elsewhere.zip"}));
  const auto cut = lines_of(modeldrop({"jobs", "--name", "*LORA*", "--limit", "1"}).out);
  ASSERT_EQ(cut.size(), 3u);
  EXPECT_EQ(cut[2], "\u2026 2 more, use --limit 3 to see them");
  const auto bad = modeldrop({"jobs", "--since", "yesterday"});
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_TRUE(bad.err.starts_with("modeldrop: --since yesterday: ")) << bad.err;
}

TEST_F(CliTest, JobsFollowRefreshesUntilInterrupted) {
  add("a.zip", 1);
  // Not a terminal here: every refresh is printed after a timestamped separator.
  test::ChildProcess follow({MODELDROP_CLI_PATH, "jobs", "--follow", "--interval", "100ms", "--db", db().string()},
                            dir_.path(), {}, {"MODELDROP_CONFIG"});
  const auto frames = [&] {
    const std::string out = follow.stdout_text();
    std::size_t n = 0;
    for (auto pos = out.find("--- "); pos != std::string::npos; pos = out.find("--- ", pos + 1)) ++n;
    return n;
  };
  ASSERT_TRUE(test::wait_until([&] { return frames() >= 1; }, 20s)) << follow.stderr_text();
  add("b.zip", 2);
  ASSERT_TRUE(test::wait_until([&] { return contains(follow.stdout_text(), "/spool/in/b.zip"); }, 20s))
      << follow.stdout_text();
  follow.signal(SIGINT);
  EXPECT_EQ(follow.wait(10s), 0);
  const auto lines = lines_of(follow.stdout_text());
  ASSERT_GE(lines.size(), 3u);
  EXPECT_TRUE(lines[0].starts_with("--- ")) << lines[0];
  EXPECT_TRUE(lines[0].ends_with("Z  every 100ms")) << lines[0];
  EXPECT_EQ(modeldrop({"jobs", "--follow", "--json"}).exit_code, 2);
}

TEST_F(CliTest, ADuplicateNamesItsOriginalInTheTableAndInJson) {
  const JobId original = finished("first.zip", 1, JobState::succeeded);
  const JobId copy = add("copy-with-a-rather-long-name.zip", 2);
  const std::string sha(64, 'a');
  must(store().set_sha256(original, sha, must(store().find_job(original))->file, now()));
  must(store().set_sha256(copy, sha, must(store().find_job(copy))->file, now()));
  must(store().complete_as_duplicate(copy, original, now()));
  const auto lines = lines_of(modeldrop({"jobs"}).out);
  ASSERT_EQ(lines.size(), 3u);
  EXPECT_EQ(lines[1], " " + std::to_string(copy) + "  succeeded  1000 B      0  same content as job " +
                          std::to_string(original) + ": file-first.zip  /spool/in/copy-with-a-rather-long-name.zip");
  const auto value = json_of(modeldrop({"jobs", "--json"}));
  EXPECT_EQ(value.as_array()[0].at("duplicate_of").as_int64(), original);
  EXPECT_TRUE(value.as_array()[1].at("duplicate_of").is_null());
}

TEST_F(CliTest, AttemptCountsAddUp) {
  auto daemon = play_daemon();
  const JobId id = uploading("a.zip", 1, 1000);
  AttemptReport held;
  held.job = id;
  held.outcome = AttemptOutcome::held;
  held.http_status = 429;
  held.next_state = JobState::pending;
  held.counts_toward_attempts = false;
  held.error = "HTTP 429: slow down";
  must(store().finish_attempt(held, now()));
  must(store().claim_next(now()));
  must(store().begin_attempt(id, now()));
  must(store().record_progress(id, 420, now()));
  // TRIES counts every attempt made, the running one included.
  const auto table = lines_of(modeldrop({"jobs"}).out);
  ASSERT_EQ(table.size(), 2u);
  EXPECT_TRUE(
      table[1].starts_with(" " + std::to_string(id) + "  uploading  1000 B      2  [########------------]  42%"))
      << table[1];
  const auto shown = modeldrop({"show", std::to_string(id)}).out;
  EXPECT_TRUE(contains(shown, "\n  attempts:            2 (0 counted toward max_attempts, 1 held, 1 running)\n"))
      << shown;
  // The running attempt shows the bytes sent so far, as the job does.
  EXPECT_TRUE(contains(shown, "  running         -      420 B  -\n")) << shown;
  EXPECT_TRUE(contains(shown, "  held          429        0 B  HTTP 429: slow down\n")) << shown;
}

TEST_F(CliTest, RetryForceUploadsASucceededJobAgain) {
  const JobId ok = finished("s.zip", 1, JobState::succeeded);
  must(store().set_sha256(ok, std::string(64, 'b'), must(store().find_job(ok))->file, now()));
  const auto result = modeldrop({"retry", "--force", std::to_string(ok)});
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "job " + std::to_string(ok) + ": back to pending (was succeeded)\n");
  const auto job = must(store().find_job(ok));
  EXPECT_EQ(job->state, JobState::pending);
  EXPECT_FALSE(job->file_id);
  EXPECT_FALSE(job->finished_at);
  EXPECT_EQ(job->attempts, 0);
  EXPECT_EQ(job->sha256, std::string(64, 'b')) << "kept: the hash stage's dedupe must not answer with itself";
  EXPECT_EQ(modeldrop({"retry", "--force", "--failed"}).exit_code, 2);
}

TEST(CliNewcomer, BashCompletionOffersTheCommandsAndOptions) {
  TempDir dir;
  const auto script = dir / "modeldrop.bash";
  for (const char* program : {MODELDROP_CLI_PATH, MODELDROPD_PATH}) {
    const auto generated = run_process({program, "--bash-completion"});
    ASSERT_EQ(generated.exit_code, 0) << generated.err;
    std::ofstream(script, std::ios::app) << generated.out;
  }
  // Completes the words of `line` (the cursor at its end) and prints the candidates, one a line.
  const auto complete = [&](const std::string& line) {
    const std::string program = line.substr(0, line.find(' '));
    const auto result =
        run_process({"/bin/bash", "-c",
                     "source \"$1\"; read -ra COMP_WORDS <<<\"$2\"; [[ $2 == *' ' ]] && COMP_WORDS+=(''); "
                     "COMP_CWORD=$((${#COMP_WORDS[@]} - 1)); fn=$(complete -p \"$3\"); fn=${fn#*-F }; fn=${fn%% *}; "
                     "$fn; printf '%s\\n' \"${COMPREPLY[@]}\" | sort",
                     "complete", script.string(), line, program});
    EXPECT_EQ(result.exit_code, 0) << result.err;
    return result.out;
  };
  EXPECT_EQ(complete("modeldrop j"), "jobs\n");
  EXPECT_EQ(complete("modeldrop jobs --st"), "--state\n");
  EXPECT_EQ(complete("modeldrop --db x.db jobs --state f"), "failed\n");
  EXPECT_EQ(complete("modeldrop retry --f"), "--failed\n--force\n");
  EXPECT_EQ(complete("modeldropd --c"), "--check-config\n--config\n");
  dir.write("lora.zip", "x");
  EXPECT_EQ(complete("modeldrop add " + (dir / "lo").string()), (dir / "lora.zip").string() + "\n");
}

}  // namespace
}  // namespace modeldrop
