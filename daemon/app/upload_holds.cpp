#include "app/upload_holds.hpp"

namespace modeldrop::app {

void UploadHolds::hold_for_auth(WallTime now, std::string reason) {
  if (!auth_since_) auth_since_ = now;
  auth_reason_ = std::move(reason);
}

void UploadHolds::token_changed() {
  auth_since_.reset();
  probe_running_ = false;
}

void UploadHolds::probe_started() {
  probe_running_ = true;
}

void UploadHolds::probe_finished(bool accepted, WallTime now) {
  probe_running_ = false;
  if (accepted) {
    auth_since_.reset();
  } else if (auth_since_) {
    auth_since_ = now;  // another five minutes before the next probe
  }
}

void UploadHolds::hold_for_rate_limit(WallTime until, std::string reason) {
  ++consecutive_rate_limits_;
  if (!rate_limited_until_ || until > *rate_limited_until_) rate_limited_until_ = until;
  rate_limit_reason_ = std::move(reason);
}

bool UploadHolds::uploads_blocked(WallTime now) const {
  return paused_ || auth_since_.has_value() || (rate_limited_until_ && now < *rate_limited_until_);
}

bool UploadHolds::probe_due(WallTime now) const {
  return auth_since_ && !probe_running_ && now >= *auth_since_ + kAuthProbeAfter;
}

std::optional<WallTime> UploadHolds::next_change(WallTime now) const {
  std::optional<WallTime> next;
  const auto consider = [&](WallTime t) {
    if (!next || t < *next) next = t;
  };
  if (rate_limited_until_ && now < *rate_limited_until_) consider(*rate_limited_until_);
  if (auth_since_ && !probe_running_) consider(std::max(now, *auth_since_ + kAuthProbeAfter));
  return next;
}

std::optional<std::string> UploadHolds::reason(WallTime now) const {
  // The pause is the user's own choice and says so plainly; the API's holds explain themselves.
  if (paused_) return std::string("paused");
  if (auth_since_)
    return auth_reason_ + " from API, check the token (held since " + format_timestamp(*auth_since_) + ")";
  if (rate_limited_until_ && now < *rate_limited_until_) {
    return rate_limit_reason_ + " from API, rate limited until " + format_timestamp(*rate_limited_until_);
  }
  return std::nullopt;
}

}  // namespace modeldrop::app
