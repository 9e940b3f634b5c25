// The daemon's tokens: the global one and one per token file a watch or job names, each read
// like the global token, re-read when it changes, and told apart in held_reason.
#include "app/api_tokens.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

#include <filesystem>

namespace modeldrop::app {
namespace {

namespace fs = std::filesystem;
using test::TempDir;

config::TokenLookup global_token() {
  config::TokenLookup lookup;
  lookup.token = "sk-global";
  lookup.source = "systemd credential api-token";
  return lookup;
}

config::WatchConfig watch(const fs::path& path, std::optional<std::string> token_file = std::nullopt) {
  config::WatchConfig w;
  w.path = path;
  w.token_file = std::move(token_file);
  return w;
}

// Rewrites a token file as an editor does (new inode), so the change is seen whatever the clock.
void rewrite(const fs::path& file, const std::string& content) {
  TempDir scratch;
  const auto fresh = scratch.write("token", content, 0600);
  fs::copy_file(fresh, file.string() + ".new", fs::copy_options::overwrite_existing);
  fs::rename(file.string() + ".new", file);
}

class ApiTokensTest : public ::testing::Test {
 protected:
  void SetUp() override {
    team_b_ = dir_.write("team-b", " sk-team-b\n", 0600);
    config_.watch = {watch("/srv/teama"), watch("/srv/teamb", team_b_.string())};
  }

  TempDir dir_;
  fs::path team_b_;
  config::Config config_;
};

TEST_F(ApiTokensTest, EachWatchsFileGivesItsJobsTheirTokenAndTheGlobalOneStaysWithThePool) {
  ApiTokens tokens(global_token(), config_, {});
  EXPECT_EQ(tokens.token_for(team_b_.string()).value(), "sk-team-b") << "trimmed";
  EXPECT_EQ(tokens.token_for(std::nullopt).value(), std::nullopt) << "none: the pool's own token";
  EXPECT_TRUE(tokens.unusable().empty());
  EXPECT_EQ(tokens.label(team_b_.string()), "watch /srv/teamb (token_file " + team_b_.string() + ")");
  EXPECT_EQ(tokens.label(std::nullopt), "watch /srv/teama (the global token, systemd credential api-token)");
}

TEST_F(ApiTokensTest, WithOneTokenTheWordingStaysPlain) {
  config_.watch = {watch("/srv/teama")};
  ApiTokens tokens(global_token(), config_, {});
  EXPECT_EQ(tokens.label(std::nullopt), "");
}

TEST_F(ApiTokensTest, AFileNoWatchNamesIsReadOnFirstUse) {
  ApiTokens tokens(global_token(), config_, {});
  const auto added = dir_.write("added", "sk-added\n", 0600).string();
  EXPECT_EQ(tokens.token_for(added).value(), "sk-added");
  EXPECT_EQ(tokens.label(added), "modeldrop add jobs (token_file " + added + ")");
  const auto missing = (dir_ / "missing").string();
  const auto refused = tokens.token_for(missing);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().message, "token_file " + missing + ": cannot use it: No such file or directory");
}

TEST_F(ApiTokensTest, ABrokenFileIsListedAndItsRepairIsAChange) {
  fs::remove(team_b_);
  ApiTokens tokens(global_token(), config_, {});
  const auto broken = tokens.unusable();
  ASSERT_EQ(broken.size(), 1u);
  EXPECT_EQ(broken[0].key, team_b_.string());
  EXPECT_NE(broken[0].unusable->find("No such file or directory"), std::string::npos);
  EXPECT_TRUE(tokens.check().empty()) << "nothing changed";

  rewrite(team_b_, "sk-team-b-fixed\n");
  const auto fixed = tokens.check();
  ASSERT_EQ(fixed.size(), 1u);
  EXPECT_EQ(fixed[0].key, team_b_.string());
  EXPECT_FALSE(fixed[0].unusable);
  EXPECT_EQ(tokens.token_for(team_b_.string()).value(), "sk-team-b-fixed");
}

TEST_F(ApiTokensTest, ARewrittenFileIsANewTokenAndAnEmptiedOneIsUnusable) {
  ApiTokens tokens(global_token(), config_, {});
  rewrite(team_b_, "sk-team-b-rotated\n");
  auto changes = tokens.check();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_FALSE(changes[0].unusable);
  EXPECT_EQ(tokens.token_for(team_b_.string()).value(), "sk-team-b-rotated");

  rewrite(team_b_, "sk-team-b-rotated\n");
  EXPECT_TRUE(tokens.check().empty()) << "the same token again is no change";

  rewrite(team_b_, "  \n");
  changes = tokens.check();
  ASSERT_EQ(changes.size(), 1u);
  EXPECT_EQ(changes[0].unusable, "token_file " + team_b_.string() + ": cannot use it: empty");
  EXPECT_FALSE(tokens.token_for(team_b_.string()));
}

TEST_F(ApiTokensTest, ACredentialIsReadFromTheCredentialsDirectoryOrIsUnusableWithoutIt) {
  dir_.write("creds/api-token-teamc", "sk-team-c\n", 0600);
  config_.watch.push_back(watch("/srv/teamc", "${CREDENTIALS_DIRECTORY}/api-token-teamc"));
  ApiTokens under_systemd(global_token(), config_, {dir_ / "creds", std::nullopt});
  EXPECT_EQ(under_systemd.token_for("${CREDENTIALS_DIRECTORY}/api-token-teamc").value(), "sk-team-c");

  ApiTokens elsewhere(global_token(), config_, {});
  const auto broken = elsewhere.unusable();
  ASSERT_EQ(broken.size(), 1u);
  EXPECT_EQ(broken[0].key, "${CREDENTIALS_DIRECTORY}/api-token-teamc");
  EXPECT_NE(broken[0].unusable->find("$CREDENTIALS_DIRECTORY is not set"), std::string::npos) << *broken[0].unusable;
}

TEST_F(ApiTokensTest, AReloadReadsEveryFileAgainAndTakesTheNewGlobalToken) {
  ApiTokens tokens(global_token(), config_, {});
  const auto team_d = dir_.write("team-d", "sk-team-d\n", 0600).string();
  config_.watch.push_back(watch("/srv/teamd", team_d));
  auto global = global_token();
  global.token = "sk-global-rotated";
  const auto changes = tokens.reload(global, config_);
  ASSERT_EQ(changes.size(), 2u);
  EXPECT_EQ(changes[0].key, std::nullopt) << "the global token changed";
  EXPECT_EQ(changes[1].key, team_d) << "a new watch's file";
  EXPECT_EQ(tokens.global().token, "sk-global-rotated");
  EXPECT_EQ(tokens.token_for(team_d).value(), "sk-team-d");
  EXPECT_TRUE(tokens.reload(global, config_).empty()) << "nothing new";
}

}  // namespace
}  // namespace modeldrop::app
