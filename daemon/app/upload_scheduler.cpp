#include "app/upload_scheduler.hpp"

#include "app/job_file_actions.hpp"
#include "app/job_source.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>

namespace modeldrop::app {
namespace {

using namespace std::chrono_literals;
namespace asio = boost::asio;
using store::AttemptOutcome;
using store::JobState;
using upload::Verdict;

constexpr auto kRateWindow = 5s;
constexpr auto kStoreErrorPause = 1s;
// At most one line per this interval about retried attempts (issue #9: an hour-long outage
// must not write one line per job per retry); the rest go to debug and are counted.
constexpr auto kRetryLogInterval = 1min;

// The server may have stored the file although no usable answer was recorded: the whole body
// went out and then came no definite answer (a reset, a timeout, a 2xx without an OpenAIFile, or
// shutdown). Not for a changed or removed file: its copy is not the job's content.
bool left_in_doubt(const upload::UploadResult& result, Verdict verdict) {
  if (!result.body_complete || verdict == Verdict::succeeded || verdict == Verdict::file_changed ||
      verdict == Verdict::source_removed) {
    return false;
  }
  return !result.http_status || *result.http_status / 100 == 2;
}

}  // namespace

UploadScheduler::UploadScheduler(asio::io_context& io, StoreClient& store, upload::UploadPool& pool, const Clock& clock,
                                 JobEvents& events, Settings settings, std::uint64_t seed)
    : io_(io),
      store_(store),
      pool_(pool),
      clock_(clock),
      events_(events),
      settings_(std::move(settings)),
      policy_(settings_.config.retry, seed),
      reconciler_(io, store, pool, clock),
      wakeup_(io) {}

void UploadScheduler::start() {
  // The pause outlives restarts: learn it before the first claim.
  store_.call([](store::JobStore& s) { return s.is_paused(); },
              [this](Result<bool> paused) {
                if (paused) holds_.set_paused(*paused);
                dispatch();
              });
}

void UploadScheduler::wake() {
  if (!stopping_) asio::post(io_, [this] { dispatch(); });
}

void UploadScheduler::token_changed(const TokenKey& token) {
  if (holds_.auth_held(token)) {
    const auto who = tokens_ != nullptr ? tokens_->label(token) : std::string();
    spdlog::info("API token{} changed: {}uploads resume", who.empty() ? "" : " for " + who, who.empty() ? "" : "its ");
  }
  holds_.token_changed(token);
  wake();
}

void UploadScheduler::token_unusable(const TokenKey& token, const std::string& why) {
  label(token);
  holds_.token_unusable(token, why);
  wake();
}

void UploadScheduler::label(const TokenKey& token) {
  holds_.label_token(token, tokens_ != nullptr ? tokens_->label(token) : std::string());
}

void UploadScheduler::reconfigure(Settings settings) {
  settings_ = std::move(settings);
  policy_.reconfigure(settings_.config.retry);
  // The watches (and so who uses each token) may have changed: held_reason names them anew.
  for (const auto& token : holds_.held_tokens(clock_.now())) label(token);
  wake();
}

void UploadScheduler::external_change() {
  std::vector<store::JobId> ids;
  ids.reserve(in_flight_.size());
  for (const auto& [id, flight] : in_flight_) ids.push_back(id);
  store_.call(
      [ids](store::JobStore& s) -> Result<std::pair<bool, std::vector<store::JobId>>> {
        auto paused = s.is_paused();
        if (!paused) return paused.error();
        auto cancelled = s.cancelled_among(ids);
        if (!cancelled) return cancelled.error();
        return std::pair{*paused, std::move(*cancelled)};
      },
      [this](Result<std::pair<bool, std::vector<store::JobId>>> result) {
        if (!result) {
          spdlog::warn("store: cannot read changes made by modeldrop: {}", result.error().message);
          return;
        }
        const auto& [paused, cancelled] = *result;
        if (paused != holds_.paused()) spdlog::info(paused ? "uploads paused" : "uploads resumed");
        holds_.set_paused(paused);
        for (store::JobId id : cancelled) {
          if (pool_.cancel(id)) spdlog::info("job {}: cancelled while uploading; aborting the upload", id);
        }
        dispatch();
      });
}

void UploadScheduler::stop(std::function<void()> done) {
  stopping_ = true;
  stopped_ = std::move(done);
  wakeup_.cancel();
  pool_.cancel_all();
  finish_stop_if_idle();
}

void UploadScheduler::finish_stop_if_idle() {
  if (stopping_ && in_flight_.empty() && claims_out_ == 0 && stopped_) {
    auto done = std::move(stopped_);
    stopped_ = nullptr;
    done();
  }
}

UploadScheduler::Snapshot UploadScheduler::snapshot() const {
  Snapshot s;
  s.uploading = in_flight_.size();
  const auto now = std::chrono::steady_clock::now();
  std::uint64_t bytes = 0;
  for (const auto& [when, delta] : progress_window_) {
    if (now - when <= kRateWindow) bytes += delta;
  }
  s.rate_bytes_per_s = static_cast<double>(bytes) / std::chrono::duration<double>(kRateWindow).count();
  s.held_reason = holds_.reason(clock_.now());
  s.holds = holds_.active(clock_.now());
  return s;
}

void UploadScheduler::note_progress(std::uint64_t delta) {
  const auto now = std::chrono::steady_clock::now();
  progress_window_.emplace_back(now, delta);
  while (!progress_window_.empty() && now - progress_window_.front().first > kRateWindow) {
    progress_window_.pop_front();
  }
}

void UploadScheduler::dispatch() {
  if (stopping_) return;
  const WallTime now = clock_.now();
  const auto reason = holds_.reason(now);
  if (reason != published_reason_) {
    published_reason_ = reason;
    // held_reason is written when a hold starts and cleared when it ends (docs/http.md).
    store_.run([reason](store::JobStore& s) {
      if (auto r = s.set_held_reason(reason); !r)
        spdlog::warn("store: cannot record held_reason: {}", r.error().message);
    });
    if (reason) {
      spdlog::warn("uploads held: {}", *reason);
    } else {
      spdlog::info("uploads no longer held");
    }
  }
  maybe_probe();
  if (holds_.paused()) {
    arm_wakeup(holds_.next_change(now));
    return;
  }
  const std::size_t taken = reconciling_ + claims_out_;
  const std::size_t free = pool_.free_sessions() - std::min(pool_.free_sessions(), taken);
  if (free == 0) return;  // an upload's end calls dispatch again
  // A held token's jobs wait; the others' are claimed as usual (schedule_next_due also wakes up
  // when a hold may end by itself).
  claim(free, holds_.held_tokens(now));
}

void UploadScheduler::claim(std::size_t count, std::vector<TokenKey> held) {
  claims_out_ += count;
  const WallTime now = clock_.now();
  const bool require_sha256 = settings_.config.upload.dedupe;
  const auto add_project = settings_.config.api.project_id;
  store_.call(
      [count, now, require_sha256, add_project,
       held = std::move(held)](store::JobStore& s) -> Result<std::vector<Claimed>> {
        std::vector<Claimed> claimed;
        for (std::size_t i = 0; i < count; ++i) {
          auto job = require_sha256 ? s.claim_next_unique(now, held) : s.claim_next(now, false, held);
          if (!job) return job.error();
          if (!*job) break;
          // `modeldrop add` without --project sends api.project_id and records it (docs/cli.md).
          if (!(*job)->project_id && !(*job)->watch_dir && add_project) {
            if (auto r = s.set_project_id((*job)->id, *add_project, now); !r) return r.error();
            (*job)->project_id = add_project;
          }
          auto attempt = s.begin_attempt((*job)->id, now);
          if (!attempt) return attempt.error();
          // Read here, in the claim's own visit to the store thread: a job with nothing in
          // doubt (nearly all) then starts without another round trip.
          auto since = s.in_doubt_since((*job)->id);
          if (!since) return since.error();
          claimed.push_back(Claimed{std::move(**job), *attempt, *since});
        }
        return claimed;
      },
      [this, count](Result<std::vector<Claimed>> claimed) { on_claimed(count, std::move(claimed)); });
}

void UploadScheduler::on_claimed(std::size_t asked, Result<std::vector<Claimed>> claimed) {
  claims_out_ -= asked;
  if (!claimed) {
    spdlog::warn("store: cannot claim the next job: {} (trying again shortly)", claimed.error().message);
    arm_wakeup(clock_.now() + kStoreErrorPause);
    return;
  }
  const bool got_any = !claimed->empty();
  for (auto& one : *claimed) {
    if (stopping_) {
      // Claimed while the stop began: give it back untouched.
      store_.run([id = one.job.id, now = clock_.now()](store::JobStore& s) {
        if (auto r = s.release_claim(id, std::nullopt, now); !r) {
          spdlog::error("store: job {}: cannot give back its claim: {}", id, r.error().message);
        }
      });
      continue;
    }
    start_upload(std::move(one));
  }
  if (stopping_) {
    finish_stop_if_idle();
    return;
  }
  if (got_any) {
    dispatch();
  } else {
    schedule_next_due();
  }
}

void UploadScheduler::schedule_next_due() {
  const WallTime now = clock_.now();
  const bool require_sha256 = settings_.config.upload.dedupe;
  struct Outlook {
    std::optional<WallTime> due;
    std::vector<TokenKey> held_in_use;
  };
  auto held = holds_.held_tokens(now);
  store_.call(
      [now, require_sha256, held](store::JobStore& s) -> Result<Outlook> {
        auto due = require_sha256 ? s.next_due_at_unique(now, held) : s.next_due_at(now, false, held);
        if (!due) return due.error();
        auto in_use = held.empty() ? Result<std::vector<TokenKey>>() : s.tokens_in_use(held);
        if (!in_use) return in_use.error();
        return Outlook{*due, std::move(*in_use)};
      },
      [this, held](Result<Outlook> outlook) {
        if (!outlook) {
          arm_wakeup(clock_.now() + kStoreErrorPause);
          return;
        }
        // A hold on a token file that no watch names and no job uses any more (its watch has
        // another token_file now, its `modeldrop add` jobs were cancelled) holds nothing: it is
        // forgotten, and held_reason no longer names it.
        bool forgot = false;
        for (const auto& token : held) {
          const auto& in_use = outlook->held_in_use;
          const auto& watches = settings_.config.watch;
          if (!token || std::find(in_use.begin(), in_use.end(), token) != in_use.end() ||
              std::any_of(watches.begin(), watches.end(), [&](const auto& w) { return w.token_file == token; })) {
            continue;
          }
          holds_.forget(token);
          forgot = true;
        }
        if (forgot) return dispatch();
        // The held tokens' jobs are not counted as due: the end of their hold is.
        auto next = outlook->due;
        if (const auto hold_ends = holds_.next_change(clock_.now()); hold_ends && (!next || *hold_ends < *next)) {
          next = hold_ends;
        }
        arm_wakeup(next);
      });
}

void UploadScheduler::arm_wakeup(std::optional<WallTime> at) {
  if (!at || stopping_) return;
  const auto delay = std::max<std::chrono::nanoseconds>(*at - clock_.now(), 0ns);
  // A timer further out than a free session's next check would be is pointless to shorten.
  wakeup_.expires_after(std::min<std::chrono::nanoseconds>(delay, 1h) + 1ms);
  wakeup_.async_wait([this](boost::system::error_code ec) {
    if (!ec) dispatch();
  });
}

void UploadScheduler::start_upload(Claimed claimed) {
  store::Job& job = claimed.job;
  const int attempt = claimed.attempt;
  const store::JobId id = job.id;
  // A job's first try is news; its retries are counted in the retry summary instead, so an
  // outage does not write one line per job per retry.
  spdlog::log(job.attempts == 0 ? spdlog::level::info : spdlog::level::debug,
              "job {}: uploading {} ({} bytes, attempt {})", id, source_path(job).string(), job.size_bytes, attempt);
  auto& flight = in_flight_.emplace(id, InFlight{std::move(job), attempt, 0, clock_.now(), std::nullopt}).first->second;
  if (tokens_ != nullptr) {
    auto token = tokens_->token_for(flight.job.token_file);
    if (!token) {
      // Its token file cannot be used (it broke since the claim, or a file `modeldrop add` named is
      // read for the first time): a held attempt, and the token's jobs wait for a usable file.
      token_unusable(flight.job.token_file, token.error().message);
      upload::UploadResult unsent;
      unsent.error = upload::AttemptError::invalid_request;
      unsent.error_message = token.error().message;
      upload::Decision held;
      held.verdict = Verdict::hold_auth;
      held.reason = "no usable API token: " + token.error().message;
      InFlight given_back = std::move(flight);
      in_flight_.erase(id);
      record(given_back, unsent, held);
      return;  // on_claimed looks for more work once every claimed job has started
    }
    flight.token = std::move(*token);
  }
  if (!claimed.in_doubt_since) return send_upload(id);
  ++reconciling_;
  reconciler_.before_sending(flight.job, *claimed.in_doubt_since, flight.token,
                             [this, id](std::optional<store::Job> adopted) { on_reconciled(id, std::move(adopted)); });
}

// An earlier attempt in doubt may have left the file on the server: adopted, the job is done
// without sending; otherwise (or with nothing in doubt) it is sent.
void UploadScheduler::on_reconciled(store::JobId id, std::optional<store::Job> adopted) {
  --reconciling_;
  auto it = in_flight_.find(id);
  if (it == in_flight_.end()) return;
  if (adopted) {
    const auto elapsed = std::max<std::chrono::nanoseconds>(clock_.now() - it->second.started, 0ns);
    AttemptFinished event{{}, it->second.attempt, AttemptOutcome::reconciled, std::nullopt, 0, elapsed};
    const TokenKey token = it->second.job.token_file;
    in_flight_.erase(it);
    holds_.upload_succeeded(token);
    after_finish(*adopted, std::move(event));
    finish_stop_if_idle();
    dispatch();
    return;
  }
  if (stopping_) {
    upload::UploadResult stopped;
    stopped.error = upload::AttemptError::cancelled;
    stopped.error_message = "cancelled";
    return on_upload_done(id, std::move(stopped));
  }
  send_upload(id);
}

void UploadScheduler::send_upload(store::JobId id) {
  const store::Job& job = in_flight_.at(id).job;
  upload::UploadRequest request;
  request.job_id = job.id;
  request.path = source_path(job);
  request.filename = job.path.filename().string();
  request.project_id = job.project_id;
  request.expected = upload_identity(job.file);
  request.compute_sha256 = !job.sha256.has_value();
  request.token = in_flight_.at(id).token;
  add_preflight(request, job);
  pool_.start(
      std::move(request),
      [this, id](std::uint64_t bytes_sent) {
        auto it = in_flight_.find(id);
        if (it == in_flight_.end()) return;
        if (bytes_sent > it->second.bytes_reported) note_progress(bytes_sent - it->second.bytes_reported);
        it->second.bytes_reported = bytes_sent;
        store_.run([id, bytes_sent, now = clock_.now()](store::JobStore& s) {
          if (auto r = s.record_progress(id, bytes_sent, now); !r) {
            spdlog::warn("store: job {}: cannot record its progress: {}", id, r.error().message);
          }
        });
      },
      [this, id](upload::UploadResult result) { on_upload_done(id, std::move(result)); });
}

void UploadScheduler::add_preflight(upload::UploadRequest& request, const store::Job& job) {
  if (preflight_.check_for) request.check = preflight_.check_for(job);
  if (preflight_.hashed && request.compute_sha256) {
    request.hashed = [hashed = preflight_.hashed, job](const std::string& sha256) { hashed(job, sha256); };
  }
}

void UploadScheduler::on_upload_done(store::JobId id, upload::UploadResult result) {
  auto it = in_flight_.find(id);
  if (it == in_flight_.end()) return;
  InFlight flight = std::move(it->second);
  in_flight_.erase(it);
  if (result.bytes_sent > flight.bytes_reported) note_progress(result.bytes_sent - flight.bytes_reported);

  const WallTime now = clock_.now();
  const auto* watch = watch_of(flight.job, settings_.config);
  const TokenKey& token = flight.job.token_file;
  upload::JobBudget budget{static_cast<int>(flight.job.attempts), flight.job.budget_started_at,
                           watch != nullptr ? watch->settle : Duration{0}, holds_.consecutive_rate_limits(token)};
  upload::Decision decision = policy_.decide(result, budget, now);
  for (const auto& warning : decision.warnings) spdlog::warn("job {}: {}", id, warning);

  switch (decision.verdict) {
    case Verdict::succeeded:
      holds_.upload_succeeded(token);
      if (retry_log_.held_back > 0) {
        // The end of a run of failures: what the rate limit held back is told once, here.
        spdlog::warn("{} failed attempt{} not logged since {} (see `modeldrop show` for each job's history)",
                     retry_log_.held_back, retry_log_.held_back == 1 ? "" : "s",
                     format_timestamp(*retry_log_.last_logged));
        retry_log_.held_back = 0;
      }
      spdlog::info("job {}: {} uploaded as {}", id, flight.job.path.filename().string(), decision.file->id);
      break;
    case Verdict::retry:
      log_retry(id, flight.attempt, decision, now);
      break;
    case Verdict::failed:
      spdlog::error("job {}: {} failed: {}", id, flight.job.path.filename().string(), decision.reason);
      break;
    case Verdict::hold_auth:
      label(token);
      holds_.hold_for_auth(now, decision.reason, token);
      break;
    case Verdict::hold_rate_limit:
      label(token);
      holds_.hold_for_rate_limit(*decision.hold_until, decision.reason, token);
      break;
    case Verdict::file_changed:
      spdlog::info("job {}: {}; waiting for it to settle", id, decision.reason);
      break;
    case Verdict::source_removed:
      spdlog::warn("job {}: source removed before its upload succeeded", id);
      break;
    case Verdict::cancelled:
      break;
  }
  record(flight, result, decision);
  finish_stop_if_idle();
  dispatch();
}

void UploadScheduler::log_retry(store::JobId id, int attempt, const upload::Decision& decision, WallTime now) {
  const std::string line = fmt::format("job {}: attempt {} failed, retrying at {}: {}", id, attempt,
                                       format_timestamp(*decision.next_attempt_at), decision.reason);
  if (retry_log_.last_logged && now - *retry_log_.last_logged < kRetryLogInterval) {
    ++retry_log_.held_back;
    spdlog::debug("{}", line);
    return;
  }
  if (retry_log_.held_back > 0) {
    spdlog::warn("{} ({} more failed attempt{} not logged since {})", line, retry_log_.held_back,
                 retry_log_.held_back == 1 ? "" : "s", format_timestamp(*retry_log_.last_logged));
  } else {
    spdlog::warn("{}", line);
  }
  retry_log_ = {now, 0};
}

void UploadScheduler::record(const InFlight& flight, const upload::UploadResult& result,
                             const upload::Decision& decision) {
  store::AttemptReport report;
  report.job = flight.job.id;
  report.http_status = result.http_status;
  report.bytes_sent = result.bytes_sent;
  report.counts_toward_attempts = decision.counts;
  report.sent_file = store_identity(result.file_after);
  report.in_doubt = left_in_doubt(result, decision.verdict);
  if (!decision.reason.empty()) {
    report.error = decision.reason;
    report.last_error = decision.reason;
  }
  bool source_removed = false;
  switch (decision.verdict) {
    case Verdict::succeeded:
      report.outcome = AttemptOutcome::succeeded;
      report.next_state = JobState::succeeded;
      report.file_id = decision.file->id;
      report.file_status = decision.file->status;
      report.file_status_details = decision.file->status_details;
      report.sent_file = flight.job.file;  // classify() accepted it: the file was unchanged
      break;
    case Verdict::retry:
      report.outcome = AttemptOutcome::retry;
      report.next_state = JobState::pending;
      report.next_attempt_at = decision.next_attempt_at;
      break;
    case Verdict::failed:
      report.outcome = AttemptOutcome::failed;
      report.next_state = JobState::failed;
      break;
    case Verdict::hold_auth:
    case Verdict::hold_rate_limit:
      report.outcome = AttemptOutcome::held;
      report.next_state = JobState::pending;
      report.next_attempt_at = decision.hold_until;
      break;
    case Verdict::file_changed:
    case Verdict::cancelled:
    case Verdict::source_removed:
      report.outcome = AttemptOutcome::aborted;
      report.next_state = JobState::pending;
      report.next_attempt_at = decision.next_attempt_at;
      report.last_error.reset();
      source_removed = decision.verdict == Verdict::source_removed;
      break;
  }
  const WallTime now = clock_.now();
  const auto sha256 = result.sha256;
  AttemptFinished event{{},
                        flight.attempt,
                        report.outcome,
                        result.http_status,
                        result.bytes_sent,
                        std::max<std::chrono::nanoseconds>(now - flight.started, std::chrono::nanoseconds{0})};
  struct Recorded {
    store::Job job;
    std::optional<std::vector<store::Job>> completed;  // the duplicates a success completed
  };
  const bool dedupe = settings_.config.upload.dedupe;
  store_.call(
      [report, now, sha256, source_removed, dedupe](store::JobStore& s) -> Result<Recorded> {
        if (sha256 && report.sent_file) {
          // false (not stored) is expected: the file changed after it was hashed.
          if (auto r = s.set_sha256(report.job, *sha256, *report.sent_file, now); !r) {
            spdlog::error("store: job {}: cannot record its hash: {}", report.job, r.error().message);
          }
        }
        auto job = s.finish_attempt(report, now);
        if (job && source_removed && job->state == JobState::pending) job = s.mark_source_removed(report.job, now);
        if (!job) return job.error();
        Recorded recorded{std::move(*job), std::nullopt};
        // The jobs that waited with a success's content complete from it in the same commit
        // (not in a second visit to the store thread per archive).
        if (dedupe && recorded.job.state == JobState::succeeded && recorded.job.sha256) {
          auto completed = s.complete_duplicates_of(recorded.job.id, now);
          if (completed) {
            recorded.completed = std::move(*completed);
          } else {
            spdlog::warn("store: cannot complete the duplicates of job {}: {}", recorded.job.id,
                         completed.error().message);
          }
        }
        return recorded;
      },
      [this, event = std::move(event)](Result<Recorded> recorded) mutable {
        if (!recorded) {
          spdlog::error("store: cannot record an attempt: {}", recorded.error().message);
          return;
        }
        after_finish(recorded->job, std::move(event), recorded->completed);
      });
}

void UploadScheduler::after_finish(const store::Job& job, AttemptFinished event,
                                   const std::optional<std::vector<store::Job>>& completed) {
  event.job = job;
  events_.publish(event);
  if (job.state == JobState::succeeded || job.state == JobState::failed) events_.publish(JobFinished{job, false});
  if (dispose_) dispose_(job);
  if (preflight_.finished) preflight_.finished(job, completed);
}

void UploadScheduler::maybe_probe() {
  for (const auto& token : holds_.probes_due(clock_.now())) probe(token);
}

// Five minutes into an auth hold, one cheap request with the held token decides (docs/http.md).
void UploadScheduler::probe(const TokenKey& token) {
  std::optional<std::string> secret;
  if (tokens_ != nullptr) {
    auto found = tokens_->token_for(token);
    if (!found) {
      token_unusable(token, found.error().message);
      return;
    }
    secret = std::move(*found);
  }
  holds_.probe_started(token);
  const auto who = tokens_ != nullptr ? tokens_->label(token) : std::string();
  const auto for_whom = who.empty() ? std::string() : " for " + who;
  spdlog::info("uploads{} held for 5 minutes by an auth failure: probing GET /v1/files?limit=1", for_whom);
  auto request = upload::ApiRequest::get("/v1/files", {{"limit", "1"}});
  request.token = std::move(secret);
  pool_.request(std::move(request), [this, token, for_whom](const upload::ApiAnswer& answer) {
    using Answer = UploadHolds::ProbeAnswer;
    Answer result = Answer::inconclusive;
    if (answer.ok()) {
      result = Answer::accepted;
      spdlog::info("probe accepted the token{}: uploads resume", for_whom);
    } else if (answer.verdict == upload::Verdict::hold_auth) {
      result = Answer::refused;
      spdlog::warn("probe{}: HTTP {} again; uploads stay held", for_whom, answer.status().value_or(0));
    } else {
      // The API down, a timeout: nothing against the token. The uploads try again; one refused
      // again starts a new hold.
      spdlog::info("probe{} inconclusive ({}): uploads resume", for_whom, answer.reason);
    }
    holds_.probe_finished(result, clock_.now(), token);
    dispatch();
  });
}

}  // namespace modeldrop::app
