#include "app/job_file_actions.hpp"

#include "watch/after_action.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

namespace modeldrop::app {

const config::WatchConfig* watch_of(const store::Job& job, const config::Config& config) {
  if (!job.watch_dir) return nullptr;
  for (const auto& watch : config.watch) {
    if (watch.path == *job.watch_dir) return &watch;
  }
  return nullptr;
}

bool after_action_moves_file(const store::Job& job, const config::Config& config) {
  const auto* watch = watch_of(job, config);
  if (watch == nullptr) return false;
  if (job.state == store::JobState::succeeded) return watch->on_success != config::SuccessAction::keep;
  if (job.state == store::JobState::failed) return watch->on_failure != config::FailureAction::keep;
  return false;
}

void JobFileWork::dispose(const store::Job& job, const config::Config& config) {
  if (stopped_) return;
  if (job.state != store::JobState::succeeded && job.state != store::JobState::failed) return;
  const auto* watch = watch_of(job, config);
  if (watch == nullptr || !job.current_path) return;
  boost::asio::post(worker_, [this, job, watch = *watch, now = clock_.now()] {
    auto where = job.state == store::JobState::succeeded ? watch::apply_success_action(watch, *job.current_path)
                                                         : watch::apply_failure_action(watch, *job.current_path);
    if (!where) {
      spdlog::error("job {}: {}", job.id, where.error().message);
      return;
    }
    if (*where == job.current_path) return;
    if (*where) {
      spdlog::info("job {}: moved {} to {}", job.id, job.current_path->string(), (*where)->string());
    } else {
      spdlog::info("job {}: deleted {}", job.id, job.current_path->string());
    }
    store_.run([id = job.id, path = *where, now](store::JobStore& s) {
      if (auto r = s.set_current_path(id, path, now); !r) {
        spdlog::error("store: job {}: cannot record where its file went: {}", id, r.error().message);
      }
    });
  });
}

void JobFileWork::stop() {
  stopped_ = true;
  worker_.join();
}

}  // namespace modeldrop::app
