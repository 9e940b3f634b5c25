// Every JobStore operation on a real SQLite file: queueing and the same-file rule, the upload
// cycle, recovery, dedupe, the CLI's requests, the daemon row and change detection.
#include "store_fixture.hpp"

#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>
#include <sqlite3.h>

#include <cstdio>

namespace modeldrop::store {
namespace {

using namespace test_support;

class JobStoreTest : public StoreTest {};

// ---- Queueing

TEST_F(JobStoreTest, EnqueueInsertsAPendingJobWithTheFilesIdentity) {
  NewJob job = new_job("/spool/in/a.zip", 11, 5000, 123456789);
  job.project_id = "proj-1";
  const auto result = must(store().enqueue(job, t0()));
  EXPECT_EQ(result.effect, EnqueueEffect::inserted);
  EXPECT_EQ(result.state, JobState::pending);
  const auto stored = must(store().find_job(result.job));
  ASSERT_TRUE(stored);
  EXPECT_EQ(stored->path, "/spool/in/a.zip");
  EXPECT_EQ(stored->current_path, std::filesystem::path("/spool/in/a.zip"));
  EXPECT_EQ(stored->watch_dir, std::filesystem::path("/spool/in"));
  EXPECT_EQ(stored->project_id, "proj-1");
  EXPECT_EQ(stored->size_bytes, 5000u);
  EXPECT_EQ(stored->file, job.file);
  EXPECT_EQ(stored->state, JobState::pending);
  EXPECT_EQ(stored->attempts, 0);
  EXPECT_FALSE(stored->next_attempt_at);
  EXPECT_EQ(stored->bytes_sent, 0u);
  EXPECT_EQ(stored->created_at, t0());
  EXPECT_EQ(stored->updated_at, t0());
  EXPECT_EQ(stored->budget_started_at, t0());
  EXPECT_FALSE(stored->finished_at);
  // The public columns hold the contract's text timestamps.
  EXPECT_EQ(must(store().connection().query_text("SELECT created_at FROM jobs")), "2026-03-01T12:00:00.000Z");
}

TEST_F(JobStoreTest, EnqueueWithoutWatchDirOrProjectStoresNulls) {
  NewJob job = new_job("/home/u/m.tar", 1);
  job.watch_dir.reset();
  const auto id = must(store().enqueue(job, t0())).job;
  EXPECT_EQ(must(store().connection().query_int64("SELECT count(*) FROM jobs WHERE watch_dir IS NULL AND "
                                                  "project_id IS NULL AND id = " +
                                                  std::to_string(id))),
            1);
}

TEST_F(JobStoreTest, EnqueueRecordsTheArchiveCheckAndAChangedFileTakesTheNewOne) {
  NewJob job = new_job("/spool/in/a.zip", 1);
  EXPECT_EQ(job.validate, preflight::ArchiveValidation::archive) << "the default";
  const auto first = must(store().enqueue(job, t0())).job;
  EXPECT_EQ(must(store().connection().query_text("SELECT validate FROM jobs WHERE id = " + std::to_string(first))),
            "archive");
  NewJob adapter = new_job("/spool/in/b.zip", 2);
  adapter.validate = preflight::ArchiveValidation::adapter;
  const auto second = must(store().enqueue(adapter, t0())).job;
  EXPECT_EQ(must(store().find_job(second))->validate, preflight::ArchiveValidation::adapter);
  NewJob changed = new_job("/spool/in/a.zip", 3);
  changed.validate = preflight::ArchiveValidation::none;
  EXPECT_EQ(must(store().enqueue(changed, t0() + 1s)).job, first);
  EXPECT_EQ(must(store().find_job(first))->validate, preflight::ArchiveValidation::none);
  // A version 1 job has no value: it gets the default check.
  must(store().connection().execute("UPDATE jobs SET validate = NULL WHERE id = " + std::to_string(first)));
  EXPECT_EQ(must(store().find_job(first))->validate, preflight::ArchiveValidation::archive);
}

TEST_F(JobStoreTest, EnqueueRefusesARelativePath) {
  auto result = store().enqueue(new_job("relative/a.zip", 1), t0());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, StoreErrc::invalid_request);
}

TEST_F(JobStoreTest, TheSameFileIsNeverQueuedTwiceWhateverItsJobsState) {
  const JobId id = add("/spool/in/a.zip", 11);
  auto again = must(store().enqueue(new_job("/spool/in/a.zip", 11), t0() + 1h));
  EXPECT_EQ(again.job, id);
  EXPECT_EQ(again.effect, EnqueueEffect::unchanged);
  must(store().claim_next(t0()));
  must(store().begin_attempt(id, t0()));
  must(store().finish_attempt(success(id), t0()));
  again = must(store().enqueue(new_job("/spool/in/a.zip", 11), t0() + 2h));
  EXPECT_EQ(again.job, id);
  EXPECT_EQ(again.effect, EnqueueEffect::unchanged);
  EXPECT_EQ(again.state, JobState::succeeded);
  EXPECT_EQ(must(store().connection().query_int64("SELECT count(*) FROM jobs")), 1);
}

TEST_F(JobStoreTest, AChangedFileWhileItsJobIsPendingUpdatesThatJob) {
  const JobId id = add("/spool/in/a.zip", 11, 1000);
  must(store().set_sha256(id, std::string(64, 'a'), file_identity(11, 1000), t0()));
  NewJob changed = new_job("/spool/in/a.zip", 11, 2000, 2'000'000);
  changed.next_attempt_at = t0() + 2s;  // settle again
  const auto result = must(store().enqueue(changed, t0() + 1s));
  EXPECT_EQ(result.job, id);
  EXPECT_EQ(result.effect, EnqueueEffect::updated);
  const auto job = must(store().find_job(id));
  EXPECT_EQ(job->file, changed.file);
  EXPECT_EQ(job->size_bytes, 2000u);
  EXPECT_FALSE(job->sha256) << "the hash was of the old content";
  EXPECT_EQ(job->next_attempt_at, t0() + 2s);
  EXPECT_EQ(must(store().connection().query_int64("SELECT count(*) FROM jobs")), 1);
}

TEST_F(JobStoreTest, AChangedFileAfterAFailureRevivesTheJobWithAFreshBudget) {
  const JobId id = uploading_job("/spool/in/a.zip", 11);
  must(store().finish_attempt(failure(id), t0()));
  const auto result = must(store().enqueue(new_job("/spool/in/a.zip", 12), t0() + 1h));
  EXPECT_EQ(result.job, id);
  EXPECT_EQ(result.effect, EnqueueEffect::updated);
  const auto job = must(store().find_job(id));
  EXPECT_EQ(job->state, JobState::pending);
  EXPECT_EQ(job->attempts, 0);
  EXPECT_EQ(job->budget_started_at, t0() + 1h);
  EXPECT_FALSE(job->finished_at);
  EXPECT_FALSE(job->last_error);
  EXPECT_EQ(job->file.inode, 12u);
}

TEST_F(JobStoreTest, AChangedFileAfterASuccessIsANewJob) {
  const JobId id = uploading_job("/spool/in/a.zip", 11);
  must(store().finish_attempt(success(id), t0()));
  const auto result = must(store().enqueue(new_job("/spool/in/a.zip", 11, 1000, 9'000'000), t0() + 1h));
  EXPECT_NE(result.job, id);
  EXPECT_EQ(result.effect, EnqueueEffect::inserted);
  EXPECT_EQ(must(store().find_job(id))->state, JobState::succeeded);
}

TEST_F(JobStoreTest, AFileChangedDuringItsUploadIsNotAcceptedAsSent) {
  const JobId id = uploading_job("/spool/in/a.zip", 11);
  const auto result = must(store().enqueue(new_job("/spool/in/a.zip", 11, 3000, 5'000'000), t0() + 1s));
  EXPECT_EQ(result.effect, EnqueueEffect::updated);
  EXPECT_EQ(result.state, JobState::uploading);
  AttemptReport report = success(id);
  report.sent_file = file_identity(11);  // what the daemon opened and sent: the old file
  report.next_attempt_at = t0() + 3s;
  const auto after = must(store().finish_attempt(report, t0() + 2s));
  EXPECT_EQ(after.state, JobState::pending);
  EXPECT_FALSE(after.file_id);
  EXPECT_EQ(after.attempts, 0);
  EXPECT_EQ(after.last_error, "the file changed while it was sent");
  const auto history = must(store().job_with_attempts(id));
  ASSERT_EQ(history->attempts.size(), 1u);
  EXPECT_EQ(history->attempts[0].outcome, AttemptOutcome::aborted);
}

// ---- The upload cycle

TEST_F(JobStoreTest, ClaimTakesTheOldestDueJobAndSkipsThoseNotYetDue) {
  const JobId first = add("/spool/in/1.zip", 1);
  NewJob later = new_job("/spool/in/2.zip", 2);
  later.next_attempt_at = t0() + 10s;
  const JobId second = must(store().enqueue(later, t0())).job;
  const JobId third = add("/spool/in/3.zip", 3);

  EXPECT_EQ(must(store().claim_next(t0()))->id, first);
  auto claimed = must(store().claim_next(t0()));
  ASSERT_TRUE(claimed);
  EXPECT_EQ(claimed->id, third);
  EXPECT_EQ(claimed->state, JobState::uploading);
  EXPECT_FALSE(must(store().claim_next(t0() + 9s)));
  EXPECT_EQ(must(store().claim_next(t0() + 10s))->id, second);
  EXPECT_FALSE(must(store().claim_next(t0() + 1h)));
}

TEST_F(JobStoreTest, ClaimTakesNothingWhilePaused) {
  add("/spool/in/1.zip", 1);
  EXPECT_TRUE(must(store().pause(t0())));
  EXPECT_FALSE(must(store().pause(t0()))) << "already paused";
  EXPECT_TRUE(must(store().is_paused()));
  EXPECT_EQ(must(store().paused_since()), t0());
  EXPECT_FALSE(must(store().claim_next(t0())));
  EXPECT_TRUE(must(store().resume()));
  EXPECT_FALSE(must(store().resume())) << "already running";
  EXPECT_FALSE(must(store().is_paused()));
  EXPECT_FALSE(must(store().paused_since()));
  EXPECT_TRUE(must(store().claim_next(t0())));
}

TEST_F(JobStoreTest, ThePauseOutlivesTheConnection) {
  must(store().pause(t0()));
  store_.reset();
  auto reopened = must(JobStore::open_for_daemon(db_path()));
  EXPECT_TRUE(must(reopened.is_paused()));
}

TEST_F(JobStoreTest, AttemptsAreNumberedPerJob) {
  const JobId id = uploading_job("/spool/in/a.zip", 1);
  must(store().finish_attempt(retry_later(id, t0() + 1s), t0()));
  EXPECT_EQ(must(store().claim_next(t0() + 1s))->id, id);
  EXPECT_EQ(must(store().begin_attempt(id, t0() + 1s)), 2);
  const auto other = uploading_job("/spool/in/b.zip", 2);
  const auto history = must(store().job_with_attempts(other));
  ASSERT_EQ(history->attempts.size(), 1u);
  EXPECT_EQ(history->attempts[0].attempt, 1);
}

TEST_F(JobStoreTest, ProgressRecordsBytesAndASmoothedRate) {
  const JobId id = add("/spool/in/a.zip", 1, 10'000'000);
  must(store().claim_next(t0()));
  must(store().begin_attempt(id, t0()));
  must(store().record_progress(id, 1'000'000, t0() + 1s));
  auto job = must(store().find_job(id));
  EXPECT_EQ(job->bytes_sent, 1'000'000u);
  ASSERT_TRUE(job->upload_rate_bytes_per_s);
  EXPECT_DOUBLE_EQ(*job->upload_rate_bytes_per_s, 1'000'000.0);
  EXPECT_EQ(job->progress_at, t0() + 1s);
  must(store().record_progress(id, 3'000'000, t0() + 2s));  // 2 MB/s now: 0.7 * 1 + 0.3 * 2
  job = must(store().find_job(id));
  EXPECT_DOUBLE_EQ(*job->upload_rate_bytes_per_s, 1'300'000.0);
  must(store().record_progress(id, 99'000'000, t0() + 3s));
  EXPECT_EQ(must(store().find_job(id))->bytes_sent, 10'000'000u) << "never more than the file";
}

TEST_F(JobStoreTest, ASuccessfulAttemptRecordsTheFileAndFinishesTheJob) {
  const JobId id = uploading_job("/spool/in/a.zip", 1);
  auto report = success(id, "file-123");
  report.file_status_details = "ok";
  const auto job = must(store().finish_attempt(report, t0() + 5s));
  EXPECT_EQ(job.state, JobState::succeeded);
  EXPECT_EQ(job.file_id, "file-123");
  EXPECT_EQ(job.file_status, "uploaded");
  EXPECT_EQ(job.file_status_details, "ok");
  EXPECT_EQ(job.http_status, 200);
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(job.bytes_sent, 1000u);
  EXPECT_EQ(job.finished_at, t0() + 5s);
  const auto history = must(store().job_with_attempts(id));
  ASSERT_EQ(history->attempts.size(), 1u);
  const auto& attempt = history->attempts[0];
  EXPECT_EQ(attempt.outcome, AttemptOutcome::succeeded);
  EXPECT_EQ(attempt.started_at, t0());
  EXPECT_EQ(attempt.finished_at, t0() + 5s);
  EXPECT_EQ(attempt.http_status, 200);
  EXPECT_EQ(attempt.bytes_sent, 1000u);
}

TEST_F(JobStoreTest, ARetriedAttemptCountsAndSchedulesTheNextOne) {
  const JobId id = uploading_job("/spool/in/a.zip", 1);
  const auto job = must(store().finish_attempt(retry_later(id, t0() + 30s), t0() + 1s));
  EXPECT_EQ(job.state, JobState::pending);
  EXPECT_EQ(job.attempts, 1);
  EXPECT_EQ(job.next_attempt_at, t0() + 30s);
  EXPECT_EQ(job.last_error, "HTTP 503");
  EXPECT_EQ(job.http_status, 503);
  EXPECT_FALSE(job.finished_at);
}

TEST_F(JobStoreTest, HeldAndAbortedAttemptsDoNotCount) {
  const JobId id = uploading_job("/spool/in/a.zip", 1);
  AttemptReport held = retry_later(id, t0() + 60s);
  held.outcome = AttemptOutcome::held;
  held.http_status = 429;
  held.counts_toward_attempts = false;
  EXPECT_EQ(must(store().finish_attempt(held, t0())).attempts, 0);

  must(store().claim_next(t0() + 60s));
  must(store().begin_attempt(id, t0() + 60s));
  AttemptReport counted_held = held;
  counted_held.counts_toward_attempts = true;
  auto refused = store().finish_attempt(counted_held, t0() + 61s);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, StoreErrc::invalid_request);
}

TEST_F(JobStoreTest, AFailedAttemptFailsTheJob) {
  const JobId id = uploading_job("/spool/in/a.zip", 1);
  const auto job = must(store().finish_attempt(failure(id), t0() + 1s));
  EXPECT_EQ(job.state, JobState::failed);
  EXPECT_EQ(job.last_error, "HTTP 422: bad archive");
  EXPECT_EQ(job.finished_at, t0() + 1s);
  EXPECT_EQ(job.attempts, 1);
}

TEST_F(JobStoreTest, ContradictoryReportsAreRefused) {
  const JobId id = uploading_job("/spool/in/a.zip", 1);
  auto no_file_id = success(id);
  no_file_id.file_id.reset();
  EXPECT_EQ(store().finish_attempt(no_file_id, t0()).error().code, StoreErrc::invalid_request);
  auto success_but_pending = success(id);
  success_but_pending.next_state = JobState::pending;
  EXPECT_EQ(store().finish_attempt(success_but_pending, t0()).error().code, StoreErrc::invalid_request);
  auto retry_but_succeeded = retry_later(id, t0());
  retry_but_succeeded.next_state = JobState::succeeded;
  retry_but_succeeded.file_id = "x";
  EXPECT_EQ(store().finish_attempt(retry_but_succeeded, t0()).error().code, StoreErrc::invalid_request);
  auto to_cancelled = failure(id);
  to_cancelled.next_state = JobState::cancelled;
  EXPECT_EQ(store().finish_attempt(to_cancelled, t0()).error().code, StoreErrc::invalid_request);
  EXPECT_EQ(must(store().find_job(id))->state, JobState::uploading) << "nothing was written";
}

TEST_F(JobStoreTest, AJobCancelledDuringItsUploadStaysCancelled) {
  const JobId id = uploading_job("/spool/in/a.zip", 1);
  const JobId ids[] = {id};
  const auto cancelled = must(store().cancel(ids, t0() + 1s));
  ASSERT_EQ(cancelled.size(), 1u);
  EXPECT_FALSE(cancelled[0].error);
  EXPECT_EQ(cancelled[0].previous_state, JobState::uploading);
  EXPECT_EQ(must(store().cancelled_among(ids)), std::vector<JobId>{id});
  must(store().record_progress(id, 500, t0() + 2s));  // late progress is harmless
  const auto job = must(store().finish_attempt(success(id, "file-late"), t0() + 3s));
  EXPECT_EQ(job.state, JobState::cancelled);
  EXPECT_FALSE(job.file_id);
  const auto history = must(store().job_with_attempts(id));
  ASSERT_EQ(history->attempts.size(), 1u);
  EXPECT_EQ(history->attempts[0].outcome, AttemptOutcome::aborted);
  EXPECT_NE(history->attempts[0].error->find("file-late"), std::string::npos) << *history->attempts[0].error;
}

TEST_F(JobStoreTest, ACancelledUploadMustStopBeforeItsJobIsRetriedOrRevived) {
  const JobId id = uploading_job("/spool/in/a.zip", 1);
  const JobId ids[] = {id};
  must(store().cancel(ids, t0()));
  // The daemon has not closed the attempt yet.
  const auto refused = must(store().retry(ids, t0() + 1s));
  ASSERT_TRUE(refused.at(0).error);
  EXPECT_EQ(refused.at(0).error->code, StoreErrc::illegal_transition);
  EXPECT_NE(refused.at(0).error->message.find("still being stopped"), std::string::npos);
  const auto changed = must(store().enqueue(new_job("/spool/in/a.zip", 1, 2000), t0() + 1s));
  EXPECT_EQ(changed.effect, EnqueueEffect::updated);
  EXPECT_EQ(changed.state, JobState::cancelled) << "not revived while its attempt is open";
  // Once the daemon has recorded the aborted attempt, retry works.
  AttemptReport aborted = retry_later(id, t0());
  aborted.outcome = AttemptOutcome::aborted;
  aborted.counts_toward_attempts = false;
  EXPECT_EQ(must(store().finish_attempt(aborted, t0() + 2s)).state, JobState::cancelled);
  EXPECT_FALSE(must(store().retry(ids, t0() + 3s)).at(0).error);
  EXPECT_EQ(must(store().find_job(id))->state, JobState::pending);
}

TEST_F(JobStoreTest, ReleaseGivesAClaimedJobBackWithoutAnAttempt) {
  const JobId id = add("/spool/in/a.zip", 1);
  must(store().claim_next(t0()));
  const auto job = must(store().release_claim(id, t0() + 2s, t0()));
  EXPECT_EQ(job.state, JobState::pending);
  EXPECT_EQ(job.next_attempt_at, t0() + 2s);
  EXPECT_TRUE(must(store().job_with_attempts(id))->attempts.empty());
  // With an attempt open, finish_attempt is the way out.
  must(store().claim_next(t0() + 2s));
  must(store().begin_attempt(id, t0() + 2s));
  EXPECT_EQ(store().release_claim(id, std::nullopt, t0()).error().code, StoreErrc::illegal_transition);
}

TEST_F(JobStoreTest, RecoveryRequeuesUploadingJobsAndAbortsOpenAttempts) {
  const JobId with_attempt = uploading_job("/spool/in/a.zip", 1);
  must(store().record_progress(with_attempt, 700, t0() + 1s));
  const JobId claimed_only = add("/spool/in/b.zip", 2);
  must(store().claim_next(t0()));
  const JobId waiting = add("/spool/in/c.zip", 3);

  const auto report = must(store().recover_after_crash(t0() + 1min));
  EXPECT_EQ(report.jobs_requeued, 2);
  EXPECT_EQ(report.attempts_aborted, 1);
  for (const JobId id : {with_attempt, claimed_only, waiting}) {
    EXPECT_EQ(must(store().find_job(id))->state, JobState::pending) << id;
  }
  const auto history = must(store().job_with_attempts(with_attempt));
  ASSERT_EQ(history->attempts.size(), 1u);
  EXPECT_EQ(history->attempts[0].outcome, AttemptOutcome::aborted);
  EXPECT_EQ(history->attempts[0].finished_at, t0() + 1min);
  EXPECT_EQ(history->attempts[0].bytes_sent, 700u) << "kept: it tells whether the body was complete";
  EXPECT_EQ(must(store().find_job(with_attempt))->attempts, 0);
  const auto again = must(store().recover_after_crash(t0() + 2min));
  EXPECT_EQ(again.jobs_requeued, 0);
  EXPECT_EQ(again.attempts_aborted, 0);
}

// ---- Source file events

TEST_F(JobStoreTest, ARemovedSourceCancelsTheJobAndForgetsItsPath) {
  const JobId id = add("/spool/in/a.zip", 1);
  EXPECT_EQ(must(store().pending_job_for_path("/spool/in/a.zip"))->id, id);
  const auto job = must(store().mark_source_removed(id, t0() + 1s));
  EXPECT_EQ(job.state, JobState::cancelled);
  EXPECT_EQ(job.last_error, "source removed");
  EXPECT_FALSE(job.current_path);
  EXPECT_EQ(job.finished_at, t0() + 1s);
  EXPECT_FALSE(must(store().pending_job_for_path("/spool/in/a.zip")));
}

TEST_F(JobStoreTest, FailingAnUploadingJobClosesItsAttempt) {
  const JobId id = uploading_job("/spool/in/a.zip", 1);
  const auto job = must(store().fail(id, "not a regular file", t0() + 1s));
  EXPECT_EQ(job.state, JobState::failed);
  EXPECT_EQ(job.last_error, "not a regular file");
  const auto history = must(store().job_with_attempts(id));
  EXPECT_EQ(history->attempts.at(0).outcome, AttemptOutcome::aborted);
  EXPECT_EQ(history->attempts.at(0).error, "not a regular file");
}

TEST_F(JobStoreTest, CurrentPathFollowsTheFile) {
  const JobId id = add("/spool/in/a.zip", 1);
  must(store().set_current_path(id, std::filesystem::path("/spool/in/done/a.zip"), t0()));
  auto job = must(store().find_job(id));
  EXPECT_EQ(job->current_path, std::filesystem::path("/spool/in/done/a.zip"));
  EXPECT_EQ(job->path, "/spool/in/a.zip");
  EXPECT_EQ(must(store().pending_job_for_path("/spool/in/done/a.zip"))->id, id);
  must(store().set_current_path(id, std::nullopt, t0()));
  EXPECT_FALSE(must(store().find_job(id))->current_path);
  EXPECT_EQ(store().set_current_path(999, std::nullopt, t0()).error().code, StoreErrc::unknown_job);
}

// ---- Dedupe

TEST_F(JobStoreTest, Sha256IsStoredOnlyForTheFileTheJobStillNames) {
  const JobId id = add("/spool/in/a.zip", 1);
  const std::string hash(64, 'b');
  EXPECT_FALSE(must(store().set_sha256(id, hash, file_identity(2), t0())));
  EXPECT_FALSE(must(store().find_job(id))->sha256);
  EXPECT_TRUE(must(store().set_sha256(id, hash, file_identity(1), t0())));
  EXPECT_EQ(must(store().find_job(id))->sha256, hash);
  EXPECT_EQ(store().set_sha256(id, std::string(64, 'B'), file_identity(1), t0()).error().code,
            StoreErrc::invalid_request);
  EXPECT_EQ(store().set_sha256(id, "abc", file_identity(1), t0()).error().code, StoreErrc::invalid_request);
  EXPECT_EQ(store().set_sha256(77, hash, file_identity(1), t0()).error().code, StoreErrc::unknown_job);
}

TEST_F(JobStoreTest, ADuplicateSucceedsAtOnceWithTheEarlierUpload) {
  const std::string hash(64, 'c');
  const JobId original = uploading_job("/spool/in/a.zip", 1);
  must(store().set_sha256(original, hash, file_identity(1), t0()));
  auto report = success(original, "file-orig");
  report.file_status_details = "details";
  must(store().finish_attempt(report, t0()));

  const JobId copy = add("/spool/in/copy-of-a.zip", 2);
  must(store().set_sha256(copy, hash, file_identity(2), t0()));
  const auto found = must(store().find_succeeded_by_sha256(hash, std::nullopt));
  ASSERT_TRUE(found);
  EXPECT_EQ(found->id, original);
  EXPECT_FALSE(must(store().find_succeeded_by_sha256(hash, std::string("other-project"))))
      << "another project needs its own upload";
  const auto job = must(store().complete_as_duplicate(copy, original, t0() + 1s));
  EXPECT_EQ(job.state, JobState::succeeded);
  EXPECT_EQ(job.file_id, "file-orig");
  EXPECT_EQ(job.file_status, "uploaded");
  EXPECT_EQ(job.file_status_details, "details");
  EXPECT_EQ(job.duplicate_of, original);
  EXPECT_EQ(job.attempts, 0);
  EXPECT_TRUE(must(store().job_with_attempts(copy))->attempts.empty()) << "no attempt recorded";
}

TEST_F(JobStoreTest, ASuccessCompletesEveryPendingCopyOfItsContentAtOnce) {
  const std::string hash(64, 'a');
  const JobId original = uploading_job("/spool/in/a.zip", 1);
  const JobId copy1 = add("/spool/in/a1.zip", 2);
  const JobId copy2 = add("/spool/in/a2.zip", 3);
  const JobId other = add("/spool/in/b.zip", 4);
  must(store().set_sha256(copy1, hash, file_identity(2), t0()));
  must(store().set_sha256(copy2, hash, file_identity(3), t0()));
  must(store().set_sha256(other, std::string(64, 'b'), file_identity(4), t0()));
  EXPECT_TRUE(must(store().complete_duplicates_of(original, t0())).empty()) << "not succeeded yet";

  must(store().set_sha256(original, hash, file_identity(1), t0()));
  must(store().finish_attempt(success(original, "file-orig"), t0()));
  const auto completed = must(store().complete_duplicates_of(original, t0() + 1s));
  ASSERT_EQ(completed.size(), 2U);
  EXPECT_EQ(completed[0].id, copy1);
  EXPECT_EQ(completed[1].id, copy2);
  for (const auto& job : completed) {
    EXPECT_EQ(job.state, JobState::succeeded);
    EXPECT_EQ(job.file_id, "file-orig");
    EXPECT_EQ(job.duplicate_of, original);
  }
  EXPECT_EQ(must(store().find_job(other))->state, JobState::pending) << "other content waits for its own upload";
  EXPECT_TRUE(must(store().complete_duplicates_of(original, t0() + 2s)).empty()) << "each is completed once";
}

// A thousand archives of one size are a normal drop (a batch of fixed-size shards). Every claim,
// wake-up, success and preflight sweep runs these queries, so each must search an index, not walk the queue
// once per queued job. Measured in SQLite VM instructions (a count, not a time): doubling the
// queue may at most double a query's work, and the index searches barely grow.
TEST_F(JobStoreTest, DedupeQueriesDoNotGrowWithTheSquareOfSameSizeJobs) {
  const std::string first_hash = std::string(63, '0') + "f";
  const JobId done = uploading_job("/spool/in/first.zip", 1);
  must(store().set_sha256(done, first_hash, file_identity(1), t0()));
  must(store().finish_attempt(success(done), t0()));
  std::uint64_t next_inode = 2;
  const auto add_hashed = [&](int count) {
    for (int i = 0; i < count; ++i, ++next_inode) {
      const JobId id = add("/spool/in/" + std::to_string(next_inode) + ".zip", next_inode);
      char hash[65];
      std::snprintf(hash, sizeof hash, "%064llx", static_cast<unsigned long long>(next_inode));
      must(store().set_sha256(id, hash, file_identity(next_inode), t0()));
    }
  };
  std::uint64_t steps = 0;
  sqlite3_progress_handler(
      store().connection().handle(), 10,
      [](void* counter) {
        ++*static_cast<std::uint64_t*>(counter);
        return 0;
      },
      &steps);
  struct Work {
    std::uint64_t next_due, duplicates, to_hash, unhashed;
  };
  const auto measure = [&] {
    const auto count = [&](auto&& query) {
      steps = 0;
      query();
      return steps;
    };
    return Work{count([&] { must(store().next_due_at_unique(t0())); }),
                count([&] { must(store().pending_duplicates_of(done)); }),
                count([&] { must(store().pending_to_hash_first(64)); }),
                count([&] { must(store().pending_without_sha256(64)); })};
  };
  add_hashed(500);
  const Work small = measure();
  add_hashed(500);
  const Work large = measure();
  sqlite3_progress_handler(store().connection().handle(), 0, nullptr, nullptr);
  EXPECT_LT(large.next_due, 3 * small.next_due + 10) << small.next_due << " -> " << large.next_due;
  EXPECT_LT(large.duplicates, small.duplicates + small.duplicates / 2 + 10)
      << small.duplicates << " -> " << large.duplicates;
  EXPECT_LT(large.to_hash, small.to_hash + small.to_hash / 2 + 10) << small.to_hash << " -> " << large.to_hash;
  EXPECT_LT(large.unhashed, small.unhashed + small.unhashed / 2 + 10) << small.unhashed << " -> " << large.unhashed;
  EXPECT_EQ(must(store().claim_next_unique(t0()))->id, done + 1) << "the queries above must still find the work";
}

TEST_F(JobStoreTest, DedupeMatchesProjectsExactly) {
  const std::string hash(64, 'd');
  NewJob in_project = new_job("/spool/in/a.zip", 1);
  in_project.project_id = "p1";
  const JobId original = must(store().enqueue(in_project, t0())).job;
  must(store().claim_next(t0()));
  must(store().begin_attempt(original, t0()));
  must(store().set_sha256(original, hash, file_identity(1), t0()));
  must(store().finish_attempt(success(original), t0()));
  EXPECT_TRUE(must(store().find_succeeded_by_sha256(hash, std::string("p1"))));
  EXPECT_FALSE(must(store().find_succeeded_by_sha256(hash, std::nullopt)));

  const JobId other = add("/spool/in/b.zip", 2);  // no project
  must(store().set_sha256(other, hash, file_identity(2), t0()));
  EXPECT_EQ(store().complete_as_duplicate(other, original, t0()).error().code, StoreErrc::invalid_request);
  EXPECT_EQ(store().complete_as_duplicate(other, other, t0()).error().code, StoreErrc::invalid_request);
}

TEST_F(JobStoreTest, DedupeNeverCrossesTokens) {
  // Another team's key may be another account: its file id would be wrong, and its hold must
  // not hold this team's identical archive back.
  const std::string hash(64, 'e');
  const JobId original = uploading_job("/spool/in/a.zip", 1);
  must(store().set_sha256(original, hash, file_identity(1), t0()));
  must(store().finish_attempt(success(original), t0()));
  EXPECT_FALSE(must(store().find_succeeded_by_sha256(hash, std::nullopt, std::string("/etc/modeldrop/b.token"))));

  NewJob team_b = new_job("/spool/in/b.zip", 2);
  team_b.token_file = "/etc/modeldrop/b.token";
  const JobId b = must(store().enqueue(team_b, t0())).job;
  EXPECT_TRUE(must(store().pending_to_hash_first(10)).empty()) << "nothing of its token to compare with";
  must(store().set_sha256(b, hash, file_identity(2), t0()));
  EXPECT_TRUE(must(store().pending_duplicates_of(original)).empty());
  EXPECT_EQ(store().complete_as_duplicate(b, original, t0()).error().code, StoreErrc::invalid_request);

  NewJob team_b_copy = new_job("/spool/in/b-copy.zip", 3);
  team_b_copy.token_file = "/etc/modeldrop/b.token";
  const JobId b_copy = must(store().enqueue(team_b_copy, t0())).job;
  must(store().set_sha256(b_copy, hash, file_identity(3), t0()));
  NewJob global_copy = new_job("/spool/in/global-copy.zip", 4);
  const JobId g_copy = must(store().enqueue(global_copy, t0())).job;
  must(store().set_sha256(g_copy, hash, file_identity(4), t0()));
  // b_copy waits for b (same token, lower id); the global copy completes from `original`, not from b.
  const std::vector<std::optional<std::string>> b_held{"/etc/modeldrop/b.token"};
  EXPECT_FALSE(must(store().claim_next_unique(t0(), b_held))) << "b and b_copy are held; g_copy duplicates original";
  EXPECT_EQ(must(store().claim_next_unique(t0()))->id, b);
  EXPECT_FALSE(must(store().claim_next_unique(t0()))) << "b_copy waits for b";
  EXPECT_EQ(must(store().pending_duplicates_of(original)).at(0).id, g_copy);
}

// ---- Requests from the CLI

TEST_F(JobStoreTest, CancelReportsEachJobAndActsOnTheOthers) {
  const JobId done = uploading_job("/spool/in/b.zip", 2);
  must(store().finish_attempt(success(done), t0()));
  const JobId pending = add("/spool/in/a.zip", 1);
  const JobId ids[] = {pending, 404, done};
  const auto results = must(store().cancel(ids, t0() + 1s));
  ASSERT_EQ(results.size(), 3u);
  EXPECT_FALSE(results[0].error);
  ASSERT_TRUE(results[1].error);
  EXPECT_EQ(results[1].error->code, StoreErrc::unknown_job);
  EXPECT_EQ(results[1].error->message, "job 404: no such job");
  ASSERT_TRUE(results[2].error);
  EXPECT_EQ(results[2].error->code, StoreErrc::illegal_transition);
  EXPECT_EQ(results[2].error->message,
            "job " + std::to_string(done) + " is succeeded; only pending or uploading jobs can be cancelled");
  const auto job = must(store().find_job(pending));
  EXPECT_EQ(job->state, JobState::cancelled);
  EXPECT_EQ(job->finished_at, t0() + 1s);
  EXPECT_EQ(job->current_path, std::filesystem::path("/spool/in/a.zip")) << "cancel leaves the file where it is";
}

TEST_F(JobStoreTest, RetryStartsAFailedJobAfreshFromItsCurrentPath) {
  const JobId id = uploading_job("/spool/in/a.zip", 1);
  must(store().finish_attempt(retry_later(id, t0()), t0()));
  must(store().claim_next(t0()));
  must(store().begin_attempt(id, t0()));
  must(store().finish_attempt(failure(id), t0() + 1s));
  must(store().set_current_path(id, std::filesystem::path("/spool/in/failed/a.zip"), t0() + 1s));
  ASSERT_EQ(must(store().find_job(id))->attempts, 2);

  const JobId ids[] = {id};
  const auto results = must(store().retry(ids, t0() + 1h));
  EXPECT_FALSE(results.at(0).error);
  EXPECT_EQ(results.at(0).previous_state, JobState::failed);
  const auto job = must(store().find_job(id));
  EXPECT_EQ(job->state, JobState::pending);
  EXPECT_EQ(job->attempts, 0);
  EXPECT_EQ(job->budget_started_at, t0() + 1h);
  EXPECT_FALSE(job->next_attempt_at);
  EXPECT_FALSE(job->finished_at);
  EXPECT_FALSE(job->last_error);
  EXPECT_EQ(job->current_path, std::filesystem::path("/spool/in/failed/a.zip"));
  EXPECT_EQ(must(store().claim_next(t0() + 1h))->id, id);
}

TEST_F(JobStoreTest, RetryRefusesJobsWhoseFileIsGone) {
  const JobId id = add("/spool/in/a.zip", 1);
  must(store().mark_source_removed(id, t0()));
  const JobId ids[] = {id};
  const auto results = must(store().retry(ids, t0()));
  ASSERT_TRUE(results.at(0).error);
  EXPECT_EQ(results.at(0).error->code, StoreErrc::illegal_transition);
  EXPECT_NE(results.at(0).error->message.find("source removed"), std::string::npos);
}

TEST_F(JobStoreTest, RetryFailedTakesEveryFailedJobWithAFile) {
  const JobId a = uploading_job("/spool/in/a.zip", 1);
  must(store().finish_attempt(failure(a), t0()));
  const JobId b = uploading_job("/spool/in/b.zip", 2);
  must(store().finish_attempt(failure(b), t0()));
  must(store().set_current_path(b, std::nullopt, t0()));  // deleted
  const JobId c = add("/spool/in/c.zip", 3);
  const JobId cancel_ids[] = {c};
  must(store().cancel(cancel_ids, t0()));
  EXPECT_EQ(must(store().retry_failed(t0() + 1s)), std::vector<JobId>{a});
  EXPECT_EQ(must(store().find_job(a))->state, JobState::pending);
  EXPECT_EQ(must(store().find_job(b))->state, JobState::failed);
  EXPECT_EQ(must(store().find_job(c))->state, JobState::cancelled);
  EXPECT_TRUE(must(store().retry_failed(t0() + 2s)).empty());
}

// ---- Reading

TEST_F(JobStoreTest, ListingsAreNewestFirstAndFilterByState) {
  std::vector<JobId> ids;
  for (std::uint64_t i = 0; i < 6; ++i) ids.push_back(add("/spool/in/" + std::to_string(i) + ".zip", 100 + i));
  const JobId cancel_ids[] = {ids[1], ids[4]};
  must(store().cancel(cancel_ids, t0()));
  must(store().claim_next(t0()));  // ids[0]

  auto all = must(store().list_jobs({}, 50));
  ASSERT_EQ(all.size(), 6u);
  EXPECT_EQ(all.front().id, ids[5]);
  EXPECT_EQ(all.back().id, ids[0]);
  EXPECT_EQ(must(store().list_jobs({}, 2)).size(), 2u);

  const JobState cancelled_or_uploading[] = {JobState::cancelled, JobState::uploading, JobState::cancelled};
  const auto some = must(store().list_jobs(cancelled_or_uploading, 50));
  ASSERT_EQ(some.size(), 3u);
  EXPECT_EQ(some[0].id, ids[4]);
  EXPECT_EQ(some[1].id, ids[1]);
  EXPECT_EQ(some[2].id, ids[0]);
  EXPECT_EQ(must(store().list_jobs(cancelled_or_uploading, 2)).size(), 2u);
}

TEST_F(JobStoreTest, SummaryListsEveryStateWithZeros) {
  add("/spool/in/a.zip", 1, 100);
  add("/spool/in/b.zip", 2, 250);
  const auto summary = must(store().summary());
  ASSERT_EQ(summary.size(), 5u);
  EXPECT_EQ(summary[0].state, JobState::pending);
  EXPECT_EQ(summary[0].jobs, 2);
  EXPECT_EQ(summary[0].bytes, 350u);
  for (std::size_t i = 1; i < 5; ++i) {
    EXPECT_EQ(summary[i].state, kAllJobStates[i]);
    EXPECT_EQ(summary[i].jobs, 0);
    EXPECT_EQ(summary[i].bytes, 0u);
  }
  EXPECT_EQ(must(store().connection().query_int64("SELECT count(*) FROM queue_summary")), 5);
}

TEST_F(JobStoreTest, NextDueAtIsTheEarliestPendingTime) {
  EXPECT_FALSE(must(store().next_due_at(t0())));
  NewJob later = new_job("/spool/in/a.zip", 1);
  later.next_attempt_at = t0() + 30s;
  must(store().enqueue(later, t0()));
  EXPECT_EQ(must(store().next_due_at(t0())), t0() + 30s);
  add("/spool/in/b.zip", 2);
  EXPECT_EQ(must(store().next_due_at(t0() + 1s)), t0() + 1s) << "a job without next_attempt_at is due now";
}

// ---- Per-token jobs (watch[].token_file, `modeldrop add --token-file`)

TEST_F(JobStoreTest, EnqueueRecordsTheTokenFileAndAChangedFileTakesTheNewOne) {
  NewJob job = new_job("/spool/in/a.zip", 1);
  job.token_file = "${CREDENTIALS_DIRECTORY}/api-token-teamb";
  const auto id = must(store().enqueue(job, t0())).job;
  EXPECT_EQ(must(store().find_job(id))->token_file, "${CREDENTIALS_DIRECTORY}/api-token-teamb");
  EXPECT_FALSE(must(store().find_job(add("/spool/in/b.zip", 2)))->token_file) << "none: the global token";
  NewJob changed = new_job("/spool/in/a.zip", 3);
  changed.token_file = "/etc/modeldrop/team-b.token";
  EXPECT_EQ(must(store().enqueue(changed, t0() + 1s)).job, id);
  EXPECT_EQ(must(store().find_job(id))->token_file, "/etc/modeldrop/team-b.token");
}

TEST_F(JobStoreTest, ClaimsAndNextDueSkipTheJobsOfHeldTokens) {
  const auto queue = [&](const std::string& name, std::uint64_t inode, std::optional<std::string> token_file) {
    NewJob job = new_job("/spool/in/" + name, inode, 1000 + inode);  // sizes differ: no dedupe waits
    job.token_file = std::move(token_file);
    return must(store().enqueue(job, t0())).job;
  };
  const auto global = queue("global.zip", 1, std::nullopt);
  const auto team_b = queue("b.zip", 2, "/etc/modeldrop/b.token");
  const auto team_c = queue("c.zip", 3, "/etc/modeldrop/c.token");
  char digit = 'a';
  for (const JobId id : {global, team_b, team_c}) {
    must(store().set_sha256(id, std::string(64, digit++), must(store().find_job(id))->file, t0()));
  }

  const std::vector<std::optional<std::string>> b_held{"/etc/modeldrop/b.token"};
  const std::vector<std::optional<std::string>> global_and_c_held{std::nullopt, "/etc/modeldrop/c.token"};
  EXPECT_EQ(must(store().next_due_at(t0(), false, global_and_c_held)), t0()) << "b is due";
  EXPECT_EQ(must(store().claim_next(t0(), false, b_held))->id, global);
  EXPECT_EQ(must(store().claim_next_unique(t0(), b_held))->id, team_c) << "with dedupe too";
  EXPECT_FALSE(must(store().claim_next(t0(), false, b_held))) << "only the held token's job is left";
  EXPECT_FALSE(must(store().next_due_at(t0(), false, b_held)));
  EXPECT_FALSE(must(store().next_due_at_unique(t0(), b_held)));
  EXPECT_FALSE(must(store().claim_next(
      t0(), false, std::vector<std::optional<std::string>>{std::nullopt, "/etc/modeldrop/b.token"})));
  EXPECT_EQ(must(store().next_due_at_unique(t0(), global_and_c_held)), t0());
  EXPECT_EQ(must(store().claim_next_unique(t0(), global_and_c_held))->id, team_b) << "a held global token is not b's";
}

TEST_F(JobStoreTest, TokensInUseAreThoseOfPendingOrUploadingJobs) {
  NewJob team_b = new_job("/spool/in/b.zip", 1);
  team_b.token_file = "/etc/modeldrop/b.token";
  const auto b = must(store().enqueue(team_b, t0())).job;
  add("/spool/in/global.zip", 2);
  const std::vector<std::optional<std::string>> held{std::nullopt, "/etc/modeldrop/b.token", "/etc/modeldrop/gone"};
  EXPECT_EQ(must(store().tokens_in_use(held)),
            (std::vector<std::optional<std::string>>{std::nullopt, "/etc/modeldrop/b.token"}));
  const JobId ids[] = {b};
  must(store().cancel(ids, t0()));
  EXPECT_EQ(must(store().tokens_in_use(held)), std::vector<std::optional<std::string>>{std::nullopt});
}

TEST_F(JobStoreTest, AWatchsNewTokenFileReachesItsUnfinishedJobsOnly) {
  const auto succeeded = uploading_job("/spool/in/c.zip", 3);
  must(store().finish_attempt(success(succeeded), t0()));
  const auto pending = add("/spool/in/a.zip", 1);
  const auto failed = add("/spool/in/b.zip", 2);
  NewJob elsewhere = new_job("/spool/other/d.zip", 4);
  elsewhere.watch_dir = "/spool/other";
  const auto other_watch = must(store().enqueue(elsewhere, t0())).job;
  must(store().fail(failed, "HTTP 422", t0()));

  EXPECT_EQ(must(store().set_watch_token_file("/spool/in", "/etc/modeldrop/b.token", t0() + 1s)), 2);
  EXPECT_EQ(must(store().find_job(pending))->token_file, "/etc/modeldrop/b.token");
  EXPECT_EQ(must(store().find_job(failed))->token_file, "/etc/modeldrop/b.token") << "for a later retry";
  EXPECT_FALSE(must(store().find_job(succeeded))->token_file) << "what a finished upload used stays";
  EXPECT_FALSE(must(store().find_job(other_watch))->token_file);
  EXPECT_EQ(must(store().set_watch_token_file("/spool/in", "/etc/modeldrop/b.token", t0() + 2s)), 0);
  EXPECT_EQ(must(store().set_watch_token_file("/spool/in", std::nullopt, t0() + 3s)), 2);
  EXPECT_FALSE(must(store().find_job(pending))->token_file);
}

TEST_F(JobStoreTest, TheClaimQueryUsesAnIndex) {
  // Also with many rows and planner statistics, which change how SQLite weighs its options.
  for (std::uint64_t i = 1; i <= 2000; ++i) add("/spool/in/" + std::to_string(i) + ".zip", i);
  for (int i = 0; i < 1500; ++i) {
    const auto job = must(store().claim_next(t0()));
    must(store().begin_attempt(job->id, t0()));
    must(store().finish_attempt(success(job->id), t0()));
  }
  for (const bool analyzed : {false, true}) {
    if (analyzed) must(store().connection().execute("ANALYZE"));
    const auto plan = must(store().explain_claim_next());
    std::string text;
    for (const auto& line : plan) text += line + "\n";
    EXPECT_NE(text.find("USING COVERING INDEX jobs_state (state=?)"), std::string::npos) << text;
    EXPECT_EQ(text.find("SCAN jobs"), std::string::npos) << text;
    EXPECT_EQ(text.find("TEMP B-TREE"), std::string::npos) << text;
  }
}

// ---- The daemon row

TEST_F(JobStoreTest, TheDaemonRegistersHeartbeatsHoldsAndLeaves) {
  const int pid = ::getpid();
  must(store().register_daemon(pid, "0.1.0", t0()));
  must(store().heartbeat(t0() + 5s, 1234.5));
  must(store().set_held_reason(std::string("paused")));
  auto record = must(store().daemon_record());
  ASSERT_TRUE(record);
  EXPECT_EQ(record->pid, pid);
  EXPECT_EQ(record->version, "0.1.0");
  EXPECT_EQ(record->started_at, t0());
  EXPECT_EQ(record->heartbeat_at, t0() + 5s);
  EXPECT_EQ(record->held_reason, "paused");
  EXPECT_DOUBLE_EQ(record->upload_rate_bytes_per_s, 1234.5);
  must(store().set_held_reason(std::nullopt));
  EXPECT_FALSE(must(store().daemon_record())->held_reason);
  must(store().unregister_daemon());
  EXPECT_FALSE(must(store().daemon_record()));
  EXPECT_EQ(store().heartbeat(t0(), 0).error().code, StoreErrc::daemon_not_registered);
}

TEST_F(JobStoreTest, ASecondLiveDaemonIsRefused) {
  const int pid = ::getpid();
  must(store().register_daemon(pid, "0.1.0", t0()));
  auto other = must(JobStore::open_for_daemon(db_path()));
  // Another process (pid 1 stands for it) finds this live process registered.
  auto refused = other.register_daemon(1, "0.2.0", t0());
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, StoreErrc::daemon_already_running);
  EXPECT_NE(refused.error().message.find("another modeldropd (pid " + std::to_string(pid) + ", version 0.1.0)"),
            std::string::npos)
      << refused.error().message;
  EXPECT_EQ(must(store().daemon_record())->version, "0.1.0");
}

TEST_F(JobStoreTest, TheDaemonLockHolderReplacesARowWhosePidIsAliveButNotADaemon) {
  // After a reboot the old row's pid may name an unrelated live process (here: this one).
  must(store().register_daemon(::getpid(), "0.0.9", t0()));
  auto restarted = must(JobStore::open_for_daemon(db_path()));
  EXPECT_FALSE(restarted.register_daemon(1, "0.1.0", t0() + 1h));
  must(restarted.register_daemon(1, "0.1.0", t0() + 1h, JobStore::OtherDaemons::known_gone));
  EXPECT_EQ(must(restarted.daemon_record())->pid, 1);
}

TEST_F(JobStoreTest, AStaleDaemonRowIsReplaced) {
  // A pid that certainly is not alive: a child that has exited and been reaped.
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ASSERT_GT(child, 0);
  ::waitpid(child, nullptr, 0);
  auto crashed = must(JobStore::open_for_daemon(db_path()));
  must(crashed.register_daemon(child, "0.0.9", t0()));
  must(store().register_daemon(::getpid(), "0.1.0", t0() + 1h));
  const auto record = must(store().daemon_record());
  EXPECT_EQ(record->pid, ::getpid());
  EXPECT_EQ(record->version, "0.1.0");
  // The replaced daemon's own updates now fail rather than overwrite the new row.
  EXPECT_EQ(crashed.heartbeat(t0(), 0).error().code, StoreErrc::daemon_not_registered);
}

// ---- Change detection

TEST_F(JobStoreTest, ChangesByAnotherConnectionAreSeenOnce) {
  EXPECT_FALSE(must(store().external_change_seen()));
  add("/spool/in/a.zip", 1);
  EXPECT_FALSE(must(store().external_change_seen())) << "its own writes are not news";
  auto cli = must(JobStore::open_existing(db_path()));
  must(cli.pause(t0()));
  EXPECT_TRUE(must(store().external_change_seen()));
  EXPECT_FALSE(must(store().external_change_seen()));
  const JobId ids[] = {1};
  must(cli.cancel(ids, t0()));
  EXPECT_TRUE(must(store().external_change_seen()));
  // A reader changes nothing.
  must(cli.list_jobs({}, 10));
  EXPECT_FALSE(must(store().external_change_seen()));
}

// The hook trigger (migrations 0002, 0004) rewrites a row only when its hook columns change:
// without hooks a claim and an end write the job's row once, not twice.
TEST_F(StoreTest, TheHookTriggerWritesARowOnlyWhenItsHookColumnsChange) {
  auto hook_of = [&](JobId id) {
    return must(store().connection().query_one(
        "SELECT coalesce(hook_state, '-') || '/' || (hook_finished_at IS NULL) FROM jobs WHERE id = ?1",
        [](const Statement& row) { return row.text(0); }, id));
  };
  // Rows written by moving job `id` to `state` (with the columns each state requires), the
  // trigger's own writes included.
  auto rows_written_moving = [&](JobId id, const std::string& state) {
    const std::string final_state = "'" + state + "' IN ('succeeded', 'failed', 'cancelled')";
    const auto before = sqlite3_total_changes64(store().connection().handle());
    must(store().connection().execute("UPDATE jobs SET state = '" + state + "', finished_at = CASE WHEN " +
                                      final_state + " THEN '2026-03-01T12:00:00.000Z' END, file_id = CASE WHEN '" +
                                      state + "' = 'succeeded' THEN 'file-a' END WHERE id = " + std::to_string(id)));
    return sqlite3_total_changes64(store().connection().handle()) - before;
  };
  const JobId id = add("/spool/in/a.zip", 1);
  EXPECT_EQ(rows_written_moving(id, "uploading"), 1) << "no hooks, not ending: the trigger has nothing to change";
  EXPECT_EQ(rows_written_moving(id, "succeeded"), 1) << "no hooks: ending owes no hook";
  EXPECT_EQ(hook_of(id), std::optional<std::string>("-/1"));

  must(store().set_hooks_enabled(true));
  const JobId hooked = add("/spool/in/b.zip", 2);
  EXPECT_EQ(rows_written_moving(hooked, "uploading"), 1);
  EXPECT_EQ(rows_written_moving(hooked, "failed"), 2) << "ending with hooks: the hook becomes due";
  EXPECT_EQ(hook_of(hooked), std::optional<std::string>("due/1"));
  must(store().finish_hook(hooked, t0()));
  EXPECT_EQ(hook_of(hooked), std::optional<std::string>("done/0"));
  // Leaving the final state again clears what the last end left, hooks or not.
  must(store().set_hooks_enabled(false));
  EXPECT_EQ(rows_written_moving(hooked, "pending"), 2);
  EXPECT_EQ(hook_of(hooked), std::optional<std::string>("-/1"));
}

}  // namespace
}  // namespace modeldrop::store
