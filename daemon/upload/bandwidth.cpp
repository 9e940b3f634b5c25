#include "upload/bandwidth.hpp"

#include <algorithm>
#include <cmath>

namespace modeldrop::upload {
namespace {

// The burst: 50 ms of the rate, at least one TLS record's worth of plaintext.
constexpr double kBurstSeconds = 0.05;
constexpr double kRecordBytes = 16 * 1024;
// A session that must wait waits for 2 ms of the rate (between one record and 256 KiB): at
// 256 MiB/s a wait per record would wake the loop 16,000 times a second for 16 KiB each, about
// half a CPU second per GiB of timers and small writes; this wakes it about 1,000 times.
constexpr double kWaitSeconds = 0.002;
constexpr double kMaxWaitBytes = 256 * 1024;

}  // namespace

void TokenBucket::set_rate(std::uint64_t bytes_per_second, TimePoint now) {
  rate_ = bytes_per_second;
  capacity_ = std::max(static_cast<double>(rate_) * kBurstSeconds, kRecordBytes);
  min_grant_ = std::min(std::clamp(static_cast<double>(rate_) * kWaitSeconds, kRecordBytes, kMaxWaitBytes), capacity_);
  tokens_ = capacity_;
  last_refill_ = now;
}

void TokenBucket::refill(TimePoint now) {
  if (now <= last_refill_) return;
  const double elapsed = std::chrono::duration<double>(now - last_refill_).count();
  tokens_ = std::min(capacity_, tokens_ + elapsed * static_cast<double>(rate_));
  last_refill_ = now;
}

TokenBucket::Grant TokenBucket::take(std::size_t wanted, TimePoint now) {
  if (unlimited() || wanted == 0) return Grant{wanted, {}};
  refill(now);
  const double needed = std::min(static_cast<double>(wanted), min_grant_);
  if (tokens_ >= needed) {
    const double granted = std::min(static_cast<double>(wanted), std::floor(tokens_));
    tokens_ -= granted;
    return Grant{static_cast<std::size_t>(granted), {}};
  }
  const double seconds = (needed - tokens_) / static_cast<double>(rate_);
  const auto wait = std::chrono::nanoseconds(static_cast<std::int64_t>(std::ceil(seconds * 1e9)));
  return Grant{0, std::max(wait, std::chrono::nanoseconds(1))};
}

}  // namespace modeldrop::upload
