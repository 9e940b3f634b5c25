#include "app/hash_stage.hpp"

#include "app/job_file_actions.hpp"
#include "upload/source_file.hpp"

#include <spdlog/spdlog.h>
#include <boost/asio/post.hpp>

#include <array>
#include <vector>

namespace modeldrop::app {
namespace {

namespace asio = boost::asio;
constexpr std::size_t kBatch = 64;

struct HashOutcome {
  std::optional<std::string> sha256;
  std::optional<upload::FileProblem> problem;
};

// One pass over the descriptor the transport would send from, checked unchanged afterwards.
HashOutcome hash_file(const store::Job& job) {
  const upload::FileIdentity expected{job.file.device, job.file.inode, job.file.size_bytes, job.file.mtime_ns};
  auto file = upload::SourceFile::open(job.current_path.value_or(job.path), expected);
  if (!file) return {std::nullopt, file.error()};
  upload::Sha256 digest;
  std::vector<std::byte> buffer(1 << 20);
  while (file->remaining() > 0) {
    auto n = file->read(buffer);
    if (!n) return {std::nullopt, n.error()};
    digest.update(std::span<const std::byte>(buffer.data(), *n));
  }
  upload::FileIdentity after;
  if (auto unchanged = file->check_unchanged(after); !unchanged) return {std::nullopt, unchanged.error()};
  return {digest.hex_digest(), std::nullopt};
}

}  // namespace

HashStage::HashStage(asio::io_context& io, StoreClient& store, const Clock& clock, JobEvents& events,
                     config::Config config, std::function<void()> hashed)
    : io_(io), store_(store), clock_(clock), events_(events), config_(std::move(config)), hashed_(std::move(hashed)) {}

HashStage::~HashStage() {
  stop();
}

void HashStage::stop() {
  stopped_ = true;
  workers_.stop();
  workers_.join();
}

void HashStage::reconfigure(config::Config config) {
  config_ = std::move(config);
  sweep();
}

void HashStage::sweep() {
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
        auto jobs = s.pending_without_sha256(kBatch);
        if (!jobs) return jobs;
        // `modeldrop add` without --project sends api.project_id: dedupe must compare with that.
        for (auto& job : *jobs) {
          if (!job.project_id && !job.watch_dir && add_project) {
            if (auto r = s.set_project_id(job.id, *add_project, now); !r) return r.error();
            job.project_id = add_project;
          }
        }
        return jobs;
      },
      [this](Result<std::vector<store::Job>> jobs) {
        if (!jobs) {
          spdlog::warn("store: cannot list jobs to hash: {}", jobs.error().message);
          sweeping_ = false;
          return;
        }
        batch_was_full_ = jobs->size() == kBatch;
        hashed_in_batch_ = 0;
        for (auto& job : *jobs) {
          if (in_progress_.insert(job.id).second) {
            ++outstanding_;
            hash(std::move(job));
          }
        }
        if (outstanding_ == 0) batch_done();
      });
}

void HashStage::hash(store::Job job) {
  asio::post(workers_, [this, job = std::move(job)]() mutable {
    HashOutcome outcome = hash_file(job);
    asio::post(io_, [this, job = std::move(job), outcome = std::move(outcome)]() mutable {
      if (stopped_) return;
      if (outcome.sha256) {
        record(job, std::move(*outcome.sha256));
        return;
      }
      const auto& problem = *outcome.problem;
      const WallTime now = clock_.now();
      using upload::AttemptError;
      if (problem.error == AttemptError::file_missing) {
        spdlog::warn("job {}: source removed before its upload", job.id);
        store_.run([id = job.id, now](store::JobStore& s) { (void)s.mark_source_removed(id, now); });
      } else if (problem.error == AttemptError::file_unreadable || problem.error == AttemptError::file_not_regular) {
        spdlog::error("job {}: {} failed: {}", job.id, job.path.filename().string(), problem.message);
        store_.call(
            [id = job.id, reason = problem.message, now](store::JobStore& s) { return s.fail(id, reason, now); },
            [this](Result<store::Job> failed) {
              if (failed) dispose_of_job_file(*failed, config_, store_, clock_);
            });
      } else {
        // Changed or replaced: the watcher reports it again once it settles, and that update
        // brings it back here.
        spdlog::info("job {}: file changed while hashing: {}", job.id, problem.message);
      }
      in_progress_.erase(job.id);
      batch_done();
    });
  });
}

void HashStage::record(const store::Job& job, std::string sha256) {
  const WallTime now = clock_.now();
  store_.call(
      [job, sha256, now](store::JobStore& s) -> Result<std::optional<store::Job>> {
        auto stored = s.set_sha256(job.id, sha256, job.file, now);
        if (!stored) return stored.error();
        if (!*stored) return std::optional<store::Job>{};  // the file changed meanwhile
        auto original = s.find_succeeded_by_sha256(sha256, job.project_id);
        if (!original) return original.error();
        if (!*original || (*original)->id == job.id) return std::optional<store::Job>{};
        auto duplicate = s.complete_as_duplicate(job.id, (*original)->id, now);
        if (!duplicate) return duplicate.error();
        return std::optional<store::Job>{std::move(*duplicate)};
      },
      [this, id = job.id](Result<std::optional<store::Job>> duplicate) {
        if (!duplicate) {
          spdlog::warn("store: job {}: cannot record its hash: {}", id, duplicate.error().message);
        } else {
          ++hashed_in_batch_;
        }
        if (duplicate && *duplicate) {
          spdlog::info("job {}: same content already uploaded to this project as {}; not sent again", id,
                       (*duplicate)->file_id.value_or("?"));
          events_.publish(JobFinished{**duplicate, true});
          dispose_of_job_file(**duplicate, config_, store_, clock_);
        }
        in_progress_.erase(id);
        hashed_();
        batch_done();
      });
}

void HashStage::batch_done() {
  if (outstanding_ > 0) --outstanding_;
  if (outstanding_ > 0) return;
  sweeping_ = false;
  // A full batch in which nothing could be hashed (files still changing) waits for news.
  if ((batch_was_full_ && hashed_in_batch_ > 0) || sweep_again_) sweep();
}

}  // namespace modeldrop::app
