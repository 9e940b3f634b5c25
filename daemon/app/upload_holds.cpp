#include "app/upload_holds.hpp"

namespace modeldrop::app {

void UploadHolds::label_token(const TokenKey& token, std::string label) {
  tokens_[token].label = std::move(label);
}

void UploadHolds::hold_for_auth(WallTime now, std::string reason, const TokenKey& token) {
  auto& hold = tokens_[token];
  if (!hold.auth_since) hold.auth_since = now;
  hold.auth_reason = std::move(reason);
}

void UploadHolds::token_changed(const TokenKey& token) {
  auto it = tokens_.find(token);
  if (it == tokens_.end()) return;
  it->second.auth_since.reset();
  it->second.probe_running = false;
  it->second.unusable.reset();
}

void UploadHolds::token_unusable(const TokenKey& token, std::string why) {
  tokens_[token].unusable = std::move(why);
}

void UploadHolds::probe_started(const TokenKey& token) {
  tokens_[token].probe_running = true;
}

void UploadHolds::probe_finished(ProbeAnswer answer, WallTime now, const TokenKey& token) {
  auto& hold = tokens_[token];
  hold.probe_running = false;
  if (answer != ProbeAnswer::refused) {
    hold.auth_since.reset();
  } else if (hold.auth_since) {
    hold.auth_since = now;  // another five minutes before the next probe
  }
}

void UploadHolds::hold_for_rate_limit(WallTime until, std::string reason, const TokenKey& token) {
  auto& hold = tokens_[token];
  ++hold.consecutive_rate_limits;
  if (!hold.rate_limited_until || until > *hold.rate_limited_until) hold.rate_limited_until = until;
  hold.rate_limit_reason = std::move(reason);
}

void UploadHolds::upload_succeeded(const TokenKey& token) {
  if (auto it = tokens_.find(token); it != tokens_.end()) it->second.consecutive_rate_limits = 0;
}

const UploadHolds::TokenHold* UploadHolds::find(const TokenKey& token) const {
  auto it = tokens_.find(token);
  return it == tokens_.end() ? nullptr : &it->second;
}

int UploadHolds::consecutive_rate_limits(const TokenKey& token) const {
  const auto* hold = find(token);
  return hold != nullptr ? hold->consecutive_rate_limits : 0;
}

bool UploadHolds::uploads_blocked(WallTime now, const TokenKey& token) const {
  const auto* hold = find(token);
  return paused_ || (hold != nullptr && hold->held(now));
}

std::vector<TokenKey> UploadHolds::held_tokens(WallTime now) const {
  std::vector<TokenKey> held;
  for (const auto& [token, hold] : tokens_) {
    if (hold.held(now)) held.push_back(token);
  }
  return held;
}

bool UploadHolds::auth_held(const TokenKey& token) const {
  const auto* hold = find(token);
  return hold != nullptr && (hold->auth_since || hold->unusable);
}

bool UploadHolds::probe_due(WallTime now, const TokenKey& token) const {
  const auto* hold = find(token);
  return hold != nullptr && hold->probe_pending() && now >= *hold->auth_since + kAuthProbeAfter;
}

std::vector<TokenKey> UploadHolds::probes_due(WallTime now) const {
  std::vector<TokenKey> due;
  for (const auto& [token, hold] : tokens_) {
    if (probe_due(now, token)) due.push_back(token);
  }
  return due;
}

std::optional<WallTime> UploadHolds::next_change(WallTime now) const {
  std::optional<WallTime> next;
  const auto consider = [&](WallTime t) {
    if (!next || t < *next) next = t;
  };
  for (const auto& [token, hold] : tokens_) {
    if (hold.rate_limited(now)) consider(*hold.rate_limited_until);
    if (hold.probe_pending()) consider(std::max(now, *hold.auth_since + kAuthProbeAfter));
  }
  return next;
}

UploadHolds::Active UploadHolds::active(WallTime now) const {
  Active active{false, false, paused_};
  for (const auto& [token, hold] : tokens_) {
    active.auth = active.auth || hold.auth_since || hold.unusable;
    active.rate_limit = active.rate_limit || hold.rate_limited(now);
  }
  return active;
}

std::optional<std::string> UploadHolds::TokenHold::reason(WallTime now) const {
  std::optional<std::string> plain;
  if (unusable) {
    plain = "no usable API token: " + *unusable;
  } else if (auth_since) {
    plain = auth_reason + " from API, check " + (label.empty() ? "the" : "that") + " token (held since " +
            format_timestamp(*auth_since) + ")";
  } else if (rate_limited(now)) {
    plain = rate_limit_reason + " from API, rate limited until " + format_timestamp(*rate_limited_until);
  }
  // Without a label (one token in the daemon) the wording is the plain one of docs/http.md.
  if (!plain || label.empty()) return plain;
  return label + ": " + *plain;
}

std::optional<std::string> UploadHolds::reason(WallTime now) const {
  // The pause is the user's own choice and says so plainly; the API's holds explain themselves.
  if (paused_) return std::string("paused");
  std::optional<std::string> joined;
  for (const auto& [token, hold] : tokens_) {
    auto one = hold.reason(now);
    if (!one) continue;
    joined = joined ? *joined + "; " + *one : std::move(*one);
  }
  return joined;
}

}  // namespace modeldrop::app
