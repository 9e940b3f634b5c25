#include "app/watch_intake.hpp"

#include "store/job_store.hpp"

#include <spdlog/spdlog.h>

namespace modeldrop::app {

void WatchIntake::file_ready(const watch::ReadyFile& file) {
  store::NewJob job;
  job.path = file.path;
  job.watch_dir = file.watch_dir;
  job.project_id = file.project_id;
  job.file = store::FileIdentity{static_cast<std::uint64_t>(file.device), static_cast<std::uint64_t>(file.inode),
                                 file.size, file.mtime_ns};
  store_.call([job, now = clock_.now()](store::JobStore& s) { return s.enqueue(job, now); },
              [this, path = file.path](Result<store::EnqueueResult> result) {
                if (!result) {
                  // Not lost: the next rescan (or restart) finds the file again.
                  spdlog::error("store: cannot queue {}: {}", path.string(), result.error().message);
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

void WatchIntake::look_at_finished_job(store::JobId id, const std::filesystem::path& path) {
  if (!finished_file_) return;
  store_.call([id](store::JobStore& s) { return s.find_job(id); },
              [this, path](Result<std::optional<store::Job>> job) {
                // Moved or deleted already (current_path elsewhere or NULL): nothing was left behind.
                if (job && *job && (*job)->current_path == path) finished_file_(**job);
              });
}

void WatchIntake::file_removed(const std::filesystem::path& path) {
  store_.call(
      [path, now = clock_.now()](store::JobStore& s) -> Result<std::optional<store::JobId>> {
        auto job = s.pending_job_for_path(path);
        if (!job) return job.error();
        if (!*job) return std::optional<store::JobId>{};
        auto removed = s.mark_source_removed((*job)->id, now);
        if (!removed) return removed.error();
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
