#include "app/watch_intake.hpp"

#include "app/job_file_actions.hpp"
#include "config/model_registration.hpp"
#include "store/job_store.hpp"

#include <spdlog/spdlog.h>

namespace modeldrop::app {

namespace {
constexpr auto kRetryUnqueued = std::chrono::seconds(2);
}

// What queueing a file did, and the job when its sidecar failed it at once.
struct WatchIntake::Queued {
  store::EnqueueResult queued;
  std::optional<store::Job> failed;
};

void WatchIntake::file_ready(const watch::ReadyFile& file) {
  unqueued_.erase(file.path);           // this report supersedes an earlier one that failed
  expected_removals_.erase(file.path);  // a new file under the name: its removal matters
  store::NewJob job;
  job.path = file.path;
  job.watch_dir = file.watch_dir;
  job.project_id = file.project_id;
  job.validate = file.validate;
  job.token_file = file.token_file;
  job.file = store::FileIdentity{static_cast<std::uint64_t>(file.device), static_cast<std::uint64_t>(file.inode),
                                 file.size, file.mtime_ns};
  store_.call(
      [job, marker = file.ready_marker, registration = file.registration,
       now = clock_.now()](store::JobStore& s) -> Result<Queued> {
        // On the store thread, not the event loop: the sidecar is a file to read.
        const auto model = config::registration_for_archive(job.path, registration, now);
        store::NewJob with_model = job;
        with_model.sidecar_path = model.sidecar;
        with_model.keep_registration = model.problem.has_value();
        if (model.model) {
          with_model.model = store::ModelRequest{model.model->name, model.model->base_model, model.model->description};
        }
        auto queued = s.enqueue(with_model, now);
        if (!queued) return queued.error();
        if (marker && queued->effect != store::EnqueueEffect::unchanged) {
          if (auto r = s.set_ready_marker_path(queued->job, marker, now); !r) return r.error();
        }
        // A broken sidecar fails its job before anything is sent (an upload already running
        // for an earlier version of the file keeps the model it was queued with).
        if (model.problem && queued->effect != store::EnqueueEffect::unchanged &&
            queued->state == store::JobState::pending) {
          auto failed = s.fail(queued->job, *model.problem, now);
          if (!failed) return failed.error();
          return Queued{*queued, std::move(*failed)};
        }
        return Queued{*queued, std::nullopt};
      },
      [this, file](Result<Queued> queued) {
        const auto& path = file.path;
        if (queued && queued->failed) {
          spdlog::error("job {}: {} failed: {}", queued->failed->id, path.filename().string(),
                        queued->failed->last_error.value_or("?"));
          if (ended_) ended_(*queued->failed);
          return;
        }
        Result<store::EnqueueResult> result =
            queued ? Result<store::EnqueueResult>(queued->queued) : Result<store::EnqueueResult>(queued.error());
        if (!result) {
          spdlog::error("store: cannot queue {}: {} (trying again in {} s)", path.string(), result.error().message,
                        kRetryUnqueued.count());
          retry_later(file);
          return;
        }
        switch (result->effect) {
          case store::EnqueueEffect::inserted:
            spdlog::info("job {}: queued {}", result->job, path.string());
            break;
          case store::EnqueueEffect::updated:
            spdlog::info("job {}: {} changed before its upload; queued again", result->job, path.string());
            break;
          case store::EnqueueEffect::unchanged:
            if (result->state == store::JobState::succeeded || result->state == store::JobState::failed) {
              look_at_finished_job(result->job, path);
            }
            return;
        }
        queued_();
      });
}

void WatchIntake::retry_later(const watch::ReadyFile& file) {
  unqueued_.insert_or_assign(file.path, file);
  if (retry_armed_) return;
  retry_armed_ = true;
  retry_timer_.expires_after(kRetryUnqueued);
  retry_timer_.async_wait([this](boost::system::error_code ec) {
    retry_armed_ = false;
    if (ec) return;
    auto files = std::move(unqueued_);
    unqueued_.clear();
    for (const auto& [path, unqueued] : files) file_ready(unqueued);
  });
}

void WatchIntake::look_at_finished_job(store::JobId id, const std::filesystem::path& path) {
  if (!finished_file_) return;
  store_.call([id](store::JobStore& s) { return s.find_job(id); },
              [this, path](Result<std::optional<store::Job>> job) {
                // Moved or deleted already (current_path elsewhere or NULL): nothing was left behind.
                if (job && *job && (*job)->current_path == path) finished_file_(**job);
              });
}

void WatchIntake::expect_removal(const std::filesystem::path& path) {
  if (expected_removals_.size() >= kMaxExpectedRemovals) expected_removals_.clear();
  expected_removals_.insert(path);
}

void WatchIntake::file_removed(const std::filesystem::path& path) {
  unqueued_.erase(path);
  if (expected_removals_.erase(path) != 0) return;
  store_.call(
      [path, now = clock_.now()](store::JobStore& s) -> Result<std::optional<store::JobId>> {
        auto job = s.pending_job_for_path(path);
        if (!job) return job.error();
        if (!*job) return std::optional<store::JobId>{};
        auto removed = s.mark_source_removed((*job)->id, now);
        if (!removed) return removed.error();
        remove_ready_marker(*removed, s, now);
        return std::optional<store::JobId>{removed->id};
      },
      [path](Result<std::optional<store::JobId>> result) {
        if (!result) {
          spdlog::warn("store: {} was removed but its job could not be updated: {}", path.string(),
                       result.error().message);
        } else if (*result) {
          spdlog::warn("job {}: {} removed before its upload; cancelled", **result, path.string());
        }
      });
}

}  // namespace modeldrop::app
