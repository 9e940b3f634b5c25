// Retry-After and retry-after-ms come from the server (or a proxy) as free text: any value is
// a delay between 0 and the 1 h cap (docs/http.md) or unreadable, never a crash, an overflow
// (UBSan) or a negative wait. Seconds, HTTP dates in all three forms, and milliseconds.
#include "fuzz_check.hpp"
#include "upload/retry_policy.hpp"

#include <chrono>

using modeldrop::fuzz::require;
using namespace std::chrono_literals;

namespace {

bool within_cap(const std::optional<modeldrop::Duration>& delay) {
  return !delay || (*delay >= modeldrop::Duration{0} && *delay <= std::chrono::duration_cast<modeldrop::Duration>(1h));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view value = modeldrop::fuzz::as_text(data, size);
  namespace upload = modeldrop::upload;
  // A fixed "now" keeps every input reproducible; 2026-11-25T19:00:00Z.
  const modeldrop::WallTime now = modeldrop::WallClock::from_time_t(1795633200);
  require(within_cap(upload::parse_retry_after(value, now)), "Retry-After is within [0, 1h]");
  require(within_cap(upload::parse_retry_after_ms(value)), "retry-after-ms is within [0, 1h]");
  return 0;
}
