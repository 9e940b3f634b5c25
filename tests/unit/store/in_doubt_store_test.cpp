// In-doubt reconciliation, the store's half: which listed file may be adopted, and when none may.
#include "store_fixture.hpp"

namespace modeldrop::store {
namespace {

using namespace test_support;

class InDoubtStoreTest : public StoreTest {
 protected:
  // The job's first attempt sent everything and got no usable answer; its second is open.
  JobId in_doubt_job(const std::string& path, std::uint64_t inode) {
    const JobId id = uploading_job(path, inode);
    must(store().finish_attempt(in_doubt_retry(id), t0() + 1s));
    EXPECT_EQ(must(store().claim_next(t0() + 2s))->id, id);
    must(store().begin_attempt(id, t0() + 2s));
    return id;
  }

  // Claims the next due job (must be `id`) and opens an attempt.
  void start_attempt(JobId id, WallTime at) {
    EXPECT_EQ(must(store().claim_next(at))->id, id);
    must(store().begin_attempt(id, at));
  }

  AttemptReport in_doubt_retry(JobId id) {
    AttemptReport report = retry_later(id, t0() + 2s);
    report.http_status.reset();
    report.bytes_sent = 1000;
    report.in_doubt = true;
    return report;
  }

  static ListedFile listed(std::string id, std::string name, WallTime created, std::uint64_t bytes = 1000) {
    return ListedFile{std::move(id), std::move(name), bytes, created, "uploaded", std::nullopt};
  }

  Reconciliation reconcile(JobId id, const std::vector<ListedFile>& listing) {
    const auto since = must(store().in_doubt_since(id));
    EXPECT_TRUE(since.has_value());
    return must(store().reconcile(id, since.value_or(t0()), listing, same_name, t0() + 3s));
  }

  static std::string same_name(std::string_view name) { return std::string(name); }
};

TEST_F(InDoubtStoreTest, TheOneMatchingCopyIsAdoptedAndTheAttemptIsReconciled) {
  const JobId id = in_doubt_job("/spool/in/m.zip", 1);
  EXPECT_EQ(must(store().in_doubt_since(id)), t0());
  const auto outcome = reconcile(id, {listed("file-other", "x.zip", t0()), listed("file-ours", "m.zip", t0() + 500ms),
                                      listed("file-small", "m.zip", t0(), 999)});
  ASSERT_TRUE(outcome.adopted) << outcome.reason;
  EXPECT_EQ(outcome.job->state, JobState::succeeded);
  EXPECT_EQ(outcome.job->file_id, "file-ours");
  EXPECT_EQ(outcome.job->file_status, "uploaded");
  const auto full = must(store().job_with_attempts(id));
  ASSERT_EQ(full->attempts.size(), 2U);
  EXPECT_EQ(full->attempts[1].outcome, AttemptOutcome::reconciled);
  EXPECT_FALSE(must(store().in_doubt_since(id))) << "resolved by the success";
}

TEST_F(InDoubtStoreTest, NothingIsInDoubtAfterAnAnsweredAttempt) {
  const JobId id = uploading_job("/spool/in/m.zip", 1);
  must(store().finish_attempt(retry_later(id, t0() + 2s), t0() + 1s));
  EXPECT_FALSE(must(store().in_doubt_since(id)));
}

TEST_F(InDoubtStoreTest, ACrashLeavesTheOpenAttemptInDoubt) {
  const JobId id = uploading_job("/spool/in/m.zip", 1);
  must(store().recover_after_crash(t0() + 5s));
  EXPECT_EQ(must(store().in_doubt_since(id)), t0());
}

TEST_F(InDoubtStoreTest, TooOldTwoOrARecordedFileMeanSendingAgain) {
  const JobId other = uploading_job("/spool/in/first.zip", 1);
  must(store().finish_attempt(success(other, "file-recorded"), t0()));
  const JobId id = in_doubt_job("/spool/in/m.zip", 2);
  EXPECT_FALSE(reconcile(id, {listed("file-old", "m.zip", t0() - 61s)}).adopted);
  EXPECT_FALSE(reconcile(id, {listed("file-a", "m.zip", t0()), listed("file-b", "m.zip", t0())}).adopted);
  EXPECT_FALSE(reconcile(id, {listed("file-recorded", "m.zip", t0())}).adopted);
  EXPECT_TRUE(reconcile(id, {listed("file-late", "m.zip", t0() - 59s)}).adopted);
}

TEST_F(InDoubtStoreTest, TheNameIsComparedAsTheServerRecordsIt) {
  const JobId id = in_doubt_job("/spool/in/a\nb.zip", 1);
  const auto since = must(store().in_doubt_since(id));
  const auto as_recorded = [](std::string_view name) {
    std::string out(name);
    if (auto at = out.find('\n'); at != std::string::npos) out.replace(at, 1, "%0A");
    return out;
  };
  const std::vector<ListedFile> listing{listed("file-ours", "a%0Ab.zip", t0())};
  EXPECT_TRUE(must(store().reconcile(id, *since, listing, as_recorded, t0() + 3s)).adopted);
}

// B (same name and size, other content) has an attempt open: its copy may be stored with the
// answer on the way. A must not adopt, whatever the listing shows.
TEST_F(InDoubtStoreTest, AnotherJobOfTheSameNameAndSizeUploadingBlocksAdoption) {
  const JobId a = in_doubt_job("/spool/in/a/m.zip", 1);
  const JobId b = add("/spool/in/b/m.zip", 2);
  start_attempt(b, t0() + 2s);
  const auto outcome = reconcile(a, {listed("file-b", "m.zip", t0() + 2s)});
  EXPECT_FALSE(outcome.adopted);
  EXPECT_NE(outcome.reason.find("job " + std::to_string(b)), std::string::npos) << outcome.reason;
}

TEST_F(InDoubtStoreTest, TwoJobsOfTheSameNameAndSizeInDoubtBothSendAgain) {
  const JobId a = uploading_job("/spool/in/a/m.zip", 1);
  const JobId b = add("/spool/in/b/m.zip", 2);
  start_attempt(b, t0());
  must(store().finish_attempt(in_doubt_retry(a), t0() + 1s));
  must(store().finish_attempt(in_doubt_retry(b), t0() + 1s));
  start_attempt(a, t0() + 2s);
  EXPECT_FALSE(reconcile(a, {listed("file-x", "m.zip", t0())}).adopted);
}

TEST_F(InDoubtStoreTest, AnotherJobsSuccessVoidedByACancelStillBlocksAdoption) {
  const JobId a = in_doubt_job("/spool/in/a/m.zip", 1);
  const JobId b = add("/spool/in/b/m.zip", 2);
  start_attempt(b, t0() + 2s);
  must(store().cancel(std::vector<JobId>{b}, t0() + 2s));
  must(store().finish_attempt(success(b, "file-b"), t0() + 2s));  // recorded aborted: nobody holds file-b
  EXPECT_FALSE(reconcile(a, {listed("file-b", "m.zip", t0() + 2s)}).adopted);
}

TEST_F(InDoubtStoreTest, SameNameOtherSizeOrOtherProjectDoesNotBlock) {
  const JobId a = in_doubt_job("/spool/in/a/m.zip", 1);
  must(store().enqueue(new_job("/spool/in/b/m.zip", 2, 2000), t0()));
  NewJob elsewhere = new_job("/spool/in/c/m.zip", 3);
  elsewhere.project_id = "another-project";
  must(store().enqueue(elsewhere, t0()));
  // Neither shares the recorded name, size and project: neither can hold A's copy.
  EXPECT_TRUE(reconcile(a, {listed("file-a", "m.zip", t0())}).adopted);
}

TEST_F(InDoubtStoreTest, ACopyOfAnEarlierVersionOfTheFileIsNeverAdopted) {
  const JobId id = uploading_job("/spool/in/m.zip", 1);
  must(store().finish_attempt(in_doubt_retry(id), t0() + 1s));
  // The file is rewritten (same size, new mtime) before the next attempt.
  must(store().enqueue(new_job("/spool/in/m.zip", 1, 1000, 9'000'000), t0() + 1500ms));
  start_attempt(id, t0() + 3s);
  EXPECT_FALSE(reconcile(id, {listed("file-old-version", "m.zip", t0())}).adopted);
}

}  // namespace
}  // namespace modeldrop::store
