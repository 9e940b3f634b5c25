// Issue #9: an API outage of an hour, simulated with the injected clock, must write a bounded
// number of log lines (repetition rate-limited), not one line per job per retry.
#include "integration/app/scheduler_harness.hpp"

#include <regex>

namespace modeldrop::test {
namespace {

using namespace std::chrono_literals;
using store::JobState;

constexpr std::size_t kJobs = 50;

enum class Outage { answers_503, refuses_connections };

class OutageLogTest : public SchedulerTest, public ::testing::WithParamInterface<Outage> {
 protected:
  // Every pending job that is due has been tried and recorded. The database is read in one
  // transaction: a claim committed between two reads must not look like a quiet queue.
  bool quiescent() {
    if (scheduler_->snapshot().uploading != 0 || pool_->uploads_in_flight() != 0) return false;
    auto& db = outside().connection();
    if (!db.execute("BEGIN")) return false;
    auto summary = outside().summary();
    bool quiet = summary.has_value();
    for (const auto& row : summary ? *summary : std::vector<store::StateSummary>{}) {
      if (row.state == JobState::uploading && row.jobs != 0) quiet = false;
    }
    auto due = outside().next_due_at(clock_.now(), config_.upload.dedupe);
    quiet = quiet && due && (!*due || **due > clock_.now());
    EXPECT_TRUE(db.execute("COMMIT"));
    return quiet;
  }
};

TEST_P(OutageLogTest, AnHourOfOutageWritesBoundedLogLines) {
  LogCapture log(spdlog::level::info);  // the default log.level
  config_.upload.sessions = 4;
  config_.retry.initial_backoff = 2s;
  config_.retry.max_backoff = 15min;
  config_.retry.give_up_after = 72h;
  config_.api.connect_timeout = 5s;
  if (GetParam() == Outage::refuses_connections) {
    // A port that was just listening and is closed now: every connect is refused.
    start_fake();
    const auto base_url = api_->base_url();
    api_.reset();
    config_.api.base_url = base_url;
    without_fake_ = true;
  }
  start();
  if (api_) api_->set_default_fault(status_fault(503, R"({"detail":"Service Unavailable"})"));
  std::vector<store::JobId> ids;
  for (std::size_t i = 0; i < kJobs; ++i) ids.push_back(add_job("model-" + std::to_string(i) + ".zip", 4096));
  ASSERT_TRUE(run_until(
      [&] {
        for (const auto id : ids) {
          if (job(id).job.attempts < 1) return false;
        }
        return quiescent();
      },
      60s));

  // An hour in steps of 10 s, each run until every due job has been tried.
  constexpr auto kOutage = 60min;
  constexpr auto kStep = 10s;
  for (auto elapsed = 0s; elapsed < kOutage; elapsed += kStep) {
    advance(kStep);
    ASSERT_TRUE(run_until([&] { return quiescent(); }, 30s)) << "at " << elapsed.count() << " s";
  }

  std::size_t attempts = 0;
  for (const auto id : ids) {
    const auto j = job(id);
    EXPECT_EQ(j.job.state, JobState::pending);
    attempts += static_cast<std::size_t>(j.job.attempts);
  }
  // Backoff up to 15 min: each job is tried about a dozen times in the hour.
  EXPECT_GE(attempts, kJobs * 5);
  if (api_) {
    EXPECT_EQ(upload_requests(), attempts);
  }

  // One line per job when it is first sent, then at most one a minute about the failures.
  const std::size_t bound = kJobs + 60 + 10;
  const auto lines = log.lines();
  RecordProperty("attempts", static_cast<int>(attempts));
  RecordProperty("log_lines", static_cast<int>(lines.size()));
  EXPECT_LE(lines.size(), bound) << attempts << " attempts; the first lines:\n"
                                 << ::testing::PrintToString(std::vector<std::string>(
                                        lines.begin(),
                                        lines.begin() + std::min<std::ptrdiff_t>(20, std::ssize(lines))));
  // The repetition is summarised, not lost.
  EXPECT_GE(log.count_containing("not logged"), 1U);
  if (!api_) return;

  // The API is back: every job goes within the longest backoff, with one line each.
  api_->set_default_fault({});
  for (auto elapsed = 0s; elapsed < 16min; elapsed += 30s) {
    advance(30s);
    ASSERT_TRUE(run_until([&] { return quiescent(); }, 30s));
  }
  for (const auto id : ids) EXPECT_EQ(job(id).job.state, JobState::succeeded) << "job " << id;
  const auto after = log.lines();
  EXPECT_LE(after.size(), lines.size() + kJobs + 2);
  // Nothing is lost: every failed attempt is either logged or counted in a summary (what was
  // held back at the end is told with the first success).
  std::size_t logged = 0;
  std::size_t summarised = 0;
  const std::regex summary(R"((\d+) (more )?failed attempts? not logged since)");
  for (const auto& line : after) {
    logged += line.find("failed, retrying at") != std::string::npos ? 1U : 0U;
    std::smatch match;
    if (std::regex_search(line, match, summary)) summarised += std::stoul(match[1].str());
  }
  EXPECT_EQ(logged + summarised, attempts);
}

INSTANTIATE_TEST_SUITE_P(Kinds, OutageLogTest, ::testing::Values(Outage::answers_503, Outage::refuses_connections),
                         [](const auto& p) {
                           return p.param == Outage::answers_503 ? std::string("Http503")
                                                                 : std::string("ConnectionRefused");
                         });

}  // namespace
}  // namespace modeldrop::test
