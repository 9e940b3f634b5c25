#include "app/in_doubt_reconciler.hpp"

#include "app/job_source.hpp"
#include "upload/api_responses.hpp"
#include "upload/multipart.hpp"
#include "upload/source_file.hpp"

#include <spdlog/spdlog.h>

namespace modeldrop::app {
namespace {

constexpr std::size_t kPageSize = 100;

std::optional<store::ListedFile> listed(const upload::OpenAIFile& file) {
  // A file without its name, size or time cannot be told apart: it never matches.
  if (!file.filename || !file.bytes || *file.bytes < 0 || !file.created_at) return std::nullopt;
  return store::ListedFile{file.id,
                           *file.filename,
                           static_cast<std::uint64_t>(*file.bytes),
                           WallClock::from_time_t(static_cast<std::time_t>(*file.created_at)),
                           file.status,
                           file.status_details};
}

}  // namespace

void InDoubtReconciler::before_sending(const store::Job& job, WallTime since, std::optional<std::string> token,
                                       std::function<void(std::optional<store::Job>)> done) {
  auto search = std::make_shared<Search>();
  search->job = job;
  search->since = since;
  search->token = std::move(token);
  search->done = std::move(done);
  spdlog::info("job {}: an earlier attempt is in doubt; looking for its copy among the server's files", job.id);
  if (!search->job.sha256) start_hash(search);
  list_next_page(search, std::nullopt);
}

void InDoubtReconciler::start_hash(const std::shared_ptr<Search>& search) {
  auto file = upload::SourceFile::open(source_path(search->job), upload_identity(search->job.file));
  if (!file) {
    search->file_problem = file.error().message;
    return;
  }
  // The feed is owned by hashing_, the search by this callback: no cycle, and a reconciler
  // destroyed meanwhile stops the reader before the callback could run.
  auto options = hash_only_feed(io_, {}, [this, search](const upload::FeedOutcome& outcome) {
    hashing_.erase(search->job.id);
    if (outcome.sha256) {
      search->sha256 = outcome.sha256;
    } else {
      search->file_problem = outcome.file_problem ? outcome.file_problem->message : "the file could not be read";
    }
    decide_when_ready(search);
  });
  hashing_[search->job.id] = std::make_unique<upload::BodyFeed>(std::move(*file), std::move(options));
}

void InDoubtReconciler::send_instead(const std::shared_ptr<Search>& search) {
  hashing_.erase(search->job.id);  // stops a hash still running
  search->done(std::nullopt);
}

void InDoubtReconciler::list_next_page(std::shared_ptr<Search> search, std::optional<std::string> after) {
  upload::ApiRequest::Query query{{"limit", std::to_string(kPageSize)}, {"order", "desc"}};
  if (search->job.project_id) query.emplace_back("ai_project_id", *search->job.project_id);
  if (after) query.emplace_back("after", *after);
  auto request = upload::ApiRequest::get("/v1/files", std::move(query));
  request.token = search->token;
  pool_.request(std::move(request), [this, search](const upload::ApiAnswer& answer) { on_page(search, answer); });
}

void InDoubtReconciler::on_page(std::shared_ptr<Search> search, const upload::ApiAnswer& answer) {
  const auto page = answer.ok() ? upload::parse_file_page(answer.exchange.body) : std::nullopt;
  if (!page) {
    const std::string why = answer.ok() ? "not a file list" : answer.reason;
    spdlog::warn("job {}: listing the server's files failed ({}); sending the file again", search->job.id, why);
    return send_instead(search);
  }
  const WallTime floor = search->since - store::kInDoubtClockMargin;
  bool reached_floor = false;
  for (const auto& file : page->files) {
    if (file.created_at && WallClock::from_time_t(static_cast<std::time_t>(*file.created_at)) < floor) {
      reached_floor = true;
    }
    if (auto entry = listed(file)) search->files.push_back(std::move(*entry));
  }
  if (!page->has_more || reached_floor) {
    search->listed = true;
    return decide_when_ready(search);
  }
  if (search->files.size() >= kMaxListedFiles || !page->last_id) {
    spdlog::warn("job {}: the server's file list goes on past {} files; sending the file again", search->job.id,
                 search->files.size());
    return send_instead(search);
  }
  list_next_page(search, page->last_id);
}

void InDoubtReconciler::decide_when_ready(const std::shared_ptr<Search>& search) {
  if (!search->listed || hashing_.contains(search->job.id)) return;
  if (search->file_problem) {
    // The send reads the file again and reports what is wrong with it.
    spdlog::info("job {}: not adopting a copy: its file could not be hashed ({})", search->job.id,
                 *search->file_problem);
    return send_instead(search);
  }
  decide(search);
}

void InDoubtReconciler::decide(std::shared_ptr<Search> search) {
  store_.call(
      [id = search->job.id, file = search->job.file, sha256 = search->sha256, since = search->since,
       files = std::move(search->files), now = clock_.now()](store::JobStore& s) -> Result<store::Reconciliation> {
        if (sha256) {
          auto stored = s.set_sha256(id, *sha256, file, now);
          if (!stored) return stored.error();
          if (!*stored) return store::Reconciliation{false, std::nullopt, "the file changed since it was queued"};
        }
        return s.reconcile(
            id, since, files, [](std::string_view name) { return upload::recorded_filename(name); }, now);
      },
      [search](Result<store::Reconciliation> outcome) {
        if (!outcome) {
          spdlog::warn("job {}: cannot record reconciliation: {}; sending", search->job.id, outcome.error().message);
          return search->done(std::nullopt);
        }
        if (!outcome->adopted) {
          spdlog::info("job {}: no copy to adopt ({}); sending the file again", search->job.id, outcome->reason);
          return search->done(std::nullopt);
        }
        spdlog::info("job {}: {}", search->job.id, outcome->reason);
        search->done(std::move(outcome->job));
      });
}

}  // namespace modeldrop::app
