#pragma once

// The one-line summary systemd shows (`STATUS=`), e.g.
// "2 uploading at 410 MiB/s, 17 pending, 1,204 done, 3 failed" or "HELD: paused; 17 pending".

#include <cstdint>
#include <optional>
#include <string>

namespace modeldrop::app {

struct QueueCounts {
  std::int64_t pending = 0;
  std::int64_t uploading = 0;
  std::int64_t succeeded = 0;
  std::int64_t failed = 0;
};

std::string format_status_line(const QueueCounts& counts, double rate_bytes_per_s,
                               const std::optional<std::string>& held_reason);

// 1204 -> "1,204".
std::string with_thousands(std::int64_t n);

}  // namespace modeldrop::app
