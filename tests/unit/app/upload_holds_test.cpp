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

// ---- Per token (watch[].token_file): a hold on one token leaves the others' uploads alone.

const TokenKey kTeamB = std::string("/etc/modeldrop/api-token-teamb");
const TokenKey kTeamC = std::string("${CREDENTIALS_DIRECTORY}/api-token-teamc");

TEST(UploadHolds, AnAuthHoldHoldsOnlyItsToken) {
  UploadHolds holds;
  holds.label_token(kTeamB, "watch /srv/teamb (token_file /etc/modeldrop/api-token-teamb)");
  holds.hold_for_auth(kT0, "HTTP 401", kTeamB);
  EXPECT_TRUE(holds.uploads_blocked(kT0, kTeamB));
  EXPECT_FALSE(holds.uploads_blocked(kT0)) << "the global token's uploads go on";
  EXPECT_FALSE(holds.uploads_blocked(kT0, kTeamC));
  EXPECT_EQ(holds.held_tokens(kT0), std::vector<TokenKey>{kTeamB});
  EXPECT_EQ(*holds.reason(kT0),
            "watch /srv/teamb (token_file /etc/modeldrop/api-token-teamb): HTTP 401 from API, check that token "
            "(held since 2026-11-25T00:00:00.000Z)");
  holds.token_changed(kTeamC);
  EXPECT_TRUE(holds.uploads_blocked(kT0, kTeamB)) << "another token's change does not release it";
  holds.token_changed(kTeamB);
  EXPECT_TRUE(holds.held_tokens(kT0).empty());
  EXPECT_FALSE(holds.reason(kT0));
}

TEST(UploadHolds, EachHeldTokenProbesOnItsOwnAndEveryReasonIsShown) {
  UploadHolds holds;
  holds.label_token(std::nullopt, "watch /srv/teama (the global token, systemd credential api-token)");
  holds.label_token(kTeamB, "watch /srv/teamb (token_file /etc/modeldrop/api-token-teamb)");
  holds.hold_for_auth(kT0, "HTTP 403");
  holds.hold_for_auth(kT0 + 1min, "HTTP 401", kTeamB);
  EXPECT_EQ(holds.next_change(kT0), kT0 + 5min);
  EXPECT_EQ(holds.probes_due(kT0 + 5min), std::vector<TokenKey>{std::nullopt});
  EXPECT_EQ(holds.probes_due(kT0 + 6min), (std::vector<TokenKey>{std::nullopt, kTeamB}));
  const auto reason = *holds.reason(kT0 + 6min);
  EXPECT_EQ(reason.find("watch /srv/teama (the global token, systemd credential api-token): HTTP 403 from API"), 0u)
      << reason;
  EXPECT_NE(reason.find("; watch /srv/teamb (token_file /etc/modeldrop/api-token-teamb): HTTP 401 from API"),
            std::string::npos)
      << reason;
  holds.probe_started(kTeamB);
  holds.probe_finished(UploadHolds::ProbeAnswer::accepted, kT0 + 6min, kTeamB);
  EXPECT_FALSE(holds.uploads_blocked(kT0 + 6min, kTeamB));
  EXPECT_TRUE(holds.uploads_blocked(kT0 + 6min));
}

TEST(UploadHolds, AnInconclusiveProbeEndsTheHold) {
  // A 2xx ends it, a 401/403 keeps it five more minutes, anything else ends it too: the API being
  // down says nothing against the token, and an upload refused again starts a new hold.
  UploadHolds holds;
  holds.hold_for_auth(kT0, "HTTP 401", kTeamB);
  holds.probe_started(kTeamB);
  holds.probe_finished(UploadHolds::ProbeAnswer::inconclusive, kT0 + 5min, kTeamB);
  EXPECT_FALSE(holds.uploads_blocked(kT0 + 5min, kTeamB));
  EXPECT_FALSE(holds.auth_held(kTeamB));
}

TEST(UploadHolds, ARateLimitHoldsOnlyItsTokenAndCountsItsOwn429s) {
  UploadHolds holds;
  holds.hold_for_rate_limit(kT0 + 30s, "HTTP 429", kTeamB);
  holds.hold_for_rate_limit(kT0 + 20s, "HTTP 429", kTeamB);
  EXPECT_EQ(holds.consecutive_rate_limits(kTeamB), 2);
  EXPECT_EQ(holds.consecutive_rate_limits(), 0) << "the global token's backoff is its own";
  EXPECT_TRUE(holds.uploads_blocked(kT0 + 29s, kTeamB));
  EXPECT_FALSE(holds.uploads_blocked(kT0 + 29s));
  EXPECT_EQ(holds.next_change(kT0), kT0 + 30s);
  EXPECT_TRUE(holds.active(kT0).rate_limit);
  EXPECT_TRUE(holds.held_tokens(kT0 + 30s).empty()) << "it ends by itself";
  holds.upload_succeeded();
  EXPECT_EQ(holds.consecutive_rate_limits(kTeamB), 2);
  holds.upload_succeeded(kTeamB);
  EXPECT_EQ(holds.consecutive_rate_limits(kTeamB), 0);
}

TEST(UploadHolds, AnUnusableTokenFileHoldsItsJobsUntilItChangesWithoutProbing) {
  UploadHolds holds;
  holds.label_token(kTeamC, "watch /srv/teamc (token_file ${CREDENTIALS_DIRECTORY}/api-token-teamc)");
  holds.hold_for_auth(kT0, "HTTP 401", kTeamC);
  holds.token_unusable(kTeamC, "token_file /run/credentials/x/api-token-teamc: cannot use it: empty");
  EXPECT_TRUE(holds.uploads_blocked(kT0, kTeamC));
  EXPECT_TRUE(holds.auth_held(kTeamC));
  EXPECT_TRUE(holds.active(kT0).auth);
  EXPECT_TRUE(holds.probes_due(kT0 + 1h).empty()) << "no token to probe with";
  EXPECT_FALSE(holds.next_change(kT0 + 1h));
  EXPECT_EQ(*holds.reason(kT0),
            "watch /srv/teamc (token_file ${CREDENTIALS_DIRECTORY}/api-token-teamc): no usable API token: "
            "token_file /run/credentials/x/api-token-teamc: cannot use it: empty");
  holds.token_changed(kTeamC);
  EXPECT_FALSE(holds.uploads_blocked(kT0, kTeamC));
}

TEST(UploadHolds, ThePauseHoldsEveryToken) {
  UploadHolds holds;
  holds.hold_for_auth(kT0, "HTTP 401", kTeamB);
  holds.set_paused(true);
  EXPECT_TRUE(holds.uploads_blocked(kT0, kTeamC));
  EXPECT_EQ(holds.reason(kT0), "paused");
}

}  // namespace
}  // namespace modeldrop::app
