// Model registration end to end (docs/configuration.md "register"): the real daemon, the fake
// API's /v0/models over TLS, a real drop directory. Every wait is bounded.
#include "daemon_fixture.hpp"

#include "store/migrations.hpp"
#include "store/sqlite.hpp"
#include "support/archive_corpus.hpp"

#include <sys/stat.h>

#include <csignal>
#include <thread>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;
using store::JobState;

class ModelRegistrationTest : public DaemonTest {
 protected:
  void SetUp() override {
    DaemonTest::SetUp();
    config_options_.incoming_watch =
        "    project_id: proj-1\n"
        "    register: {base_model: meta-llama/Llama-3.1-8B-Instruct, description: from the drop folder}\n";
    write_config();
  }

  // The only job, once its model_status is `status`.
  std::optional<store::Job> job_with_model_status(const std::string& status, std::chrono::milliseconds timeout) {
    std::optional<store::Job> found;
    wait_until(
        [&] {
          const auto all = jobs();
          if (all.size() == 1 && all.front().model_status == status) found = all.front();
          return found.has_value();
        },
        timeout);
    return found;
  }

  // POST /v0/models (not /v0/models/upload), with or without a query.
  std::size_t model_posts() const {
    std::size_t count = 0;
    for (const auto& request : api_->requests()) {
      if (request.method == "POST" && (request.target == "/v0/models" || request.target.starts_with("/v0/models?"))) {
        ++count;
      }
    }
    return count;
  }

  std::size_t requests_to(std::string_view method, std::string_view target_prefix) const {
    std::size_t count = 0;
    for (const auto& request : api_->requests()) {
      if (request.method == method && request.target.starts_with(target_prefix)) ++count;
    }
    return count;
  }
};

TEST_F(ModelRegistrationTest, ADroppedArchiveBecomesAnActiveModelAndTheJobShowsIt) {
  api_->set_model_behaviour({.validate_for = 500ms});
  auto daemon = start_ready_daemon();
  drop("lora-v1.zip", 64 * 1024);
  const auto job = job_with_model_status("active", 30s);
  ASSERT_TRUE(job) << daemon->stderr_text();
  EXPECT_EQ(job->state, JobState::succeeded);
  EXPECT_TRUE(job->model_checked_at);
  EXPECT_FALSE(job->model_status_reason);

  const auto models = api_->models();
  ASSERT_EQ(models.size(), 1u);
  EXPECT_EQ(models[0].name, "lora-v1");
  EXPECT_EQ(models[0].base_model, "meta-llama/Llama-3.1-8B-Instruct");
  EXPECT_EQ(models[0].source, job->file_id);
  EXPECT_EQ(models[0].description, "from the drop folder");
  EXPECT_EQ(models[0].project_id, "proj-1");
  EXPECT_EQ(model_posts(), 1u);
  EXPECT_GE(requests_to("GET", "/v0/models/lora-v1?ai_project_id=proj-1"), 2u) << "looked up, then polled";

  const auto table = run_cli({"jobs"});
  EXPECT_NE(table.out.find("model lora-v1: active"), std::string::npos) << table.out;
  const auto shown = run_cli({"show", std::to_string(job->id)});
  EXPECT_NE(shown.out.find("model status:        active"), std::string::npos) << shown.out;
  const auto json = run_cli({"show", std::to_string(job->id), "--json"});
  EXPECT_NE(json.out.find(R"("model_status":"active")"), std::string::npos) << json.out;
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(ModelRegistrationTest, ASidecarRenamesTheModelAndMovesWithItsArchive) {
  api_->set_model_behaviour({.validate_for = 0ms});
  dir_.write("incoming/adapter.zip.yaml", "name: support-{stem}\nbase_model: Qwen/Qwen2.5-7B-Instruct\n");
  auto daemon = start_ready_daemon();
  drop("adapter.zip", 32 * 1024);
  const auto job = job_with_model_status("active", 30s);
  ASSERT_TRUE(job) << daemon->stderr_text();
  ASSERT_EQ(api_->models().size(), 1u);
  EXPECT_EQ(api_->models()[0].name, "support-adapter");
  EXPECT_EQ(api_->models()[0].base_model, "Qwen/Qwen2.5-7B-Instruct");
  EXPECT_EQ(api_->models()[0].description, "from the drop folder") << "what the sidecar leaves out, the watch gives";
  const auto moved = incoming_ / "done" / "adapter.zip.yaml";
  ASSERT_TRUE(wait_until([&] { return jobs().front().sidecar_path == moved; }, 10s)) << daemon->stderr_text();
  EXPECT_TRUE(std::filesystem::exists(moved));
  EXPECT_FALSE(std::filesystem::exists(incoming_ / "adapter.zip.yaml"));
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(ModelRegistrationTest, AModelThatFailsValidationRecordsTheReason) {
  api_->set_model_behaviour({.validate_for = 300ms, .status = "error", .reason = "adapter rank 512 is not supported"});
  auto daemon = start_ready_daemon();
  drop("big-rank.tar.gz", 16 * 1024);
  const auto job = job_with_model_status("error", 30s);
  ASSERT_TRUE(job) << daemon->stderr_text();
  EXPECT_EQ(job->model_status_reason, "adapter rank 512 is not supported");
  EXPECT_EQ(job->state, JobState::succeeded) << "the upload succeeded whatever the model's fate";
  EXPECT_EQ(api_->models().at(0).name, "big-rank");
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(ModelRegistrationTest, ATakenNameFailsTheRegistrationWithTheApisWords) {
  api_->add_model({.name = "lora", .base_model = "other", .source = "file-of-someone-else"});
  auto daemon = start_ready_daemon();
  drop("lora.zip", 16 * 1024);
  const auto job = job_with_model_status("error", 30s);
  ASSERT_TRUE(job) << daemon->stderr_text();
  EXPECT_EQ(job->model_status_reason, "HTTP 409: Model with name 'lora' already exists");
  EXPECT_EQ(model_posts(), 1u);
  EXPECT_EQ(api_->models().size(), 1u);
  EXPECT_EQ(api_->models()[0].source, "file-of-someone-else");
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(ModelRegistrationTest, ServerErrorsAreRetriedAndTheReasonShownMeanwhile) {
  api_->set_model_behaviour({.validate_for = 0ms});
  api_->push_model_fault({.kind = FaultKind::status, .status = 503, .headers = {{"Retry-After", "1"}}});
  auto daemon = start_ready_daemon();
  drop("retried.zip", 16 * 1024);
  const auto waiting = job_with_model_status("registering", 30s);
  ASSERT_TRUE(waiting) << daemon->stderr_text();
  ASSERT_TRUE(wait_until([&] { return jobs().front().model_status_reason.has_value(); }, 10s));
  EXPECT_EQ(jobs().front().model_status_reason.value_or("").rfind("HTTP 503", 0), 0u);
  ASSERT_TRUE(job_with_model_status("active", 30s)) << daemon->stderr_text();
  EXPECT_EQ(model_posts(), 1u);
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(ModelRegistrationTest, AModelMadeJustBeforeASigkillIsFoundByNameNotRequestedTwice) {
  api_->set_model_behaviour({.validate_for = 300ms});
  // The name is looked up (not there), then the model is made and its answer never comes: the
  // daemon dies waiting for it.
  api_->push_model_fault({.kind = FaultKind::none});
  api_->push_model_fault({.kind = FaultKind::stall, .stall_for = 60s, .store_first = true});
  auto daemon = start_ready_daemon();
  drop("lost-answer.zip", 16 * 1024);
  ASSERT_TRUE(wait_until([&] { return api_->models().size() == 1; }, 30s)) << daemon->stderr_text();
  daemon->signal(SIGKILL);
  daemon->wait(10s);
  EXPECT_EQ(jobs().front().model_status, "registering");

  auto restarted = start_ready_daemon();
  ASSERT_TRUE(job_with_model_status("active", 30s)) << restarted->stderr_text();
  EXPECT_EQ(model_posts(), 1u) << "the name was looked up first";
  EXPECT_NE(restarted->stderr_text().find("was already made from"), std::string::npos) << restarted->stderr_text();
  restarted->signal(SIGTERM);
  EXPECT_EQ(restarted->wait(10s), 0);
}

TEST_F(ModelRegistrationTest, PollingGoesOnAfterARestart) {
  api_->set_model_behaviour({.validate_for = 3s});
  auto daemon = start_ready_daemon();
  drop("slow.zip", 16 * 1024);
  ASSERT_TRUE(job_with_model_status("validating", 30s)) << daemon->stderr_text();
  daemon->signal(SIGKILL);
  daemon->wait(10s);
  auto restarted = start_ready_daemon();
  const auto job = job_with_model_status("active", 30s);
  ASSERT_TRUE(job) << restarted->stderr_text();
  EXPECT_EQ(model_posts(), 1u);
  EXPECT_GE(requests_to("GET", "/v0/models/slow"), 2u);
  restarted->signal(SIGTERM);
  EXPECT_EQ(restarted->wait(10s), 0);
}

TEST_F(ModelRegistrationTest, ABrokenSidecarFailsTheJobBeforeAnythingIsSent) {
  dir_.write("incoming/lora.zip.yaml", "name: fine\nbase_modle: typo\n");
  auto daemon = start_ready_daemon();
  drop("lora.zip", 16 * 1024);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::failed, 1); }, 30s)) << daemon->stderr_text();
  const auto job = jobs().front();
  EXPECT_EQ(job.last_error.value_or("").rfind("sidecar: " + (incoming_ / "lora.zip.yaml").string() +
                                                  ":2: base_modle: unknown key (did you mean \"base_model\"?)",
                                              0),
            0u)
      << job.last_error.value_or("");
  EXPECT_TRUE(api_->files().empty()) << "nothing was sent";
  EXPECT_TRUE(api_->requests().empty()) << "nothing was sent";
  ASSERT_TRUE(wait_until(
      [&] {
        return std::filesystem::exists(incoming_ / "failed" / "lora.zip.yaml") &&
               std::filesystem::exists(incoming_ / "failed" / "lora.zip");
      },
      10s))
      << "the sidecar goes with its archive";
  EXPECT_NE(run_cli({"retry", "1"}).err.find("failed on its sidecar"), std::string::npos);

  // Fixed, and put back with a copy of the archive (a new file): queued anew, and registered.
  api_->set_model_behaviour({.validate_for = 0ms});
  dir_.write("incoming/lora.zip.yaml", "name: fixed-{stem}\n");
  std::filesystem::copy_file(incoming_ / "failed" / "lora.zip", incoming_ / ".copy.part");
  std::filesystem::rename(incoming_ / ".copy.part", incoming_ / "lora.zip");
  ASSERT_TRUE(job_with_model_status("active", 30s)) << daemon->stderr_text();
  EXPECT_EQ(api_->models().at(0).name, "fixed-lora");
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(ModelRegistrationTest, ARefusedTokenHoldsRegistrationUntilANewTokenComes) {
  api_->set_model_behaviour({.validate_for = 0ms});
  api_->push_model_fault({.kind = FaultKind::status, .status = 401, .body = R"({"detail":"Invalid API key"})"});
  auto daemon = start_ready_daemon();
  drop("held.zip", 16 * 1024);
  ASSERT_TRUE(wait_until(
      [&] {
        const auto all = jobs();
        return all.size() == 1 &&
               all.front().model_status_reason.value_or("").find("waiting for a new API token") != std::string::npos;
      },
      30s))
      << daemon->stderr_text();
  EXPECT_EQ(jobs().front().model_status, "registering");
  // The key is rotated: the daemon notices the token file and goes on at once, not in 5 minutes.
  api_->set_token("rotated-token");
  dir_.write("token", "rotated-token\n", 0600);
  ASSERT_TRUE(job_with_model_status("active", 30s)) << daemon->stderr_text();
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(ModelRegistrationTest, TheSuccessHookWaitsForTheModel) {
  const auto script = "cd '" + dir_.path().string() + "' && echo $MODELDROP_MODEL_NAME > hook.txt";
  write_config("hooks:\n  on_success: [\"/bin/sh\", \"-c\", \"" + script + "\"]\n");
  api_->set_model_behaviour({.validate_for = 2s});
  auto daemon = start_ready_daemon();
  drop("hooked.zip", 16 * 1024);
  ASSERT_TRUE(job_with_model_status("validating", 30s)) << daemon->stderr_text();
  std::this_thread::sleep_for(1500ms);  // more than one periodic look for due hooks
  EXPECT_FALSE(std::filesystem::exists(dir_ / "hook.txt")) << "no on_success hook while the model validates";
  ASSERT_TRUE(job_with_model_status("active", 30s)) << daemon->stderr_text();
  ASSERT_TRUE(wait_until([&] { return std::filesystem::exists(dir_ / "hook.txt"); }, 10s)) << daemon->stderr_text();
  EXPECT_TRUE(wait_until([&] { return read_file(dir_ / "hook.txt") == "hooked\n"; }, 5s))
      << read_file(dir_ / "hook.txt");
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

// A database written by the release before model registration (schema version 1) is brought
// forward in place: its jobs and attempts are intact, and new archives register models.
TEST_F(ModelRegistrationTest, AVersion1DatabaseIsUpgradedInPlaceWithItsJobsIntact) {
  // A real zip: a job queued by version 1 (validate NULL) gets the default archive check.
  dir_.write("incoming/.queued.part", make_archive(ArchiveFormat::zip_deflated, {{"weights.bin", "weights"}}));
  const auto waiting = incoming_ / "queued-by-v1.zip";
  std::filesystem::rename(incoming_ / ".queued.part", waiting);
  struct stat info {};
  ASSERT_EQ(::stat(waiting.c_str(), &info), 0);
  {
    auto db = store::Connection::open(database_, store::OpenMode::create_if_missing, 1000ms);
    ASSERT_TRUE(db);
    ASSERT_TRUE(store::apply_migrations(*db, store::embedded_migrations().first(1)));
    const std::string t = "2026-01-01T00:00:00.000Z";
    const auto exec = [&](const std::string& sql) {
      auto done = db->execute(sql);
      ASSERT_TRUE(done) << done.error().message;
    };
    exec(
        "INSERT INTO jobs (id, path, current_path, watch_dir, size_bytes, state, attempts, file_id, file_status, "
        "created_at, updated_at, finished_at, device, inode, mtime_ns, budget_started_at) VALUES "
        "(1, '/old/a.zip', '/old/done/a.zip', '/old', 100, 'succeeded', 1, 'file-old-a', 'uploaded', '" +
        t + "', '" + t + "', '" + t + "', 1, 11, 1, '" + t + "')");
    exec(
        "INSERT INTO attempts (job_id, attempt, started_at, finished_at, http_status, bytes_sent, outcome) VALUES "
        "(1, 1, '" +
        t + "', '" + t + "', 200, 100, 'succeeded')");
    exec(
        "INSERT INTO jobs (id, path, current_path, watch_dir, size_bytes, state, attempts, last_error, "
        "created_at, updated_at, finished_at, device, inode, mtime_ns, budget_started_at) VALUES "
        "(2, '/old/b.zip', '/old/b.zip', '/old', 200, 'failed', 3, 'HTTP 422: bad', '" +
        t + "', '" + t + "', '" + t + "', 1, 12, 1, '" + t + "')");
    exec(
        "INSERT INTO jobs (id, path, current_path, watch_dir, size_bytes, state, created_at, updated_at, device, "
        "inode, mtime_ns, budget_started_at) VALUES (3, '" +
        waiting.string() + "', '" + waiting.string() + "', '" + incoming_.string() + "', " +
        std::to_string(info.st_size) + ", 'pending', '" + t + "', '" + t + "', " + std::to_string(info.st_dev) + ", " +
        std::to_string(info.st_ino) + ", " +
        std::to_string(info.st_mtim.tv_sec * 1'000'000'000 + info.st_mtim.tv_nsec) + ", '" + t + "')");
    ASSERT_EQ(*store::schema_version(*db), 1);
  }
  api_->set_model_behaviour({.validate_for = 0ms});
  auto daemon = start_ready_daemon();
  // The job queued by version 1 is sent as it was queued: it registers nothing.
  ASSERT_TRUE(wait_until([&] { return jobs().size() == 3 && jobs().front().state == JobState::succeeded; }, 30s))
      << daemon->stderr_text();
  drop("new.zip", 8 * 1024);
  ASSERT_TRUE(wait_until(
      [&] {
        for (const auto& job : jobs()) {
          if (job.path.filename() == "new.zip") return job.model_status == "active";
        }
        return false;
      },
      30s))
      << daemon->stderr_text();

  {
    auto db = store::Connection::open(database_, store::OpenMode::read_only, 1000ms);
    ASSERT_TRUE(db);
    EXPECT_EQ(*store::schema_version(*db), store::latest_schema_version());
  }
  std::map<store::JobId, store::Job> by_id;
  for (auto& job : jobs()) by_id.emplace(job.id, std::move(job));
  ASSERT_EQ(by_id.size(), 4u);
  EXPECT_EQ(by_id.at(1).state, JobState::succeeded);
  EXPECT_EQ(by_id.at(1).file_id, "file-old-a");
  EXPECT_EQ(by_id.at(1).current_path, "/old/done/a.zip");
  EXPECT_FALSE(by_id.at(1).model) << "an old job registers nothing";
  EXPECT_FALSE(by_id.at(1).model_status);
  EXPECT_EQ(by_id.at(2).state, JobState::failed);
  EXPECT_EQ(by_id.at(2).last_error, "HTTP 422: bad");
  EXPECT_EQ(by_id.at(2).attempts, 3);
  EXPECT_EQ(by_id.at(3).state, JobState::succeeded);
  EXPECT_FALSE(by_id.at(3).model_status);
  const auto old = job_with_attempts(database_, 1);
  ASSERT_TRUE(old);
  ASSERT_EQ(old->attempts.size(), 1u);
  EXPECT_EQ(old->attempts[0].outcome, store::AttemptOutcome::succeeded);
  ASSERT_EQ(api_->models().size(), 1u);
  EXPECT_EQ(api_->models()[0].name, "new");
  const auto listing = run_cli({"jobs", "--json"});
  EXPECT_EQ(listing.exit_code, 0) << listing.err;
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

}  // namespace
}  // namespace modeldrop::test
