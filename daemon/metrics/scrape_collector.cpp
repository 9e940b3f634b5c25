#include "metrics/scrape_collector.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

namespace modeldrop::metrics {

namespace asio = boost::asio;

ScrapeCollector::ScrapeCollector(asio::io_context& io, DaemonMetrics& metrics, DatabaseGaugeReader reader,
                                 const Clock& clock, std::function<void(DaemonMetrics&)> live)
    : io_(io), metrics_(metrics), reader_(std::move(reader)), clock_(clock), live_(std::move(live)) {}

ScrapeCollector::~ScrapeCollector() {
  reader_thread_.join();
}

void ScrapeCollector::collect(std::function<void(std::string)> reply) {
  waiting_.push_back(std::move(reply));
  if (reading_) return;
  reading_ = true;
  asio::post(reader_thread_, [this, now = clock_.now()] {
    auto gauges = reader_.read(now);
    asio::post(io_, [this, gauges = std::move(gauges)]() mutable { on_read(std::move(gauges)); });
  });
}

void ScrapeCollector::on_read(Result<DatabaseGauges> gauges) {
  reading_ = false;
  if (gauges) {
    if (last_read_failed_) spdlog::info("metrics: the database gauges can be read again");
    metrics_.set_database(*gauges);
  } else if (!last_read_failed_) {
    // Said once per run of failures; scrapes keep the last values meanwhile.
    spdlog::warn("metrics: cannot read the database gauges: {} (serving the last values)", gauges.error().message);
  }
  last_read_failed_ = !gauges;
  live_(metrics_);
  const std::string text = metrics_.exposition();
  auto replies = std::move(waiting_);
  waiting_.clear();
  for (auto& reply : replies) reply(text);
}

}  // namespace modeldrop::metrics
