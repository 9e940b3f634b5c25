// The job state machine, exhaustively: every operation that moves a job, tried on a job in
// every state. An illegal move is an error value (StoreErrc::illegal_transition) and leaves
// the job exactly as it was.
#include "store_fixture.hpp"

#include <gtest/gtest.h>

#include <functional>
#include <map>

namespace modeldrop::store {
namespace {

using namespace test_support;

const std::string kHash(64, 'e');

class TransitionsTest : public StoreTest {
 protected:
  void SetUp() override {
    StoreTest::SetUp();
    // The succeeded job a duplicate may reuse.
    original_ = uploading_job("/spool/original.zip", 1);
    must(store().set_sha256(original_, kHash, file_identity(1), t0()));
    must(store().finish_attempt(success(original_), t0()));
  }

  // A fresh job in `state`; uploading jobs have their attempt open.
  JobId job_in(JobState state) {
    const std::string path = "/spool/in/" + std::to_string(++counter_) + ".zip";
    const auto inode = static_cast<std::uint64_t>(100 + counter_);
    JobId id = 0;
    switch (state) {
      case JobState::pending: {
        // Not due for a long time, so that it never stands in the way of a later job_in's claim.
        NewJob job = new_job(path, inode);
        job.next_attempt_at = t0() + std::chrono::hours(1000);
        id = must(store().enqueue(job, t0())).job;
        break;
      }
      case JobState::uploading:
        id = uploading_job(path, inode);
        break;
      case JobState::succeeded:
        id = uploading_job(path, inode);
        must(store().finish_attempt(success(id), t0()));
        break;
      case JobState::failed:
        id = uploading_job(path, inode);
        must(store().finish_attempt(failure(id), t0()));
        break;
      case JobState::cancelled: {
        id = add(path, inode);
        const JobId ids[] = {id};
        must(store().cancel(ids, t0()));
        break;
      }
    }
    must(store().set_sha256(id, kHash, file_identity(inode), t0()));
    EXPECT_EQ(must(store().find_job(id))->state, state);
    return id;
  }

  // Runs `operation` on a job in each state; `allowed` lists the states it may act on.
  void check(const std::string& name, const std::function<std::optional<Error>(JobId)>& operation,
             std::initializer_list<JobState> allowed) {
    for (const auto state : kAllJobStates) {
      SCOPED_TRACE(name + " on a " + std::string(to_string(state)) + " job");
      const JobId id = job_in(state);
      const auto before = must(store().job_with_attempts(id));
      const auto error = operation(id);
      const bool should_work = std::find(allowed.begin(), allowed.end(), state) != allowed.end();
      if (should_work) {
        EXPECT_FALSE(error) << error->message;
      } else {
        ASSERT_TRUE(error) << "an illegal transition was accepted";
        EXPECT_EQ(error->code, StoreErrc::illegal_transition) << error->message;
        EXPECT_NE(error->message.find("job " + std::to_string(id)), std::string::npos) << error->message;
        const auto after = must(store().job_with_attempts(id));
        EXPECT_EQ(after->job.state, before->job.state);
        EXPECT_EQ(after->job.updated_at, before->job.updated_at);
        EXPECT_EQ(after->attempts.size(), before->attempts.size());
      }
    }
  }

  template <class T>
  static std::optional<Error> error_of(const Result<T>& result) {
    if (result) return std::nullopt;
    return result.error();
  }

  JobId original_ = 0;
  int counter_ = 0;
};

const auto later = [] { return t0() + std::chrono::hours(1); };

TEST_F(TransitionsTest, BeginAttemptOnlyOnAnUploadingJobWithoutOne) {
  // An uploading job here already has its attempt open: a second one is illegal too.
  check("begin_attempt", [&](JobId id) { return error_of(store().begin_attempt(id, later())); }, {});
  const JobId claimed = add("/spool/claimed.zip", 9);
  must(store().claim_next(t0()));
  EXPECT_TRUE(store().begin_attempt(claimed, later()));
}

TEST_F(TransitionsTest, FinishAttemptOnlyOnAnUploadingJob) {
  check("finish_attempt", [&](JobId id) { return error_of(store().finish_attempt(success(id), later())); },
        {JobState::uploading});
}

TEST_F(TransitionsTest, FinishAttemptNeedsAnOpenAttempt) {
  const JobId claimed = add("/spool/claimed.zip", 9);
  must(store().claim_next(t0()));
  const auto result = store().finish_attempt(success(claimed), later());
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, StoreErrc::illegal_transition);
  EXPECT_EQ(must(store().find_job(claimed))->state, JobState::uploading);
}

TEST_F(TransitionsTest, ProgressOnlyOnAnUploadingOrJustCancelledJob) {
  check("record_progress", [&](JobId id) { return error_of(store().record_progress(id, 10, later())); },
        {JobState::uploading, JobState::cancelled});
}

TEST_F(TransitionsTest, ReleaseOnlyOnAClaimedJob) {
  // Uploading jobs here have an attempt: finish_attempt, not release, ends it.
  check("release_claim", [&](JobId id) { return error_of(store().release_claim(id, std::nullopt, later())); },
        {JobState::cancelled});
}

TEST_F(TransitionsTest, SourceRemovedOnlyBeforeTheJobEnds) {
  check("mark_source_removed", [&](JobId id) { return error_of(store().mark_source_removed(id, later())); },
        {JobState::pending, JobState::uploading});
}

TEST_F(TransitionsTest, FailOnlyBeforeTheJobEnds) {
  check("fail", [&](JobId id) { return error_of(store().fail(id, "unreadable", later())); },
        {JobState::pending, JobState::uploading});
}

TEST_F(TransitionsTest, DuplicateOnlyBeforeTheJobEnds) {
  check("complete_as_duplicate",
        [&](JobId id) { return error_of(store().complete_as_duplicate(id, original_, later())); },
        {JobState::pending, JobState::uploading});
}

TEST_F(TransitionsTest, DuplicateOnlyOfASucceededJob) {
  for (const auto state : {JobState::pending, JobState::uploading, JobState::failed, JobState::cancelled}) {
    SCOPED_TRACE(std::string(to_string(state)));
    const JobId not_done = job_in(state);
    const JobId copy = job_in(JobState::pending);
    const auto result = store().complete_as_duplicate(copy, not_done, later());
    ASSERT_FALSE(result);
    EXPECT_EQ(result.error().code, StoreErrc::illegal_transition);
  }
}

TEST_F(TransitionsTest, CancelOnlyBeforeTheJobEnds) {
  check("cancel",
        [&](JobId id) {
          const JobId ids[] = {id};
          return must(store().cancel(ids, later())).at(0).error;
        },
        {JobState::pending, JobState::uploading});
}

TEST_F(TransitionsTest, RetryOnlyAfterAFailureOrCancel) {
  check("retry",
        [&](JobId id) {
          const JobId ids[] = {id};
          return must(store().retry(ids, later())).at(0).error;
        },
        {JobState::failed, JobState::cancelled});
}

TEST_F(TransitionsTest, ClaimOnlyTakesPendingJobs) {
  for (const auto state : {JobState::uploading, JobState::succeeded, JobState::failed, JobState::cancelled}) {
    job_in(state);
  }
  EXPECT_FALSE(must(store().claim_next(later()))) << "a succeeded job never goes back to uploading";
  const JobId pending = add("/spool/due.zip", 77);
  EXPECT_EQ(must(store().claim_next(later()))->id, pending);
}

TEST_F(TransitionsTest, UnknownJobsAreReportedAsSuch) {
  const JobId missing = 4242;
  EXPECT_EQ(store().begin_attempt(missing, t0()).error().code, StoreErrc::unknown_job);
  EXPECT_EQ(store().finish_attempt(success(missing), t0()).error().code, StoreErrc::unknown_job);
  EXPECT_EQ(store().record_progress(missing, 1, t0()).error().code, StoreErrc::unknown_job);
  EXPECT_EQ(store().release_claim(missing, std::nullopt, t0()).error().code, StoreErrc::unknown_job);
  EXPECT_EQ(store().mark_source_removed(missing, t0()).error().code, StoreErrc::unknown_job);
  EXPECT_EQ(store().fail(missing, "x", t0()).error().code, StoreErrc::unknown_job);
  EXPECT_EQ(store().complete_as_duplicate(missing, original_, t0()).error().code, StoreErrc::unknown_job);
  const JobId ids[] = {missing};
  EXPECT_EQ(must(store().cancel(ids, t0())).at(0).error->code, StoreErrc::unknown_job);
  EXPECT_EQ(must(store().retry(ids, t0())).at(0).error->code, StoreErrc::unknown_job);
  EXPECT_FALSE(must(store().find_job(missing)));
  EXPECT_FALSE(must(store().job_with_attempts(missing)));
}

}  // namespace
}  // namespace modeldrop::store
