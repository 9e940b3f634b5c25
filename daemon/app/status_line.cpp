#include "app/status_line.hpp"

#include "common/size.hpp"

namespace modeldrop::app {

std::string with_thousands(std::int64_t n) {
  std::string digits = std::to_string(n < 0 ? -n : n);
  std::string out;
  for (std::size_t i = 0; i < digits.size(); ++i) {
    if (i > 0 && (digits.size() - i) % 3 == 0) out += ',';
    out += digits[i];
  }
  return n < 0 ? "-" + out : out;
}

std::string format_status_line(const QueueCounts& counts, double rate_bytes_per_s,
                               const std::optional<std::string>& held_reason) {
  std::string line;
  if (held_reason) {
    line = "HELD: " + *held_reason + "; ";
  } else if (counts.uploading > 0) {
    line = with_thousands(counts.uploading) + " uploading at " + format_rate(rate_bytes_per_s) + ", ";
  }
  line += with_thousands(counts.pending) + " pending, " + with_thousands(counts.succeeded) + " done, " +
          with_thousands(counts.failed) + " failed";
  return line;
}

}  // namespace modeldrop::app
