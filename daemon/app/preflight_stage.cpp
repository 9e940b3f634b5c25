#include "app/preflight_stage.hpp"

#include "app/job_source.hpp"
#include "app/upload_scheduler.hpp"
#include "preflight/archive_check.hpp"
#include "upload/source_file.hpp"

#include <spdlog/spdlog.h>

namespace modeldrop::app {
namespace {

namespace asio = boost::asio;
constexpr std::size_t kBatch = 64;
// Files read at once before their claim; each read is one thread, mostly waiting for the disk.
constexpr std::size_t kParallelReads = 2;

}  // namespace

PreflightStage::PreflightStage(asio::io_context& io, StoreClient& store, const Clock& clock, config::Config config,
                               ContentCheckFor check_for, DisposeOfJobFile dispose, std::function<void()> claimable)
    : io_(io),
      store_(store),
      clock_(clock),
      config_(std::move(config)),
      check_for_(std::move(check_for)),
      dispose_(std::move(dispose)),
      claimable_(std::move(claimable)) {}

PreflightStage::~PreflightStage() {
  stop();
}

void PreflightStage::stop() {
  stopped_ = true;
  queue_.clear();
  reading_.clear();  // each feed stops its reader and waits for it
}

void PreflightStage::reconfigure(config::Config config) {
  config_ = std::move(config);
  sweep();
}

upload::ContentCheck PreflightStage::check_for(const store::Job& job) const {
  if (const auto it = passed_.find(job.id); it != passed_.end() && it->second == job.file) return {};
  return check_for_ ? check_for_(job, config_) : upload::ContentCheck{};
}

void PreflightStage::sweep() {
  if (stopped_ || !config_.upload.dedupe) return;
  if (sweeping_) {
    sweep_again_ = true;
    return;
  }
  sweeping_ = true;
  sweep_again_ = false;
  const auto add_project = config_.api.project_id;
  const WallTime now = clock_.now();
  store_.call(
      [add_project, now](store::JobStore& s) -> Result<std::vector<store::Job>> {
        // `modeldrop add` without --project sends api.project_id: dedupe must compare with that.
        auto unassigned = s.pending_without_sha256(kBatch);
        if (!unassigned) return unassigned.error();
        for (auto& job : *unassigned) {
          if (!job.project_id && !job.watch_dir && add_project) {
            if (auto r = s.set_project_id(job.id, *add_project, now); !r) return r.error();
          }
        }
        return s.pending_to_hash_first(kBatch);
      },
      [this](Result<std::vector<store::Job>> jobs) {
        sweeping_ = false;
        if (!jobs) {
          spdlog::warn("store: cannot list jobs to hash: {}", jobs.error().message);
          return;
        }
        for (auto& job : *jobs) {
          if (known_.insert(job.id).second) queue_.push_back(std::move(job));
        }
        start_next();
        if (sweep_again_) sweep();
      });
}

void PreflightStage::start_next() {
  while (!stopped_ && reading_.size() < kParallelReads && !queue_.empty()) {
    store::Job job = std::move(queue_.front());
    queue_.pop_front();
    auto file = upload::SourceFile::open(source_path(job), upload_identity(job.file));
    if (!file) {
      on_file_problem(job, file.error());
      continue;
    }
    auto options =
        hash_only_feed(io_, check_for(job), [this, job](const upload::FeedOutcome& outcome) { on_read(job, outcome); });
    reading_.emplace(job.id, std::make_unique<upload::BodyFeed>(std::move(*file), std::move(options)));
  }
}

void PreflightStage::on_read(const store::Job& job, const upload::FeedOutcome& outcome) {
  if (stopped_) return;
  const bool checked = reading_.count(job.id) != 0 && check_for(job) != nullptr;
  reading_.erase(job.id);
  if (outcome.file_problem) {
    on_file_problem(job, *outcome.file_problem);
  } else if (outcome.refusal) {
    spdlog::error("job {}: {} failed: {}", job.id, job.path.filename().string(), *outcome.refusal);
    store_.call([id = job.id, reason = *outcome.refusal,
                 now = clock_.now()](store::JobStore& s) { return s.fail(id, reason, now); },
                [this, id = job.id](Result<store::Job> failed) {
                  known_.erase(id);
                  if (failed) dispose_(*failed);
                });
  } else {
    if (checked) passed_[job.id] = job.file;
    record(job, *outcome.sha256);
  }
  start_next();
}

void PreflightStage::on_file_problem(const store::Job& job, const upload::FileProblem& problem) {
  const WallTime now = clock_.now();
  using upload::AttemptError;
  known_.erase(job.id);
  if (problem.error == AttemptError::file_missing) {
    spdlog::warn("job {}: source removed before its upload", job.id);
    store_.run([id = job.id, now](store::JobStore& s) {
      if (auto r = s.mark_source_removed(id, now); !r) {
        spdlog::error("store: job {}: cannot record that its source was removed: {}", id, r.error().message);
      }
    });
  } else if (problem.error == AttemptError::file_unreadable || problem.error == AttemptError::file_not_regular) {
    spdlog::error("job {}: {} failed: {}", job.id, job.path.filename().string(), problem.message);
    store_.call([id = job.id, reason = problem.message, now](store::JobStore& s) { return s.fail(id, reason, now); },
                [this](Result<store::Job> failed) {
                  if (failed) dispose_(*failed);
                });
  } else {
    // Changed or replaced: the watcher reports it again once it settles, and that update
    // brings it back here.
    spdlog::info("job {}: file changed while hashing: {}", job.id, problem.message);
  }
}

void PreflightStage::record(const store::Job& job, std::string sha256) {
  const WallTime now = clock_.now();
  store_.call(
      [job, sha256, now](store::JobStore& s) -> Result<std::optional<store::Job>> {
        auto stored = s.set_sha256(job.id, sha256, job.file, now);
        if (!stored) return stored.error();
        if (!*stored) return std::optional<store::Job>{};  // the file changed meanwhile
        auto current = s.find_job(job.id);
        if (!current) return current.error();
        if (!*current || (*current)->state != store::JobState::pending) return std::optional<store::Job>{};
        auto original = s.find_succeeded_by_sha256(sha256, (*current)->project_id, (*current)->token_file);
        if (!original) return original.error();
        if (!*original || (*original)->id == job.id) return std::optional<store::Job>{};
        auto duplicate = s.complete_as_duplicate(job.id, (*original)->id, now);
        if (!duplicate) return duplicate.error();
        return std::optional<store::Job>{std::move(*duplicate)};
      },
      [this, id = job.id](Result<std::optional<store::Job>> duplicate) {
        known_.erase(id);
        // A batch is done: more jobs may be waiting for their hash beyond it.
        if (queue_.empty() && reading_.empty()) sweep();
        if (!duplicate) {
          spdlog::warn("store: job {}: cannot record its hash: {}", id, duplicate.error().message);
        } else if (*duplicate) {
          spdlog::info("job {}: same content already uploaded to this project as {}; not sent again", id,
                       (*duplicate)->file_id.value_or("?"));
          dispose_(**duplicate);
        }
        claimable_();
      });
}

void PreflightStage::hashed_in_flight(const store::Job& job, const std::string& sha256) {
  store_.call([id = job.id, file = job.file, sha256,
               now = clock_.now()](store::JobStore& s) { return s.set_sha256(id, sha256, file, now); },
              [this, id = job.id](Result<bool> stored) {
                if (!stored) spdlog::warn("store: job {}: cannot record its hash: {}", id, stored.error().message);
                // Jobs of the same size waited for this hash to tell whether they are duplicates.
                claimable_();
              });
}

void PreflightStage::job_finished(const store::Job& job, const std::optional<std::vector<store::Job>>& completed) {
  if (stopped_) return;
  if (job.state == store::JobState::succeeded) passed_.erase(job.id);
  if (completed) {
    dispose_duplicates(job.id, *completed);
  } else if (job.state == store::JobState::succeeded && job.sha256 && config_.upload.dedupe) {
    complete_duplicates_of(job.id);
  }
  // Only a job back in the queue can need its hash first now (a retry whose attempt stopped
  // before it read the whole file, with a same-size job around). Any other end makes no pending
  // job newly need one: each had that need from its sibling's start, and the sweeps on new jobs
  // and after each batch found it. (A sweep per job end cost a store round trip per archive.)
  if (job.state == store::JobState::pending) sweep();
}

void PreflightStage::complete_duplicates_of(store::JobId succeeded) {
  store_.call([succeeded, now = clock_.now()](store::JobStore& s) { return s.complete_duplicates_of(succeeded, now); },
              [this, succeeded](Result<std::vector<store::Job>> completed) {
                if (!completed) {
                  spdlog::warn("store: cannot complete the duplicates of job {}: {}", succeeded,
                               completed.error().message);
                  return;
                }
                dispose_duplicates(succeeded, *completed);
              });
}

void PreflightStage::dispose_duplicates(store::JobId succeeded, const std::vector<store::Job>& completed) {
  for (const auto& job : completed) {
    spdlog::info("job {}: same content as job {}, uploaded meanwhile as {}; not sent", job.id, succeeded,
                 job.file_id.value_or("?"));
    dispose_(job);
  }
  if (!completed.empty()) claimable_();
}

upload::ContentCheck content_check_for(const store::Job& job, const config::Config&) {
  using preflight::ArchiveKind;
  using preflight::ArchiveValidation;
  const ArchiveValidation validation = job.validate;
  if (validation == ArchiveValidation::none) return {};
  // The kind comes from the name the archive was dropped under (the name the server gets).
  const ArchiveKind kind = preflight::archive_kind_of(job.path.filename().string());
  if (kind == ArchiveKind::not_an_archive && validation == ArchiveValidation::archive) return {};  // sent unchecked
  return [validation, kind](const upload::ReadNext& next) -> std::optional<std::string> {
    const preflight::ReadNext read = [&next](std::span<std::byte> into) -> Result<std::size_t> {
      if (auto n = next(into)) return *n;
      return make_error("the file could not be read");  // the feed records the file's own problem
    };
    auto verdict = preflight::check_archive(validation, kind, read);
    if (!verdict || verdict->passed()) return std::nullopt;
    return "archive check: " + *verdict->problem;
  };
}

DisposeOfJobFile publish_then_dispose(JobEvents& events, DisposeOfJobFile dispose) {
  return [&events, dispose = std::move(dispose)](const store::Job& job) {
    events.publish(JobFinished{job, job.state == store::JobState::succeeded});
    dispose(job);
  };
}

void wire_preflight(UploadScheduler& scheduler, PreflightStage& stage) {
  scheduler.set_preflight({
      [&stage](const store::Job& job) { return stage.check_for(job); },
      [&stage](const store::Job& job, const std::string& sha256) { stage.hashed_in_flight(job, sha256); },
      [&stage](const store::Job& job, const std::optional<std::vector<store::Job>>& completed) {
        stage.job_finished(job, completed);
      },
  });
}

}  // namespace modeldrop::app
