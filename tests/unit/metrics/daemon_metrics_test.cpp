// The exposition: every family with HELP and TYPE, every label value a query may name, the
// counters and histogram fed by attempts, escaping, and promtool's own verdict on the text.
#include "metrics/daemon_metrics.hpp"

#include "support/run_process.hpp"

#include <gtest/gtest.h>

namespace modeldrop::metrics {
namespace {

using namespace std::chrono_literals;
using store::AttemptOutcome;

bool has_line(const std::string& text, const std::string& line) {
  return text.find("\n" + line + "\n") != std::string::npos || text.rfind(line + "\n", 0) == 0;
}

TEST(DaemonMetrics, EveryFamilyHasHelpAndType) {
  const DaemonMetrics metrics("1.2.3");
  const auto text = metrics.exposition();
  const std::vector<std::pair<std::string, std::string>> families{{"modeldrop_jobs", "gauge"},
                                                                  {"modeldrop_pending_bytes", "gauge"},
                                                                  {"modeldrop_uploaded_bytes_total", "counter"},
                                                                  {"modeldrop_sent_bytes_total", "counter"},
                                                                  {"modeldrop_upload_attempts_total", "counter"},
                                                                  {"modeldrop_http_responses_total", "counter"},
                                                                  {"modeldrop_upload_duration_seconds", "histogram"},
                                                                  {"modeldrop_held", "gauge"},
                                                                  {"modeldrop_oldest_pending_seconds", "gauge"},
                                                                  {"modeldrop_models", "gauge"},
                                                                  {"modeldrop_build_info", "gauge"}};
  for (const auto& [name, type] : families) {
    EXPECT_NE(text.find("# HELP " + name + " "), std::string::npos) << name;
    EXPECT_TRUE(has_line(text, "# TYPE " + name + " " + type)) << name;
  }
  EXPECT_TRUE(has_line(text, R"(modeldrop_build_info{version="1.2.3"} 1)"));
}

TEST(DaemonMetrics, EveryStateAndHoldReasonIsListedAtZero) {
  const DaemonMetrics metrics("1");
  const auto text = metrics.exposition();
  for (const char* state : {"pending", "uploading", "succeeded", "failed", "cancelled"}) {
    EXPECT_TRUE(has_line(text, std::string("modeldrop_jobs{state=\"") + state + "\"} 0")) << state;
  }
  for (const char* reason : {"auth", "rate_limit", "paused"}) {
    EXPECT_TRUE(has_line(text, std::string("modeldrop_held{reason=\"") + reason + "\"} 0")) << reason;
  }
  EXPECT_TRUE(has_line(text, R"(modeldrop_upload_attempts_total{outcome="failed"} 0)"));
  EXPECT_TRUE(has_line(text, "modeldrop_oldest_pending_seconds 0"));
}

TEST(DaemonMetrics, AttemptsFeedCountersAndTheDurationHistogram) {
  DaemonMetrics metrics("1");
  metrics.attempt_finished({AttemptOutcome::retry, 503, 500, 2000, 3s});
  metrics.api_response(503);
  metrics.attempt_finished({AttemptOutcome::succeeded, 200, 2000, 2000, 42s});
  metrics.api_response(200);
  metrics.set_holds({true, false, true});
  const auto text = metrics.exposition();
  EXPECT_TRUE(has_line(text, "modeldrop_sent_bytes_total 2500"));
  EXPECT_TRUE(has_line(text, "modeldrop_uploaded_bytes_total 2000"));
  EXPECT_TRUE(has_line(text, R"(modeldrop_upload_attempts_total{outcome="retry"} 1)"));
  EXPECT_TRUE(has_line(text, R"(modeldrop_upload_attempts_total{outcome="succeeded"} 1)"));
  EXPECT_TRUE(has_line(text, R"(modeldrop_http_responses_total{code="200"} 1)"));
  EXPECT_TRUE(has_line(text, R"(modeldrop_http_responses_total{code="503"} 1)"));
  EXPECT_TRUE(has_line(text, "modeldrop_upload_duration_seconds_count 1")) << "only succeeded attempts";
  EXPECT_TRUE(has_line(text, "modeldrop_upload_duration_seconds_sum 42"));
  EXPECT_TRUE(has_line(text, R"(modeldrop_upload_duration_seconds_bucket{le="30"} 0)"));
  EXPECT_TRUE(has_line(text, R"(modeldrop_upload_duration_seconds_bucket{le="60"} 1)"));
  EXPECT_TRUE(has_line(text, R"(modeldrop_upload_duration_seconds_bucket{le="86400"} 1)")) << "hours fit";
  EXPECT_TRUE(has_line(text, R"(modeldrop_held{reason="auth"} 1)"));
  EXPECT_TRUE(has_line(text, R"(modeldrop_held{reason="rate_limit"} 0)"));
  EXPECT_TRUE(has_line(text, R"(modeldrop_held{reason="paused"} 1)"));
}

TEST(DaemonMetrics, DatabaseGaugesAndEscapedModelStatuses) {
  DaemonMetrics metrics("1");
  DatabaseGauges gauges;
  gauges.jobs = {3, 1, 7, 2, 0};
  gauges.pending_bytes = 12345;
  gauges.oldest_pending_seconds = 90.5;
  gauges.models = {{"active", 4}, {"odd \"word\"\\\nfrom the API", 1}};
  metrics.set_database(gauges);
  auto text = metrics.exposition();
  EXPECT_TRUE(has_line(text, R"(modeldrop_jobs{state="pending"} 3)"));
  EXPECT_TRUE(has_line(text, R"(modeldrop_jobs{state="succeeded"} 7)"));
  EXPECT_TRUE(has_line(text, R"(modeldrop_jobs{state="failed"} 2)"));
  EXPECT_TRUE(has_line(text, "modeldrop_pending_bytes 12345"));
  EXPECT_TRUE(has_line(text, "modeldrop_oldest_pending_seconds 90.5"));
  EXPECT_TRUE(has_line(text, R"(modeldrop_models{status="active"} 4)"));
  EXPECT_TRUE(has_line(text, R"(modeldrop_models{status="odd \"word\"\\\nfrom the API"} 1)")) << text;

  gauges.models.clear();
  metrics.set_database(gauges);
  text = metrics.exposition();
  EXPECT_TRUE(has_line(text, R"(modeldrop_models{status="active"} 0)")) << "a status that emptied ends at 0";
}

TEST(DaemonMetrics, PromtoolFindsNothingToReport) {
  DaemonMetrics metrics("0.1.0");
  metrics.attempt_finished({AttemptOutcome::succeeded, 201, 10, 10, 1500ms});
  metrics.api_response(201);
  DatabaseGauges gauges;
  gauges.models = {{"needs \"quotes\"\n", 1}};
  metrics.set_database(gauges);
  for (const auto& text : {DaemonMetrics("0").exposition(), metrics.exposition()}) {
    test::ProcessOptions options;
    options.stdin_data = text;
    const auto result = test::run_process({PROMTOOL_PATH, "check", "metrics"}, options);
    EXPECT_EQ(result.exit_code, 0) << result.out << result.err;
    EXPECT_EQ(result.out + result.err, "") << text;
  }
}

}  // namespace
}  // namespace modeldrop::metrics
