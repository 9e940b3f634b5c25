#pragma once

// The preflight stage: each archive's SHA-256 and content check, from one read of the file on
// threads of their own, never on the event loop.
// - With upload.dedupe, a pending job that another job of its project and size could
//   duplicate is hashed (and checked) before it may be claimed; a job with the content of a
//   succeeded one completes from it, one matching a job in flight waits for it.
// - Every other job is claimed at once: the upload reads the file beside the send and its
//   final bytes wait for the check (the transport's BodyFeed); this stage supplies the check,
//   records the hash as soon as it is known and completes the jobs that waited for a success.

#include "app/job_events.hpp"
#include "app/store_client.hpp"
#include "common/timestamp.hpp"
#include "config/config.hpp"
#include "store/job_store.hpp"
#include "upload/attempt.hpp"
#include "upload/body_feed.hpp"

#include <boost/asio/io_context.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>

namespace modeldrop::app {

class UploadScheduler;

// The content check a job gets (empty: none); injected so the stage does not fix which checks exist.
using ContentCheckFor = std::function<upload::ContentCheck(const store::Job& job, const config::Config& config)>;

// Runs a job's after-action (move or delete); see JobFileWork.
using DisposeOfJobFile = std::function<void(const store::Job& job)>;

class PreflightStage {
 public:
  PreflightStage(boost::asio::io_context& io, StoreClient& store, const Clock& clock, config::Config config,
                 ContentCheckFor check_for, DisposeOfJobFile dispose, std::function<void()> claimable);
  ~PreflightStage();
  PreflightStage(const PreflightStage&) = delete;
  PreflightStage& operator=(const PreflightStage&) = delete;

  // Looks for pending jobs to hash first (startup, new jobs, CLI changes, a job back in the queue).
  void sweep();
  void reconfigure(config::Config config);
  void stop();

  // For an attempt about to start: the check its body must pass (empty when this very file
  // already passed it here).
  [[nodiscard]] upload::ContentCheck check_for(const store::Job& job) const;
  // An upload in flight has read its file whole: record the hash now, so same-size jobs
  // waiting for it can tell whether they duplicate it.
  void hashed_in_flight(const store::Job& job, const std::string& sha256);
  // A job's attempt was recorded: a success completes the jobs that waited with its content.
  // `completed`: those the recording transaction already completed (the scheduler does it in
  // the same commit); none: this stage looks for them itself.
  void job_finished(const store::Job& job, const std::optional<std::vector<store::Job>>& completed);

 private:
  void start_next();
  void on_read(const store::Job& job, const upload::FeedOutcome& outcome);
  void on_file_problem(const store::Job& job, const upload::FileProblem& problem);
  void record(const store::Job& job, std::string sha256);
  void complete_duplicates_of(store::JobId succeeded);
  void dispose_duplicates(store::JobId succeeded, const std::vector<store::Job>& completed);

  boost::asio::io_context& io_;
  StoreClient& store_;
  const Clock& clock_;
  config::Config config_;
  ContentCheckFor check_for_;
  DisposeOfJobFile dispose_;
  std::function<void()> claimable_;
  std::deque<store::Job> queue_;
  std::map<store::JobId, std::unique_ptr<upload::BodyFeed>> reading_;
  std::set<store::JobId> known_;                        // queued, reading or being recorded
  std::map<store::JobId, store::FileIdentity> passed_;  // the file that passed its check
  bool sweeping_ = false;
  bool sweep_again_ = false;
  bool stopped_ = false;
};

// The check modeldropd runs on an archive's content: the job's `validate` (archive, adapter,
// none) over the file's kind from its name; empty when nothing is to be checked.
upload::ContentCheck content_check_for(const store::Job& job, const config::Config& config);

// Connects an attempt's check, its early hash and its end to the stage.
void wire_preflight(UploadScheduler& scheduler, PreflightStage& stage);

// The preflight stage ends jobs itself (a failed check before any send, a duplicate's
// completion): they are published like the scheduler's, then their archives disposed of.
DisposeOfJobFile publish_then_dispose(JobEvents& events, DisposeOfJobFile dispose);

}  // namespace modeldrop::app
