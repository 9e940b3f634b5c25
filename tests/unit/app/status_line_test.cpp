#include "app/status_line.hpp"

#include <gtest/gtest.h>

namespace modeldrop::app {
namespace {

TEST(StatusLine, Uploading) {
  EXPECT_EQ(format_status_line({17, 2, 1204, 3}, 410.0 * 1024 * 1024, std::nullopt),
            "2 uploading at 410 MiB/s, 17 pending, 1,204 done, 3 failed");
}

TEST(StatusLine, Idle) {
  EXPECT_EQ(format_status_line({0, 0, 5, 0}, 0, std::nullopt), "0 pending, 5 done, 0 failed");
}

TEST(StatusLine, Held) {
  EXPECT_EQ(format_status_line({4, 0, 0, 0}, 0, std::string("HTTP 401 from API, check the token")),
            "HELD: HTTP 401 from API, check the token; 4 pending, 0 done, 0 failed");
}

TEST(StatusLine, Thousands) {
  EXPECT_EQ(with_thousands(0), "0");
  EXPECT_EQ(with_thousands(999), "999");
  EXPECT_EQ(with_thousands(1000), "1,000");
  EXPECT_EQ(with_thousands(1234567), "1,234,567");
}

}  // namespace
}  // namespace modeldrop::app
