#include "common/timestamp.hpp"

#include <gtest/gtest.h>

namespace modeldrop {
namespace {

using namespace std::chrono_literals;

TEST(Timestamp, FormatsUtcWithMilliseconds) {
  const WallTime t{std::chrono::sys_days{std::chrono::year{2026} / 11 / 25}.time_since_epoch() + 16h + 4min + 5s + 7ms};
  EXPECT_EQ(format_timestamp(t), "2026-11-25T16:04:05.007Z");
  EXPECT_EQ(format_timestamp(WallTime{}), "1970-01-01T00:00:00.000Z");
}

TEST(Timestamp, ParsesWhatItFormats) {
  const WallTime t{std::chrono::milliseconds{1'790'000'123'456}};
  const auto parsed = parse_timestamp(format_timestamp(t));
  ASSERT_TRUE(parsed.has_value());
  EXPECT_EQ(*parsed, t);
}

TEST(Timestamp, RejectsOtherShapes) {
  for (const char* bad : {"", "2026-11-25", "2026-11-25T16:04:05Z", "2026-13-25T16:04:05.000Z",
                          "2026-02-30T16:04:05.000Z", "2026-11-25 16:04:05.000Z", "2026-11-25T24:00:00.000Z"}) {
    EXPECT_FALSE(parse_timestamp(bad).has_value()) << bad;
  }
}

TEST(ManualClock, MovesOnlyWhenTold) {
  ManualClock clock{WallTime{1000s}};
  EXPECT_EQ(clock.now(), WallTime{1000s});
  clock.advance(1500ms);
  EXPECT_EQ(clock.now(), WallTime{1000s} + 1500ms);
}

}  // namespace
}  // namespace modeldrop
