#pragma once

// Answers a scrape: the database gauges are read on a thread of their own (never on the event
// loop, never in the store's write queue), then the live values are filled in on the loop and
// the registry is serialised there. Scrapes that arrive during a read share its result.

#include "common/timestamp.hpp"
#include "metrics/daemon_metrics.hpp"
#include "metrics/database_gauges.hpp"

#include <boost/asio/io_context.hpp>
#include <boost/asio/thread_pool.hpp>

#include <functional>
#include <string>
#include <vector>

namespace modeldrop::metrics {

class ScrapeCollector {
 public:
  // `live` runs on the loop before each serialisation (holds and other in-memory state).
  ScrapeCollector(boost::asio::io_context& io, DaemonMetrics& metrics, DatabaseGaugeReader reader, const Clock& clock,
                  std::function<void(DaemonMetrics&)> live);
  // Waits for a read in progress. Destroy it only once the event loop has stopped.
  ~ScrapeCollector();
  ScrapeCollector(const ScrapeCollector&) = delete;
  ScrapeCollector& operator=(const ScrapeCollector&) = delete;

  void collect(std::function<void(std::string)> reply);

 private:
  void on_read(Result<DatabaseGauges> gauges);

  boost::asio::io_context& io_;
  DaemonMetrics& metrics_;
  DatabaseGaugeReader reader_;  // used on reader_thread_ only
  const Clock& clock_;
  std::function<void(DaemonMetrics&)> live_;
  std::vector<std::function<void(std::string)>> waiting_;
  bool reading_ = false;
  bool last_read_failed_ = false;
  boost::asio::thread_pool reader_thread_{1};
};

}  // namespace modeldrop::metrics
