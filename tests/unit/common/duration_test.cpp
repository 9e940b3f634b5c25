#include "common/duration.hpp"
#include "common/size.hpp"

#include <gtest/gtest.h>

namespace modeldrop {
namespace {

using namespace std::chrono_literals;

TEST(ParseDuration, AcceptsEveryUnit) {
  EXPECT_EQ(parse_duration("500ms").value(), 500ms);
  EXPECT_EQ(parse_duration("2s").value(), 2s);
  EXPECT_EQ(parse_duration("10m").value(), 10min);
  EXPECT_EQ(parse_duration("1h").value(), 1h);
  EXPECT_EQ(parse_duration("3d").value(), 72h);
  EXPECT_EQ(parse_duration("0").value(), 0ms);
  EXPECT_EQ(parse_duration("0s").value(), 0ms);
}

TEST(ParseDuration, RejectsMissingUnitsAndGarbage) {
  for (const char* bad : {"", "5", "s", "2 s", "2sec", "-1s", "1.5s", "2S", "1h30m", " 2s", "2s ", "0x10s"}) {
    EXPECT_FALSE(parse_duration(bad).has_value()) << bad;
  }
}

TEST(ParseDuration, RejectsOverflow) {
  EXPECT_FALSE(parse_duration("99999999999999999999s").has_value());
  EXPECT_FALSE(parse_duration("1000000d").has_value());
  EXPECT_NE(parse_duration("1000000d").error().message.find("too large"), std::string::npos);
}

TEST(FormatDuration, RoundTrips) {
  for (const char* text : {"500ms", "2s", "90s", "10m", "1h", "3d", "0"}) {
    EXPECT_EQ(format_duration(parse_duration(text).value()), text);
  }
  EXPECT_EQ(format_duration(1500ms), "1500ms");
}

TEST(ParseSize, BytesAndUnits) {
  EXPECT_EQ(parse_size("0").value(), 0u);
  EXPECT_EQ(parse_size("1024").value(), 1024u);
  EXPECT_EQ(parse_size("512KiB").value(), 512u * 1024);
  EXPECT_EQ(parse_size("10MiB").value(), 10u * 1024 * 1024);
  EXPECT_EQ(parse_size("2GB").value(), 2'000'000'000u);
  EXPECT_EQ(parse_size("3GiB").value(), 3ull << 30);
  EXPECT_EQ(parse_size("7B").value(), 7u);
}

TEST(ParseSize, RejectsBadInput) {
  for (const char* bad : {"", "-1", "10mb", "10 MiB", "1.5GB", "MiB", "10XB", "99999999999999999999"}) {
    EXPECT_FALSE(parse_size(bad).has_value()) << bad;
  }
  EXPECT_FALSE(parse_size("100000000TiB").has_value());
}

TEST(FormatBytes, HumanUnits) {
  EXPECT_EQ(format_bytes(17), "17 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(512ull << 20), "512 MiB");
  EXPECT_EQ(format_rate(0), "0 B/s");
}

}  // namespace
}  // namespace modeldrop
