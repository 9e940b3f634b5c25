#pragma once

// Where the watcher's findings become jobs: every ready file goes through the store's
// idempotent enqueue (CONTRACT §6 same-file rule), every removed one cancels its pending job.

#include "app/store_client.hpp"
#include "common/timestamp.hpp"
#include "watch/drop_watcher.hpp"

#include <functional>

namespace modeldrop::app {

class WatchIntake final : public watch::WatchEvents {
 public:
  // `queued` runs after a job was inserted or updated (the hash stage and scheduler look then).
  WatchIntake(StoreClient& store, const Clock& clock, std::function<void()> queued)
      : store_(store), clock_(clock), queued_(std::move(queued)) {}

  void file_ready(const watch::ReadyFile& file) override;
  void file_removed(const std::filesystem::path& path) override;

 private:
  StoreClient& store_;
  const Clock& clock_;
  std::function<void()> queued_;
};

}  // namespace modeldrop::app
