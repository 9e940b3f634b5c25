#include "upload/upload_pool.hpp"

#include "upload/exchange.hpp"
#include "upload/pool_core.hpp"

#include <boost/json/serialize.hpp>

namespace modeldrop::upload {

UploadPool::UploadPool(std::shared_ptr<Core> core) : core_(std::move(core)) {}

UploadPool::~UploadPool() {
  cancel_all();
}

Result<std::unique_ptr<UploadPool>> UploadPool::create(asio::io_context& io, PoolSettings settings) {
  auto core = std::make_shared<Core>(io, settings);
  if (auto configured = core->configure(settings); !configured) return configured.error();
  return std::unique_ptr<UploadPool>(new UploadPool(std::move(core)));
}

std::size_t UploadPool::free_sessions() const {
  const auto sessions = static_cast<std::size_t>(std::max(core_->settings.sessions, 0));
  return sessions > core_->uploads_in_flight ? sessions - core_->uploads_in_flight : 0;
}

std::size_t UploadPool::uploads_in_flight() const {
  return core_->uploads_in_flight;
}

std::size_t UploadPool::idle_connections() const {
  return core_->idle.size();
}

void UploadPool::start(UploadRequest request, std::function<void(std::uint64_t)> progress,
                       std::function<void(UploadResult)> done) {
  auto exchange =
      std::make_shared<Exchange>(core_, request.job_id, Exchange::Label{"POST", "/v0/models/upload"}, std::move(done));
  core_->in_flight.emplace(exchange.get(), exchange);
  ++core_->uploads_in_flight;
  exchange->start_upload(request, std::move(progress));
}

void UploadPool::request(ApiRequest request, std::function<void(ApiAnswer)> done) {
  auto classified = [done = std::move(done)](UploadResult result) {
    done(classify_api_answer(std::move(result), WallClock::now()));
  };
  auto exchange = std::make_shared<Exchange>(
      core_, std::nullopt, Exchange::Label{std::string(to_string(request.verb)), request.path}, std::move(classified));
  core_->in_flight.emplace(exchange.get(), exchange);
  std::optional<std::string> body;
  if (request.body) body = boost::json::serialize(*request.body);
  exchange->start_request(request_target(core_->route.origin.path_prefix, request), body, request.token);
}

void UploadPool::set_exchange_observer(ExchangeObserver observer) {
  core_->observer = std::move(observer);
}

bool UploadPool::cancel(std::int64_t job_id) {
  for (const auto& [raw, weak] : core_->in_flight) {
    auto exchange = weak.lock();
    if (exchange && exchange->job_id() == job_id) {
      exchange->abort(AttemptError::cancelled, "cancelled");
      return true;
    }
  }
  return false;
}

void UploadPool::cancel_all() {
  std::vector<std::shared_ptr<Exchange>> exchanges;
  for (const auto& [raw, weak] : core_->in_flight) {
    if (auto exchange = weak.lock()) exchanges.push_back(std::move(exchange));
  }
  for (const auto& exchange : exchanges) exchange->abort(AttemptError::cancelled, "cancelled");
  core_->idle.close_all();
}

Result<void> UploadPool::apply(PoolSettings settings) {
  return core_->configure(settings);
}

}  // namespace modeldrop::upload
