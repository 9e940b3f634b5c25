#include "common/logging.hpp"

#include "common/text.hpp"
#include "common/timestamp.hpp"

#include <fmt/format.h>
#include <spdlog/sinks/base_sink.h>
#include <boost/json/serialize.hpp>
#include <boost/json/string.hpp>

#include <sys/stat.h>
#include <unistd.h>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <vector>

namespace modeldrop {
namespace {

std::mutex g_secrets_mutex;
std::vector<std::string> g_secrets;  // guarded by g_secrets_mutex

std::string redact(std::string text) {
  std::lock_guard lock(g_secrets_mutex);
  for (const auto& secret : g_secrets) {
    for (auto pos = text.find(secret); pos != std::string::npos; pos = text.find(secret, pos)) {
      text.replace(pos, secret.size(), "[REDACTED]");
    }
  }
  return text;
}

int syslog_priority(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
    case spdlog::level::debug:
      return 7;
    case spdlog::level::info:
      return 6;
    case spdlog::level::warn:
      return 4;
    case spdlog::level::err:
      return 3;
    case spdlog::level::critical:
      return 2;
    default:
      return 6;
  }
}

std::string_view level_name(spdlog::level::level_enum level) {
  switch (level) {
    case spdlog::level::trace:
      return "trace";
    case spdlog::level::debug:
      return "debug";
    case spdlog::level::info:
      return "info";
    case spdlog::level::warn:
      return "warn";
    case spdlog::level::err:
      return "error";
    case spdlog::level::critical:
      return "critical";
    default:
      return "info";
  }
}

spdlog::level::level_enum to_spdlog(LogLevel level) {
  switch (level) {
    case LogLevel::trace:
      return spdlog::level::trace;
    case LogLevel::debug:
      return spdlog::level::debug;
    case LogLevel::info:
      return spdlog::level::info;
    case LogLevel::warn:
      return spdlog::level::warn;
    case LogLevel::error:
      return spdlog::level::err;
  }
  return spdlog::level::info;
}

// Formats and redacts every line itself, so no other formatter can bypass the redaction.
class StderrSink final : public spdlog::sinks::base_sink<std::mutex> {
 public:
  explicit StderrSink(LogSettings settings) : settings_(settings) {}

 protected:
  void sink_it_(const spdlog::details::log_msg& msg) override {
    const std::string line =
        format_log_line(settings_, msg.level, std::string_view(msg.payload.data(), msg.payload.size()), msg.time);
    std::fwrite(line.data(), 1, line.size(), stderr);
  }
  void flush_() override { std::fflush(stderr); }

 private:
  LogSettings settings_;
};

}  // namespace

std::optional<LogLevel> parse_log_level(std::string_view name) {
  if (name == "trace") return LogLevel::trace;
  if (name == "debug") return LogLevel::debug;
  if (name == "info") return LogLevel::info;
  if (name == "warn") return LogLevel::warn;
  if (name == "error") return LogLevel::error;
  return std::nullopt;
}

std::optional<LogFormat> parse_log_format(std::string_view name) {
  if (name == "text") return LogFormat::text;
  if (name == "json") return LogFormat::json;
  return std::nullopt;
}

bool stderr_is_journal() {
  const char* stream = std::getenv("JOURNAL_STREAM");
  if (stream == nullptr) return false;
  unsigned long long device = 0, inode = 0;
  if (std::sscanf(stream, "%llu:%llu", &device, &inode) != 2) return false;
  struct stat st {};
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return st.st_dev == device && st.st_ino == inode;
}

std::string format_log_line(const LogSettings& settings, spdlog::level::level_enum level, std::string_view message,
                            std::chrono::system_clock::time_point when) {
  const std::string text = redact(std::string(message));
  // fmt, not `"<" + std::to_string(...)`: gcc 12 at -O3 reports a false -Wrestrict inside
  // std::string's operator+(const char*, string&&).
  std::string line;
  if (settings.format == LogFormat::json) {
    // One JSON object per line; journald still gets the priority prefix to sort by.
    if (settings.journald) line += fmt::format("<{}>", syslog_priority(level));
    line += fmt::format(R"({{"ts":"{}","level":"{}","msg":{}}})", format_timestamp(when), level_name(level),
                        boost::json::serialize(boost::json::string(sanitize_utf8(text))));
  } else if (settings.journald) {
    line += fmt::format("<{}>{}", syslog_priority(level), one_printable_line(text, Tabs::keep));
  } else {
    line += fmt::format("{} {} {}", format_timestamp(when), level_name(level), one_printable_line(text, Tabs::keep));
  }
  line += '\n';
  return line;
}

void setup_logging(const LogSettings& settings) {
  auto logger = std::make_shared<spdlog::logger>("modeldrop", std::make_shared<StderrSink>(settings));
  logger->set_level(to_spdlog(settings.level));
  logger->flush_on(spdlog::level::trace);
  spdlog::set_default_logger(std::move(logger));
}

void register_secret(std::string secret) {
  if (secret.empty()) return;
  std::lock_guard lock(g_secrets_mutex);
  for (const auto& known : g_secrets) {
    if (known == secret) return;
  }
  g_secrets.push_back(std::move(secret));
}

void clear_secrets() {
  std::lock_guard lock(g_secrets_mutex);
  g_secrets.clear();
}

}  // namespace modeldrop
