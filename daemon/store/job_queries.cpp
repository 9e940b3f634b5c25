// Reading jobs: one job with its attempts, listings (`modeldrop jobs` and its filters), the
// summary per state, and what the daemon asks to know what to do next.

#include "store/job_rows.hpp"
#include "store/job_store.hpp"

#include <fnmatch.h>
#include <sqlite3.h>

#include <algorithm>
#include <cstring>

namespace modeldrop::store {

Result<std::optional<Job>> JobStore::find_job(JobId job) {
  return load_job(job);
}

Result<std::optional<JobWithAttempts>> JobStore::job_with_attempts(JobId job_id) {
  auto snapshot = ReadSnapshot::begin(db_);
  if (!snapshot) return snapshot.error();
  auto job = load_job(job_id);
  if (!job) return job.error();
  if (!*job) return std::optional<JobWithAttempts>{};
  static const std::string sql = "SELECT " + attempt_columns() + " FROM attempts WHERE job_id = ?1 ORDER BY attempt";
  auto attempts = db_.query_all(sql, read_attempt, job_id);
  if (!attempts) return attempts.error();
  return std::optional<JobWithAttempts>(JobWithAttempts{std::move(**job), std::move(*attempts)});
}

Result<std::vector<Job>> JobStore::list_jobs(std::span<const JobState> states, std::size_t limit) {
  if (states.empty()) {
    static const std::string sql = select_jobs("ORDER BY id DESC LIMIT ?1");
    return db_.query_all(sql, read_job, limit);
  }
  // Newest first per state through index jobs_state, then merged: never a sort of every row
  // of a state, however many there are.
  auto snapshot = ReadSnapshot::begin(db_);
  if (!snapshot) return snapshot.error();
  static const std::string sql = select_jobs("WHERE state = ?1 ORDER BY id DESC LIMIT ?2");
  std::vector<JobState> wanted(states.begin(), states.end());
  std::sort(wanted.begin(), wanted.end());
  wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
  std::vector<Job> jobs;
  for (const auto state : wanted) {
    auto of_state = db_.query_all(sql, read_job, to_string(state), limit);
    if (!of_state) return of_state.error();
    std::move(of_state->begin(), of_state->end(), std::back_inserter(jobs));
  }
  std::sort(jobs.begin(), jobs.end(), [](const Job& a, const Job& b) { return a.id > b.id; });
  if (jobs.size() > limit) jobs.resize(limit);
  return jobs;
}

namespace {

// modeldrop_name_matches(path, glob): `modeldrop jobs --name`, with fnmatch as the watcher's
// patterns use it (case-insensitive); on the file name unless the glob names directories too.
void name_matches(sqlite3_context* context, int /*argc*/, sqlite3_value** values) {
  const auto* path = reinterpret_cast<const char*>(sqlite3_value_text(values[0]));
  const auto* glob = reinterpret_cast<const char*>(sqlite3_value_text(values[1]));
  if (path == nullptr || glob == nullptr) {
    sqlite3_result_int(context, 0);
    return;
  }
  const char* subject = path;
  if (std::strchr(glob, '/') == nullptr) {
    if (const char* slash = std::strrchr(path, '/')) subject = slash + 1;
  }
  sqlite3_result_int(context, ::fnmatch(glob, subject, FNM_CASEFOLD) == 0 ? 1 : 0);
}

// The WHERE clause of a JobFilter, its values bound from ?1 on.
struct FilterClause {
  std::string sql;
  std::vector<std::string> values;

  void bind(Statement& statement) const {
    for (std::size_t i = 0; i < values.size(); ++i) statement.bind(static_cast<int>(i + 1), values[i]);
  }
};

FilterClause filter_clause(const JobFilter& filter) {
  FilterClause clause;
  std::vector<std::string> conditions;
  if (!filter.states.empty()) {
    std::string in;
    for (const auto state : filter.states) {
      clause.values.emplace_back(to_string(state));
      in += (in.empty() ? "?" : ", ?") + std::to_string(clause.values.size());
    }
    conditions.push_back("state IN (" + in + ")");
  }
  if (filter.created_since) {
    clause.values.push_back(timestamp(*filter.created_since));
    conditions.push_back("created_at >= ?" + std::to_string(clause.values.size()));
  }
  if (filter.name_glob) {
    clause.values.push_back(*filter.name_glob);
    conditions.push_back("modeldrop_name_matches(path, ?" + std::to_string(clause.values.size()) + ")");
  }
  for (const auto& condition : conditions) clause.sql += (clause.sql.empty() ? "WHERE " : " AND ") + condition;
  return clause;
}

}  // namespace

Result<JobPage> JobStore::find_jobs(const JobFilter& filter, std::size_t limit) {
  if (filter.name_glob) {
    const int rc =
        sqlite3_create_function_v2(db_.handle(), "modeldrop_name_matches", 2, SQLITE_UTF8 | SQLITE_DETERMINISTIC,
                                   nullptr, name_matches, nullptr, nullptr, nullptr);
    if (rc != SQLITE_OK) return make_error(std::string("cannot filter by name: ") + sqlite3_errstr(rc));
  }
  // The filter's parameters are only known at run time: these two statements bind them one by one.
  const FilterClause clause = filter_clause(filter);
  auto snapshot = ReadSnapshot::begin(db_);
  if (!snapshot) return snapshot.error();
  JobPage page;
  {
    auto count = db_.prepare("SELECT COUNT(*) FROM jobs " + clause.sql);
    if (!count) return count.error();
    StatementReset reset(**count);
    clause.bind(**count);
    auto row = (*count)->step();
    if (!row) return row.error();
    page.total = (*count)->int64(0);
  }
  const int limit_index = static_cast<int>(clause.values.size() + 1);
  // Attempt numbers run 1, 2, ... per job: the highest is how many were made (a primary-key lookup).
  auto list = db_.prepare("SELECT " + job_columns() +
                          ", (SELECT MAX(attempt) FROM attempts WHERE attempts.job_id = jobs.id) FROM jobs " +
                          clause.sql + " ORDER BY id DESC LIMIT ?" + std::to_string(limit_index));
  if (!list) return list.error();
  StatementReset reset(**list);
  clause.bind(**list);
  (*list)->bind(limit_index, limit);
  for (;;) {
    auto row = (*list)->step();
    if (!row) return row.error();
    if (!*row) break;
    page.jobs.push_back(read_job(**list));
    page.attempts_made.push_back(static_cast<int>((*list)->optional_int64(job_column_count()).value_or(0)));
  }
  return page;
}

Result<std::vector<StateSummary>> JobStore::summary() {
  std::vector<StateSummary> summary;
  for (const auto state : kAllJobStates) summary.push_back({state, 0, 0});
  auto rows = db_.query_all("SELECT state, jobs, bytes FROM queue_summary", [](const Statement& row) {
    return std::pair{parse_job_state(row.text(0)), StateSummary{JobState::pending, row.int64(1), read_uint64(row, 2)}};
  });
  if (!rows) return rows.error();
  for (const auto& [state, row] : *rows) {
    if (!state) continue;
    auto& entry = summary[static_cast<std::size_t>(*state)];
    entry.jobs = row.jobs;
    entry.bytes = row.bytes;
  }
  return summary;
}

Result<std::optional<WallTime>> JobStore::next_due_at(WallTime now, bool require_sha256, HeldTokens held) {
  const std::string pending = "FROM jobs WHERE state = 'pending'" +
                              std::string(require_sha256 ? " AND sha256 IS NOT NULL" : "") + skip_held("", held.size());
  return next_due_from(db_,
                       "SELECT EXISTS (SELECT 1 " + pending + " AND next_attempt_at IS NULL), " +
                           "(SELECT min(next_attempt_at) " + pending + ")",
                       now, held);
}

Result<std::vector<std::optional<std::string>>> JobStore::tokens_in_use(HeldTokens held) {
  std::vector<std::optional<std::string>> in_use;
  for (const auto& token : held) {
    auto used = db_.query_one(
        "SELECT EXISTS (SELECT 1 FROM jobs WHERE state IN ('pending', 'uploading') AND token_file IS ?1)",
        [](const Statement& row) { return row.int64(0) != 0; }, token);
    if (!used) return used.error();
    if (*used && **used) in_use.push_back(token);
  }
  return in_use;
}

Result<std::int64_t> JobStore::set_watch_token_file(const std::filesystem::path& watch_dir,
                                                    const std::optional<std::string>& token_file, WallTime now) {
  if (auto done = db_.exec("UPDATE jobs SET token_file = ?2, updated_at = ?3 WHERE watch_dir = ?1 AND "
                           "state <> 'succeeded' AND token_file IS NOT ?2",
                           watch_dir.string(), token_file, timestamp(now));
      !done) {
    return done.error();
  }
  return db_.changes();
}

Result<std::vector<Job>> JobStore::pending_without_sha256(std::size_t limit) {
  static const std::string sql =
      select_jobs("INDEXED BY jobs_pending_unhashed WHERE state = 'pending' AND sha256 IS NULL ORDER BY id LIMIT ?1");
  return db_.query_all(sql, read_job, limit);
}

}  // namespace modeldrop::store
