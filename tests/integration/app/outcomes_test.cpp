// Every row of docs/http.md driven through the real scheduler, store and upload pool against
// the fake API over TLS, with time moved by hand: what the database records and what the
// server received.
#include "integration/app/scheduler_harness.hpp"

#include <ctime>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;
using store::AttemptOutcome;
using store::JobState;
using SteadyClock = std::chrono::steady_clock;

constexpr std::size_t kSmall = 64 * 1024;
constexpr std::uint64_t kMiB = 1024 * 1024;

std::string http_date(WallTime t) {
  const std::time_t seconds = WallClock::to_time_t(t);
  std::tm tm{};
  ::gmtime_r(&seconds, &tm);
  char text[64];
  const auto n = std::strftime(text, sizeof text, "%a, %d %b %Y %H:%M:%S GMT", &tm);
  return {text, n};
}

bool contains(const std::optional<std::string>& text, std::string_view part) {
  return text && text->find(part) != std::string::npos;
}

class OutcomesTest : public SchedulerTest {
 protected:
  OutcomesTest() {
    config_.upload.sessions = 2;
    config_.retry.initial_backoff = 2s;
    config_.retry.max_backoff = 1min;
    config_.retry.max_attempts = 0;
    config_.retry.give_up_after = 72h;
    config_.api.connect_timeout = 5s;
    config_.api.idle_timeout = 10s;
  }

  // Nothing more reaches the fake for a while of real time (the scheduler's own timers run).
  void expect_nothing_sent_for(std::chrono::milliseconds span, std::size_t uploads_so_far) {
    run_for(span);
    EXPECT_EQ(upload_requests(), uploads_so_far);
  }

  // A retried attempt: pending again, counted, due within the backoff (or the server's delay).
  void expect_retried(const store::JobWithAttempts& j, std::optional<int> status, WallTime attempt_time,
                      Duration at_least = Duration{0}) {
    EXPECT_EQ(j.job.state, JobState::pending);
    EXPECT_EQ(j.job.attempts, 1);
    EXPECT_EQ(j.job.http_status, status);
    ASSERT_TRUE(j.job.last_error);
    EXPECT_FALSE(j.job.last_error->empty());
    ASSERT_TRUE(j.job.next_attempt_at);
    EXPECT_GE(*j.job.next_attempt_at, attempt_time + at_least);
    EXPECT_LE(*j.job.next_attempt_at, attempt_time + std::max<Duration>(at_least, config_.retry.initial_backoff));
    ASSERT_EQ(j.attempts.size(), 1U);
    EXPECT_EQ(j.attempts[0].outcome, AttemptOutcome::retry);
    EXPECT_EQ(j.attempts[0].http_status, status);
    EXPECT_EQ(j.attempts[0].error, j.job.last_error);
    EXPECT_FALSE(j.job.file_id);
  }

  // After a retried attempt: once due, the job goes again and succeeds.
  void expect_succeeds_when_due(store::JobId id, std::size_t attempts_before) {
    const auto due = job(id).job.next_attempt_at;
    ASSERT_TRUE(due);
    advance(std::chrono::ceil<std::chrono::milliseconds>(*due - clock_.now()));
    ASSERT_TRUE(wait_for_state(id, JobState::succeeded)) << job(id).job.last_error.value_or("");
    const auto j = job(id);
    EXPECT_EQ(j.attempts.size(), attempts_before + 1);
    EXPECT_EQ(j.attempts.back().outcome, AttemptOutcome::succeeded);
    EXPECT_TRUE(j.job.file_id);
  }
};

// --- 2xx

TEST_F(OutcomesTest, OpenAIFileAnswerSucceedsWithItsIdStatusAndDetails) {
  start();
  const auto id = add_job("model.zip", kSmall, "project-1");
  ASSERT_TRUE(wait_for_state(id, JobState::succeeded));
  const auto j = job(id);
  const auto files = api_->files();
  ASSERT_EQ(files.size(), 1U);
  EXPECT_EQ(j.job.file_id, files[0].id);
  EXPECT_EQ(j.job.file_status, "uploaded");
  EXPECT_FALSE(j.job.file_status_details);
  EXPECT_EQ(j.job.http_status, 200);
  EXPECT_EQ(j.job.attempts, 1);
  EXPECT_EQ(j.job.bytes_sent, kSmall);
  EXPECT_FALSE(j.job.last_error);
  EXPECT_FALSE(j.job.next_attempt_at);
  EXPECT_TRUE(j.job.finished_at);
  ASSERT_EQ(j.attempts.size(), 1U);
  EXPECT_EQ(j.attempts[0].outcome, AttemptOutcome::succeeded);
  EXPECT_EQ(j.attempts[0].http_status, 200);
  EXPECT_EQ(j.attempts[0].bytes_sent, kSmall);
  EXPECT_EQ(files[0].filename, "model.zip");
  EXPECT_EQ(files[0].project_id, "project-1");
  EXPECT_EQ(files[0].bytes, kSmall);
  EXPECT_EQ(std::optional<std::string>(files[0].sha256), j.job.sha256);
  EXPECT_TRUE(std::filesystem::exists(j.job.path)) << "an added file stays where it is";
}

TEST_F(OutcomesTest, OpenAIFileWithOtherByteCountSucceedsWithAWarning) {
  LogCapture log;
  start();
  api_->push_fault(status_fault(200, R"({"id":"file-counted-wrong","object":"file","bytes":12,"created_at":1,)"
                                     R"("filename":"model.zip","purpose":"fine-tune","status":"processed",)"
                                     R"("status_details":"validated"})"));
  const auto id = add_job("model.zip", kSmall);
  ASSERT_TRUE(wait_for_state(id, JobState::succeeded));
  const auto j = job(id);
  EXPECT_EQ(j.job.file_id, "file-counted-wrong");
  EXPECT_EQ(j.job.file_status, "processed");
  EXPECT_EQ(j.job.file_status_details, "validated");
  EXPECT_EQ(j.job.http_status, 200);
  EXPECT_EQ(j.attempts.at(0).outcome, AttemptOutcome::succeeded);
  EXPECT_EQ(log.count_containing("the API recorded 12 bytes for file-counted-wrong, 65536 were sent"), 1U)
      << ::testing::PrintToString(log.lines());
}

struct MalformedCase {
  std::string name;
  Fault fault;
  int status = 200;
  friend void PrintTo(const MalformedCase& c, std::ostream* out) { *out << c.name; }
};

class MalformedAnswerTest : public OutcomesTest, public ::testing::WithParamInterface<MalformedCase> {};

TEST_P(MalformedAnswerTest, IsRetriedAsMalformedResponse) {
  start();
  api_->push_fault(GetParam().fault);
  const WallTime sent_at = clock_.now();
  const auto id = add_job("model.tar", kSmall);
  ASSERT_TRUE(wait_for_attempts(id, 1));
  const auto j = job(id);
  expect_retried(j, GetParam().status, sent_at);
  EXPECT_TRUE(contains(j.job.last_error, "malformed response")) << *j.job.last_error;
  expect_succeeds_when_due(id, 1);
  EXPECT_EQ(upload_requests(), 2U);
}

INSTANTIATE_TEST_SUITE_P(
    TwoHundred, MalformedAnswerTest,
    ::testing::Values(MalformedCase{"NotJson", fault(FaultKind::malformed_json)},
                      MalformedCase{"TextBody", status_fault(200, "<html>ok</html>")},
                      MalformedCase{"EmptyId", status_fault(200, R"({"id":"","object":"file","bytes":65536})")},
                      MalformedCase{"DetailOnly201", status_fault(201, R"({"detail":"Created"})"), 201}),
    [](const auto& p) { return p.param.name; });

// --- failed at once

struct RefusedCase {
  int status;
  std::string body;
  std::string expected_error;
  friend void PrintTo(const RefusedCase& c, std::ostream* out) { *out << c.status; }
};

class RefusedTest : public OutcomesTest, public ::testing::WithParamInterface<RefusedCase> {};

TEST_P(RefusedTest, FailsAtOnceWithTheStatusAndTheApiDetail) {
  start();
  api_->push_fault(status_fault(GetParam().status, GetParam().body));
  const auto id = add_job("model.zip", kSmall);
  ASSERT_TRUE(wait_for_state(id, JobState::failed));
  const auto j = job(id);
  EXPECT_EQ(j.job.http_status, GetParam().status);
  EXPECT_EQ(j.job.last_error, GetParam().expected_error);
  EXPECT_EQ(j.job.attempts, 1);
  EXPECT_FALSE(j.job.next_attempt_at);
  EXPECT_TRUE(j.job.finished_at);
  EXPECT_FALSE(j.job.file_id);
  ASSERT_EQ(j.attempts.size(), 1U);
  EXPECT_EQ(j.attempts[0].outcome, AttemptOutcome::failed);
  EXPECT_EQ(j.attempts[0].http_status, GetParam().status);
  EXPECT_EQ(j.attempts[0].error, GetParam().expected_error);
  EXPECT_EQ(j.attempts[0].bytes_sent, kSmall);
  // Never again, however late it gets.
  advance(24h);
  expect_nothing_sent_for(300ms, 1);
  EXPECT_TRUE(std::filesystem::exists(j.job.path));
}

INSTANTIATE_TEST_SUITE_P(
    Statuses, RefusedTest,
    ::testing::Values(
        RefusedCase{400, R"({"detail":"There was an error parsing the body"})",
                    "HTTP 400: There was an error parsing the body"},
        RefusedCase{404, R"({"detail":"Not Found"})", "HTTP 404: Not Found"},
        RefusedCase{405, R"({"detail":"Method Not Allowed"})", "HTTP 405: Method Not Allowed"},
        RefusedCase{413, R"({"detail":"archive too large"})", "HTTP 413: archive too large"},
        RefusedCase{415, R"({"detail":"unsupported archive type"})", "HTTP 415: unsupported archive type"},
        RefusedCase{422,
                    R"({"detail":[{"type":"missing","loc":["body","file"],"msg":"Field required","input":null},)"
                    R"({"type":"value_error","loc":["query","ai_project_id"],"msg":"bad project"}]})",
                    "HTTP 422: body.file: Field required; query.ai_project_id: bad project"},
        RefusedCase{418, R"({"detail":"I'm a teapot"})", "HTTP 418: I'm a teapot"}),
    [](const auto& p) { return "Http" + std::to_string(p.param.status); });

TEST_F(OutcomesTest, EarlyRefusalBeforeTheBodyFailsAtOnce) {
  start();
  // Big enough that the answer surely comes before the body is complete.
  api_->push_fault(fault(FaultKind::early_status, [](Fault& f) {
    f.status = 413;
    f.body = R"({"detail":"Request Entity Too Large"})";
    f.linger_for = 200ms;
  }));
  const auto id = add_job("huge.tar.gz", 32 * kMiB);
  ASSERT_TRUE(wait_for_state(id, JobState::failed));
  const auto j = job(id);
  EXPECT_EQ(j.job.http_status, 413);
  EXPECT_EQ(j.job.last_error, "HTTP 413: Request Entity Too Large");
  EXPECT_EQ(j.attempts.at(0).outcome, AttemptOutcome::failed);
  EXPECT_LT(j.attempts.at(0).bytes_sent, 32 * kMiB);
  EXPECT_TRUE(api_->files().empty());
}

TEST_F(OutcomesTest, RedirectFailsNamingStatusAndLocation) {
  start();
  api_->push_fault(status_fault(308, "", {{"Location", "https://elsewhere.example/v0/models/upload"}}));
  const auto id = add_job("model.zip", kSmall);
  ASSERT_TRUE(wait_for_state(id, JobState::failed));
  const auto j = job(id);
  EXPECT_EQ(j.job.http_status, 308);
  EXPECT_TRUE(contains(j.job.last_error, "HTTP 308")) << *j.job.last_error;
  EXPECT_TRUE(contains(j.job.last_error, "https://elsewhere.example/v0/models/upload")) << *j.job.last_error;
  EXPECT_EQ(j.attempts.at(0).outcome, AttemptOutcome::failed);
  advance(1h);
  expect_nothing_sent_for(300ms, 1);
}

// --- retried with backoff

struct RetriedCase {
  std::string name;
  Fault fault;
  std::optional<int> status;
  std::string error_part;
  Duration at_least{0};
  std::size_t file_bytes = kSmall;
  friend void PrintTo(const RetriedCase& c, std::ostream* out) { *out << c.name; }
};

class RetriedTest : public OutcomesTest, public ::testing::WithParamInterface<RetriedCase> {};

TEST_P(RetriedTest, IsRetriedWithBackoff) {
  config_.api.idle_timeout = 1s;  // for the stall
  start();
  api_->push_fault(GetParam().fault);
  const WallTime sent_at = clock_.now();
  const auto id = add_job("model.zip", GetParam().file_bytes);
  ASSERT_TRUE(wait_for_attempts(id, 1));
  const auto j = job(id);
  expect_retried(j, GetParam().status, sent_at, GetParam().at_least);
  EXPECT_TRUE(contains(j.job.last_error, GetParam().error_part)) << *j.job.last_error;
  EXPECT_TRUE(api_->files().empty());
  if (GetParam().at_least > Duration{0}) {
    // Not a moment before the server's delay.
    advance(std::chrono::duration_cast<std::chrono::milliseconds>(GetParam().at_least) - 1s);
    expect_nothing_sent_for(300ms, 1);
  }
  expect_succeeds_when_due(id, 1);
  EXPECT_EQ(upload_requests(), 2U);
  EXPECT_EQ(api_->files().size(), 1U);
}

INSTANTIATE_TEST_SUITE_P(
    Transient, RetriedTest,
    ::testing::Values(
        RetriedCase{"Http408", status_fault(408, R"({"detail":"Request Timeout"})"), 408, "HTTP 408: Request Timeout"},
        RetriedCase{"Http409", status_fault(409, R"({"detail":"busy"})"), 409, "HTTP 409: busy"},
        RetriedCase{"Http425", status_fault(425, ""), 425, "HTTP 425"},
        RetriedCase{"Http500", status_fault(500, R"({"detail":"Internal Server Error"})"), 500, "HTTP 500"},
        RetriedCase{"Http503RetryAfter", status_fault(503, "", {{"Retry-After", "30"}}), 503, "HTTP 503", 30s},
        RetriedCase{"Http500RetryAfterMs", status_fault(500, "", {{"retry-after-ms", "45000"}}), 500, "HTTP 500", 45s},
        RetriedCase{"ResetMidBody", fault(FaultKind::reset_after_bytes, [](Fault& f) { f.after_bytes = kMiB; }),
                    std::nullopt, "the connection broke while sending the body", Duration{0}, 16 * kMiB},
        RetriedCase{"ResetAfterBody", fault(FaultKind::reset_after_body), std::nullopt,
                    "the connection closed after the whole request was sent, without an answer"},
        RetriedCase{"StallIdleTimeout", fault(FaultKind::stall, [](Fault& f) { f.stall_for = 10s; }), std::nullopt,
                    "no bytes moved in either direction for 1s"}),
    [](const auto& p) { return p.param.name; });

TEST_F(OutcomesTest, UntrustedCertificateIsRetriedAndNothingIsSent) {
  start_fake(/*untrusted_certificate=*/true);
  start();
  const WallTime sent_at = clock_.now();
  const auto id = add_job("model.zip", kSmall);
  ASSERT_TRUE(wait_for_attempts(id, 1));
  const auto j = job(id);
  expect_retried(j, std::nullopt, sent_at);
  EXPECT_TRUE(contains(j.job.last_error, "certificate")) << *j.job.last_error;
  EXPECT_EQ(j.attempts.at(0).bytes_sent, 0U);
  EXPECT_TRUE(api_->requests().empty()) << "the token must not reach an unverified server";
}

// --- 401 / 403: the auth hold

class AuthHoldTest : public OutcomesTest, public ::testing::WithParamInterface<int> {
 protected:
  // One session, so the second job is only ever sent if the hold lets it through.
  void hold_with_two_jobs() {
    config_.upload.sessions = 1;
    start();
    api_->push_fault(status_fault(GetParam(), R"({"detail":"Invalid API key"})"));
    first_ = add_job("first.zip", kSmall);
    ASSERT_TRUE(wait_for_attempts(first_, 1));
    second_ = add_job("second.zip", kSmall);
    expect_nothing_sent_for(500ms, 1);

    const auto j = job(first_);
    EXPECT_EQ(j.job.state, JobState::pending);
    EXPECT_EQ(j.job.attempts, 0) << "a held attempt counts toward nothing";
    EXPECT_EQ(j.job.http_status, GetParam());
    EXPECT_EQ(j.job.last_error, "HTTP " + std::to_string(GetParam()) + ": Invalid API key");
    ASSERT_EQ(j.attempts.size(), 1U);
    EXPECT_EQ(j.attempts[0].outcome, AttemptOutcome::held);
    EXPECT_EQ(job(second_).attempts.size(), 0U);
    const auto reason = held_reason();
    EXPECT_TRUE(contains(reason, "HTTP " + std::to_string(GetParam()))) << reason.value_or("NULL");
    EXPECT_TRUE(contains(reason, "check the token")) << reason.value_or("NULL");
  }

  void expect_released() {
    ASSERT_TRUE(wait_for_state(first_, JobState::succeeded));
    ASSERT_TRUE(wait_for_state(second_, JobState::succeeded));
    EXPECT_EQ(job(first_).attempts.size(), 2U);
    EXPECT_EQ(job(first_).job.attempts, 1);
    EXPECT_TRUE(run_until([&] { return !held_reason(); }, 5s)) << "held_reason is cleared when the hold ends";
  }

  std::size_t probes() const {
    std::size_t n = 0;
    for (const auto& r : api_->requests()) n += r.method == "GET" && r.target == "/v1/files?limit=1" ? 1U : 0U;
    return n;
  }

  store::JobId first_ = 0;
  store::JobId second_ = 0;
};

TEST_P(AuthHoldTest, ANewTokenReleasesTheHold) {
  hold_with_two_jobs();
  advance(4min);
  expect_nothing_sent_for(300ms, 1);
  scheduler_->token_changed();
  expect_released();
  EXPECT_EQ(probes(), 0U);
}

TEST_P(AuthHoldTest, AProbeAfterFiveMinutesReleasesTheHold) {
  hold_with_two_jobs();
  advance(4min + 59s);
  expect_nothing_sent_for(300ms, 1);
  EXPECT_EQ(probes(), 0U);
  advance(1s);
  ASSERT_TRUE(run_until([&] { return probes() == 1; }, 10s));
  expect_released();
  EXPECT_EQ(probes(), 1U);
}

TEST_P(AuthHoldTest, AProbeRefusedKeepsTheHoldFiveMoreMinutes) {
  hold_with_two_jobs();
  api_->set_token("a-rotated-token");  // the daemon's token is refused now: 401
  advance(5min);
  ASSERT_TRUE(run_until([&] { return probes() == 1; }, 10s));
  expect_nothing_sent_for(500ms, 1);
  EXPECT_TRUE(held_reason());

  api_->set_token("test-token");  // the server takes it again; only the next probe can tell
  advance(4min + 59s);
  expect_nothing_sent_for(300ms, 1);
  EXPECT_EQ(probes(), 1U);
  advance(1s);
  ASSERT_TRUE(run_until([&] { return probes() == 2; }, 10s));
  expect_released();
}

TEST_P(AuthHoldTest, AProbeAnsweredNeitherYesNorNoEndsTheHold) {
  // docs/http.md (Outcomes, 401/403): only a 401/403 keeps the hold; the API being down says nothing against the
  // token, and an upload refused again would start a new hold.
  hold_with_two_jobs();
  api_->push_list_fault(status_fault(503, R"({"detail":"Service Unavailable"})"));
  advance(5min);
  ASSERT_TRUE(run_until([&] { return probes() == 1; }, 10s));
  expect_released();
  EXPECT_EQ(probes(), 1U);
}

INSTANTIATE_TEST_SUITE_P(Statuses, AuthHoldTest, ::testing::Values(401, 403),
                         [](const auto& p) { return "Http" + std::to_string(p.param); });

// --- Per token (watch[].token_file, `modeldrop add --token-file`): a hold holds only its token's jobs

// Tokens by token_file, as ApiTokens reads them from files.
class FixedTokens final : public app::JobTokens {
 public:
  Result<std::optional<std::string>> token_for(const app::TokenKey& key) override {
    if (!key) return Result<std::optional<std::string>>(boost::system::in_place_value, std::nullopt);
    const auto it = tokens.find(*key);
    if (it == tokens.end()) return make_error("token_file " + *key + ": cannot use it: No such file or directory");
    return Result<std::optional<std::string>>(boost::system::in_place_value, it->second);
  }
  [[nodiscard]] std::string label(const app::TokenKey& key) const override {
    return key ? "watch /srv/" + *key : "watch /srv/global (the global token)";
  }
  std::map<std::string, std::string> tokens;
};

class TokenHoldTest : public OutcomesTest {
 protected:
  void start_with_tokens() {
    config_.upload.sessions = 1;  // one session: a job of another token is sent only past the hold
    start();
    scheduler_->set_tokens(&tokens_);
  }
  store::JobId add_for(const std::string& token_file, const std::string& name, unsigned seed) {
    return enqueue(write_archive(name, kSmall, seed), std::nullopt, token_file);
  }
  std::size_t probes_with(const std::string& token) const {
    std::size_t n = 0;
    for (const auto& r : api_->requests()) {
      n += r.method == "GET" && r.target == "/v1/files?limit=1" && r.authorization == "Bearer " + token ? 1U : 0U;
    }
    return n;
  }

  FixedTokens tokens_;
};

TEST_F(TokenHoldTest, ATeamsAuthHoldIsProbedWithItsOwnTokenWhileTheOthersUpload) {
  tokens_.tokens = {{"teamb", "token-b"}};
  start_with_tokens();
  api_->set_tokens({"test-token"});  // team B's key is refused
  const auto b = add_for("teamb", "b.zip", 1);
  ASSERT_TRUE(wait_for_attempts(b, 1));
  EXPECT_TRUE(run_until([&] { return contains(held_reason(), "watch /srv/teamb: HTTP 401"); }, 5s))
      << held_reason().value_or("NULL");
  const auto global = add_job("global.zip", kSmall, std::nullopt, 2);
  ASSERT_TRUE(wait_for_state(global, JobState::succeeded)) << "the global token's jobs go on";
  const auto b2 = add_for("teamb", "b2.zip", 3);
  expect_nothing_sent_for(300ms, 2);

  api_->set_tokens({"test-token", "token-b"});
  advance(5min);
  ASSERT_TRUE(wait_for_state(b, JobState::succeeded));
  ASSERT_TRUE(wait_for_state(b2, JobState::succeeded));
  EXPECT_EQ(probes_with("token-b"), 1U) << "the probe carries the held token";
  EXPECT_EQ(job(b).attempts.at(0).outcome, AttemptOutcome::held);
  EXPECT_TRUE(run_until([&] { return !held_reason(); }, 5s));
}

TEST_F(TokenHoldTest, ARateLimitHoldsOnlyTheTokenThatGotIt) {
  tokens_.tokens = {{"teamb", "token-b"}};
  start_with_tokens();
  api_->set_tokens({"test-token", "token-b"});
  const WallTime sent_at = clock_.now();
  api_->push_fault(status_fault(429, R"({"detail":"Too Many Requests"})", {{"Retry-After", "120"}}));
  const auto b = add_for("teamb", "b.zip", 1);
  ASSERT_TRUE(wait_for_attempts(b, 1));
  const auto global = add_job("global.zip", kSmall, std::nullopt, 2);
  ASSERT_TRUE(wait_for_state(global, JobState::succeeded));
  EXPECT_TRUE(run_until([&] { return contains(held_reason(), "watch /srv/teamb: HTTP 429"); }, 5s))
      << held_reason().value_or("NULL");
  EXPECT_EQ(job(b).job.next_attempt_at, sent_at + 120s);
  advance(119s);
  expect_nothing_sent_for(300ms, 2);
  advance(1s);
  ASSERT_TRUE(wait_for_state(b, JobState::succeeded));
  EXPECT_EQ(job(b).job.attempts, 1) << "the held attempt did not count";
}

TEST_F(TokenHoldTest, ATokenFileThatCannotBeReadHoldsItsJobsUntilItChanges) {
  start_with_tokens();
  const auto b = add_for("teamb", "b.zip", 1);  // no token for teamb yet
  ASSERT_TRUE(wait_for_attempts(b, 1));
  const auto j = job(b);
  EXPECT_EQ(j.job.state, JobState::pending);
  EXPECT_EQ(j.attempts.at(0).outcome, AttemptOutcome::held);
  EXPECT_EQ(j.job.last_error, "no usable API token: token_file teamb: cannot use it: No such file or directory");
  EXPECT_TRUE(run_until([&] { return contains(held_reason(), "watch /srv/teamb: no usable API token"); }, 5s))
      << held_reason().value_or("NULL");
  EXPECT_EQ(upload_requests(), 0U) << "nothing is sent without a token";
  const auto global = add_job("global.zip", kSmall, std::nullopt, 2);
  ASSERT_TRUE(wait_for_state(global, JobState::succeeded));
  advance(1h);
  expect_nothing_sent_for(300ms, 1);
  EXPECT_EQ(job(b).attempts.size(), 1U) << "no probe, no retry: only a change of the file helps";

  api_->set_tokens({"test-token", "token-b"});
  tokens_.tokens = {{"teamb", "token-b"}};
  scheduler_->token_changed(std::string("teamb"));
  ASSERT_TRUE(wait_for_state(b, JobState::succeeded));
  EXPECT_TRUE(run_until([&] { return !held_reason(); }, 5s));
}

// --- 429: the rate-limit hold

struct RateLimitCase {
  std::string name;
  // The header, made from the attempt's time.
  std::function<std::pair<std::string, std::string>(WallTime)> header;
  Duration hold;
  friend void PrintTo(const RateLimitCase& c, std::ostream* out) { *out << c.name; }
};

class RateLimitTest : public OutcomesTest, public ::testing::WithParamInterface<RateLimitCase> {};

TEST_P(RateLimitTest, AllSessionsHoldUntilTheServerSaysAndItDoesNotCount) {
  config_.retry.max_attempts = 1;  // a counted failure would fail the job: a held one must not
  start();
  const WallTime sent_at = clock_.now();
  api_->push_fault(status_fault(429, R"({"detail":"Too Many Requests"})", {GetParam().header(sent_at)}));
  const auto first = add_job("first.zip", kSmall);
  ASSERT_TRUE(wait_for_attempts(first, 1));
  const auto second = add_job("second.zip", kSmall);
  const auto third = add_job("third.zip", kSmall);
  expect_nothing_sent_for(500ms, 1);

  const auto j = job(first);
  EXPECT_EQ(j.job.state, JobState::pending);
  EXPECT_EQ(j.job.attempts, 0);
  EXPECT_EQ(j.job.http_status, 429);
  EXPECT_EQ(j.job.last_error, "HTTP 429: Too Many Requests");
  EXPECT_EQ(j.job.next_attempt_at, sent_at + GetParam().hold);
  ASSERT_EQ(j.attempts.size(), 1U);
  EXPECT_EQ(j.attempts[0].outcome, AttemptOutcome::held);
  const auto reason = held_reason();
  EXPECT_TRUE(contains(reason, "rate limited until " + format_timestamp(sent_at + GetParam().hold)))
      << reason.value_or("NULL");

  advance(std::chrono::duration_cast<std::chrono::milliseconds>(GetParam().hold) - 1s);
  expect_nothing_sent_for(500ms, 1);
  advance(1s);
  for (const auto id : {first, second, third}) ASSERT_TRUE(wait_for_state(id, JobState::succeeded));
  EXPECT_EQ(job(first).job.attempts, 1);
  EXPECT_EQ(upload_requests(), 4U);
  EXPECT_TRUE(run_until([&] { return !held_reason(); }, 5s));
}

INSTANTIATE_TEST_SUITE_P(
    RetryAfter, RateLimitTest,
    ::testing::Values(RateLimitCase{"Seconds",
                                    [](WallTime) {
                                      return std::pair<std::string, std::string>{"Retry-After", "120"};
                                    },
                                    120s},
                      RateLimitCase{"HttpDate",
                                    [](WallTime sent) {
                                      return std::pair<std::string, std::string>{"Retry-After", http_date(sent + 300s)};
                                    },
                                    300s},
                      RateLimitCase{"Milliseconds",
                                    [](WallTime) {
                                      return std::pair<std::string, std::string>{"retry-after-ms", "90500"};
                                    },
                                    90500ms},
                      RateLimitCase{"AboveAnHourIsCapped",
                                    [](WallTime) {
                                      return std::pair<std::string, std::string>{"Retry-After", "86400"};
                                    },
                                    1h}),
    [](const auto& p) { return p.param.name; });

TEST_F(OutcomesTest, RateLimitWithoutRetryAfterHoldsForTheBackoff) {
  config_.retry.initial_backoff = 20s;
  start();
  const WallTime sent_at = clock_.now();
  api_->push_fault(status_fault(429, R"({"detail":"Too Many Requests"})"));
  const auto first = add_job("first.zip", kSmall);
  ASSERT_TRUE(wait_for_attempts(first, 1));
  const auto second = add_job("second.zip", kSmall);
  const auto j = job(first);
  ASSERT_TRUE(j.job.next_attempt_at);
  const auto until = *j.job.next_attempt_at;
  EXPECT_GE(until, sent_at);
  EXPECT_LE(until, sent_at + 20s) << "the first 429's backoff is at most initial_backoff";
  EXPECT_EQ(j.attempts.at(0).outcome, AttemptOutcome::held);
  if (until - sent_at >= 1s) {
    advance(std::chrono::floor<std::chrono::milliseconds>(until - sent_at) - 500ms);
    expect_nothing_sent_for(300ms, 1);
    EXPECT_TRUE(held_reason());
  }
  advance(1s);
  ASSERT_TRUE(wait_for_state(first, JobState::succeeded));
  ASSERT_TRUE(wait_for_state(second, JobState::succeeded));
  EXPECT_EQ(job(first).job.attempts, 1);
}

// --- budgets

TEST_F(OutcomesTest, MaxAttemptsFailsTheJobAndRetryStartsAFreshBudget) {
  config_.retry.max_attempts = 2;
  start();
  api_->set_default_fault(status_fault(500, R"({"detail":"down"})"));
  const auto id = add_job("model.zip", kSmall);
  ASSERT_TRUE(wait_for_attempts(id, 1));
  EXPECT_EQ(job(id).job.state, JobState::pending);
  advance(1min);
  ASSERT_TRUE(wait_for_state(id, JobState::failed));
  auto j = job(id);
  EXPECT_EQ(j.job.attempts, 2);
  EXPECT_TRUE(contains(j.job.last_error, "max_attempts")) << *j.job.last_error;
  EXPECT_TRUE(contains(j.job.last_error, "HTTP 500: down")) << *j.job.last_error;
  EXPECT_EQ(j.attempts.size(), 2U);
  EXPECT_EQ(j.attempts[1].outcome, AttemptOutcome::failed);
  EXPECT_FALSE(j.job.next_attempt_at);
  advance(1h);
  expect_nothing_sent_for(300ms, 2);

  // `modeldrop retry` from another process: two attempts again, counted from zero.
  auto retried = outside().retry(std::vector<store::JobId>{id}, clock_.now());
  ASSERT_TRUE(retried);
  ASSERT_FALSE(retried->at(0).error);
  external_change();
  ASSERT_TRUE(wait_for_attempts(id, 3));
  j = job(id);
  EXPECT_EQ(j.job.state, JobState::pending);
  EXPECT_EQ(j.job.attempts, 1) << "a fresh budget";
  api_->set_default_fault({});
  expect_succeeds_when_due(id, 3);
  EXPECT_EQ(job(id).job.attempts, 2);
}

TEST_F(OutcomesTest, GiveUpAfterFailsTheJobAndSaysSo) {
  config_.retry.give_up_after = 10min;
  start();
  api_->set_default_fault(status_fault(503, ""));
  const auto id = add_job("model.zip", kSmall);
  ASSERT_TRUE(wait_for_attempts(id, 1));
  EXPECT_EQ(job(id).job.state, JobState::pending);
  advance(10min);
  ASSERT_TRUE(wait_for_state(id, JobState::failed));
  auto j = job(id);
  EXPECT_EQ(j.job.attempts, 2);
  EXPECT_TRUE(contains(j.job.last_error, "give_up_after")) << *j.job.last_error;
  EXPECT_FALSE(contains(j.job.last_error, "max_attempts"));

  // A retry restarts the clock of give_up_after too.
  ASSERT_TRUE(outside().retry(std::vector<store::JobId>{id}, clock_.now()));
  external_change();
  ASSERT_TRUE(wait_for_attempts(id, 3));
  EXPECT_EQ(job(id).job.state, JobState::pending);
  EXPECT_GE(job(id).job.budget_started_at, clock_.now());
}

// --- dedupe

TEST_F(OutcomesTest, SameContentSameProjectIsNotSentAgainOtherProjectIs) {
  start();
  const auto original = add_job("model.zip", kSmall, "project-1", 7);
  ASSERT_TRUE(wait_for_state(original, JobState::succeeded));
  const auto file_id = job(original).job.file_id;
  ASSERT_TRUE(file_id);

  const auto copy = add_job("copy-of-model.zip", kSmall, "project-1", 7);
  ASSERT_TRUE(wait_for_state(copy, JobState::succeeded));
  auto j = job(copy);
  EXPECT_EQ(j.job.file_id, file_id);
  EXPECT_EQ(j.job.file_status, job(original).job.file_status);
  EXPECT_TRUE(j.attempts.empty());
  EXPECT_EQ(j.job.attempts, 0);
  EXPECT_EQ(upload_requests(), 1U);

  const auto elsewhere = add_job("for-project-2.zip", kSmall, "project-2", 7);
  ASSERT_TRUE(wait_for_state(elsewhere, JobState::succeeded));
  j = job(elsewhere);
  EXPECT_NE(j.job.file_id, file_id);
  EXPECT_EQ(j.attempts.size(), 1U);
  EXPECT_EQ(upload_requests(), 2U);
  ASSERT_EQ(api_->files().size(), 2U);
  EXPECT_EQ(api_->files()[1].project_id, "project-2");
}

// --- cancel in flight

TEST_F(OutcomesTest, CancelAbortsTheUploadInFlightAndLeavesTheFile) {
  start();
  api_->push_fault(fault(FaultKind::throttle, [](Fault& f) { f.bytes_per_second = kMiB; }));
  const auto path = write_archive("slow.zip", 64 * kMiB, 3);
  const auto before = std::filesystem::last_write_time(path);
  const auto id = enqueue(path, std::nullopt);
  ASSERT_TRUE(run_until([&] { return job(id).job.bytes_sent > 0; }, 20s));

  ASSERT_TRUE(outside().cancel(std::vector<store::JobId>{id}, clock_.now()));
  const auto cancelled_at = SteadyClock::now();
  external_change();
  ASSERT_TRUE(run_until(
      [&] {
        const auto j = job(id);
        return !j.attempts.empty() && j.attempts.back().outcome.has_value();
      },
      10s));
  const auto took = SteadyClock::now() - cancelled_at;
  EXPECT_LT(took, 1500ms) << "docs/cli.md: within 1 s (some slack for sanitizer builds)";

  const auto j = job(id);
  EXPECT_EQ(j.job.state, JobState::cancelled);
  EXPECT_EQ(j.attempts.back().outcome, AttemptOutcome::aborted);
  EXPECT_LT(j.attempts.back().bytes_sent, 64 * kMiB);
  EXPECT_EQ(j.job.attempts, 0);
  EXPECT_TRUE(std::filesystem::exists(path));
  EXPECT_EQ(std::filesystem::file_size(path), 64 * kMiB);
  EXPECT_EQ(std::filesystem::last_write_time(path), before);
  // The fake records an upload once its body ends: here, cut short by the closed connection.
  ASSERT_TRUE(run_until([&] { return upload_requests() == 1; }, 30s));
  EXPECT_EQ(api_->requests().at(0).status, 0) << "no answer: the client went away";
  EXPECT_LT(api_->requests().at(0).body_bytes_read, 64 * kMiB);
  EXPECT_TRUE(api_->files().empty());
  advance(1h);
  expect_nothing_sent_for(300ms, 1);
}

// --- bandwidth

TEST_F(OutcomesTest, BandwidthCapHoldsAcrossSessions) {
  config_.upload.sessions = 2;
  config_.upload.max_bytes_per_second = 4 * kMiB;
  start();
  const auto started = SteadyClock::now();
  const auto a = add_job("a.zip", 6 * kMiB, std::nullopt, 11);
  const auto b = add_job("b.zip", 6 * kMiB, std::nullopt, 12);
  ASSERT_TRUE(wait_for_state(a, JobState::succeeded, 60s));
  ASSERT_TRUE(wait_for_state(b, JobState::succeeded, 60s));
  const auto took = std::chrono::duration<double>(SteadyClock::now() - started).count();
  // 12 MiB at 4 MiB/s is 3 s; a lower bound only, so a slow (sanitized) build cannot fail it.
  EXPECT_GE(took, 2.5) << "12 MiB went out faster than 4 MiB/s allows";
  // Both were sent side by side, not one after the other.
  const auto requests = api_->requests();
  ASSERT_EQ(requests.size(), 2U);
  EXPECT_NE(requests[0].connection_id, requests[1].connection_id);
}

}  // namespace
}  // namespace modeldrop::test
