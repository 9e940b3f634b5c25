#include "common/logging.hpp"

#include <gtest/gtest.h>

namespace modeldrop {
namespace {

const auto kWhen = std::chrono::system_clock::time_point{std::chrono::milliseconds{1'790'000'000'000}};

class LoggingTest : public ::testing::Test {
 protected:
  void TearDown() override { clear_secrets(); }
};

TEST_F(LoggingTest, TextLineHasTimestampLevelAndMessage) {
  const auto line = format_log_line({LogLevel::info, LogFormat::text, false}, spdlog::level::warn, "disk low", kWhen);
  EXPECT_EQ(line, "2026-09-21T14:13:20.000Z warn disk low\n");
}

TEST_F(LoggingTest, JournaldLineHasPriorityPrefixAndNoTimestamp) {
  const LogSettings journald{LogLevel::info, LogFormat::text, true};
  EXPECT_EQ(format_log_line(journald, spdlog::level::err, "boom", kWhen), "<3>boom\n");
  EXPECT_EQ(format_log_line(journald, spdlog::level::warn, "hmm", kWhen), "<4>hmm\n");
  EXPECT_EQ(format_log_line(journald, spdlog::level::info, "ok", kWhen), "<6>ok\n");
  EXPECT_EQ(format_log_line(journald, spdlog::level::debug, "dbg", kWhen), "<7>dbg\n");
}

TEST_F(LoggingTest, JsonLineIsOneEscapedObject) {
  const auto line =
      format_log_line({LogLevel::info, LogFormat::json, false}, spdlog::level::info, "say \"hi\"\n\xFF", kWhen);
  EXPECT_EQ(line,
            "{\"ts\":\"2026-09-21T14:13:20.000Z\",\"level\":\"info\",\"msg\":\"say \\\"hi\\\"\\n\xEF\xBF\xBD\"}\n");
}

// File names may hold any byte: a text line stays one line of valid UTF-8 whatever a name holds.
TEST_F(LoggingTest, TextLineEscapesControlCharactersAndInvalidUtf8) {
  const std::string message = "queued /in/line\nbreak\r\x1b[2J\xFF.zip\tok";
  EXPECT_EQ(format_log_line({LogLevel::info, LogFormat::text, false}, spdlog::level::info, message, kWhen),
            "2026-09-21T14:13:20.000Z info queued /in/line\\nbreak\\r\\x1b[2J\xEF\xBF\xBD.zip\tok\n");
  EXPECT_EQ(format_log_line({LogLevel::info, LogFormat::text, true}, spdlog::level::info, message, kWhen),
            "<6>queued /in/line\\nbreak\\r\\x1b[2J\xEF\xBF\xBD.zip\tok\n");
}

TEST_F(LoggingTest, RegisteredSecretNeverReachesALine) {
  register_secret("sk-very-secret-token");
  for (auto format : {LogFormat::text, LogFormat::json}) {
    for (bool journald : {false, true}) {
      const auto line = format_log_line({LogLevel::info, format, journald}, spdlog::level::err,
                                        "sent Bearer sk-very-secret-token twice: sk-very-secret-token", kWhen);
      EXPECT_EQ(line.find("sk-very-secret-token"), std::string::npos) << line;
      EXPECT_NE(line.find("[REDACTED]"), std::string::npos) << line;
    }
  }
}

TEST_F(LoggingTest, ParsesLevelAndFormatNames) {
  EXPECT_EQ(parse_log_level("warn"), LogLevel::warn);
  EXPECT_EQ(parse_log_level("warning"), std::nullopt);
  EXPECT_EQ(parse_log_format("json"), LogFormat::json);
  EXPECT_EQ(parse_log_format("xml"), std::nullopt);
}

TEST_F(LoggingTest, JournalStreamMustMatchStderr) {
  ::setenv("JOURNAL_STREAM", "1:1", 1);
  EXPECT_FALSE(stderr_is_journal());
  ::unsetenv("JOURNAL_STREAM");
  EXPECT_FALSE(stderr_is_journal());
}

}  // namespace
}  // namespace modeldrop
