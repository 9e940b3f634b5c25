#pragma once

// What happened to jobs, published on the event loop for whoever needs to know (metrics,
// completion hooks, model registration). The scheduler and the hash stage publish; consumers
// subscribe here instead of being wired into the code that records outcomes.

#include "store/job_store.hpp"

#include <chrono>
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

namespace modeldrop::app {

// One upload attempt is over and its outcome is committed to the store.
struct AttemptFinished {
  store::Job job;  // as recorded: job.state is the state this attempt left it in
  int attempt = 0;
  store::AttemptOutcome outcome = store::AttemptOutcome::aborted;
  std::optional<int> http_status;                 // the API's answer, when one was read
  std::uint64_t bytes_sent = 0;                   // file bytes sent by this attempt
  std::chrono::steady_clock::duration elapsed{};  // from the start of the attempt to its answer
};

// A job reached succeeded or failed, committed to the store: by an upload, or (succeeded)
// because the same content was uploaded before.
struct JobFinished {
  store::Job job;
  bool duplicate = false;  // completed from an earlier upload, nothing sent
};

// Subscribers run on the event loop, in subscription order, and must not block.
class JobEvents {
 public:
  void on_attempt_finished(std::function<void(const AttemptFinished&)> subscriber) {
    attempt_subscribers_.push_back(std::move(subscriber));
  }
  void on_job_finished(std::function<void(const JobFinished&)> subscriber) {
    job_subscribers_.push_back(std::move(subscriber));
  }

  void publish(const AttemptFinished& event) const {
    for (const auto& subscriber : attempt_subscribers_) subscriber(event);
  }
  void publish(const JobFinished& event) const {
    for (const auto& subscriber : job_subscribers_) subscriber(event);
  }

 private:
  std::vector<std::function<void(const AttemptFinished&)>> attempt_subscribers_;
  std::vector<std::function<void(const JobFinished&)>> job_subscribers_;
};

}  // namespace modeldrop::app
