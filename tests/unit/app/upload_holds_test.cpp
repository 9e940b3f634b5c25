#include "app/upload_holds.hpp"

#include <gtest/gtest.h>

namespace modeldrop::app {
namespace {

using namespace std::chrono_literals;

const WallTime kT0{std::chrono::sys_days{std::chrono::year{2026} / 11 / 25}.time_since_epoch()};

TEST(UploadHolds, NothingHeldByDefault) {
  UploadHolds holds;
  EXPECT_FALSE(holds.uploads_blocked(kT0));
  EXPECT_FALSE(holds.reason(kT0));
  EXPECT_FALSE(holds.next_change(kT0));
}

TEST(UploadHolds, RateLimitEndsByItselfAndNeverShortens) {
  UploadHolds holds;
  holds.hold_for_rate_limit(kT0 + 30s, "HTTP 429");
  holds.hold_for_rate_limit(kT0 + 10s, "HTTP 429");
  EXPECT_TRUE(holds.uploads_blocked(kT0 + 29s));
  EXPECT_EQ(holds.next_change(kT0), kT0 + 30s);
  EXPECT_EQ(*holds.reason(kT0), "HTTP 429 from API, rate limited until 2026-11-25T00:00:30.000Z");
  EXPECT_FALSE(holds.uploads_blocked(kT0 + 30s));
  EXPECT_FALSE(holds.reason(kT0 + 30s));
  EXPECT_EQ(holds.consecutive_rate_limits(), 2);
  holds.upload_succeeded();
  EXPECT_EQ(holds.consecutive_rate_limits(), 0);
}

TEST(UploadHolds, AuthHoldWaitsForTokenChange) {
  UploadHolds holds;
  holds.hold_for_auth(kT0, "HTTP 401");
  EXPECT_TRUE(holds.uploads_blocked(kT0 + 1h)) << "an auth hold never ends by time alone";
  EXPECT_NE(holds.reason(kT0)->find("HTTP 401 from API, check the token"), std::string::npos);
  holds.token_changed();
  EXPECT_FALSE(holds.uploads_blocked(kT0 + 1s));
}

TEST(UploadHolds, AuthProbeAfterFiveMinutes) {
  UploadHolds holds;
  holds.hold_for_auth(kT0, "HTTP 403");
  EXPECT_FALSE(holds.probe_due(kT0 + 4min));
  EXPECT_EQ(holds.next_change(kT0), kT0 + 5min);
  EXPECT_TRUE(holds.probe_due(kT0 + 5min));
  holds.probe_started();
  EXPECT_FALSE(holds.probe_due(kT0 + 6min)) << "one probe at a time";
  holds.probe_finished(false, kT0 + 6min);
  EXPECT_TRUE(holds.uploads_blocked(kT0 + 6min));
  EXPECT_FALSE(holds.probe_due(kT0 + 10min));
  EXPECT_TRUE(holds.probe_due(kT0 + 11min)) << "a refused probe waits another five minutes";
  holds.probe_started();
  holds.probe_finished(true, kT0 + 11min);
  EXPECT_FALSE(holds.uploads_blocked(kT0 + 11min));
}

TEST(UploadHolds, PauseWinsAndSaysPaused) {
  UploadHolds holds;
  holds.hold_for_auth(kT0, "HTTP 401");
  holds.set_paused(true);
  EXPECT_EQ(holds.reason(kT0), "paused");
  holds.set_paused(false);
  holds.token_changed();
  EXPECT_FALSE(holds.uploads_blocked(kT0));
}

TEST(UploadHolds, ActiveListsEveryHoldAtOnce) {
  UploadHolds holds;
  auto active = holds.active(kT0);
  EXPECT_FALSE(active.auth || active.rate_limit || active.paused);
  holds.hold_for_auth(kT0, "HTTP 401");
  holds.hold_for_rate_limit(kT0 + 30s, "HTTP 429");
  holds.set_paused(true);
  active = holds.active(kT0);
  EXPECT_TRUE(active.auth && active.rate_limit && active.paused) << "the pause hides the others in reason(), not here";
  active = holds.active(kT0 + 30s);
  EXPECT_FALSE(active.rate_limit) << "a rate limit ends by itself";
  EXPECT_TRUE(active.auth);
  holds.token_changed();
  holds.set_paused(false);
  active = holds.active(kT0 + 30s);
  EXPECT_FALSE(active.auth || active.rate_limit || active.paused);
}

}  // namespace
}  // namespace modeldrop::app
