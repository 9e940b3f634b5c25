// The registration's pure rules: when the next look comes, and what the API's description of
// a model means for its job.
#include "app/model_registrar.hpp"

#include <gtest/gtest.h>

namespace modeldrop::app {
namespace {

using namespace std::chrono_literals;

const WallTime kStart = WallTime{} + std::chrono::hours(24 * 365 * 56);

upload::CustomModel model(std::optional<std::string> status, std::optional<std::string> reason = std::nullopt) {
  return {"m", std::move(status), std::move(reason), "file-1"};
}

TEST(ModelLookDelay, FiveSecondsThenDoublingUpToFiveMinutes) {
  EXPECT_EQ(next_model_look_delay(kStart, kStart), 5s);
  EXPECT_EQ(next_model_look_delay(kStart, kStart + 5s), 5s);    // looks at 5 s, 10 s,
  EXPECT_EQ(next_model_look_delay(kStart, kStart + 10s), 10s);  // 20 s,
  EXPECT_EQ(next_model_look_delay(kStart, kStart + 20s), 20s);  // 40 s ...
  EXPECT_EQ(next_model_look_delay(kStart, kStart + 4min), 4min);
  EXPECT_EQ(next_model_look_delay(kStart, kStart + 1h), 5min);
  EXPECT_EQ(next_model_look_delay(kStart, kStart - 1h), 5s) << "a clock set back waits the shortest";
}

TEST(ModelUpdateFrom, ActiveAndErrorEndTheRegistration) {
  const WallTime now = kStart + 10s;
  const auto active = model_update_from(model("active"), kStart, now);
  EXPECT_EQ(active.status, "active");
  EXPECT_FALSE(active.next_check_at);
  EXPECT_FALSE(active.reason);
  EXPECT_TRUE(active.answered);
  const auto error = model_update_from(model("error", "rank too high"), kStart, now);
  EXPECT_EQ(error.status, "error");
  EXPECT_EQ(error.reason, "rank too high");
  EXPECT_FALSE(error.next_check_at);
  EXPECT_EQ(model_update_from(model("error"), kStart, now).reason, "the API gave no reason");
  EXPECT_FALSE(model_update_from(model("deleted"), kStart, now).next_check_at);
}

TEST(ModelUpdateFrom, ValidatingAndUnknownWordsMeanAnotherLook) {
  const WallTime now = kStart + 10s;
  const auto validating = model_update_from(model("validating"), kStart, now);
  EXPECT_EQ(validating.status, "validating");
  EXPECT_EQ(validating.next_check_at, now + 10s);
  EXPECT_FALSE(validating.reason);
  const auto silent = model_update_from(model(std::nullopt), kStart, now);
  EXPECT_EQ(silent.status, "validating") << "a model without a status is still being made";
  const auto unknown = model_update_from(model("queued"), kStart, now);
  EXPECT_EQ(unknown.status, "validating");
  EXPECT_EQ(unknown.reason, "the API says the model is queued");
  EXPECT_TRUE(unknown.next_check_at);
}

}  // namespace
}  // namespace modeldrop::app
