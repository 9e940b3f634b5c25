// docs/http.md, row by row, with a fixed clock and a seeded random source.
#include "upload/retry_policy.hpp"

#include <gtest/gtest.h>

namespace modeldrop::upload {
namespace {

using namespace std::chrono_literals;

const WallTime kNow = WallTime{std::chrono::sys_days{std::chrono::year{2026} / 11 / 25}.time_since_epoch() + 12h};
const std::string kFileJson =
    R"({"id":"file-123","object":"file","bytes":5,"created_at":1,"filename":"a.zip","purpose":"fine-tune",)"
    R"("status":"uploaded","status_details":null})";

UploadResult answered(int status, std::string body = {},
                      std::vector<std::pair<std::string, std::string>> headers = {}) {
  UploadResult r;
  r.http_status = status;
  r.body = std::move(body);
  r.headers = std::move(headers);
  r.body_complete = true;
  r.bytes_sent = 5;
  return r;
}

UploadResult transport_error(AttemptError error, std::string message) {
  UploadResult r;
  r.error = error;
  r.error_message = std::move(message);
  return r;
}

config::RetryConfig retry_config(int max_attempts = 0, Duration give_up_after = 72h) {
  config::RetryConfig c;
  c.initial_backoff = 2s;
  c.max_backoff = 15min;
  c.max_attempts = max_attempts;
  c.give_up_after = give_up_after;
  return c;
}

JobBudget fresh_job() {
  return JobBudget{0, kNow - 1min, 2s, 0};
}

TEST(Classify, TwoHundredWithOpenAIFileSucceeds) {
  const auto c = classify(answered(200, kFileJson), kNow);
  EXPECT_EQ(c.verdict, Verdict::succeeded);
  ASSERT_TRUE(c.file);
  EXPECT_EQ(c.file->id, "file-123");
  EXPECT_EQ(c.file->status, "uploaded");
  EXPECT_FALSE(c.file->status_details);
  EXPECT_TRUE(c.warnings.empty());
}

TEST(Classify, AnyTwoHundredCountsNotOnly200) {
  EXPECT_EQ(classify(answered(201, kFileJson), kNow).verdict, Verdict::succeeded);
}

TEST(Classify, ByteCountMismatchIsOnlyAWarning) {
  auto r = answered(200, kFileJson);
  r.bytes_sent = 6;
  const auto c = classify(r, kNow);
  EXPECT_EQ(c.verdict, Verdict::succeeded);
  ASSERT_EQ(c.warnings.size(), 1u);
  EXPECT_NE(c.warnings[0].find("5 bytes"), std::string::npos);
}

TEST(Classify, TwoHundredWithAnythingElseIsRetriedAsMalformed) {
  for (const char* body : {"", "not json", "{}", R"({"id":""})", R"({"id":7})", "[]", R"({"error":"x"})"}) {
    const auto c = classify(answered(200, body), kNow);
    EXPECT_EQ(c.verdict, Verdict::retry) << body;
    EXPECT_NE(c.reason.find("malformed response"), std::string::npos) << c.reason;
  }
}

TEST(Classify, TwoHundredBeforeTheBodyWasSentWholeIsNotASuccess) {
  auto r = answered(200, kFileJson);
  r.body_complete = false;
  r.answered_early = true;
  r.error = AttemptError::connection_closed;
  EXPECT_EQ(classify(r, kNow).verdict, Verdict::retry);
}

TEST(Classify, TwoHundredForAChangedFileIsNotAccepted) {
  auto r = answered(200, kFileJson);
  r.error = AttemptError::file_changed;
  r.error_message = "size changed from 5 to 9 bytes";
  const auto c = classify(r, kNow);
  EXPECT_EQ(c.verdict, Verdict::file_changed);
  EXPECT_FALSE(c.file);
}

TEST(Classify, PermanentRejectionsFailWithTheApiDetail) {
  for (int status : {400, 404, 405, 413, 415, 422}) {
    const auto c = classify(
        answered(status, R"({"detail":[{"type":"missing","loc":["body","file"],"msg":"Field required"}]})"), kNow);
    EXPECT_EQ(c.verdict, Verdict::failed) << status;
    EXPECT_EQ(c.reason, "HTTP " + std::to_string(status) + ": body.file: Field required");
  }
}

TEST(Classify, EarlyAnswerAfterAFailedWriteStillCounts) {
  auto r = answered(413, "<html>Request Entity Too Large</html>");
  r.body_complete = false;
  r.answered_early = true;
  r.error = AttemptError::connection_closed;
  const auto c = classify(r, kNow);
  EXPECT_EQ(c.verdict, Verdict::failed);
  EXPECT_EQ(c.reason, "HTTP 413: <html>Request Entity Too Large</html>");
}

TEST(Classify, AuthFailuresHold) {
  EXPECT_EQ(classify(answered(401, R"({"detail":"Invalid token"})"), kNow).verdict, Verdict::hold_auth);
  EXPECT_EQ(classify(answered(403, R"({"detail":"Not authenticated"})"), kNow).reason, "HTTP 403: Not authenticated");
}

TEST(Classify, TooManyRequestsHolds) {
  const auto c = classify(answered(429, "", {{"retry-after", "7"}}), kNow);
  EXPECT_EQ(c.verdict, Verdict::hold_rate_limit);
  EXPECT_EQ(c.server_delay, 7s);
}

TEST(Classify, TransientStatusesRetry) {
  for (int status : {408, 409, 425, 500, 502, 503, 504, 599}) {
    EXPECT_EQ(classify(answered(status), kNow).verdict, Verdict::retry) << status;
  }
}

TEST(Classify, RedirectsFailNamingTheLocation) {
  const auto c = classify(answered(301, "", {{"location", "https://elsewhere.example/v0"}}), kNow);
  EXPECT_EQ(c.verdict, Verdict::failed);
  EXPECT_NE(c.reason.find("HTTP 301 redirect to https://elsewhere.example/v0"), std::string::npos) << c.reason;
}

TEST(Classify, OtherClientErrorsFail) {
  for (int status : {402, 406, 410, 411, 418, 451}) {
    EXPECT_EQ(classify(answered(status), kNow).verdict, Verdict::failed) << status;
  }
}

TEST(Classify, TransportErrorsRetry) {
  for (auto error : {AttemptError::connect_failed, AttemptError::connect_timeout, AttemptError::tls_failed,
                     AttemptError::certificate_rejected, AttemptError::proxy_failed, AttemptError::connection_closed,
                     AttemptError::idle_timeout, AttemptError::malformed_response, AttemptError::response_too_large}) {
    const auto c = classify(transport_error(error, "it broke"), kNow);
    EXPECT_EQ(c.verdict, Verdict::retry) << to_string(error);
    EXPECT_EQ(c.reason, "it broke");
  }
}

TEST(Classify, FileProblems) {
  EXPECT_EQ(classify(transport_error(AttemptError::file_missing, "gone"), kNow).verdict, Verdict::source_removed);
  EXPECT_EQ(classify(transport_error(AttemptError::file_missing, "gone"), kNow).reason, "source removed");
  EXPECT_EQ(classify(transport_error(AttemptError::file_replaced, "inode"), kNow).verdict, Verdict::file_changed);
  const auto unreadable = classify(transport_error(AttemptError::file_unreadable, "open: Permission denied"), kNow);
  EXPECT_EQ(unreadable.verdict, Verdict::failed);
  EXPECT_EQ(unreadable.reason, "open: Permission denied");
  EXPECT_EQ(classify(transport_error(AttemptError::file_not_regular, "a FIFO"), kNow).verdict, Verdict::failed);
  EXPECT_EQ(classify(transport_error(AttemptError::cancelled, ""), kNow).verdict, Verdict::cancelled);
}

TEST(RetryAfter, SecondsHttpDateAndMilliseconds) {
  EXPECT_EQ(parse_retry_after("120", kNow), 120s);
  EXPECT_EQ(parse_retry_after(" 0 ", kNow), 0s);
  EXPECT_EQ(parse_retry_after("Wed, 25 Nov 2026 12:00:30 GMT", kNow), 30s);
  EXPECT_EQ(parse_retry_after("Wednesday, 25-Nov-26 12:01:00 GMT", kNow), 60s);
  EXPECT_EQ(parse_retry_after("Wed Nov 25 12:00:05 2026", kNow), 5s);
  EXPECT_EQ(parse_retry_after("Wed, 25 Nov 2026 11:00:00 GMT", kNow), 0s) << "a date in the past means now";
  EXPECT_EQ(parse_retry_after_ms("1500"), 1500ms);
  EXPECT_EQ(parse_retry_after_ms("2.5"), 3ms);
}

TEST(RetryAfter, CappedAtOneHour) {
  EXPECT_EQ(parse_retry_after("7200", kNow), 1h);
  EXPECT_EQ(parse_retry_after("99999999999999999999999", kNow), 1h);
  EXPECT_EQ(parse_retry_after("Thu, 26 Nov 2026 12:00:00 GMT", kNow), 1h);
  EXPECT_EQ(parse_retry_after_ms("99999999"), 1h);
}

// Found by retry_after_fuzz: from_time_t of a date centuries away overflowed the clock's
// nanosecond count (UB; the wrapped value could turn a far-future date into "now").
TEST(RetryAfter, DatesFarFromNowAreClampedWithoutOverflow) {
  EXPECT_EQ(parse_retry_after("Wed Oct 23 07:28:00 5", kNow), 0s) << "year 5";
  EXPECT_EQ(parse_retry_after("Mon, 01 Jan 0001 00:00:00 GMT", kNow), 0s);
  EXPECT_EQ(parse_retry_after("Fri, 31 Dec 9999 23:59:59 GMT", kNow), 1h);
  EXPECT_EQ(parse_retry_after("Thu Jan  1 00:00:00 2300", kNow), 1h);
  EXPECT_EQ(parse_retry_after("Wed, 25 Nov 2026 13:00:01 GMT", kNow), 1h) << "just past the cap";
  EXPECT_EQ(parse_retry_after("Wed, 25 Nov 2026 11:59:59 GMT", kNow), 0s) << "just before now";
}

TEST(RetryAfter, GarbageIsIgnored) {
  for (const char* bad : {"", "soon", "-5", "12abc", "1.5", "Wed, 99 Nov 2026 12:00:00 GMT"}) {
    EXPECT_FALSE(parse_retry_after(bad, kNow).has_value()) << bad;
  }
  for (const char* bad : {"", "-1", "nan", "inf", "1e", "x"}) EXPECT_FALSE(parse_retry_after_ms(bad)) << bad;
}

TEST(RetryAfter, MillisecondsWinOverSeconds) {
  const auto r = answered(503, "", {{"retry-after", "30"}, {"retry-after-ms", "250"}});
  EXPECT_EQ(server_retry_delay(r, kNow), 250ms);
  const auto only_seconds = answered(503, "", {{"retry-after-ms", "bogus"}, {"retry-after", "30"}});
  EXPECT_EQ(server_retry_delay(only_seconds, kNow), 30s);
}

TEST(Backoff, FullJitterWithinTheDoublingCeiling) {
  RetryPolicy policy(retry_config(), 42);
  for (int n = 1; n <= 12; ++n) {
    const Duration ceiling = std::min<Duration>(15min, Duration{2000LL << (n - 1)});
    Duration smallest = ceiling, largest{0};
    for (int i = 0; i < 200; ++i) {
      const auto d = policy.backoff(n);
      ASSERT_GE(d, 0ms);
      ASSERT_LE(d, ceiling) << "n=" << n;
      smallest = std::min(smallest, d);
      largest = std::max(largest, d);
    }
    EXPECT_LT(smallest, ceiling / 4) << "full jitter reaches down towards 0, n=" << n;
    EXPECT_GT(largest, ceiling * 3 / 4) << "and up towards the ceiling, n=" << n;
  }
  EXPECT_LE(policy.backoff(1000), 15min) << "no overflow for huge n";
}

TEST(Decide, RetryIsCountedAndScheduledNoEarlierThanTheServerAsks) {
  RetryPolicy policy(retry_config(), 1);
  const auto d = policy.decide(answered(503, "", {{"retry-after", "600"}}), fresh_job(), kNow);
  EXPECT_EQ(d.verdict, Verdict::retry);
  EXPECT_TRUE(d.counts);
  ASSERT_TRUE(d.next_attempt_at);
  EXPECT_GE(*d.next_attempt_at, kNow + 600s);
}

TEST(Decide, MaxAttemptsEndsTheJob) {
  RetryPolicy policy(retry_config(3), 1);
  auto job = fresh_job();
  job.attempts_before = 1;
  EXPECT_EQ(policy.decide(answered(500), job, kNow).verdict, Verdict::retry);
  job.attempts_before = 2;
  const auto d = policy.decide(answered(500), job, kNow);
  EXPECT_EQ(d.verdict, Verdict::failed);
  EXPECT_EQ(d.reason, "gave up after 3 attempts (retry.max_attempts): HTTP 500");
  EXPECT_FALSE(d.next_attempt_at);
}

TEST(Decide, GiveUpAfterEndsTheJob) {
  RetryPolicy policy(retry_config(0, 1h), 1);
  auto job = fresh_job();
  job.budget_started = kNow - 59min;
  EXPECT_EQ(policy.decide(answered(500), job, kNow).verdict, Verdict::retry) << "2 s of backoff still fits";
  job.budget_started = kNow - 1h;
  const auto d = policy.decide(transport_error(AttemptError::idle_timeout, "no bytes moved for 60s"), job, kNow);
  EXPECT_EQ(d.verdict, Verdict::failed);
  EXPECT_EQ(d.reason, "gave up after 1h (retry.give_up_after): no bytes moved for 60s");
}

TEST(Decide, ZeroMeansNoCap) {
  RetryPolicy policy(retry_config(0, 0ms), 1);
  auto job = fresh_job();
  job.attempts_before = 10'000;
  job.budget_started = kNow - 24h * 365;
  EXPECT_EQ(policy.decide(answered(500), job, kNow).verdict, Verdict::retry);
}

TEST(Decide, HeldAttemptsCountTowardNothing) {
  RetryPolicy policy(retry_config(1), 1);
  auto job = fresh_job();
  const auto auth = policy.decide(answered(401), job, kNow);
  EXPECT_EQ(auth.verdict, Verdict::hold_auth);
  EXPECT_FALSE(auth.counts);
  const auto limited = policy.decide(answered(429, "", {{"retry-after", "9"}}), job, kNow);
  EXPECT_EQ(limited.verdict, Verdict::hold_rate_limit);
  EXPECT_FALSE(limited.counts);
  EXPECT_EQ(limited.hold_until, kNow + 9s);
}

TEST(Decide, RateLimitWithoutRetryAfterBacksOffByConsecutiveCount) {
  RetryPolicy policy(retry_config(), 3);
  auto job = fresh_job();
  job.consecutive_rate_limits = 4;  // the fifth 429 in a row: ceiling 2s * 2^4 = 32s
  for (int i = 0; i < 50; ++i) {
    const auto d = policy.decide(answered(429), job, kNow);
    ASSERT_TRUE(d.hold_until);
    EXPECT_LE(*d.hold_until, kNow + 32s);
  }
}

TEST(Decide, ChangedFileWaitsToSettleAndIsNotCounted) {
  RetryPolicy policy(retry_config(), 1);
  auto job = fresh_job();
  job.settle = 5s;
  const auto d = policy.decide(transport_error(AttemptError::file_changed, "mtime changed"), job, kNow);
  EXPECT_EQ(d.verdict, Verdict::file_changed);
  EXPECT_FALSE(d.counts);
  EXPECT_EQ(d.next_attempt_at, kNow + 5s);
}

TEST(Decide, RejectionCountsButUnreadableFileDoesNot) {
  RetryPolicy policy(retry_config(), 1);
  EXPECT_TRUE(policy.decide(answered(422), fresh_job(), kNow).counts);
  EXPECT_FALSE(policy.decide(transport_error(AttemptError::file_unreadable, "EACCES"), fresh_job(), kNow).counts);
}

}  // namespace
}  // namespace modeldrop::upload
