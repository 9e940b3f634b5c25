#include "watch/log_limiter.hpp"

#include <gtest/gtest.h>

namespace modeldrop::watch {
namespace {

using namespace std::chrono_literals;

TEST(LogLimiter, OnePerIntervalWithACountOfTheRest) {
  LogLimiter limiter(60s);
  const LogLimiter::TimePoint t0{1000s};
  EXPECT_EQ(limiter.admit("missing", t0), 0u);
  EXPECT_FALSE(limiter.admit("missing", t0 + 1s));
  EXPECT_FALSE(limiter.admit("missing", t0 + 59s));
  EXPECT_EQ(limiter.admit("other", t0 + 59s), 0u);  // keys are independent
  EXPECT_EQ(limiter.admit("missing", t0 + 60s), 2u);
  EXPECT_FALSE(limiter.admit("missing", t0 + 61s));
  limiter.reset("missing");
  EXPECT_EQ(limiter.admit("missing", t0 + 62s), 0u);
}

}  // namespace
}  // namespace modeldrop::watch
