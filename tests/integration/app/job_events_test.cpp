// The events the scheduler and the hash stage publish, seen by a subscriber as metrics,
// hooks and registration see them: after the store has recorded what they describe.
#include "integration/app/scheduler_harness.hpp"

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;
using store::AttemptOutcome;
using store::JobState;

constexpr std::size_t kSmall = 64 * 1024;

class JobEventsTest : public SchedulerTest {
 protected:
  JobEventsTest() {
    config_.upload.sessions = 1;
    config_.retry.initial_backoff = 2s;
    events_.on_attempt_finished([this](const app::AttemptFinished& e) {
      attempts_.push_back(e);
      // Published after the commit: what the event says is already in the database.
      EXPECT_EQ(outside_job_state(e.job.id), e.job.state);
    });
    events_.on_job_finished([this](const app::JobFinished& e) { finished_.push_back(e); });
  }

  JobState outside_job_state(store::JobId id) { return job(id).job.state; }

  std::vector<app::AttemptFinished> attempts_;
  std::vector<app::JobFinished> finished_;
};

TEST_F(JobEventsTest, RetriedThenSucceededAttemptsAndOneFinishedJob) {
  start();
  api_->push_fault(status_fault(503, R"({"detail":"busy"})"));
  const auto id = add_job("model.zip", kSmall, "project-1", 1);
  ASSERT_TRUE(wait_for_attempts(id, 1));
  ASSERT_TRUE(run_until([&] { return attempts_.size() == 1; }, 10s));
  EXPECT_EQ(attempts_[0].outcome, AttemptOutcome::retry);
  EXPECT_EQ(attempts_[0].http_status, 503);
  EXPECT_EQ(attempts_[0].attempt, 1);
  EXPECT_EQ(attempts_[0].job.state, JobState::pending);
  EXPECT_TRUE(finished_.empty()) << "a retry finishes no job";

  advance(config_.retry.initial_backoff + 1s);
  ASSERT_TRUE(wait_for_state(id, JobState::succeeded));
  ASSERT_TRUE(run_until([&] { return finished_.size() == 1; }, 10s));
  ASSERT_EQ(attempts_.size(), 2U);
  EXPECT_EQ(attempts_[1].outcome, AttemptOutcome::succeeded);
  EXPECT_EQ(attempts_[1].attempt, 2);
  EXPECT_EQ(attempts_[1].http_status, 200);
  EXPECT_EQ(attempts_[1].bytes_sent, kSmall);
  EXPECT_EQ(attempts_[1].job.file_id, job(id).job.file_id);
  EXPECT_EQ(finished_[0].job.id, id);
  EXPECT_EQ(finished_[0].job.state, JobState::succeeded);
  EXPECT_FALSE(finished_[0].duplicate);
}

TEST_F(JobEventsTest, RefusedUploadFinishesTheJobAsFailed) {
  start();
  api_->push_fault(status_fault(400, R"({"detail":"not a model archive"})"));
  const auto id = add_job("broken.zip", kSmall, "project-1", 2);
  ASSERT_TRUE(wait_for_state(id, JobState::failed));
  ASSERT_TRUE(run_until([&] { return finished_.size() == 1; }, 10s));
  ASSERT_EQ(attempts_.size(), 1U);
  EXPECT_EQ(attempts_[0].outcome, AttemptOutcome::failed);
  EXPECT_EQ(attempts_[0].http_status, 400);
  EXPECT_EQ(finished_[0].job.state, JobState::failed);
}

TEST_F(JobEventsTest, DuplicateContentFinishesWithoutAnAttempt) {
  start();
  const auto original = add_job("model.zip", kSmall, "project-1", 7);
  ASSERT_TRUE(wait_for_state(original, JobState::succeeded));
  const auto copy = add_job("copy.zip", kSmall, "project-1", 7);
  ASSERT_TRUE(wait_for_state(copy, JobState::succeeded));
  ASSERT_TRUE(run_until([&] { return finished_.size() == 2; }, 10s));
  EXPECT_EQ(attempts_.size(), 1U);
  EXPECT_EQ(finished_[1].job.id, copy);
  EXPECT_TRUE(finished_[1].duplicate);
}

}  // namespace
}  // namespace modeldrop::test
