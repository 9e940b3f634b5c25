#pragma once

#include <spdlog/spdlog.h>

#include <optional>
#include <string>
#include <string_view>

namespace modeldrop {

enum class LogLevel { trace, debug, info, warn, error };
enum class LogFormat { text, json };

std::optional<LogLevel> parse_log_level(std::string_view name);
std::optional<LogFormat> parse_log_format(std::string_view name);

struct LogSettings {
  LogLevel level = LogLevel::info;
  LogFormat format = LogFormat::text;
  // Under journald: "<N>" syslog priority prefixes and no timestamps (journald adds its own).
  bool journald = false;
};

// True when stderr is the stream systemd named in $JOURNAL_STREAM (device:inode).
bool stderr_is_journal();

// Sets up the process-wide logger writing to stderr. Safe to call again (SIGHUP reload).
void setup_logging(const LogSettings& settings);

// Any later log line containing `secret` shows "[REDACTED]" in its place. The API token
// is registered here as soon as it is read, so it cannot reach a log line.
void register_secret(std::string secret);
void clear_secrets();

// The formatted line for one message, as the stderr sink writes it (tests use it).
std::string format_log_line(const LogSettings& settings, spdlog::level::level_enum level, std::string_view message,
                            std::chrono::system_clock::time_point when);

}  // namespace modeldrop
