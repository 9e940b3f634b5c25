#include "config/config_loader.hpp"

#include <gtest/gtest.h>

namespace modeldrop::config {
namespace {

using namespace std::chrono_literals;

LoadResult parse(const std::string& yaml) {
  return parse_config(yaml, "test.yaml", "/etc/modeldrop");
}

TEST(ConfigLoader, EmptyFileGivesEveryDefault) {
  const auto result = parse("");
  ASSERT_TRUE(result.ok());
  const Config& c = *result.config;
  EXPECT_EQ(c.api.base_url, "https://api.tokenfactory.nebius.com");
  EXPECT_FALSE(c.api.token_file);
  EXPECT_FALSE(c.api.project_id);
  EXPECT_FALSE(c.api.ca_file);
  EXPECT_FALSE(c.api.proxy);
  EXPECT_EQ(c.api.connect_timeout, 10s);
  EXPECT_EQ(c.api.idle_timeout, 60s);
  EXPECT_EQ(c.upload.sessions, 4);
  EXPECT_EQ(c.upload.max_bytes_per_second, 0u);
  EXPECT_TRUE(c.upload.dedupe);
  EXPECT_EQ(c.retry.initial_backoff, 2s);
  EXPECT_EQ(c.retry.max_backoff, 15min);
  EXPECT_EQ(c.retry.max_attempts, 0);
  EXPECT_EQ(c.retry.give_up_after, 72h);
  EXPECT_EQ(c.database, "/var/lib/modeldrop/jobs.db");
  ASSERT_EQ(c.watch.size(), 1u);
  EXPECT_EQ(c.watch[0].path, "/var/spool/modeldrop/incoming");
  EXPECT_EQ(c.watch[0].done_dir, "/var/spool/modeldrop/incoming/done");
  EXPECT_EQ(c.watch[0].failed_dir, "/var/spool/modeldrop/incoming/failed");
  EXPECT_EQ(c.watch[0].patterns, (std::vector<std::string>{"*.zip", "*.tar", "*.tar.gz", "*.tgz"}));
  EXPECT_EQ(c.watch[0].settle, 2s);
  EXPECT_FALSE(c.watch[0].recursive);
  EXPECT_EQ(c.watch[0].on_success, SuccessAction::move);
  EXPECT_EQ(c.watch[0].on_failure, FailureAction::move);
  EXPECT_EQ(c.watch[0].validate, preflight::ArchiveValidation::archive);
  EXPECT_EQ(c.log.level, LogLevel::info);
  EXPECT_EQ(c.log.format, LogFormat::text);
  EXPECT_FALSE(c.metrics.listen) << "no metrics endpoint unless asked for";
}

TEST(ConfigLoader, ReadsEveryKey) {
  const auto result = parse(R"(
api:
  base_url: https://example.com/prefix/
  token_file: secrets/token
  project_id: proj-1
  ca_file: /etc/ssl/extra.pem
  proxy: http://proxy.local:3128
  connect_timeout: 500ms
  idle_timeout: 2m
upload: {sessions: 8, max_bytes_per_second: 10MiB, dedupe: false}
retry: {initial_backoff: 1s, max_backoff: 1h, max_attempts: 5, give_up_after: 0}
database: state/jobs.db
watch:
  - path: /data/a/
    project_id: proj-a
    patterns: ["*.ZIP"]
    recursive: true
    settle: 0
    on_success: delete
    on_failure: keep
    done_dir: /data/done
    failed_dir: ../failed
  - path: b
log: {level: debug, format: json}
)");
  ASSERT_TRUE(result.ok()) << result.problems.front();
  const Config& c = *result.config;
  EXPECT_EQ(c.api.base_url, "https://example.com/prefix");
  EXPECT_EQ(c.api.token_file, std::filesystem::path("/etc/modeldrop/secrets/token"));
  EXPECT_EQ(c.api.project_id, "proj-1");
  EXPECT_EQ(c.api.proxy, "http://proxy.local:3128");
  EXPECT_EQ(c.api.connect_timeout, 500ms);
  EXPECT_EQ(c.api.idle_timeout, 2min);
  EXPECT_EQ(c.upload.sessions, 8);
  EXPECT_EQ(c.upload.max_bytes_per_second, 10u << 20);
  EXPECT_FALSE(c.upload.dedupe);
  EXPECT_EQ(c.retry.max_attempts, 5);
  EXPECT_EQ(c.retry.give_up_after, 0ms);
  EXPECT_EQ(c.database, "/etc/modeldrop/state/jobs.db");
  ASSERT_EQ(c.watch.size(), 2u);
  EXPECT_EQ(c.watch[0].path, "/data/a");
  EXPECT_EQ(c.watch[0].project_id, "proj-a");
  EXPECT_TRUE(c.watch[0].recursive);
  EXPECT_EQ(c.watch[0].settle, 0ms);
  EXPECT_EQ(c.watch[0].on_success, SuccessAction::remove);
  EXPECT_EQ(c.watch[0].on_failure, FailureAction::keep);
  EXPECT_EQ(c.watch[0].done_dir, "/data/done");
  EXPECT_EQ(c.watch[0].failed_dir, "/etc/failed");
  EXPECT_EQ(c.watch[1].path, "/etc/modeldrop/b");
  EXPECT_EQ(c.watch[1].project_id, "proj-1") << "a watch without project_id inherits api.project_id";
  EXPECT_EQ(c.watch[1].done_dir, "/etc/modeldrop/b/done");
  EXPECT_EQ(c.log.level, LogLevel::debug);
  EXPECT_EQ(c.log.format, LogFormat::json);
}

TEST(ConfigLoader, MetricsListenTakesHostPortOrBracketedIpv6) {
  auto c = parse("metrics: {listen: '127.0.0.1:9464'}");
  ASSERT_TRUE(c.ok()) << c.problems.front();
  EXPECT_EQ(c.config->metrics.listen, (ListenAddress{"127.0.0.1", 9464}));
  c = parse("metrics: {listen: '[::1]:9464'}");
  ASSERT_TRUE(c.ok()) << c.problems.front();
  EXPECT_EQ(c.config->metrics.listen, (ListenAddress{"::1", 9464}));
  EXPECT_EQ(c.config->metrics.listen->text(), "[::1]:9464");
  c = parse("metrics: {listen: 'localhost:0'}");
  ASSERT_TRUE(c.ok()) << c.problems.front();
  EXPECT_EQ(c.config->metrics.listen, (ListenAddress{"localhost", 0}));
  c = parse("metrics: {listen: null}");
  ASSERT_TRUE(c.ok());
  EXPECT_FALSE(c.config->metrics.listen);
  EXPECT_TRUE(parse("metrics:").ok());
}

TEST(ConfigLoader, MetricsListenProblemsNameTheKey) {
  for (const char* bad : {"'9464'", "':9464'", "'::1:9464'", "'[::1]'", "'[nonsense]:80'", "'host:99999'",
                          "'host:port'", "'host:'", "[a, b]"}) {
    const auto c = parse(std::string("metrics:\n  listen: ") + bad + "\n");
    ASSERT_EQ(c.problems.size(), 1u) << bad;
    EXPECT_EQ(c.problems[0].rfind("test.yaml:2: metrics.listen: must be", 0), 0u) << c.problems[0];
  }
  const auto typo = parse("metrics: {listne: '127.0.0.1:1'}");
  ASSERT_EQ(typo.problems.size(), 1u);
  EXPECT_NE(typo.problems[0].find("unknown key (did you mean \"listen\"?)"), std::string::npos) << typo.problems[0];
}

TEST(ConfigLoader, PlainHttpOnlyForLoopback) {
  EXPECT_TRUE(parse("api: {base_url: 'http://127.0.0.1:8443'}").ok());
  EXPECT_TRUE(parse("api: {base_url: 'http://localhost:1'}").ok());
  EXPECT_TRUE(parse("api: {base_url: 'http://[::1]:8443'}").ok());
  EXPECT_FALSE(parse("api: {base_url: 'http://127.0.0.1.evil.com'}").ok());
  EXPECT_FALSE(parse("api: {base_url: 'http://example.com'}").ok());
  EXPECT_FALSE(parse("api: {base_url: 'https://127.0.0.1.evil.com'}").ok()) << "host and path must not run together";
}

TEST(ConfigLoader, ReportsEveryProblemAtOnce) {
  const auto result = parse("upload:\n  sessions: 0\n  dedupe: maybe\nlog:\n  level: loud\n");
  ASSERT_FALSE(result.ok());
  ASSERT_EQ(result.problems.size(), 3u);
  EXPECT_EQ(result.problems[0], "test.yaml:2: upload.sessions: must be between 1 and 256, got 0");
  EXPECT_EQ(result.problems[1], "test.yaml:3: upload.dedupe: must be true or false, got \"maybe\"");
  EXPECT_EQ(result.problems[2], "test.yaml:5: log.level: must be one of trace, debug, info, warn, error, got \"loud\"");
}

TEST(ConfigLoader, WatchValidateIsArchiveAdapterOrNone) {
  const auto result =
      parse("watch:\n  - path: /a\n    validate: adapter\n  - path: /b\n    validate: none\n  - path: /c\n");
  ASSERT_TRUE(result.ok()) << result.problems.front();
  EXPECT_EQ(result.config->watch[0].validate, preflight::ArchiveValidation::adapter);
  EXPECT_EQ(result.config->watch[1].validate, preflight::ArchiveValidation::none);
  EXPECT_EQ(result.config->watch[2].validate, preflight::ArchiveValidation::archive);

  const auto bad = parse("watch:\n  - path: /a\n    validate: zip\n  - path: /b\n    validate: null\n");
  ASSERT_EQ(bad.problems.size(), 2u);
  EXPECT_EQ(bad.problems[0], "test.yaml:3: watch[0].validate: must be one of archive, adapter, none, got \"zip\"");
  EXPECT_EQ(bad.problems[1], "test.yaml:5: watch[1].validate: must be one of archive, adapter, none, got null");
}

TEST(ConfigLoader, WatchSettingsCompareEveryField) {
  const auto plain = parse("watch:\n  - path: /a\n");
  const auto unchecked = parse("watch:\n  - path: /a\n    validate: none\n");
  ASSERT_TRUE(plain.ok() && unchecked.ok());
  EXPECT_FALSE(plain.config->watch[0] == unchecked.config->watch[0]);
  EXPECT_TRUE(plain.config->watch[0] == parse("watch:\n  - path: /a\n").config->watch[0]);
}

TEST(ConfigLoader, ShippedExampleConfigIsValid) {
  const auto result = load_config(std::filesystem::path(MODELDROP_SOURCE_DIR) / "config/modeldrop.yaml");
  ASSERT_TRUE(result.ok()) << result.problems.front();
  EXPECT_EQ(result.config->watch.size(), 1u);
}

TEST(ConfigLoader, MissingFileIsOneProblemNamingIt) {
  const auto result = load_config("/nonexistent/modeldrop.yaml");
  ASSERT_EQ(result.problems.size(), 1u);
  EXPECT_EQ(result.problems[0], "/nonexistent/modeldrop.yaml: cannot read the configuration file: no such file");
}

}  // namespace
}  // namespace modeldrop::config
