#pragma once

// Where the watcher's findings become jobs: every ready file goes through the store's
// idempotent enqueue (the same-file rule of docs/database.md), every removed one cancels its pending job.

#include "app/store_client.hpp"
#include "common/timestamp.hpp"
#include "store/job_store.hpp"
#include "watch/drop_watcher.hpp"

#include <boost/asio/steady_timer.hpp>

#include <functional>
#include <map>
#include <set>

namespace modeldrop::app {

class WatchIntake final : public watch::WatchEvents {
 public:
  // A finished job whose file is still where it was found: the daemon stopped between the
  // job's end and the file's move or delete (docs/configuration.md on_success/on_failure).
  using FinishedJobFile = std::function<void(const store::Job&)>;

  // `queued` runs after a job was inserted or updated (the hash stage and scheduler look then);
  // `finished_file` when a scan reports the very file of a succeeded or failed job, still in place.
  WatchIntake(boost::asio::io_context& io, StoreClient& store, const Clock& clock, std::function<void()> queued,
              FinishedJobFile finished_file = {})
      : store_(store),
        clock_(clock),
        queued_(std::move(queued)),
        finished_file_(std::move(finished_file)),
        retry_timer_(io) {}

  // A job the intake ends itself (its sidecar is broken): published and disposed of like the
  // scheduler's. Without it, such a job is only logged.
  void set_ended(std::function<void(const store::Job&)> ended) { ended_ = std::move(ended); }

  void file_ready(const watch::ReadyFile& file) override;
  void file_removed(const std::filesystem::path& path) override;

  // The daemon is about to move or delete this file itself, its job ended: the removal the
  // watcher reports next has no pending job to cancel, and needs no visit to the store
  // (one per archive otherwise). A new report of the path (file_ready) voids it.
  void expect_removal(const std::filesystem::path& path);
  // At most this many expected removals are remembered (a move that failed never reports one);
  // beyond, they are forgotten and each such removal is looked up as before.
  static constexpr std::size_t kMaxExpectedRemovals = 4096;

 private:
  struct Queued;
  void retry_later(const watch::ReadyFile& file);
  void look_at_finished_job(store::JobId id, const std::filesystem::path& path);

  StoreClient& store_;
  const Clock& clock_;
  std::function<void()> queued_;
  FinishedJobFile finished_file_;
  std::function<void(const store::Job&)> ended_;
  // Files the store refused to queue: the watcher reports a file once, so they are tried again
  // here until they are queued, changed (reported anew) or removed.
  std::map<std::filesystem::path, watch::ReadyFile> unqueued_;
  std::set<std::filesystem::path> expected_removals_;
  boost::asio::steady_timer retry_timer_;
  bool retry_armed_ = false;
};

}  // namespace modeldrop::app
