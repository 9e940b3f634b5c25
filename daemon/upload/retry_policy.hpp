#pragma once

// What happens after an attempt: docs/http.md as code. Pure: the clock reading and the
// random source are arguments, so every row of the table is tested without sleeping.

#include "common/duration.hpp"
#include "common/timestamp.hpp"
#include "config/config.hpp"
#include "upload/api_responses.hpp"
#include "upload/attempt.hpp"

#include <optional>
#include <random>
#include <string>
#include <string_view>
#include <vector>

namespace modeldrop::upload {

enum class Verdict {
  succeeded,        // 2xx with an OpenAIFile
  retry,            // counted attempt; try again after a backoff
  failed,           // permanent: the API refused the archive, or the file cannot be read
  hold_auth,        // 401/403: every upload waits for a new token or the probe
  hold_rate_limit,  // 429: every session waits until `hold_until`
  file_changed,     // aborted, not counted: the file changed (or was replaced) while queued or sent
  source_removed,   // the file is gone: the job is cancelled
  cancelled,        // aborted, not counted: cancel or shutdown
};

std::string_view to_string(Verdict verdict);

// The server's wish for the next attempt: `retry-after-ms`, else `Retry-After` in seconds or
// as an HTTP date; capped at 1 h (docs/http.md). nullopt when absent or unreadable.
std::optional<Duration> server_retry_delay(const UploadResult& result, WallTime now);
std::optional<Duration> parse_retry_after(std::string_view value, WallTime now);
std::optional<Duration> parse_retry_after_ms(std::string_view value);

// The attempt as docs/http.md sees it, before budgets are applied.
struct Classification {
  Verdict verdict = Verdict::retry;
  std::string reason;  // the attempt's `error` / the job's `last_error`; empty for a success
  std::optional<OpenAIFile> file;
  std::optional<Duration> server_delay;
  std::vector<std::string> warnings;  // e.g. the API counted a different number of bytes
};

Classification classify(const UploadResult& result, WallTime now);

// The rules every API answer shares, uploads or not: cancel, transport errors, and the status
// table; a 2xx is `succeeded` here, and the caller checks what its body must hold.
Classification classify_transport_or_status(const UploadResult& result, WallTime now);

// The decision recorded in the store for one finished attempt.
struct Decision {
  Verdict verdict = Verdict::retry;
  std::string reason;
  bool counts = false;                      // toward `attempts` (the backoff's n)
  std::optional<WallTime> next_attempt_at;  // for retry and file_changed
  std::optional<WallTime> hold_until;       // for hold_rate_limit
  std::optional<OpenAIFile> file;
  std::vector<std::string> warnings;
};

// What the policy needs to know about the job.
struct JobBudget {
  int attempts_before = 0;          // counted attempts before this one
  WallTime budget_started;          // created_at, or the last `modeldrop retry`
  Duration settle{0};               // of the job's watch: how long a changed file waits
  int consecutive_rate_limits = 0;  // 429s in a row before this one, across all sessions
};

class RetryPolicy {
 public:
  explicit RetryPolicy(config::RetryConfig config, std::uint64_t seed = std::random_device{}());

  // Full jitter: random(0, min(max_backoff, initial_backoff * 2^(n-1))), n >= 1.
  Duration backoff(int n);

  Decision decide(const UploadResult& result, const JobBudget& job, WallTime now);

  // 429 without a server delay: the backoff of the consecutive 429s seen so far.
  Duration rate_limit_hold(int consecutive_429s, std::optional<Duration> server_delay);

  void reconfigure(config::RetryConfig config) { config_ = config; }
  [[nodiscard]] const config::RetryConfig& config() const { return config_; }

 private:
  config::RetryConfig config_;
  std::mt19937_64 rng_;
};

}  // namespace modeldrop::upload
