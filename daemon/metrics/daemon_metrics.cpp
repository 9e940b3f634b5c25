#include "metrics/daemon_metrics.hpp"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>

#include <algorithm>
#include <array>
#include <map>
#include <sstream>

namespace modeldrop::metrics {
namespace {

using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;

constexpr std::array kAttemptOutcomes{store::AttemptOutcome::succeeded, store::AttemptOutcome::retry,
                                      store::AttemptOutcome::failed,    store::AttemptOutcome::held,
                                      store::AttemptOutcome::aborted,   store::AttemptOutcome::reconciled};
// Registration states modeldrop itself writes; the API's own words are added as they appear.
constexpr std::array<const char*, 4> kModelStatuses{"registering", "validating", "active", "error"};

// From a small archive on a fast link to a multi-gigabyte one on a slow link.
const Histogram::BucketBoundaries& duration_buckets() {
  static const Histogram::BucketBoundaries buckets{1,   2,    5,    10,   30,   60,    120,   300,
                                                   600, 1200, 1800, 3600, 7200, 14400, 28800, 86400};
  return buckets;
}

constexpr const char* kResponsesHelp = "Responses of the API per HTTP status code, uploads and other calls alike.";

template <class Builder>
auto& named(Builder builder, const char* name, const char* help, prometheus::Registry& registry) {
  return builder.Name(name).Help(help).Register(registry);
}

}  // namespace

struct DaemonMetrics::Families {
  prometheus::Registry registry;
  prometheus::Family<Gauge>& jobs =
      named(prometheus::BuildGauge(), "modeldrop_jobs", "Jobs in the database per state.", registry);
  Gauge& pending_bytes = named(prometheus::BuildGauge(), "modeldrop_pending_bytes",
                               "Bytes of the archives waiting in state pending.", registry)
                             .Add({});
  Counter& uploaded_bytes = named(prometheus::BuildCounter(), "modeldrop_uploaded_bytes_total",
                                  "File bytes of succeeded uploads since the daemon started.", registry)
                                .Add({});
  Counter& sent_bytes = named(prometheus::BuildCounter(), "modeldrop_sent_bytes_total",
                              "File bytes sent since the daemon started, retries included.", registry)
                            .Add({});
  prometheus::Family<Counter>& attempts = named(prometheus::BuildCounter(), "modeldrop_upload_attempts_total",
                                                "Finished upload attempts per outcome.", registry);
  prometheus::Family<Counter>& responses =
      named(prometheus::BuildCounter(), "modeldrop_http_responses_total", kResponsesHelp, registry);
  Histogram& duration = named(prometheus::BuildHistogram(), "modeldrop_upload_duration_seconds",
                              "Succeeded upload attempts, from their start to the answer.", registry)
                            .Add({}, duration_buckets());
  prometheus::Family<Gauge>& held =
      named(prometheus::BuildGauge(), "modeldrop_held", "1 while uploads are held for this reason, else 0.", registry);
  Gauge& oldest_pending = named(prometheus::BuildGauge(), "modeldrop_oldest_pending_seconds",
                                "Age of the oldest pending job in seconds (0 when none).", registry)
                              .Add({});
  prometheus::Family<Gauge>& models =
      named(prometheus::BuildGauge(), "modeldrop_models", "Registered models per status.", registry);
  prometheus::Family<Gauge>& build_info =
      named(prometheus::BuildGauge(), "modeldrop_build_info", "Always 1; the version is a label.", registry);
  std::map<std::string, Gauge*> model_gauges;
};

DaemonMetrics::DaemonMetrics(std::string_view version) : families_(std::make_unique<Families>()) {
  auto& f = *families_;
  // Every label value a query may ask for exists from the start, at 0.
  for (auto state : store::kAllJobStates) f.jobs.Add({{"state", std::string(store::to_string(state))}});
  for (auto outcome : kAttemptOutcomes) f.attempts.Add({{"outcome", std::string(store::to_string(outcome))}});
  for (const char* reason : {"auth", "rate_limit", "paused"}) f.held.Add({{"reason", reason}});
  for (const char* status : kModelStatuses) f.model_gauges[status] = &f.models.Add({{"status", status}});
  f.build_info.Add({{"version", std::string(version)}}).Set(1);
}

DaemonMetrics::~DaemonMetrics() = default;

void DaemonMetrics::attempt_finished(const AttemptSample& sample) {
  auto& f = *families_;
  f.attempts.Add({{"outcome", std::string(store::to_string(sample.outcome))}}).Increment();
  f.sent_bytes.Increment(static_cast<double>(sample.bytes_sent));
  if (sample.outcome == store::AttemptOutcome::succeeded) {
    f.uploaded_bytes.Increment(static_cast<double>(sample.file_bytes));
    f.duration.Observe(sample.elapsed.count());
  }
}

void DaemonMetrics::api_response(int status) {
  families_->responses.Add({{"code", std::to_string(status)}}).Increment();
}

void DaemonMetrics::set_database(const DatabaseGauges& gauges) {
  auto& f = *families_;
  for (std::size_t i = 0; i < store::kAllJobStates.size(); ++i) {
    f.jobs.Add({{"state", std::string(store::to_string(store::kAllJobStates[i]))}})
        .Set(static_cast<double>(gauges.jobs[i]));
  }
  f.pending_bytes.Set(static_cast<double>(gauges.pending_bytes));
  f.oldest_pending.Set(gauges.oldest_pending_seconds);
  // A status no job has any more stays listed, at 0, so its series ends at a value.
  for (auto& [status, gauge] : f.model_gauges) gauge->Set(0);
  for (const auto& [status, count] : gauges.models) {
    auto& gauge = f.model_gauges[status];
    if (gauge == nullptr) gauge = &f.models.Add({{"status", status}});
    gauge->Set(static_cast<double>(count));
  }
}

void DaemonMetrics::set_holds(const Holds& holds) {
  auto& f = *families_;
  f.held.Add({{"reason", "auth"}}).Set(holds.auth ? 1 : 0);
  f.held.Add({{"reason", "rate_limit"}}).Set(holds.rate_limit ? 1 : 0);
  f.held.Add({{"reason", "paused"}}).Set(holds.paused ? 1 : 0);
}

std::string DaemonMetrics::exposition() const {
  std::ostringstream out;
  const auto collected = families_->registry.Collect();
  prometheus::TextSerializer().Serialize(out, collected);
  // The client library leaves out a family without series; its header alone tells readers
  // the family exists before the first API response is counted.
  const bool responses_listed = std::any_of(collected.begin(), collected.end(), [](const auto& family) {
    return family.name == "modeldrop_http_responses_total";
  });
  if (!responses_listed) {
    out << "# HELP modeldrop_http_responses_total " << kResponsesHelp << "\n"
        << "# TYPE modeldrop_http_responses_total counter\n";
  }
  return out.str();
}

}  // namespace modeldrop::metrics
