#pragma once

// Takes due jobs from the store, runs them through the upload pool, and records what
// docs/http.md says each outcome means. Lives on the event loop; the store is reached only
// through StoreClient, so no SQL runs on this thread.

#include "app/store_client.hpp"
#include "app/upload_holds.hpp"
#include "common/timestamp.hpp"
#include "config/config.hpp"
#include "store/job_store.hpp"
#include "upload/retry_policy.hpp"
#include "upload/upload_pool.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace modeldrop::app {

class UploadScheduler {
 public:
  struct Settings {
    config::Config config;  // retry, upload.dedupe, api.project_id, the watch list (settle, actions)
  };

  struct Snapshot {
    std::size_t uploading = 0;
    double rate_bytes_per_s = 0;
    std::optional<std::string> held_reason;
  };

  UploadScheduler(boost::asio::io_context& io, StoreClient& store, upload::UploadPool& pool, const Clock& clock,
                  Settings settings, std::uint64_t seed);

  void start();
  // Something may have become due (a new job, a retry from the CLI): look now.
  void wake();
  // Another process changed the database: re-read the pause flag and cancelled uploads.
  void external_change();
  // The API token changed: an auth hold ends at once.
  void token_changed();
  void reconfigure(Settings settings);
  // Runs when an attempt leaves its job pending without a content hash (the file changed while
  // it was sent): with upload.dedupe only the hash stage can make it claimable again.
  void on_unhashed_pending(std::function<void()> needs_hash) { needs_hash_ = std::move(needs_hash); }
  // Shutdown: claims stop, uploads in flight are aborted back to pending; `done` runs once
  // every attempt is recorded (or at once when none is in flight).
  void stop(std::function<void()> done);

  [[nodiscard]] Snapshot snapshot() const;

 private:
  struct InFlight {
    store::Job job;
    int attempt = 0;
    std::uint64_t bytes_reported = 0;
  };

  void dispatch();
  void claim(std::size_t count);
  void on_claimed(Result<std::vector<std::pair<store::Job, int>>> claimed);
  void start_upload(store::Job job, int attempt);
  void on_upload_done(store::JobId id, upload::UploadResult result);
  void record(const InFlight& flight, const upload::UploadResult& result, const upload::Decision& decision);
  void log_retry(store::JobId id, int attempt, const upload::Decision& decision, WallTime now);
  void after_finish(const store::Job& job);
  void arm_wakeup(std::optional<WallTime> at);
  void schedule_next_due();
  void maybe_probe();
  void note_progress(std::uint64_t delta);
  void finish_stop_if_idle();

  boost::asio::io_context& io_;
  StoreClient& store_;
  upload::UploadPool& pool_;
  const Clock& clock_;
  Settings settings_;
  upload::RetryPolicy policy_;
  UploadHolds holds_;
  std::map<store::JobId, InFlight> in_flight_;
  boost::asio::steady_timer wakeup_;
  bool claiming_ = false;
  bool stopping_ = false;
  bool probing_ = false;
  std::function<void()> stopped_;
  std::function<void()> needs_hash_;
  std::optional<std::string> published_reason_;
  struct RetryLog {
    std::optional<WallTime> last_logged;
    std::size_t held_back = 0;  // retries logged at debug only since last_logged
  } retry_log_;
  // Upload rate: bytes reported in the last few seconds.
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>> progress_window_;
};

}  // namespace modeldrop::app
