#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>

namespace modeldrop::upload {

// upload.max_bytes_per_second, shared by every session: a token bucket refilled continuously
// at the rate and holding at most a short burst. Time is passed in, so tests need no clock.
class TokenBucket {
 public:
  using TimePoint = std::chrono::steady_clock::time_point;

  struct Grant {
    std::size_t bytes = 0;            // may be sent now; 0 when the caller must wait
    std::chrono::nanoseconds wait{};  // how long until `min_grant` bytes are available
  };

  TokenBucket(std::uint64_t bytes_per_second, TimePoint now) { set_rate(bytes_per_second, now); }

  // 0 = unlimited. The bucket starts full at the new rate.
  void set_rate(std::uint64_t bytes_per_second, TimePoint now);

  [[nodiscard]] bool unlimited() const { return rate_ == 0; }
  [[nodiscard]] std::uint64_t rate() const { return rate_; }
  [[nodiscard]] double capacity() const { return capacity_; }

  // Up to `wanted` bytes. Grants are never smaller than min(wanted, min_grant) so that a
  // capped upload still writes whole TLS records rather than a trickle of tiny ones; min_grant
  // is 2 ms of the rate (at least one 16 KiB record, at most 256 KiB), so that a fast capped
  // upload is not woken for every record.
  Grant take(std::size_t wanted, TimePoint now);

 private:
  void refill(TimePoint now);

  std::uint64_t rate_ = 0;
  double capacity_ = 0;
  double min_grant_ = 0;
  double tokens_ = 0;
  TimePoint last_refill_{};
};

}  // namespace modeldrop::upload
