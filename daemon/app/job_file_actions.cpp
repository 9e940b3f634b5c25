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

namespace {

// The marker follows its archive: into the same folder when the archive was moved, else
// (kept or deleted) it is removed, so it cannot announce the archive a second time.
void dispose_of_ready_marker(const store::Job& job, const std::optional<std::filesystem::path>& archive_now,
                             StoreClient& store, WallTime now) {
  if (!job.ready_marker_path) return;
  const auto& marker = *job.ready_marker_path;
  std::optional<std::filesystem::path> marker_now;
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::symlink_status(marker, ec))) {
    // Removed by hand already: only the record is left to update.
  } else if (archive_now && archive_now != job.current_path) {
    auto moved = watch::move_into(marker, archive_now->parent_path());
    if (!moved) {
      spdlog::warn("job {}: cannot move its ready marker: {}", job.id, moved.error().message);
      return;
    }
    marker_now = *moved;
  } else if (auto removed = watch::remove_file(marker); !removed) {
    spdlog::warn("job {}: cannot remove its ready marker: {}", job.id, removed.error().message);
    return;
  }
  store.run([id = job.id, marker_now, now](store::JobStore& s) {
    if (auto r = s.set_ready_marker_path(id, marker_now, now); !r) {
      spdlog::error("store: job {}: cannot record where its ready marker went: {}", id, r.error().message);
    }
  });
}

// The sidecar goes where its archive goes: moved into the same folder, removed with a deleted
// archive, left beside a kept one.
void dispose_of_sidecar(const store::Job& job, const std::optional<std::filesystem::path>& archive_now,
                        StoreClient& store, WallTime now) {
  if (!job.sidecar_path || archive_now == job.current_path) return;
  const auto& sidecar = *job.sidecar_path;
  std::optional<std::filesystem::path> sidecar_now;
  std::error_code ec;
  if (!std::filesystem::exists(std::filesystem::symlink_status(sidecar, ec))) {
    // Removed by hand already: only the record is left to update.
  } else if (archive_now) {
    auto moved = watch::move_into(sidecar, archive_now->parent_path());
    if (!moved) {
      spdlog::warn("job {}: cannot move its sidecar: {}", job.id, moved.error().message);
      return;
    }
    sidecar_now = *moved;
  } else if (auto removed = watch::remove_file(sidecar); !removed) {
    spdlog::warn("job {}: cannot remove its sidecar: {}", job.id, removed.error().message);
    return;
  }
  store.run([id = job.id, sidecar_now, now](store::JobStore& s) {
    if (auto r = s.set_sidecar_path(id, sidecar_now, now); !r) {
      spdlog::error("store: job {}: cannot record where its sidecar went: {}", id, r.error().message);
    }
  });
}

}  // namespace

void remove_ready_marker(const store::Job& job, store::JobStore& store, WallTime now) {
  if (!job.ready_marker_path) return;
  if (auto removed = watch::remove_file(*job.ready_marker_path); !removed) {
    spdlog::warn("job {}: cannot remove its ready marker: {}", job.id, removed.error().message);
    return;
  }
  if (auto r = store.set_ready_marker_path(job.id, std::nullopt, now); !r) {
    spdlog::error("store: job {}: cannot record that its ready marker was removed: {}", job.id, r.error().message);
  }
}

void JobFileWork::dispose(const store::Job& job, const config::Config& config) {
  if (stopped_) return;
  if (job.state != store::JobState::succeeded && job.state != store::JobState::failed) return;
  const auto* watch = watch_of(job, config);
  if (watch == nullptr || !job.current_path) return;
  if (leaving_ && after_action_moves_file(job, config)) leaving_(*job.current_path);
  boost::asio::post(worker_, [this, job, watch = *watch, now = clock_.now()] {
    auto where = job.state == store::JobState::succeeded ? watch::apply_success_action(watch, *job.current_path)
                                                         : watch::apply_failure_action(watch, *job.current_path);
    if (!where) {
      spdlog::error("job {}: {}", job.id, where.error().message);
      return;
    }
    dispose_of_ready_marker(job, *where, store_, now);
    dispose_of_sidecar(job, *where, store_, now);
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
