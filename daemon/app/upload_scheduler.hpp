#pragma once

// Takes due jobs from the store, runs them through the upload pool, and records what
// docs/http.md says each outcome means. Lives on the event loop; the store is reached only
// through StoreClient, so no SQL runs on this thread.

#include "app/in_doubt_reconciler.hpp"
#include "app/job_events.hpp"
#include "app/job_tokens.hpp"
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
    UploadHolds::Active holds;
  };

  // Every recorded attempt, and every job it finishes, is published to `events`.
  UploadScheduler(boost::asio::io_context& io, StoreClient& store, upload::UploadPool& pool, const Clock& clock,
                  JobEvents& events, Settings settings, std::uint64_t seed);

  void start();
  // Something may have become due (a new job, a retry from the CLI): look now.
  void wake();
  // Another process changed the database: re-read the pause flag and cancelled uploads.
  void external_change();
  // Which token each job's requests carry (by its token_file). Without this every job sends the
  // pool's own token and every hold is on it.
  void set_tokens(JobTokens* tokens) { tokens_ = tokens; }
  // A token changed (the global one by default): its auth hold, or its wait for a usable token
  // file, ends at once.
  void token_changed(const TokenKey& token = {});
  // A token file cannot be used: its jobs wait (held_reason says why) until token_changed.
  void token_unusable(const TokenKey& token, const std::string& why);
  void reconfigure(Settings settings);
  // The preflight stage's part in each attempt: the content check its body must pass, the
  // hash as soon as the body's reader knows it, and every recorded end of an attempt.
  struct PreflightHooks {
    std::function<upload::ContentCheck(const store::Job&)> check_for;
    std::function<void(const store::Job&, const std::string& sha256)> hashed;
    // `completed`: the duplicates the recording commit completed from a success (dedupe on).
    std::function<void(const store::Job&, const std::optional<std::vector<store::Job>>& completed)> finished;
  };
  void set_preflight(PreflightHooks hooks) { preflight_ = std::move(hooks); }
  // Runs a finished job's after-action (off the event loop).
  void set_dispose(std::function<void(const store::Job&)> dispose) { dispose_ = std::move(dispose); }
  // Shutdown: claims stop, uploads in flight are aborted back to pending; `done` runs once
  // every attempt is recorded (or at once when none is in flight).
  void stop(std::function<void()> done);

  [[nodiscard]] Snapshot snapshot() const;

 private:
  struct InFlight {
    store::Job job;
    int attempt = 0;
    std::uint64_t bytes_reported = 0;
    WallTime started{};
    std::optional<std::string> token;  // a secret: none sends the pool's own (the global token)
  };

  void dispatch();
  void claim(std::size_t count, std::vector<TokenKey> held);
  // A job the store handed over, its attempt open, and the start of its earliest attempt
  // still in doubt (none: nothing to look for on the server, so it is sent at once).
  struct Claimed {
    store::Job job;
    int attempt = 0;
    std::optional<WallTime> in_doubt_since;
  };
  void on_claimed(std::size_t asked, Result<std::vector<Claimed>> claimed);
  void start_upload(Claimed claimed);
  void on_reconciled(store::JobId id, std::optional<store::Job> adopted);
  void send_upload(store::JobId id);
  void add_preflight(upload::UploadRequest& request, const store::Job& job);
  void on_upload_done(store::JobId id, upload::UploadResult result);
  void record(const InFlight& flight, const upload::UploadResult& result, const upload::Decision& decision);
  void log_retry(store::JobId id, int attempt, const upload::Decision& decision, WallTime now);
  void after_finish(const store::Job& job, AttemptFinished event,
                    const std::optional<std::vector<store::Job>>& completed = std::nullopt);
  void arm_wakeup(std::optional<WallTime> at);
  void schedule_next_due();
  void maybe_probe();
  void probe(const TokenKey& token);
  // The hold's wording names who uses the token (set before each hold starts).
  void label(const TokenKey& token);
  void note_progress(std::uint64_t delta);
  void finish_stop_if_idle();

  boost::asio::io_context& io_;
  StoreClient& store_;
  upload::UploadPool& pool_;
  const Clock& clock_;
  JobEvents& events_;
  Settings settings_;
  upload::RetryPolicy policy_;
  UploadHolds holds_;
  InDoubtReconciler reconciler_;
  std::size_t reconciling_ = 0;  // claimed jobs looking for an in-doubt copy: they hold a session
  std::map<store::JobId, InFlight> in_flight_;
  boost::asio::steady_timer wakeup_;
  // Sessions asked for by claims still on their way back from the store. Claims overlap: a
  // session freed while another claim is out asks at once instead of waiting for it.
  std::size_t claims_out_ = 0;
  bool stopping_ = false;
  JobTokens* tokens_ = nullptr;
  std::function<void()> stopped_;
  PreflightHooks preflight_;
  std::function<void(const store::Job&)> dispose_;
  std::optional<std::string> published_reason_;
  struct RetryLog {
    std::optional<WallTime> last_logged;
    std::size_t held_back = 0;  // retries logged at debug only since last_logged
  } retry_log_;
  // Upload rate: bytes reported in the last few seconds.
  std::deque<std::pair<std::chrono::steady_clock::time_point, std::uint64_t>> progress_window_;
};

}  // namespace modeldrop::app
