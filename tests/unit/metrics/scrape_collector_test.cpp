// A scrape reads the database on the reader thread and answers on the loop; scrapes that
// arrive during a read share it.
#include "metrics/scrape_collector.hpp"

#include "support/temp_dir.hpp"

#include <gtest/gtest.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

namespace modeldrop::metrics {
namespace {

using namespace std::chrono_literals;

class FixedClock : public Clock {
 public:
  [[nodiscard]] WallTime now() const override { return WallClock::from_time_t(1'800'000'000); }
};

TEST(ScrapeCollector, ReadsTheDatabaseOffTheLoopAndSharesOneRead) {
  test::TempDir dir;
  auto store = store::JobStore::open_for_daemon(dir / "jobs.db");
  ASSERT_TRUE(store) << store.error().message;
  store::NewJob job;
  job.path = dir / "a.zip";
  job.file = {1, 2, 4096, 3};
  ASSERT_TRUE(store->enqueue(job, WallClock::from_time_t(1'800'000'000 - 90)));

  auto reader = DatabaseGaugeReader::open(dir / "jobs.db");
  ASSERT_TRUE(reader);
  boost::asio::io_context io;
  auto busy = boost::asio::make_work_guard(io);  // the reply comes from another thread
  DaemonMetrics metrics("1");
  FixedClock clock;
  int live_calls = 0;
  ScrapeCollector collector(io, metrics, std::move(*reader), clock, [&](DaemonMetrics& m) {
    ++live_calls;
    m.set_holds({false, true, false});
  });
  std::vector<std::string> replies;
  collector.collect([&](std::string text) { replies.push_back(std::move(text)); });
  collector.collect([&](std::string text) { replies.push_back(std::move(text)); });
  EXPECT_TRUE(replies.empty()) << "nothing is answered before the read is back on the loop";
  for (int i = 0; i < 500 && replies.size() < 2; ++i) io.run_one_for(10ms);
  ASSERT_EQ(replies.size(), 2U);
  EXPECT_EQ(replies[0], replies[1]);
  EXPECT_EQ(live_calls, 1) << "one read served both scrapes";
  EXPECT_NE(replies[0].find("\nmodeldrop_jobs{state=\"pending\"} 1\n"), std::string::npos) << replies[0];
  EXPECT_NE(replies[0].find("\nmodeldrop_pending_bytes 4096\n"), std::string::npos);
  EXPECT_NE(replies[0].find("\nmodeldrop_oldest_pending_seconds 90\n"), std::string::npos);
  EXPECT_NE(replies[0].find("\nmodeldrop_held{reason=\"rate_limit\"} 1\n"), std::string::npos);
}

}  // namespace
}  // namespace modeldrop::metrics
