#include "config/token.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

namespace modeldrop::config {
namespace {

using test::TempDir;

TEST(FindToken, TokenFileWinsAndIsTrimmed) {
  TempDir dir;
  ApiConfig api;
  api.token_file = dir.write("token", "  sk-file \n", 0600);
  const auto lookup = find_token(api, {dir.path(), "sk-env"});
  ASSERT_TRUE(lookup.token);
  EXPECT_EQ(*lookup.token, "sk-file");
  EXPECT_TRUE(lookup.warnings.empty());
  EXPECT_EQ(lookup.file, api.token_file);
}

TEST(FindToken, CredentialBeforeEnvironment) {
  TempDir dir;
  dir.write("api-token", "sk-cred\n", 0600);
  const auto lookup = find_token(ApiConfig{}, {dir.path(), "sk-env"});
  EXPECT_EQ(lookup.token, "sk-cred");
  EXPECT_EQ(lookup.source, "systemd credential api-token");
}

TEST(FindToken, EnvironmentLast) {
  TempDir dir;  // no api-token inside
  const auto lookup = find_token(ApiConfig{}, {dir.path(), " sk-env\t"});
  EXPECT_EQ(lookup.token, "sk-env");
  EXPECT_EQ(lookup.source, "NEBIUS_API_KEY");
}

TEST(FindToken, NothingFoundIsNotAnError) {
  const auto lookup = find_token(ApiConfig{}, {std::nullopt, std::nullopt});
  EXPECT_FALSE(lookup.token);
  EXPECT_FALSE(lookup.error);
  EXPECT_FALSE(find_token(ApiConfig{}, {std::nullopt, "   "}).token) << "a blank variable is no token";
}

TEST(FindToken, MissingExplicitTokenFileIsAnErrorWithoutFallThrough) {
  ApiConfig api;
  api.token_file = "/nonexistent/token";
  const auto lookup = find_token(api, {std::nullopt, "sk-env"});
  EXPECT_FALSE(lookup.token);
  ASSERT_TRUE(lookup.error);
  EXPECT_NE(lookup.error->find("/nonexistent/token"), std::string::npos);
}

TEST(FindToken, EmptyTokenFileIsAnError) {
  TempDir dir;
  ApiConfig api;
  api.token_file = dir.write("token", " \n", 0600);
  EXPECT_TRUE(find_token(api, {}).error);
}

TEST(FindToken, WarnsAboutReadableByOthersWithoutLeakingIt) {
  TempDir dir;
  ApiConfig api;
  api.token_file = dir.write("token", "sk-leaky", 0644);
  const auto lookup = find_token(api, {});
  EXPECT_EQ(lookup.token, "sk-leaky");
  ASSERT_EQ(lookup.warnings.size(), 1u);
  EXPECT_NE(lookup.warnings[0].find("readable by group or others"), std::string::npos);
  EXPECT_EQ(lookup.warnings[0].find("sk-leaky"), std::string::npos);
}

TEST(ReadTokenFile, TrimsAndWarnsWhenOthersMayReadIt) {
  TempDir dir;
  const auto read = read_token_file(dir.write("team-b", "\n sk-team-b\t\n", 0640));
  EXPECT_EQ(read.token, "sk-team-b");
  EXPECT_TRUE(read.error.empty());
  ASSERT_EQ(read.warnings.size(), 1u);
  EXPECT_NE(read.warnings[0].find("readable by group or others"), std::string::npos);
  EXPECT_EQ(read.warnings[0].find("sk-team-b"), std::string::npos);
  EXPECT_TRUE(read_token_file(dir.write("private", "sk\n", 0600)).warnings.empty());
}

TEST(ReadTokenFile, SaysWhyAFileCannotBeUsed) {
  TempDir dir;
  EXPECT_EQ(read_token_file(dir / "missing").error, "No such file or directory");
  EXPECT_EQ(read_token_file(dir.write("blank", " \n", 0600)).error, "empty");
  EXPECT_EQ(read_token_file(dir.path()).error, "not a regular file");
  EXPECT_FALSE(read_token_file(dir / "missing").token);
}

TEST(ResolveTokenFile, APathIsItselfAndACredentialNeedsItsDirectory) {
  EXPECT_EQ(resolve_token_file("/etc/modeldrop/api-token-teamb", {}).value(), "/etc/modeldrop/api-token-teamb");
  TokenEnvironment systemd{std::filesystem::path("/run/credentials/modeldrop.service"), std::nullopt};
  EXPECT_EQ(resolve_token_file("${CREDENTIALS_DIRECTORY}/api-token-teamb", systemd).value(),
            "/run/credentials/modeldrop.service/api-token-teamb");
  const auto unset = resolve_token_file("${CREDENTIALS_DIRECTORY}/api-token-teamb", {});
  ASSERT_FALSE(unset);
  EXPECT_EQ(unset.error().message,
            "${CREDENTIALS_DIRECTORY}/api-token-teamb: $CREDENTIALS_DIRECTORY is not set (systemd sets it for a unit "
            "with LoadCredential=)");
}

}  // namespace
}  // namespace modeldrop::config
