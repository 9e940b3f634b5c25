#include "app/model_registrar.hpp"

#include <spdlog/spdlog.h>
#include <boost/json/value.hpp>
#include <boost/url/encode.hpp>
#include <boost/url/rfc/unreserved_chars.hpp>

#include <algorithm>

namespace modeldrop::app {
namespace {

using namespace std::chrono_literals;

constexpr Duration kFirstLook = 5s;
constexpr Duration kLongestWait = 5min;
// As uploads: a refused token holds until it changes or this long has passed.
constexpr Duration kAuthHold = 5min;
// Looks for due registrations at least this often (a CLI retry, a clock change).
constexpr Duration kLookAtLeastEvery = 1min;
constexpr Duration kStoreErrorPause = 5s;

std::chrono::steady_clock::duration until(WallTime when, WallTime now) {
  return std::max<std::chrono::steady_clock::duration>(std::chrono::duration_cast<std::chrono::nanoseconds>(when - now),
                                                       std::chrono::steady_clock::duration::zero());
}

WallTime started_of(const store::Job& job, WallTime now) {
  return job.model_started_at.value_or(now);
}

const std::string& model_name(const store::Job& job) {
  static const std::string none = "?";
  return job.model ? job.model->name : none;
}

}  // namespace

Duration next_model_look_delay(WallTime started, WallTime now) {
  const auto since = std::chrono::duration_cast<Duration>(now - started);
  return std::clamp(since, kFirstLook, kLongestWait);
}

store::ModelUpdate model_update_from(const upload::CustomModel& model, WallTime started, WallTime now) {
  const std::string status = model.status.value_or(std::string(store::kModelValidating));
  if (status == "active") return {"active", std::nullopt, std::nullopt};
  if (status == "error") return {"error", model.status_reason.value_or("the API gave no reason"), std::nullopt};
  if (status == "deleted") return {"deleted", model.status_reason.value_or("the model was deleted"), std::nullopt};
  const WallTime next = now + next_model_look_delay(started, now);
  if (status == store::kModelValidating) return {std::string(store::kModelValidating), std::nullopt, next};
  // A word this version does not know: it is kept in the reason, and the model looked at again.
  return {std::string(store::kModelValidating), "the API says the model is " + status, next};
}

ModelRegistrar::ModelRegistrar(boost::asio::io_context& io, StoreClient& store, upload::UploadPool& pool,
                               const Clock& clock)
    : store_(store), pool_(pool), clock_(clock), timer_(io) {}

void ModelRegistrar::start() {
  look();
}

void ModelRegistrar::wake() {
  look();
}

void ModelRegistrar::token_changed() {
  if (!auth_held_until_) return;
  auth_held_until_.reset();
  spdlog::info("model registration: the API token changed; going on");
  look(clock_.now() + kAuthHold);
}

void ModelRegistrar::stop() {
  stopped_ = true;
  timer_.cancel();
}

void ModelRegistrar::look(std::optional<WallTime> horizon) {
  if (stopped_) return;
  const WallTime now = clock_.now();
  if (auth_held_until_ && now < *auth_held_until_) return plan_next_look();
  auth_held_until_.reset();
  if (looking_ || in_flight_.size() >= kMaxInFlight) {
    // A step under way looks again when it is recorded.
    look_again_ = true;
    return;
  }
  looking_ = true;
  store_.call([by = horizon.value_or(now)](store::JobStore& s) { return s.registrations_due(by, 2 * kMaxInFlight); },
              [this](Result<std::vector<store::Job>> due) {
                looking_ = false;
                if (stopped_) return;
                if (!due) {
                  spdlog::warn("store: cannot look for model registrations: {}", due.error().message);
                } else {
                  for (const auto& job : *due) {
                    if (in_flight_.size() >= kMaxInFlight) break;
                    if (!in_flight_.contains(job.id)) handle(job);
                  }
                }
                if (std::exchange(look_again_, false)) return look();
                // A step under way looks again when it is recorded; planning now would find it
                // still due and spin until then.
                if (in_flight_.empty()) plan_next_look();
              });
}

void ModelRegistrar::plan_next_look() {
  if (stopped_) return;
  store_.call([now = clock_.now()](store::JobStore& s) { return s.next_registration_check(now); },
              [this](Result<std::optional<WallTime>> next) {
                if (stopped_) return;
                const WallTime now = clock_.now();
                WallTime at = now + kLookAtLeastEvery;
                if (next && *next) at = std::min(at, **next);
                if (auth_held_until_) at = std::max(at, *auth_held_until_);
                timer_.expires_after(until(at, now));
                timer_.async_wait([this](boost::system::error_code ec) {
                  if (!ec) look();
                });
              });
}

void ModelRegistrar::handle(const store::Job& job) {
  in_flight_.insert(job.id);
  if (!job.model || !job.file_id) {
    // Only an outside edit of the row gets here; ended, so it is not looked at forever.
    return finish_step(job, {"error", std::string("no model name or file id to register"), std::nullopt, false});
  }
  const WallTime now = clock_.now();
  if (now - started_of(job, now) >= kModelGiveUpAfter) {
    spdlog::warn("job {}: model {}: gave up after 24 h without an active or error status", job.id, model_name(job));
    return finish_step(job, {"error", std::string("gave up after 24 h"), std::nullopt, false});
  }
  if (job.model_status == store::kModelRegistering) return look_up_before_create(job);
  poll(job);
}

upload::ApiRequest::Query ModelRegistrar::project_query(const store::Job& job) const {
  upload::ApiRequest::Query query;
  if (job.project_id) query.emplace_back("ai_project_id", *job.project_id);
  return query;
}

std::string ModelRegistrar::model_path(const store::Job& job) {
  return "/v0/models/" + boost::urls::encode(model_name(job), boost::urls::unreserved_chars);
}

// A request whose answer was lost may have made the model already: the name is looked up first.
void ModelRegistrar::look_up_before_create(const store::Job& job) {
  pool_.request(
      upload::ApiRequest::get(model_path(job), project_query(job)), [this, job](const upload::ApiAnswer& answer) {
        if (stopped_) return;
        if (answer.ok()) {
          const auto model = upload::parse_custom_model(answer.exchange.body);
          if (model && model->source == job.file_id) {
            spdlog::info("job {}: model {} was already made from {}; adopted", job.id, model_name(job), *job.file_id);
            return record_model(job, answer);
          }
          return create(job);  // the name is someone else's: the API says so, in its words
        }
        if (answer.status() == 404) return create(job);
        defer(job, answer);
      });
}

void ModelRegistrar::create(const store::Job& job) {
  boost::json::object body{{"name", job.model->name},
                           {"base_model", job.model->base_model},
                           {"source", *job.file_id},
                           {"description", nullptr}};
  if (job.model->description) body["description"] = *job.model->description;
  pool_.request(upload::ApiRequest::post("/v0/models", std::move(body), project_query(job)),
                [this, job](const upload::ApiAnswer& answer) {
                  if (stopped_) return;
                  if (answer.ok()) {
                    spdlog::info("job {}: model {} created from {} (base {})", job.id, model_name(job), *job.file_id,
                                 job.model->base_model);
                    return record_model(job, answer);
                  }
                  if (answer.status() == 409) return confirm_conflict(job, answer.reason);
                  defer(job, answer);
                });
}

// 409: the name is taken. By this very file (our own earlier request), or by another model.
void ModelRegistrar::confirm_conflict(const store::Job& job, std::string conflict) {
  pool_.request(upload::ApiRequest::get(model_path(job), project_query(job)),
                [this, job, conflict = std::move(conflict)](const upload::ApiAnswer& answer) {
                  if (stopped_) return;
                  if (answer.ok()) {
                    const auto model = upload::parse_custom_model(answer.exchange.body);
                    if (model && model->source == job.file_id) return record_model(job, answer);
                  }
                  if (answer.ok() || answer.status() == 404) {
                    spdlog::error("job {}: model {} not registered: {}", job.id, model_name(job), conflict);
                    return finish_step(job, {"error", conflict, std::nullopt, true});
                  }
                  defer(job, answer);
                });
}

void ModelRegistrar::poll(const store::Job& job) {
  pool_.request(upload::ApiRequest::get(model_path(job), project_query(job)),
                [this, job](const upload::ApiAnswer& answer) {
                  if (stopped_) return;
                  if (answer.ok()) return record_model(job, answer);
                  if (answer.status() == 404) {
                    spdlog::error("job {}: model {} is gone ({})", job.id, model_name(job), answer.reason);
                    return finish_step(job, {"error", "the model is gone (" + answer.reason + ")", std::nullopt, true});
                  }
                  defer(job, answer);
                });
}

void ModelRegistrar::record_model(const store::Job& job, const upload::ApiAnswer& answer) {
  const WallTime now = clock_.now();
  const auto model = upload::parse_custom_model(answer.exchange.body);
  if (!model) {
    // A 2xx in JSON that is not a model: another look will tell.
    const WallTime next = now + next_model_look_delay(started_of(job, now), now);
    return finish_step(job, {std::string(store::kModelValidating),
                             "HTTP " + std::to_string(answer.status().value_or(0)) + ": not a model", next, false});
  }
  auto update = model_update_from(*model, started_of(job, now), now);
  if (update.status == "active") {
    spdlog::info("job {}: model {} is active", job.id, model_name(job));
  } else if (!update.next_check_at) {
    spdlog::error("job {}: model {} is {}: {}", job.id, model_name(job), update.status, update.reason.value_or(""));
  }
  finish_step(job, std::move(update));
}

// The API did not answer about the model: retried like an upload, held on 401/403, ended on a
// refusal that another try cannot change.
void ModelRegistrar::defer(const store::Job& job, const upload::ApiAnswer& answer) {
  const WallTime now = clock_.now();
  const std::string status = job.model_status.value_or(std::string(store::kModelRegistering));
  switch (answer.verdict) {
    case upload::Verdict::failed:
      spdlog::error("job {}: model {} not registered: {}", job.id, model_name(job), answer.reason);
      return finish_step(job, {"error", answer.reason, std::nullopt, answer.status().has_value()});
    case upload::Verdict::hold_auth:
      if (!auth_held_until_) {
        spdlog::warn("model registration held: {} (waiting for a new API token, or 5 minutes)", answer.reason);
      }
      auth_held_until_ = now + kAuthHold;
      return finish_step(job, {status, answer.reason + " (waiting for a new API token)", *auth_held_until_, false});
    case upload::Verdict::cancelled:
      in_flight_.erase(job.id);
      return;
    default: {
      const Duration wait =
          std::max(answer.server_delay.value_or(Duration{0}), next_model_look_delay(started_of(job, now), now));
      spdlog::info("job {}: model {}: {}; trying again in {}", job.id, model_name(job), answer.reason,
                   format_duration(std::chrono::ceil<std::chrono::seconds>(wait)));
      return finish_step(job, {status, answer.reason, now + wait, false});
    }
  }
}

void ModelRegistrar::finish_step(const store::Job& job, store::ModelUpdate update) {
  store_.call([id = job.id, update = std::move(update),
               now = clock_.now()](store::JobStore& s) { return s.record_model_status(id, update, now); },
              [this, id = job.id](Result<std::optional<store::Job>> recorded) {
                in_flight_.erase(id);
                if (!recorded) {
                  // The step is taken again later (it is still due): not at once, the store is struggling.
                  spdlog::error("store: job {}: cannot record its model's status: {}", id, recorded.error().message);
                  timer_.expires_after(kStoreErrorPause);
                  timer_.async_wait([this](boost::system::error_code ec) {
                    if (!ec) look();
                  });
                  return;
                }
                look();
              });
}

}  // namespace modeldrop::app
