// The per-watch operations keys: token_file, ready_marker and poll; the hooks.
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

TEST(OperationsKeys, TokenFileIsAPathFromTheConfigsDirectoryOrACredential) {
  const auto result = parse(
      "watch:\n"
      "  - {path: /a}\n"
      "  - {path: /b, token_file: /etc/modeldrop/api-token-teamb}\n"
      "  - {path: /c, token_file: secrets/../team-c.token}\n"
      "  - {path: /d, token_file: '${CREDENTIALS_DIRECTORY}/api-token-teamd'}\n"
      "  - {path: /e, token_file: null}\n");
  ASSERT_TRUE(result.ok()) << result.problems.front();
  const auto& watch = result.config->watch;
  EXPECT_FALSE(watch[0].token_file) << "no token_file: the global token lookup";
  EXPECT_EQ(watch[1].token_file, "/etc/modeldrop/api-token-teamb");
  EXPECT_EQ(watch[2].token_file, "/etc/modeldrop/team-c.token");
  EXPECT_EQ(watch[3].token_file, "${CREDENTIALS_DIRECTORY}/api-token-teamd") << "expanded where the daemon runs";
  EXPECT_FALSE(watch[4].token_file);
}

TEST(OperationsKeys, TokenFileProblemsNameTheKeyAndLine) {
  const auto result = parse(
      "api:\n"
      "  token_file: ${CREDENTIALS_DIRECTORY}/api-token\n"
      "watch:\n"
      "  - path: /a\n"
      "    token_file: ''\n"
      "  - path: /b\n"
      "    token_file: [a, b]\n"
      "  - path: /c\n"
      "    token_file: ${HOME}/token\n"
      "  - path: /d\n"
      "    token_file: ${CREDENTIALS_DIRECTORY}/../etc/shadow\n"
      "  - path: /e\n"
      "    token_file: ${CREDENTIALS_DIRECTORY}/\n"
      "  - path: /f\n"
      "    token_file: /run/${CREDENTIALS_DIRECTORY}/x\n");
  ASSERT_FALSE(result.ok());
  ASSERT_EQ(result.problems.size(), 7u);
  EXPECT_EQ(result.problems[0],
            "test.yaml:2: api.token_file: variables are not expanded here (the lookup already reads "
            "$CREDENTIALS_DIRECTORY/api-token), got \"${CREDENTIALS_DIRECTORY}/api-token\"");
  EXPECT_EQ(result.problems[1], "test.yaml:5: watch[0].token_file: must not be empty");
  EXPECT_EQ(result.problems[2], "test.yaml:7: watch[1].token_file: must be a string, got a list");
  EXPECT_EQ(result.problems[3],
            "test.yaml:9: watch[2].token_file: only ${CREDENTIALS_DIRECTORY} is expanded, at the start and followed "
            "by a file name (\"${CREDENTIALS_DIRECTORY}/api-token-teamb\"), got \"${HOME}/token\"");
  for (std::size_t i = 4; i < 7; ++i) {
    EXPECT_NE(result.problems[i].find(":" + std::to_string(7 + 2 * i - 4) + ": watch[" + std::to_string(i - 1) +
                                      "].token_file: only ${CREDENTIALS_DIRECTORY} is expanded"),
              std::string::npos)
        << result.problems[i];
  }
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
