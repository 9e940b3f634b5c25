// Per-watch tokens through the real daemon and the fake API (docs/configuration.md, a watch's token_file): two teams,
// two keys, one daemon. A refused, rate-limited or unreadable token holds only its own jobs; the
// other teams keep uploading. Every wait is bounded.
#include "daemon_fixture.hpp"

#include <algorithm>
#include <csignal>
#include <thread>

namespace modeldrop::test {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using store::AttemptOutcome;
using store::JobState;

class TokenFileTest : public DaemonTest {
 protected:
  // Watches teama and teamb, each with its own token file and project; `incoming` keeps the
  // global token. The fake accepts all three tokens. drop() writes pseudo-random bytes: no
  // archive checks here.
  void SetUp() override {
    DaemonTest::SetUp();
    team_a_ = dir_ / "teama";
    team_b_ = dir_ / "teamb";
    fs::create_directories(team_a_);
    fs::create_directories(team_b_);
    write_token("team-a.token", "token-team-a");
    write_token("team-b.token", "token-team-b");
    api_->set_tokens({"test-token", "token-team-a", "token-team-b"});
    write_team_config();
  }

  void write_team_config(const std::string& team_b_token_file = "team-b.token") {
    write_config(
        "  - path: teama\n    settle: 200ms\n    validate: none\n    project_id: proj-a\n    token_file: team-a.token\n"
        "  - path: teamb\n    settle: 200ms\n    validate: none\n    project_id: proj-b\n    token_file: " +
        team_b_token_file + "\n");
  }

  // As an admin rotates a key: a new file renamed over the old one.
  void write_token(const std::string& name, const std::string& token) {
    dir_.write(name + ".new", token + "\n", 0600);
    fs::rename(dir_ / (name + ".new"), dir_ / name);
  }

  std::optional<store::Job> job_for(const fs::path& path) const {
    for (const auto& job : jobs()) {
      if (job.path == path) return job;
    }
    return std::nullopt;
  }
  bool in_state(const fs::path& path, JobState state) const {
    const auto job = job_for(path);
    return job && job->state == state;
  }

  // Upload requests the fake saw carrying this token.
  std::size_t uploads_with(const std::string& token) const {
    const auto requests = api_->requests();
    return static_cast<std::size_t>(std::count_if(requests.begin(), requests.end(), [&](const RequestRecord& r) {
      return r.method == "POST" && r.target.starts_with("/v0/models/upload") && r.authorization == "Bearer " + token;
    }));
  }
  // The token the stored upload of this job was sent with.
  std::optional<std::string> token_that_uploaded(const fs::path& path) const {
    const auto job = job_for(path);
    if (!job || !job->file_id) return std::nullopt;
    for (const auto& r : api_->requests()) {
      if (r.file_id == *job->file_id && r.authorization) return r.authorization->substr(std::string("Bearer ").size());
    }
    return std::nullopt;
  }

  void expect_no_token_in(const std::string& text) const {
    for (const char* token : {"test-token", "token-team-a", "token-team-b", "token-team-b-new"}) {
      EXPECT_EQ(text.find(token), std::string::npos) << token << " reached the log";
    }
  }

  fs::path team_a_;
  fs::path team_b_;
};

TEST_F(TokenFileTest, EachWatchUploadsWithItsOwnToken) {
  auto daemon = start_ready_daemon();
  const auto a = drop("a.zip", 16 * 1024, team_a_);
  const auto b = drop("b.zip", 16 * 1024, team_b_);
  const auto global = drop("global.zip", 16 * 1024);
  ASSERT_TRUE(wait_until([&] { return all_jobs_in(JobState::succeeded, 3); }, 30s)) << daemon->stderr_text();
  EXPECT_EQ(token_that_uploaded(a), "token-team-a");
  EXPECT_EQ(token_that_uploaded(b), "token-team-b");
  EXPECT_EQ(token_that_uploaded(global), "test-token");
  EXPECT_EQ(job_for(b)->token_file, (dir_ / "team-b.token").string()) << "jobs.token_file names the file";
  EXPECT_FALSE(job_for(global)->token_file);
  expect_no_token_in(daemon->stderr_text());
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(TokenFileTest, TeamBsRefusedTokenHoldsOnlyTeamBUntilItsFileIsFixed) {
  auto daemon = start_ready_daemon();
  api_->set_tokens({"test-token", "token-team-a"});  // team B's key was revoked
  const auto b1 = drop("b1.zip", 16 * 1024, team_b_);
  ASSERT_TRUE(wait_until([&] { return held_reason(database_).has_value(); }, 30s)) << daemon->stderr_text();
  const auto reason = *held_reason(database_);
  EXPECT_NE(reason.find("watch " + team_b_.string() + " (token_file " + (dir_ / "team-b.token").string() +
                        "): HTTP 401: Invalid API key from API, check that token"),
            std::string::npos)
      << reason;

  // Team A and the global watch keep uploading while B is held; B's next archive waits.
  const auto b2 = drop("b2.zip", 16 * 1024, team_b_);
  const auto a1 = drop("a1.zip", 16 * 1024, team_a_);
  const auto a2 = drop("a2.zip", 16 * 1024, team_a_);
  const auto global = drop("global.zip", 16 * 1024);
  ASSERT_TRUE(wait_until(
      [&] {
        return in_state(a1, JobState::succeeded) && in_state(a2, JobState::succeeded) &&
               in_state(global, JobState::succeeded);
      },
      30s))
      << daemon->stderr_text();
  EXPECT_EQ(token_that_uploaded(a1), "token-team-a");
  ASSERT_TRUE(wait_until([&] { return job_for(b2).has_value(); }, 10s));
  std::this_thread::sleep_for(1s);  // a wrongly released hold would send b2 within this
  EXPECT_EQ(uploads_with("token-team-b"), 1u) << "only b1's attempt was sent with the refused token";
  EXPECT_TRUE(in_state(b1, JobState::pending));
  EXPECT_TRUE(in_state(b2, JobState::pending));
  const auto b1_history = job_with_attempts(database_, job_for(b1)->id);
  ASSERT_TRUE(b1_history);
  ASSERT_EQ(b1_history->attempts.size(), 1u);
  EXPECT_EQ(b1_history->attempts[0].outcome, AttemptOutcome::held);
  EXPECT_EQ(b1_history->job.attempts, 0) << "a held attempt counts toward nothing";
  const auto status = run_cli({"status"});
  EXPECT_NE(status.out.find("uploads:  held: watch " + team_b_.string() + " (token_file"), std::string::npos)
      << status.out;

  // Team B's admin puts a working key into the file: re-read within 5 s, B's jobs go.
  api_->set_tokens({"test-token", "token-team-a", "token-team-b-new"});
  write_token("team-b.token", "token-team-b-new");
  ASSERT_TRUE(wait_until([&] { return in_state(b1, JobState::succeeded) && in_state(b2, JobState::succeeded); }, 20s))
      << daemon->stderr_text();
  EXPECT_EQ(token_that_uploaded(b2), "token-team-b-new");
  ASSERT_TRUE(wait_until([&] { return !held_reason(database_).has_value(); }, 10s)) << *held_reason(database_);
  EXPECT_EQ(api_->files().size(), 5u);
  for (const auto& file : api_->files()) {
    EXPECT_EQ(file.project_id, file.filename.starts_with("a")   ? std::optional<std::string>("proj-a")
                               : file.filename.starts_with("b") ? std::optional<std::string>("proj-b")
                                                                : std::nullopt)
        << file.filename;
  }
  expect_no_token_in(daemon->stderr_text());
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(TokenFileTest, ARateLimitOnTeamBsTokenHoldsOnlyTeamB) {
  auto daemon = start_ready_daemon();
  api_->push_fault({.kind = FaultKind::status, .status = 429, .headers = {{"Retry-After", "600"}}});
  const auto b1 = drop("b1.zip", 16 * 1024, team_b_);
  ASSERT_TRUE(wait_until([&] { return held_reason(database_).has_value(); }, 30s)) << daemon->stderr_text();
  EXPECT_NE(held_reason(database_)->find("watch " + team_b_.string() + " (token_file " +
                                         (dir_ / "team-b.token").string() + "): HTTP 429"),
            std::string::npos)
      << *held_reason(database_);
  const auto b2 = drop("b2.zip", 16 * 1024, team_b_);
  const auto a1 = drop("a1.zip", 16 * 1024, team_a_);
  const auto global = drop("global.zip", 16 * 1024);
  ASSERT_TRUE(
      wait_until([&] { return in_state(a1, JobState::succeeded) && in_state(global, JobState::succeeded); }, 30s))
      << daemon->stderr_text();
  ASSERT_TRUE(wait_until([&] { return job_for(b2).has_value(); }, 10s));
  std::this_thread::sleep_for(1s);
  EXPECT_EQ(uploads_with("token-team-b"), 1u) << "team B waits for its Retry-After";
  EXPECT_TRUE(in_state(b1, JobState::pending));
  EXPECT_TRUE(in_state(b2, JobState::pending));
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(TokenFileTest, AMissingTeamTokenFileHoldsOnlyThatWatchUntilAReloadFixesItsPath) {
  write_team_config("team-b.tokne");  // a typo: no such file
  auto daemon = start_ready_daemon();
  ASSERT_TRUE(wait_until([&] { return held_reason(database_).has_value(); }, 10s)) << daemon->stderr_text();
  EXPECT_NE(held_reason(database_)->find("watch " + team_b_.string() + " (token_file " +
                                         (dir_ / "team-b.tokne").string() + "): no usable API token"),
            std::string::npos)
      << *held_reason(database_);
  EXPECT_NE(held_reason(database_)->find("team-b.tokne: cannot use it: No such file or directory"), std::string::npos)
      << *held_reason(database_);
  const auto b = drop("b.zip", 16 * 1024, team_b_);
  const auto a = drop("a.zip", 16 * 1024, team_a_);
  ASSERT_TRUE(wait_until([&] { return in_state(a, JobState::succeeded); }, 30s)) << daemon->stderr_text();
  ASSERT_TRUE(wait_until([&] { return job_for(b).has_value(); }, 10s));
  std::this_thread::sleep_for(500ms);
  EXPECT_TRUE(in_state(b, JobState::pending));
  EXPECT_EQ(uploads_with("token-team-b"), 0u);

  write_team_config();
  daemon->signal(SIGHUP);
  ASSERT_TRUE(wait_until([&] { return in_state(b, JobState::succeeded); }, 20s)) << daemon->stderr_text();
  EXPECT_EQ(token_that_uploaded(b), "token-team-b") << "the queued job follows its watch's new token_file";
  EXPECT_EQ(job_for(b)->token_file, (dir_ / "team-b.token").string());
  ASSERT_TRUE(wait_until([&] { return !held_reason(database_).has_value(); }, 10s)) << *held_reason(database_);
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(TokenFileTest, ASystemdCredentialNamedByCredentialsDirectory) {
  dir_.write("creds/api-token-teamb", "token-team-b\n", 0600);
  daemon_environment_["CREDENTIALS_DIRECTORY"] = (dir_ / "creds").string();
  write_team_config("${CREDENTIALS_DIRECTORY}/api-token-teamb");
  auto daemon = start_ready_daemon();
  const auto b = drop("b.zip", 16 * 1024, team_b_);
  ASSERT_TRUE(wait_until([&] { return in_state(b, JobState::succeeded); }, 30s)) << daemon->stderr_text();
  EXPECT_EQ(token_that_uploaded(b), "token-team-b");
  EXPECT_EQ(job_for(b)->token_file, "${CREDENTIALS_DIRECTORY}/api-token-teamb");
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

TEST_F(TokenFileTest, AddTokenFileSendsThatTokenAndItsRefusalHoldsOnlyThoseJobs) {
  write_token("added.token", "token-added");
  write_token("refused.token", "token-nobody-accepts");
  api_->set_tokens({"test-token", "token-team-a", "token-team-b", "token-added"});
  auto daemon = start_ready_daemon();
  const auto outside = dir_ / "outside";
  fs::create_directories(outside);
  const auto added = drop("added.zip", 16 * 1024, outside);
  const auto refused = drop("refused.zip", 16 * 1024, outside);
  ASSERT_EQ(
      run_cli({"add", added.string(), "--validate", "none", "--token-file", (dir_ / "added.token").string()}).exit_code,
      0);
  ASSERT_TRUE(wait_until([&] { return in_state(added, JobState::succeeded); }, 30s)) << daemon->stderr_text();
  EXPECT_EQ(token_that_uploaded(added), "token-added");

  ASSERT_EQ(run_cli({"add", refused.string(), "--validate", "none", "--token-file", (dir_ / "refused.token").string()})
                .exit_code,
            0);
  ASSERT_TRUE(wait_until([&] { return held_reason(database_).has_value(); }, 30s)) << daemon->stderr_text();
  EXPECT_NE(held_reason(database_)->find("modeldrop add jobs (token_file " + (dir_ / "refused.token").string() +
                                         "): HTTP 401"),
            std::string::npos)
      << *held_reason(database_);
  const auto later = drop("later.zip", 16 * 1024, team_a_);
  ASSERT_TRUE(wait_until([&] { return in_state(later, JobState::succeeded); }, 30s)) << daemon->stderr_text();
  EXPECT_TRUE(in_state(refused, JobState::pending));
  expect_no_token_in(daemon->stderr_text());
  EXPECT_EQ(daemon->stderr_text().find("token-added"), std::string::npos);
  daemon->signal(SIGTERM);
  EXPECT_EQ(daemon->wait(10s), 0);
}

}  // namespace
}  // namespace modeldrop::test
