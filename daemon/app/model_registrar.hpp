#pragma once

// Model registration (docs/configuration.md "register"): once a job that registers a model has
// succeeded, creates the model from its file (POST /v0/models) and looks at it
// (GET /v0/models/{name}) with backoff until it is `active` or `error`. Every step is recorded
// in the job's row before the next one, so a restart picks up where it stopped; before its
// first request a registration looks the name up, so a model is never requested twice.
// Runs on the event loop: the API through UploadPool::request, the store through StoreClient.

#include "app/store_client.hpp"
#include "common/duration.hpp"
#include "common/timestamp.hpp"
#include "store/job_store.hpp"
#include "upload/api_responses.hpp"
#include "upload/upload_pool.hpp"

#include <boost/asio/steady_timer.hpp>

#include <chrono>
#include <optional>
#include <set>
#include <string>

namespace modeldrop::app {

// Polling gives up this long after the registration started.
inline constexpr std::chrono::hours kModelGiveUpAfter{24};

// The wait before the next look at a model whose registration started at `started`: the time
// since the start, at least 5 s and at most 5 min, so looks come 5 s, 10 s, 20 s, 40 s … after
// the start and then every 5 minutes. Derived from the start alone, it survives restarts.
Duration next_model_look_delay(WallTime started, WallTime now);

// What is recorded when the API describes the model: `active` and `error` (with its reason)
// end the registration, as does `deleted`; `validating` and any other word mean another look.
store::ModelUpdate model_update_from(const upload::CustomModel& model, WallTime started, WallTime now);

class ModelRegistrar {
 public:
  ModelRegistrar(boost::asio::io_context& io, StoreClient& store, upload::UploadPool& pool, const Clock& clock);

  // Looks for registrations due, those a restart left in progress included.
  void start();
  // A job may have succeeded: look now rather than at the next planned look.
  void wake();
  // A new API token: a registration held by a 401/403 goes on at once.
  void token_changed();
  // No request starts any more; the ones in flight are forgotten (their step is looked at again
  // at the next start).
  void stop();

  // At most this many registrations talk to the API at once.
  static constexpr std::size_t kMaxInFlight = 4;

 private:
  // `horizon`: registrations due by then are taken now (a new token: those the hold delayed).
  void look(std::optional<WallTime> horizon = std::nullopt);
  void handle(const store::Job& job);
  void look_up_before_create(const store::Job& job);
  void create(const store::Job& job);
  void confirm_conflict(const store::Job& job, std::string conflict);
  void poll(const store::Job& job);
  void record_model(const store::Job& job, const upload::ApiAnswer& answer);
  void defer(const store::Job& job, const upload::ApiAnswer& answer);
  void finish_step(const store::Job& job, store::ModelUpdate update);
  void plan_next_look();
  [[nodiscard]] upload::ApiRequest::Query project_query(const store::Job& job) const;
  [[nodiscard]] static std::string model_path(const store::Job& job);

  StoreClient& store_;
  upload::UploadPool& pool_;
  const Clock& clock_;
  boost::asio::steady_timer timer_;
  std::set<store::JobId> in_flight_;  // a request or its record under way
  std::optional<WallTime> auth_held_until_;
  bool looking_ = false;
  bool look_again_ = false;
  bool stopped_ = false;
};

}  // namespace modeldrop::app
