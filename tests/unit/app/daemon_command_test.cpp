// modeldropd's command line, run as the real binary: --check-config, --version, --help and
// the exit codes of docs/cli.md.
#include "common/version.hpp"
#include "support/run_process.hpp"
#include "support/temp_dir.hpp"

#include <gtest/gtest.h>

namespace modeldrop {
namespace {

using test::ProcessOptions;
using test::run_process;
using test::TempDir;

// No token from the developer's or CI's environment may change what these tests see.
ProcessOptions clean_env() {
  ProcessOptions options;
  options.env_unset = {"NEBIUS_API_KEY", "CREDENTIALS_DIRECTORY", "MODELDROP_CONFIG", "JOURNAL_STREAM"};
  return options;
}

test::ProcessResult check_config(const std::filesystem::path& file, ProcessOptions options = clean_env()) {
  return run_process({MODELDROPD_PATH, "--config", file.string(), "--check-config"}, options);
}

struct BadConfig {
  const char* name;
  const char* yaml;
  int line;
  const char* key;
  const char* message;
};

// Each bad config must exit 78 with "<file>:<line>: <key.path>: <message...>" on stderr.
const BadConfig kBadConfigs[] = {
    {"NegativeSessions", "upload:\n  sessions: -3\n", 2, "upload.sessions", "must be between 1 and 256, got -3"},
    {"TooManySessions", "upload:\n  sessions: 300\n", 2, "upload.sessions", "must be between 1 and 256, got 300"},
    {"WordForSessions", "upload:\n  sessions: four\n", 2, "upload.sessions", "must be an integer"},
    {"QuotedSessions", "upload:\n  sessions: '4'\n", 2, "upload.sessions", "must be an integer"},
    {"MisspeltNestedKey", "upload:\n  sesions: 4\n", 2, "upload.sesions", "unknown key (did you mean \"sessions\"?)"},
    {"MisspeltTopKey", "# comment\napii:\n  base_url: x\n", 2, "apii", "unknown key (did you mean \"api\"?)"},
    {"UnknownKeyNoSuggestion", "api:\n  frobnicate: 1\n", 2, "api.frobnicate", "unknown key"},
    {"HttpForRemoteHost", "api:\n  base_url: http://example.com\n", 2, "api.base_url", "must use https"},
    {"BaseUrlNotAUrl", "api:\n  base_url: not a url\n", 2, "api.base_url", "must be an absolute URL"},
    {"BaseUrlWithQuery", "api:\n  base_url: https://x.com/?q=1\n", 2, "api.base_url", "must not contain a query"},
    {"DurationWithoutUnit", "api:\n  connect_timeout: 10\n", 2, "api.connect_timeout", "not a duration"},
    {"ZeroIdleTimeout", "api:\n  idle_timeout: 0\n", 2, "api.idle_timeout", "must be at least 1ms, got 0"},
    {"SocksProxy", "api:\n  proxy: socks5://p:1080\n", 2, "api.proxy", "must be http://host:port"},
    {"EmptyProjectId", "api:\n  project_id: ''\n", 2, "api.project_id", "must not be empty"},
    {"ListAsTokenFile", "api:\n  token_file: [a]\n", 2, "api.token_file", "must be a string, got a list"},
    {"NegativeBandwidth", "upload:\n  max_bytes_per_second: -5\n", 2, "upload.max_bytes_per_second",
     "must not be negative"},
    {"LowercaseSizeUnit", "upload:\n  max_bytes_per_second: 10mb\n", 2, "upload.max_bytes_per_second", "not a size"},
    {"YesIsNotABool", "upload:\n  dedupe: yes\n", 2, "upload.dedupe", "must be true or false"},
    {"BackoffWithoutUnit", "retry:\n  initial_backoff: 2\n", 2, "retry.initial_backoff", "not a duration"},
    {"MaxBelowInitialBackoff", "retry:\n  initial_backoff: 10m\n  max_backoff: 1m\n", 3, "retry.max_backoff",
     "must not be shorter than retry.initial_backoff"},
    {"NegativeMaxAttempts", "retry:\n  max_attempts: -1\n", 2, "retry.max_attempts",
     "must be between 0 and 1000000, got -1"},
    {"WordForGiveUp", "retry:\n  give_up_after: forever\n", 2, "retry.give_up_after", "not a duration"},
    {"EmptyDatabase", "database: ''\n", 1, "database", "must not be empty"},
    {"NullDatabase", "upload: {}\ndatabase: null\n", 2, "database", "must be a string, got null"},
    {"EmptyWatchList", "watch: []\n", 1, "watch", "must be a list of one or more watch entries"},
    {"WatchWithoutPath", "watch:\n  - project_id: p\n", 2, "watch[0].path", "required"},
    {"DuplicateWatchPath", "watch:\n  - path: /a\n  - path: /a/\n", 3, "watch[1].path", "duplicate watch path /a"},
    {"MisspeltSuccessAction", "watch:\n  - path: /a\n    on_success: mvoe\n", 3, "watch[0].on_success",
     "must be one of move, keep, delete, got \"mvoe\""},
    {"DeleteOnFailure", "watch:\n  - path: /a\n    on_failure: delete\n", 3, "watch[0].on_failure",
     "must be one of move, keep"},
    {"NoPatterns", "watch:\n  - path: /a\n    patterns: []\n", 3, "watch[0].patterns",
     "must be a list of one or more name patterns, got an empty list"},
    {"PatternWithSlash", "watch:\n  - path: /a\n    patterns: ['a/*.zip']\n", 3, "watch[0].patterns[0]",
     "must not contain '/'"},
    {"NegativeSettle", "watch:\n  - path: /a\n    settle: -1s\n", 3, "watch[0].settle", "not a duration"},
    {"NumberAsRecursive", "watch:\n  - path: /a\n    recursive: 1\n", 3, "watch[0].recursive", "must be true or false"},
    {"DoneDirIsWatchDir", "watch:\n  - path: /a\n    done_dir: /a\n", 3, "watch[0].done_dir",
     "must not be the watch directory itself"},
    {"UnknownWatchKey", "watch:\n  - path: /a\n    colour: red\n", 3, "watch[0].colour", "unknown key"},
    {"SecondWatchBad", "watch:\n  - path: /a\n  - path: /b\n    settle: soon\n", 4, "watch[1].settle",
     "not a duration"},
    {"BadLogLevel", "log:\n  level: verbose\n", 2, "log.level", "must be one of trace, debug, info, warn, error"},
    {"BadLogFormat", "log:\n  format: xml\n", 2, "log.format", "must be one of text, json, got \"xml\""},
    {"ScalarSection", "upload: 5\n", 1, "upload", "must be a mapping, got \"5\""},
    {"DuplicateKey", "api:\n  base_url: https://a.com\n  base_url: https://b.com\n", 3, "api.base_url",
     "duplicate key"},
    {"MetricsListenWithoutHost", "metrics:\n  listen: 9464\n", 2, "metrics.listen", "must be host:port"},
    {"BadValidate", "watch:\n  - path: /a\n    validate: zip\n", 3, "watch[0].validate",
     "must be one of archive, adapter, none, got \"zip\""},
    {"TopLevelList", "- a\n- b\n", 1, "(top level)", "must be a mapping"},
    {"WatchTokenFileOtherVariable", "watch:\n  - path: /a\n    token_file: ${HOME}/token\n", 3, "watch[0].token_file",
     "only ${CREDENTIALS_DIRECTORY} is expanded"},
    {"WatchTokenFileLeavesCredentials", "watch:\n  - path: /a\n    token_file: ${CREDENTIALS_DIRECTORY}/../key\n", 3,
     "watch[0].token_file", "only ${CREDENTIALS_DIRECTORY} is expanded"},
    {"WatchTokenFileEmpty", "watch:\n  - path: /a\n  - path: /b\n    token_file: ''\n", 4, "watch[1].token_file",
     "must not be empty"},
};

void PrintTo(const BadConfig& c, std::ostream* os) {
  *os << c.name;
}

class BadConfigTest : public ::testing::TestWithParam<BadConfig> {};

TEST_P(BadConfigTest, ExitsConfigErrorNamingLineAndKey) {
  const BadConfig& c = GetParam();
  TempDir dir;
  const auto file = dir.write("modeldrop.yaml", c.yaml);
  const auto result = check_config(file);
  EXPECT_EQ(result.exit_code, 78) << result.err;
  const std::string expected = file.string() + ":" + std::to_string(c.line) + ": " + c.key + ": " + c.message;
  EXPECT_NE(result.err.find(expected), std::string::npos) << "expected: " << expected << "\ngot: " << result.err;
  EXPECT_EQ(result.out.find("config OK"), std::string::npos);
}

INSTANTIATE_TEST_SUITE_P(CheckConfig, BadConfigTest, ::testing::ValuesIn(kBadConfigs),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

TEST(CheckConfig, YamlSyntaxErrorNamesTheLine) {
  TempDir dir;
  const auto file = dir.write("modeldrop.yaml", "upload:\n  sessions: 4\n  dedupe: [true\n");
  const auto result = check_config(file);
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_NE(result.err.find(file.string() + ":"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find("YAML syntax error"), std::string::npos) << result.err;
}

TEST(CheckConfig, ReportsAllProblemsNotOnlyTheFirst) {
  TempDir dir;
  const auto file = dir.write("m.yaml", "upload:\n  sessions: 0\nretry:\n  max_attempts: x\nlog:\n  level: y\n");
  const auto result = check_config(file);
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_NE(result.err.find(":2: upload.sessions:"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find(":4: retry.max_attempts:"), std::string::npos) << result.err;
  EXPECT_NE(result.err.find(":6: log.level:"), std::string::npos) << result.err;
}

TEST(CheckConfig, ShippedConfigIsOkAndWarnsAboutMissingToken) {
  const auto result = check_config(std::filesystem::path(MODELDROP_SOURCE_DIR) / "config/modeldrop.yaml");
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "config OK\n");
  EXPECT_NE(result.err.find("warning: no API token found"), std::string::npos) << result.err;
}

TEST(CheckConfig, TokenFromEnvironmentSilencesTheWarningAndNeverPrintsIt) {
  auto options = clean_env();
  options.env_set["NEBIUS_API_KEY"] = "sk-secret-value";
  const auto config = std::filesystem::path(MODELDROP_SOURCE_DIR) / "config/modeldrop.yaml";
  const auto result = check_config(config, options);
  EXPECT_EQ(result.exit_code, 0);
  // The packaged drop directory exists where the package is installed; elsewhere it is a warning.
  const std::string spool_warning =
      std::filesystem::is_directory("/var/spool/modeldrop/incoming")
          ? ""
          : "warning: " + config.string() +
                ": watch[0].path: /var/spool/modeldrop/incoming does not exist yet; modeldropd waits for it and "
                "watches it once it appears\n";
  EXPECT_EQ(result.err, spool_warning);
  EXPECT_EQ(result.out.find("sk-secret-value"), std::string::npos);
}

TEST(CheckConfig, MissingExplicitTokenFileIsAnError) {
  TempDir dir;
  const auto file = dir.write("m.yaml", "api:\n  token_file: missing-token\n");
  const auto result = check_config(file);
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_NE(result.err.find("api.token_file " + (dir / "missing-token").string()), std::string::npos) << result.err;
}

TEST(CheckConfig, AWatchsMissingTokenFileIsAnErrorAndAWarnedOneIsFine) {
  TempDir dir;
  std::filesystem::create_directory(dir / "a");
  std::filesystem::create_directory(dir / "b");
  dir.write("team-a.token", "sk-team-a\n", 0640);
  const auto file = dir.write("m.yaml",
                              "database: jobs.db\nwatch:\n  - path: a\n    token_file: team-a.token\n"
                              "  - path: b\n    token_file: team-b.token\n");
  auto options = clean_env();
  options.env_set["NEBIUS_API_KEY"] = "sk-test";
  const auto result = check_config(file, options);
  EXPECT_EQ(result.exit_code, 78) << result.err;
  EXPECT_EQ(result.err, "warning: token file " + (dir / "team-a.token").string() +
                            " is readable by group or others; chmod 600 it (or 640 for a service group)\n" +
                            file.string() + ": watch[1].token_file: cannot use " + (dir / "team-b.token").string() +
                            ": No such file or directory\n");
  EXPECT_EQ(result.out, "");
  EXPECT_EQ(result.err.find("sk-team-a"), std::string::npos);
}

TEST(CheckConfig, ACredentialTokenFileIsCheckedOnlyWhereTheCredentialsAre) {
  TempDir dir;
  std::filesystem::create_directory(dir / "b");
  const auto file = dir.write("m.yaml",
                              "database: jobs.db\nwatch:\n  - path: b\n"
                              "    token_file: ${CREDENTIALS_DIRECTORY}/api-token-teamb\n");
  auto options = clean_env();
  options.env_set["NEBIUS_API_KEY"] = "sk-test";
  const auto outside = check_config(file, options);
  EXPECT_EQ(outside.exit_code, 0) << outside.err;
  EXPECT_EQ(outside.out, "config OK\n");
  EXPECT_EQ(outside.err, "warning: " + file.string() +
                             ": watch[0].token_file: ${CREDENTIALS_DIRECTORY}/api-token-teamb: $CREDENTIALS_DIRECTORY "
                             "is not set (systemd sets it for a unit with LoadCredential=); not checked here\n");

  options.env_set["CREDENTIALS_DIRECTORY"] = (dir / "creds").string();
  const auto without_it = check_config(file, options);
  EXPECT_EQ(without_it.exit_code, 78);
  EXPECT_NE(without_it.err.find("watch[0].token_file: cannot use " + (dir / "creds/api-token-teamb").string()),
            std::string::npos)
      << without_it.err;
  dir.write("creds/api-token-teamb", "sk-team-b\n", 0600);
  const auto with_it = check_config(file, options);
  EXPECT_EQ(with_it.exit_code, 0) << with_it.err;
  EXPECT_EQ(with_it.out, "config OK\n");
}

TEST(CheckConfig, AMissingDatabaseDirectoryIsAnErrorAndTheDaemonDoesNotStart) {
  TempDir dir;
  std::filesystem::create_directory(dir / "incoming");
  const auto file = dir.write("m.yaml", "database: /nonexistent/db/jobs.db\nwatch:\n  - path: incoming\n");
  auto options = clean_env();
  options.env_set["NEBIUS_API_KEY"] = "sk-test";
  const auto result = check_config(file, options);
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_EQ(result.err, file.string() +
                            ": database: the directory /nonexistent/db does not exist; create it (modeldropd will "
                            "not start a new queue in a directory it would have to invent) or correct the path\n");
  EXPECT_EQ(result.out, "");
  const auto started = run_process({MODELDROPD_PATH, "--config", file.string()}, options);
  EXPECT_EQ(started.exit_code, 78);
  EXPECT_NE(started.err.find("database: the directory /nonexistent/db does not exist"), std::string::npos)
      << started.err;
  EXPECT_FALSE(std::filesystem::exists("/nonexistent/db"));
}

TEST(CheckConfig, AMissingWatchDirectoryIsOnlyAWarning) {
  TempDir dir;
  const auto file = dir.write("m.yaml", "database: jobs.db\nwatch:\n  - path: not-yet\n");
  auto options = clean_env();
  options.env_set["NEBIUS_API_KEY"] = "sk-test";
  const auto result = check_config(file, options);
  EXPECT_EQ(result.exit_code, 0) << result.err;
  EXPECT_EQ(result.out, "config OK\n");
  EXPECT_EQ(result.err, "warning: " + file.string() + ": watch[0].path: " + (dir / "not-yet").string() +
                            " does not exist yet; modeldropd waits for it and watches it once it appears\n");
}

TEST(CheckConfig, MissingConfigFileExits78WithItsPath) {
  const auto result = check_config("/nonexistent/dir/modeldrop.yaml");
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_NE(result.err.find("/nonexistent/dir/modeldrop.yaml"), std::string::npos) << result.err;
}

TEST(CheckConfig, UnreadableConfigFileExits78) {
  TempDir dir;
  const auto file = dir.write("m.yaml", "log: {level: info}\n");
  const auto result = check_config(dir.path());  // a directory is not a config file
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_NE(result.err.find("not a regular file"), std::string::npos) << result.err;
}

TEST(CheckConfig, ConfigPathFromEnvironment) {
  TempDir dir;
  const auto file = dir.write("env.yaml", "upload: {sessions: 0}\n");
  auto options = clean_env();
  options.env_set["MODELDROP_CONFIG"] = file.string();
  const auto result = run_process({MODELDROPD_PATH, "--check-config"}, options);
  EXPECT_EQ(result.exit_code, 78);
  EXPECT_NE(result.err.find(file.string() + ":1: upload.sessions:"), std::string::npos) << result.err;
}

TEST(DaemonCommand, VersionComesFromTheProject) {
  const auto result = run_process({MODELDROPD_PATH, "--version"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, std::string("modeldropd ") + kVersion + "\n");
}

TEST(DaemonCommand, HelpListsTheFlags) {
  const auto result = run_process({MODELDROPD_PATH, "--help"});
  EXPECT_EQ(result.exit_code, 0);
  for (const char* flag : {"--config", "--check-config", "--version", "--help"}) {
    EXPECT_NE(result.out.find(flag), std::string::npos) << flag;
  }
}

TEST(DaemonCommand, UnknownFlagIsAUsageError) {
  const auto result = run_process({MODELDROPD_PATH, "--frobnicate"});
  EXPECT_EQ(result.exit_code, 2);
}

TEST(CliCommand, VersionComesFromTheProject) {
  const auto result = run_process({MODELDROP_CLI_PATH, "--version"});
  EXPECT_EQ(result.exit_code, 0);
  EXPECT_EQ(result.out, std::string("modeldrop ") + kVersion + "\n");
}

}  // namespace
}  // namespace modeldrop
