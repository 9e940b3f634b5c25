// The human forms `modeldrop` prints: spans, progress bars, terminal-safe text.
#include "cli/job_format.hpp"

#include <gtest/gtest.h>

namespace modeldrop::cli {
namespace {

using namespace std::chrono_literals;

TEST(FormatSpan, ShortestReadableUnits) {
  EXPECT_EQ(format_span(0s), "0s");
  EXPECT_EQ(format_span(-5s), "0s");
  EXPECT_EQ(format_span(59s), "59s");
  EXPECT_EQ(format_span(65s), "1m05s");
  EXPECT_EQ(format_span(3600s + 7 * 60s), "1h07m");
  EXPECT_EQ(format_span(2 * 86400s + 4 * 3600s), "2d04h");
}

TEST(ProgressLine, ShowsBarPercentRateAndEta) {
  store::Job job;
  job.state = store::JobState::uploading;
  job.size_bytes = 1000;
  job.bytes_sent = 250;
  EXPECT_EQ(progress_line(job), "[#####---------------]  25%  -  ETA -");
  job.upload_rate_bytes_per_s = 100;
  EXPECT_EQ(progress_line(job), "[#####---------------]  25%  100 B/s  ETA 8s");
  job.bytes_sent = 1000;
  EXPECT_EQ(progress_line(job), "[####################] 100%  100 B/s  ETA 0s");
  job.size_bytes = 0;
  job.bytes_sent = 0;
  EXPECT_EQ(progress_line(job), "[####################] 100%  100 B/s  ETA 0s");
}

TEST(Printable, EscapesControlCharactersAndReplacesInvalidUtf8) {
  EXPECT_EQ(printable("plain/path.zip"), "plain/path.zip");
  EXPECT_EQ(printable("a\nb\tc\x1b[31m"), "a\\nb\\tc\\x1b[31m");
  EXPECT_EQ(printable("caf\xe9"), "caf\xEF\xBF\xBD");
  EXPECT_EQ(printable("\xC3\xA9t\xC3\xA9"), "\xC3\xA9t\xC3\xA9");
}

TEST(JobSituation, SaysWhatEachStateIsWaitingFor) {
  const WallTime when = *parse_timestamp("2026-03-01T12:00:00.000Z");
  const View now{when, true};
  store::Job job;
  job.state = store::JobState::pending;
  EXPECT_EQ(job_situation(job, now), "due now");
  job.next_attempt_at = when + 95s;
  job.last_error = "HTTP 503";
  EXPECT_EQ(job_situation(job, now), "next attempt in 1m35s; HTTP 503");
  job.state = store::JobState::failed;
  job.last_error = std::string(100, 'e');
  EXPECT_EQ(job_situation(job, now), std::string(59, 'e') + "\u2026");
  job.state = store::JobState::succeeded;
  job.file_id = "file-1";
  job.duplicate_of = 4;
  EXPECT_EQ(job_situation(job, now), "same content as job 4: file-1");
  // A long file id is what gets cut, never the job it refers to.
  job.file_id = "file-" + std::string(80, 'f');
  EXPECT_EQ(job_situation(job, now), "same content as job 4: file-" + std::string(31, 'f') + "\u2026");
}

TEST(JobSituation, AnUploadWithoutADaemonIsInterruptedNotLive) {
  store::Job job;
  job.state = store::JobState::uploading;
  job.size_bytes = 1000;
  job.bytes_sent = 420;
  job.upload_rate_bytes_per_s = 100;
  const WallTime when = *parse_timestamp("2026-03-01T12:00:00.000Z");
  EXPECT_EQ(job_situation(job, View{when, true}), "[########------------]  42%  100 B/s  ETA 6s");
  EXPECT_EQ(job_situation(job, View{when, false}),
            "interrupted (modeldropd is not running; sent again when it starts)");
}

TEST(MoreJobsLine, SaysHowManyTheLimitHid) {
  EXPECT_EQ(more_jobs_line(50, 50), "");
  EXPECT_EQ(more_jobs_line(50, 60), "\u2026 10 more, use --limit 60 to see them\n");
}

TEST(AttemptsSummary, NamesTheAttemptsThatDoNotCount) {
  store::JobWithAttempts entry;
  entry.job.attempts = 1;
  store::Attempt attempt;
  attempt.outcome = store::AttemptOutcome::retry;
  entry.attempts.push_back(attempt);
  attempt.outcome = store::AttemptOutcome::held;
  entry.attempts.push_back(attempt);
  attempt.outcome = store::AttemptOutcome::aborted;
  entry.attempts.push_back(attempt);
  attempt.outcome.reset();
  entry.attempts.push_back(attempt);
  EXPECT_EQ(attempts_summary(entry), "4 (1 counted toward max_attempts, 1 held, 1 aborted, 1 running)");
}

}  // namespace
}  // namespace modeldrop::cli
