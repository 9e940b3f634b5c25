// Model registration in the job store: what a job registers is recorded when it is queued, the
// registration starts with the job's success, and each look at the model is recorded.
#include "store_fixture.hpp"

namespace modeldrop::store {
namespace {

using namespace test_support;

class ModelStoreTest : public StoreTest {
 protected:
  JobId add_registering(const std::string& path, std::uint64_t inode, std::string name = "my-lora") {
    auto job = new_job(path, inode);
    job.model = ModelRequest{std::move(name), "meta-llama/Llama-3.1-8B", "from a drop folder"};
    job.sidecar_path = path + ".yaml";
    return must(store().enqueue(job, t0())).job;
  }
  Job succeed(JobId id, WallTime when) {
    EXPECT_EQ(must(store().claim_next(when))->id, id);
    must(store().begin_attempt(id, when));
    return must(store().finish_attempt(success(id), when));
  }
};

TEST_F(ModelStoreTest, WhatAJobRegistersIsRecordedWhenQueued) {
  const JobId id = add_registering("/spool/in/lora.zip", 1);
  const auto job = *must(store().find_job(id));
  ASSERT_TRUE(job.model);
  EXPECT_EQ(*job.model, (ModelRequest{"my-lora", "meta-llama/Llama-3.1-8B", "from a drop folder"}));
  EXPECT_EQ(job.sidecar_path, "/spool/in/lora.zip.yaml");
  EXPECT_FALSE(job.model_status) << "nothing to register before the upload succeeded";
  EXPECT_FALSE(must(store().find_job(add("/spool/in/plain.zip", 2)))->model);
  EXPECT_TRUE(must(store().registrations_due(t0() + 1h, 10)).empty());
  EXPECT_FALSE(must(store().next_registration_check(t0())));
}

TEST_F(ModelStoreTest, SuccessStartsTheRegistrationDueAtOnce) {
  const JobId id = add_registering("/spool/in/lora.zip", 1);
  const auto done = succeed(id, t0() + 1s);
  EXPECT_EQ(done.state, JobState::succeeded);
  EXPECT_EQ(done.model_status, "registering");
  EXPECT_EQ(done.model_started_at, t0() + 1s);
  EXPECT_FALSE(done.model_next_check_at);
  EXPECT_EQ(must(store().next_registration_check(t0() + 2s)), t0() + 2s);
  const auto due = must(store().registrations_due(t0() + 2s, 10));
  ASSERT_EQ(due.size(), 1u);
  EXPECT_EQ(due[0].id, id);
  EXPECT_EQ(due[0].file_id, "file-abc");

  // A job registering nothing does not start one.
  const JobId plain = add("/spool/in/plain.zip", 2);
  EXPECT_FALSE(succeed(plain, t0() + 3s).model_status);
}

TEST_F(ModelStoreTest, EachLookIsRecordedUntilTheRegistrationEnds) {
  const JobId id = add_registering("/spool/in/lora.zip", 1);
  succeed(id, t0());
  auto validating = must(store().record_model_status(id, {"validating", std::nullopt, t0() + 5s}, t0() + 1s));
  ASSERT_TRUE(validating);
  EXPECT_EQ(validating->model_status, "validating");
  EXPECT_EQ(validating->model_checked_at, t0() + 1s);
  EXPECT_EQ(validating->model_next_check_at, t0() + 5s);
  EXPECT_TRUE(must(store().registrations_due(t0() + 4s, 10)).empty());
  EXPECT_EQ(must(store().registrations_due(t0() + 5s, 10)).size(), 1u);
  EXPECT_EQ(must(store().next_registration_check(t0() + 2s)), t0() + 5s);

  // A failed look keeps the status and says why; it is not an answer about the model.
  auto deferred = must(store().record_model_status(
      id, {"validating", std::string("HTTP 503: busy"), t0() + 20s, /*answered=*/false}, t0() + 6s));
  EXPECT_EQ(deferred->model_checked_at, t0() + 1s);
  EXPECT_EQ(deferred->model_status_reason, "HTTP 503: busy");

  auto ended = must(store().record_model_status(id, {"error", std::string("rank too high"), std::nullopt}, t0() + 21s));
  EXPECT_EQ(ended->model_status, "error");
  EXPECT_EQ(ended->model_status_reason, "rank too high");
  EXPECT_EQ(ended->state, JobState::succeeded) << "the job stays succeeded whatever the model's fate";
  EXPECT_FALSE(must(store().next_registration_check(t0() + 22s)));
  EXPECT_FALSE(must(store().record_model_status(id, {"active", std::nullopt, std::nullopt}, t0() + 30s)))
      << "an ended registration is not changed again";
}

TEST_F(ModelStoreTest, ADuplicateRegistersItsOwnModelFromTheEarlierUpload) {
  const JobId first = add("/spool/in/a.zip", 1);
  succeed(first, t0());
  must(store().set_sha256(first, std::string(64, 'a'), file_identity(1), t0()));
  const JobId second = add_registering("/spool/in/b.zip", 2, "b-model");
  must(store().set_sha256(second, std::string(64, 'a'), file_identity(2), t0()));
  const auto duplicate = must(store().complete_as_duplicate(second, first, t0() + 1s));
  EXPECT_EQ(duplicate.file_id, "file-abc");
  EXPECT_EQ(duplicate.model_status, "registering");
}

TEST_F(ModelStoreTest, RetryAgainForgetsTheEarlierRegistration) {
  const JobId id = add_registering("/spool/in/lora.zip", 1);
  succeed(id, t0());
  must(store().record_model_status(id, {"active", std::nullopt, std::nullopt}, t0() + 1s));
  const JobId ids[] = {id};
  const auto results = must(store().retry(ids, t0() + 2s, JobStore::Retry::again));
  ASSERT_FALSE(results[0].error) << results[0].error->message;
  const auto job = *must(store().find_job(id));
  EXPECT_TRUE(job.model) << "it still registers a model once uploaded again";
  EXPECT_FALSE(job.model_status);
  EXPECT_FALSE(job.model_started_at);
  EXPECT_FALSE(job.model_checked_at);
}

TEST_F(ModelStoreTest, AJobThatFailedOnItsSidecarIsNotRetriedAsItIs) {
  const JobId broken = add("/spool/in/lora.zip", 1);
  must(store().fail(broken, "sidecar: /spool/in/lora.zip.yaml:2: base_modle: unknown key", t0()));
  const JobId other = add("/spool/in/other.zip", 2);
  must(store().fail(other, "unreadable", t0()));
  const JobId ids[] = {broken};
  const auto results = must(store().retry(ids, t0() + 1s));
  ASSERT_TRUE(results[0].error);
  EXPECT_NE(results[0].error->message.find("failed on its sidecar"), std::string::npos) << results[0].error->message;
  EXPECT_EQ(must(store().retry_failed(t0() + 1s)), std::vector<JobId>{other});
  EXPECT_EQ(must(store().find_job(broken))->state, JobState::failed);
}

TEST_F(ModelStoreTest, ASuccessHookWaitsForTheRegistrationToEnd) {
  must(store().set_hooks_enabled(true));
  const JobId id = add_registering("/spool/in/lora.zip", 1);
  succeed(id, t0());
  EXPECT_TRUE(must(store().due_hooks(10)).empty()) << "registering";
  must(store().record_model_status(id, {"validating", std::nullopt, t0() + 5s}, t0() + 1s));
  EXPECT_TRUE(must(store().due_hooks(10)).empty()) << "validating";
  must(store().record_model_status(id, {"deleted", std::string("the model was deleted"), std::nullopt}, t0() + 6s));
  const auto due = must(store().due_hooks(10));
  ASSERT_EQ(due.size(), 1u) << "any final word ends the wait, not only active and error";
  EXPECT_EQ(due[0].model_name, "my-lora");
}

TEST_F(ModelStoreTest, AFileChangedDuringItsUploadKeepsItsModelWhenTheNewSidecarIsBroken) {
  const JobId id = add_registering("/spool/in/lora.zip", 1);
  EXPECT_EQ(must(store().claim_next(t0()))->id, id);
  auto changed = new_job("/spool/in/lora.zip", 1, 2000);
  changed.keep_registration = true;
  const auto queued = must(store().enqueue(changed, t0() + 1s));
  EXPECT_EQ(queued.effect, EnqueueEffect::updated);
  const auto job = *must(store().find_job(id));
  ASSERT_TRUE(job.model);
  EXPECT_EQ(job.model->name, "my-lora");
  EXPECT_EQ(job.sidecar_path, "/spool/in/lora.zip.yaml");
}

TEST_F(ModelStoreTest, TheSidecarPathFollowsItsArchive) {
  const JobId id = add_registering("/spool/in/lora.zip", 1);
  must(store().set_sidecar_path(id, std::filesystem::path("/spool/in/done/lora.zip.yaml"), t0()));
  EXPECT_EQ(must(store().find_job(id))->sidecar_path, "/spool/in/done/lora.zip.yaml");
  must(store().set_sidecar_path(id, std::nullopt, t0()));
  EXPECT_FALSE(must(store().find_job(id))->sidecar_path);
  EXPECT_FALSE(store().set_sidecar_path(9999, std::nullopt, t0()));
}

}  // namespace
}  // namespace modeldrop::store
