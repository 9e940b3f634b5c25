#pragma once

// When uploads wait for something other than a free session (docs/http.md and docs/cli.md pause):
// an auth failure, a rate limit or a token file that cannot be read, each on one token, or a
// pause of everything. Pure state with the time passed in, so the release rules are tested
// without sleeping.

#include "app/job_tokens.hpp"
#include "common/timestamp.hpp"

#include <chrono>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace modeldrop::app {

// Every method that takes a TokenKey defaults to the global token.
class UploadHolds {
 public:
  static constexpr std::chrono::minutes kAuthProbeAfter{5};

  // Who uses a token, named in reason(): "watch /srv/teamb (token_file /etc/modeldrop/b)". Empty
  // (the default) keeps the plain wording of a daemon with one token.
  void label_token(const TokenKey& token, std::string label);

  // 401/403: the token's uploads wait until it changes or a probe says it works again.
  void hold_for_auth(WallTime now, std::string reason, const TokenKey& token = {});
  // A new token (file change, SIGHUP) ends its auth hold, and the wait for a usable file, at once.
  void token_changed(const TokenKey& token = {});
  // The token file cannot be used (missing, unreadable, empty): its uploads wait until it can.
  void token_unusable(const TokenKey& token, std::string why);

  // No job uses the token any more (a watch's token_file changed, its jobs were cancelled): its
  // holds hold nothing and go.
  void forget(const TokenKey& token) { tokens_.erase(token); }

  // The probe `GET /v1/files?limit=1` with the held token: a 2xx ends the hold, a 401/403 keeps it
  // five more minutes, any other answer (the API down, a timeout) ends it too: it says nothing
  // against the token, and an upload refused again starts a new hold.
  enum class ProbeAnswer { accepted, refused, inconclusive };
  void probe_started(const TokenKey& token = {});
  void probe_finished(ProbeAnswer answer, WallTime now, const TokenKey& token = {});
  void probe_finished(bool accepted, WallTime now, const TokenKey& token = {}) {
    probe_finished(accepted ? ProbeAnswer::accepted : ProbeAnswer::refused, now, token);
  }

  // 429: the token's sessions wait until `until`; a later 429 may extend the hold, never shorten it.
  void hold_for_rate_limit(WallTime until, std::string reason, const TokenKey& token = {});
  // A success after 429s resets the consecutive count (the backoff's n for Retry-After-less 429s).
  void upload_succeeded(const TokenKey& token = {});
  [[nodiscard]] int consecutive_rate_limits(const TokenKey& token = {}) const;

  void set_paused(bool paused) { paused_ = paused; }
  [[nodiscard]] bool paused() const { return paused_; }

  // Whether the token's uploads may not start now (the pause holds every token).
  [[nodiscard]] bool uploads_blocked(WallTime now, const TokenKey& token = {}) const;
  // The tokens whose jobs wait now, the pause aside: claims skip their jobs.
  [[nodiscard]] std::vector<TokenKey> held_tokens(WallTime now) const;
  // An auth hold, or a token file that cannot be used: the token's jobs wait for a new token.
  [[nodiscard]] bool auth_held(const TokenKey& token = {}) const;
  [[nodiscard]] bool probe_due(WallTime now, const TokenKey& token = {}) const;
  [[nodiscard]] std::vector<TokenKey> probes_due(WallTime now) const;
  // The next moment something may change by itself (a rate limit ends, a probe is due).
  [[nodiscard]] std::optional<WallTime> next_change(WallTime now) const;
  // Each kind of hold on its own, any token (several may hold at once), for the metrics. A token
  // file that cannot be used counts as an auth hold.
  struct Active {
    bool auth = false;
    bool rate_limit = false;
    bool paused = false;
  };
  [[nodiscard]] Active active(WallTime now) const;
  // For `daemon.held_reason` and STATUS=: none when uploads flow; every held token's reason,
  // joined by "; ", each naming who uses the token when it has a label.
  [[nodiscard]] std::optional<std::string> reason(WallTime now) const;

 private:
  struct TokenHold {
    std::string label;
    std::optional<WallTime> auth_since;
    std::string auth_reason;
    bool probe_running = false;
    std::optional<WallTime> rate_limited_until;
    std::string rate_limit_reason;
    int consecutive_rate_limits = 0;
    std::optional<std::string> unusable;  // why the token file cannot be used

    [[nodiscard]] bool rate_limited(WallTime now) const { return rate_limited_until && now < *rate_limited_until; }
    [[nodiscard]] bool held(WallTime now) const { return auth_since || unusable || rate_limited(now); }
    // A probe needs a readable token: while the file cannot be used, only its change helps.
    [[nodiscard]] bool probe_pending() const { return auth_since && !probe_running && !unusable; }
    [[nodiscard]] std::optional<std::string> reason(WallTime now) const;
  };

  [[nodiscard]] const TokenHold* find(const TokenKey& token) const;

  std::map<TokenKey, TokenHold> tokens_;  // none (the global token) sorts first
  bool paused_ = false;
};

}  // namespace modeldrop::app
