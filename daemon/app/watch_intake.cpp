#include "app/watch_intake.hpp"

#include "app/job_file_actions.hpp"
#include "store/job_store.hpp"

#include <spdlog/spdlog.h>

namespace modeldrop::app {

namespace {
constexpr auto kRetryUnqueued = std::chrono::seconds(2);
}

void WatchIntake::file_ready(const watch::ReadyFile& file) {
  unqueued_.erase(file.path);  // this report supersedes an earlier one that failed
  store::NewJob job;
  job.path = file.path;
  job.watch_dir = file.watch_dir;
  job.project_id = file.project_id;
  job.validate = file.validate;
  job.token_file = file.token_file;
  job.file = store::FileIdentity{static_cast<std::uint64_t>(file.device), static_cast<std::uint64_t>(file.inode),
                                 file.size, file.mtime_ns};
  store_.call(
      [job, marker = file.ready_marker, now = clock_.now()](store::JobStore& s) {
        auto queued = s.enqueue(job, now);
        if (queued && marker && queued->effect != store::EnqueueEffect::unchanged) {
          if (auto r = s.set_ready_marker_path(queued->job, marker, now); !r)
            return Result<store::EnqueueResult>(r.error());
        }
        return queued;
      },
      [this, file](Result<store::EnqueueResult> result) {
        const auto& path = file.path;
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

void WatchIntake::file_removed(const std::filesystem::path& path) {
  unqueued_.erase(path);
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
