#include "upload/retry_policy.hpp"

#include "common/text.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <ctime>

namespace modeldrop::upload {
namespace {

using namespace std::chrono_literals;

constexpr Duration kMaxServerDelay = 1h;

bool is_one_of(int status, std::initializer_list<int> statuses) {
  return std::find(statuses.begin(), statuses.end(), status) != statuses.end();
}

std::string status_reason(int status, const UploadResult& result) {
  std::string reason = "HTTP " + std::to_string(status);
  const std::string detail = error_detail(result.body);
  if (!detail.empty()) reason += ": " + detail;
  return reason;
}

// HTTP dates (RFC 9110 §5.6.7): IMF-fixdate, and the obsolete RFC 850 and asctime forms.
// Seconds since the epoch, not a WallTime: any year parses, and most do not fit the clock.
std::optional<std::time_t> parse_http_date(std::string_view text) {
  const std::string value(text);
  for (const char* format : {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"}) {
    std::tm tm{};
    const char* end = ::strptime(value.c_str(), format, &tm);
    if (end == nullptr || *end != '\0') continue;
    const std::time_t seconds = ::timegm(&tm);
    if (seconds == -1) continue;
    return seconds;
  }
  return std::nullopt;
}

}  // namespace

std::string_view to_string(Verdict verdict) {
  switch (verdict) {
    case Verdict::succeeded:
      return "succeeded";
    case Verdict::retry:
      return "retry";
    case Verdict::failed:
      return "failed";
    case Verdict::hold_auth:
      return "hold_auth";
    case Verdict::hold_rate_limit:
      return "hold_rate_limit";
    case Verdict::file_changed:
      return "file_changed";
    case Verdict::source_removed:
      return "source_removed";
    case Verdict::cancelled:
      return "cancelled";
  }
  return "retry";
}

std::optional<Duration> parse_retry_after_ms(std::string_view value) {
  value = trim(value);
  double ms = 0;
  auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), ms);
  if (ec != std::errc{} || ptr != value.data() + value.size() || !std::isfinite(ms) || ms < 0) return std::nullopt;
  if (ms > static_cast<double>(std::chrono::duration_cast<Duration>(kMaxServerDelay).count())) return kMaxServerDelay;
  return Duration{static_cast<Duration::rep>(std::ceil(ms))};
}

std::optional<Duration> parse_retry_after(std::string_view value, WallTime now) {
  value = trim(value);
  if (value.empty()) return std::nullopt;
  if (value.front() >= '0' && value.front() <= '9') {
    std::uint64_t seconds = 0;
    auto [ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), seconds);
    if (ptr != value.data() + value.size()) return std::nullopt;
    if (ec == std::errc::result_out_of_range || seconds > 3600) return kMaxServerDelay;
    if (ec != std::errc{}) return std::nullopt;
    return std::chrono::duration_cast<Duration>(std::chrono::seconds(seconds));
  }
  const auto when = parse_http_date(value);
  if (!when) return std::nullopt;
  const auto cap = std::chrono::duration_cast<Duration>(kMaxServerDelay);
  // Compared in whole seconds first: from_time_t of a date centuries away (year 5, year 9999)
  // overflows the clock's nanosecond count.
  const std::time_t now_seconds = WallClock::to_time_t(now);
  if (*when < now_seconds) return Duration{0};
  if (*when - now_seconds > std::chrono::duration_cast<std::chrono::seconds>(cap).count() + 1) return cap;
  const auto delay = std::chrono::duration_cast<Duration>(WallClock::from_time_t(*when) - now);
  return std::clamp(delay, Duration{0}, cap);
}

std::optional<Duration> server_retry_delay(const UploadResult& result, WallTime now) {
  if (const auto* ms = result.header("retry-after-ms")) {
    if (auto delay = parse_retry_after_ms(*ms)) return delay;
  }
  if (const auto* value = result.header("retry-after")) return parse_retry_after(*value, now);
  return std::nullopt;
}

Classification classify_transport_or_status(const UploadResult& result, WallTime now) {
  Classification c;
  c.server_delay = server_retry_delay(result, now);
  const auto set = [&](Verdict verdict, std::string reason) {
    c.verdict = verdict;
    c.reason = std::move(reason);
    return c;
  };
  if (result.error == AttemptError::cancelled) return set(Verdict::cancelled, "cancelled");
  if (result.error == AttemptError::invalid_request) return set(Verdict::failed, result.error_message);
  if (!result.http_status) {
    // Connect, TLS, read errors and timeouts: the server never answered.
    return set(Verdict::retry,
               result.error_message.empty() ? std::string(to_string(result.error)) : result.error_message);
  }
  const int status = *result.http_status;
  if (status >= 200 && status < 300) {
    if (result.error != AttemptError::none) {
      return set(Verdict::retry, "HTTP " + std::to_string(status) + " but " + result.error_message);
    }
    return set(Verdict::succeeded, "");
  }
  if (is_one_of(status, {400, 404, 405, 413, 415, 422})) return set(Verdict::failed, status_reason(status, result));
  if (status == 401 || status == 403) return set(Verdict::hold_auth, status_reason(status, result));
  if (status == 429) return set(Verdict::hold_rate_limit, status_reason(status, result));
  if (is_one_of(status, {408, 409, 425}) || (status >= 500 && status < 600)) {
    return set(Verdict::retry, status_reason(status, result));
  }
  if (status >= 300 && status < 400) {
    const auto* location = result.header("location");
    return set(Verdict::failed, "HTTP " + std::to_string(status) + " redirect to " +
                                    (location != nullptr ? sanitize_utf8(*location) : std::string("(no Location)")) +
                                    " (redirects are not followed; check api.base_url)");
  }
  return set(Verdict::failed, status_reason(status, result));
}

Classification classify(const UploadResult& result, WallTime now) {
  switch (result.error) {
    case AttemptError::file_changed:
    case AttemptError::file_replaced:
      return {Verdict::file_changed,
              "file changed while queued or sent: " + result.error_message,
              std::nullopt,
              server_retry_delay(result, now),
              {}};
    case AttemptError::file_missing:
      return {Verdict::source_removed, "source removed", std::nullopt, server_retry_delay(result, now), {}};
    case AttemptError::file_not_regular:
    case AttemptError::file_unreadable:
      return {Verdict::failed, result.error_message, std::nullopt, server_retry_delay(result, now), {}};
    default:
      break;
  }
  const bool is_2xx = result.http_status && *result.http_status >= 200 && *result.http_status < 300;
  if (!is_2xx || result.error == AttemptError::cancelled) return classify_transport_or_status(result, now);

  // An upload's 2xx counts only for a body sent whole and an OpenAIFile in the answer.
  Classification c;
  c.server_delay = server_retry_delay(result, now);
  const int status = *result.http_status;
  if (!result.accepted_2xx()) {
    c.reason = "HTTP " + std::to_string(status) + " but the request body was not sent whole: " + result.error_message;
    return c;
  }
  auto file = parse_openai_file(result.body);
  if (!file) {
    c.reason = "HTTP " + std::to_string(status) + ": malformed response (no OpenAIFile)";
    return c;
  }
  if (file->bytes && *file->bytes >= 0 && static_cast<std::uint64_t>(*file->bytes) != result.bytes_sent) {
    c.warnings.push_back("the API recorded " + std::to_string(*file->bytes) + " bytes for " + file->id + ", " +
                         std::to_string(result.bytes_sent) + " were sent");
  }
  c.verdict = Verdict::succeeded;
  c.file = std::move(file);
  return c;
}

RetryPolicy::RetryPolicy(config::RetryConfig config, std::uint64_t seed) : config_(config), rng_(seed) {}

Duration RetryPolicy::backoff(int n) {
  const auto initial = config_.initial_backoff.count();
  const auto max = config_.max_backoff.count();
  Duration::rep ceiling = initial;
  for (int i = 1; i < n && ceiling < max; ++i) ceiling = ceiling > max / 2 ? max : ceiling * 2;
  ceiling = std::min(ceiling, max);
  std::uniform_int_distribution<Duration::rep> pick(0, std::max<Duration::rep>(ceiling, 0));
  return Duration{pick(rng_)};
}

Duration RetryPolicy::rate_limit_hold(int consecutive_429s, std::optional<Duration> server_delay) {
  if (server_delay) return *server_delay;
  return backoff(std::max(consecutive_429s, 1));
}

Decision RetryPolicy::decide(const UploadResult& result, const JobBudget& job, WallTime now) {
  Classification c = classify(result, now);
  Decision d;
  d.verdict = c.verdict;
  d.reason = std::move(c.reason);
  d.file = std::move(c.file);
  d.warnings = std::move(c.warnings);
  switch (d.verdict) {
    case Verdict::retry: {
      d.counts = true;
      const int n = job.attempts_before + 1;
      Duration delay = backoff(n);
      if (c.server_delay) delay = std::max(delay, *c.server_delay);
      d.next_attempt_at = now + delay;
      if (config_.max_attempts > 0 && n >= config_.max_attempts) {
        d.verdict = Verdict::failed;
        d.reason = "gave up after " + std::to_string(n) + " attempts (retry.max_attempts): " + d.reason;
        d.next_attempt_at.reset();
      } else if (config_.give_up_after.count() > 0 &&
                 *d.next_attempt_at >= job.budget_started + config_.give_up_after) {
        d.verdict = Verdict::failed;
        d.reason = "gave up after " + format_duration(config_.give_up_after) + " (retry.give_up_after): " + d.reason;
        d.next_attempt_at.reset();
      }
      break;
    }
    case Verdict::hold_rate_limit:
      d.hold_until = now + rate_limit_hold(job.consecutive_rate_limits + 1, c.server_delay);
      break;
    case Verdict::file_changed:
      d.next_attempt_at = now + job.settle;
      break;
    case Verdict::failed:
      // A refused archive counts as an attempt; an unreadable file never reached the API.
      d.counts = result.http_status.has_value();
      break;
    case Verdict::succeeded:
      d.counts = true;
      break;
    case Verdict::hold_auth:
    case Verdict::source_removed:
    case Verdict::cancelled:
      break;
  }
  return d;
}

}  // namespace modeldrop::upload
