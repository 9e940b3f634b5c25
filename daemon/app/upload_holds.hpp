#pragma once

// When uploads wait for something other than a free session (docs/http.md and docs/cli.md pause):
// an auth failure, a rate limit, or a pause. Pure state with the time passed in, so the
// release rules are tested without sleeping.

#include "common/timestamp.hpp"

#include <chrono>
#include <optional>
#include <string>

namespace modeldrop::app {

class UploadHolds {
 public:
  static constexpr std::chrono::minutes kAuthProbeAfter{5};

  // 401/403: every upload waits until the token changes or a probe says it works again.
  void hold_for_auth(WallTime now, std::string reason);
  // A new token (file mtime, SIGHUP) ends an auth hold at once.
  void token_changed();
  // The probe `GET /v1/files?limit=1` answered: accepted ends the hold, refused restarts it.
  void probe_started();
  void probe_finished(bool accepted, WallTime now);

  // 429: every session waits until `until`; a later 429 may extend the hold, never shorten it.
  void hold_for_rate_limit(WallTime until, std::string reason);
  // A success after 429s resets the consecutive count (the backoff's n for Retry-After-less 429s).
  void upload_succeeded() { consecutive_rate_limits_ = 0; }
  [[nodiscard]] int consecutive_rate_limits() const { return consecutive_rate_limits_; }

  void set_paused(bool paused) { paused_ = paused; }
  [[nodiscard]] bool paused() const { return paused_; }

  [[nodiscard]] bool uploads_blocked(WallTime now) const;
  [[nodiscard]] bool auth_held() const { return auth_since_.has_value(); }
  [[nodiscard]] bool probe_due(WallTime now) const;
  // The next moment something may change by itself (a rate limit ends, a probe is due).
  [[nodiscard]] std::optional<WallTime> next_change(WallTime now) const;
  // Each hold on its own (several may hold at once), for the metrics.
  struct Active {
    bool auth = false;
    bool rate_limit = false;
    bool paused = false;
  };
  [[nodiscard]] Active active(WallTime now) const {
    return {auth_since_.has_value(), rate_limited_until_ && now < *rate_limited_until_, paused_};
  }
  // For `daemon.held_reason` and STATUS=: none when uploads flow.
  [[nodiscard]] std::optional<std::string> reason(WallTime now) const;

 private:
  std::optional<WallTime> auth_since_;
  std::string auth_reason_;
  bool probe_running_ = false;
  std::optional<WallTime> rate_limited_until_;
  std::string rate_limit_reason_;
  int consecutive_rate_limits_ = 0;
  bool paused_ = false;
};

}  // namespace modeldrop::app
