// The per-watch operations keys: ready_marker and poll.
#include "config/config_loader.hpp"

#include <gtest/gtest.h>

namespace modeldrop::config {
namespace {

using namespace std::chrono_literals;

LoadResult parse(const std::string& yaml) {
  return parse_config(yaml, "test.yaml", "/etc/modeldrop");
}

TEST(OperationsKeys, DefaultsAreNoMarkerAndAutomaticPolling) {
  const auto result = parse("watch:\n  - path: /srv/drop\n");
  ASSERT_TRUE(result.ok());
  EXPECT_FALSE(result.config->watch[0].ready_marker);
  EXPECT_EQ(result.config->watch[0].poll.kind, PollSetting::Kind::automatic);
}

TEST(OperationsKeys, ReadsMarkerAndEveryPollForm) {
  const auto result = parse(
      "watch:\n"
      "  - {path: /a, ready_marker: .ready, poll: auto}\n"
      "  - {path: /b, poll: 'off'}\n"
      "  - {path: /c, poll: 30s}\n");
  ASSERT_TRUE(result.ok()) << result.problems.front();
  const auto& watch = result.config->watch;
  EXPECT_EQ(watch[0].ready_marker, ".ready");
  EXPECT_EQ(watch[0].poll.kind, PollSetting::Kind::automatic);
  EXPECT_EQ(watch[1].poll.kind, PollSetting::Kind::off);
  EXPECT_EQ(watch[2].poll, (PollSetting{PollSetting::Kind::every, 30s}));
}

TEST(OperationsKeys, BadValuesNameTheKey) {
  const auto result = parse(
      "watch:\n"
      "  - {path: /a, ready_marker: 'x/y', poll: sometimes}\n"
      "  - {path: /b, poll: 10ms}\n");
  ASSERT_FALSE(result.ok());
  ASSERT_EQ(result.problems.size(), 3u);
  EXPECT_NE(result.problems[0].find("watch[0].ready_marker: must be a file name suffix"), std::string::npos);
  EXPECT_NE(result.problems[1].find("watch[0].poll: must be auto, off or a duration"), std::string::npos);
  EXPECT_NE(result.problems[2].find("watch[1].poll: must be at least 100ms"), std::string::npos);
}

TEST(OperationsKeys, HooksAreArgvListsWithATimeout) {
  const auto defaults = parse("");
  ASSERT_TRUE(defaults.ok());
  EXPECT_FALSE(defaults.config->hooks.any());
  EXPECT_EQ(defaults.config->hooks.timeout, 60s);
  const auto result = parse("hooks:\n  on_success: [/usr/local/bin/notify, --ok]\n  timeout: 5s\n");
  ASSERT_TRUE(result.ok()) << result.problems.front();
  EXPECT_EQ(result.config->hooks.on_success, (std::vector<std::string>{"/usr/local/bin/notify", "--ok"}));
  EXPECT_FALSE(result.config->hooks.on_failure);
  EXPECT_EQ(result.config->hooks.timeout, 5s);
  const auto bad = parse("hooks:\n  on_failure: 'notify --failed'\n  timeout: 0\n  shell: true\n");
  ASSERT_EQ(bad.problems.size(), 3u);
  EXPECT_NE(bad.problems[0].find("hooks.shell"), std::string::npos) << bad.problems[0];
  EXPECT_NE(bad.problems[1].find("hooks.on_failure: must be a list"), std::string::npos) << bad.problems[1];
  EXPECT_NE(bad.problems[2].find("hooks.timeout"), std::string::npos) << bad.problems[2];
}

}  // namespace
}  // namespace modeldrop::config
