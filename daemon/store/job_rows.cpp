#include "store/job_rows.hpp"

#include <algorithm>
#include <array>
#include <span>

namespace modeldrop::store {

namespace {

// A column of a table and where its value goes in the row's struct. The SELECT list and the
// reading both come from one table, so a column is added (or moved) in one place.
template <class Row>
struct ColumnMapping {
  std::string_view name;
  void (*read)(const Statement& row, int column, Row& into);
};

std::optional<std::filesystem::path> read_optional_path(const Statement& row, int column) {
  auto text = row.optional_text(column);
  if (!text) return std::nullopt;
  return std::filesystem::path(std::move(*text));
}

std::optional<int> read_optional_int(const Statement& row, int column) {
  auto value = row.optional_int64(column);
  if (!value) return std::nullopt;
  return static_cast<int>(*value);
}

using JobColumn = ColumnMapping<Job>;
using R = const Statement&;

constexpr std::array kJobColumns{
    JobColumn{"id", [](R r, int c, Job& j) { j.id = r.int64(c); }},
    JobColumn{"path", [](R r, int c, Job& j) { j.path = r.text(c); }},
    JobColumn{"current_path", [](R r, int c, Job& j) { j.current_path = read_optional_path(r, c); }},
    JobColumn{"watch_dir", [](R r, int c, Job& j) { j.watch_dir = read_optional_path(r, c); }},
    JobColumn{"project_id", [](R r, int c, Job& j) { j.project_id = r.optional_text(c); }},
    JobColumn{"size_bytes",
              [](R r, int c, Job& j) {
                j.size_bytes = read_uint64(r, c);
                j.file.size_bytes = j.size_bytes;
              }},
    JobColumn{"sha256", [](R r, int c, Job& j) { j.sha256 = r.optional_text(c); }},
    JobColumn{"state", [](R r, int c, Job& j) { j.state = parse_job_state(r.text(c)).value_or(JobState::failed); }},
    JobColumn{"attempts", [](R r, int c, Job& j) { j.attempts = r.int64(c); }},
    JobColumn{"next_attempt_at", [](R r, int c, Job& j) { j.next_attempt_at = read_optional_time(r, c); }},
    JobColumn{"bytes_sent", [](R r, int c, Job& j) { j.bytes_sent = read_uint64(r, c); }},
    JobColumn{"file_id", [](R r, int c, Job& j) { j.file_id = r.optional_text(c); }},
    JobColumn{"file_status", [](R r, int c, Job& j) { j.file_status = r.optional_text(c); }},
    JobColumn{"file_status_details", [](R r, int c, Job& j) { j.file_status_details = r.optional_text(c); }},
    JobColumn{"http_status", [](R r, int c, Job& j) { j.http_status = read_optional_int(r, c); }},
    JobColumn{"last_error", [](R r, int c, Job& j) { j.last_error = r.optional_text(c); }},
    JobColumn{"created_at", [](R r, int c, Job& j) { j.created_at = read_time(r, c); }},
    JobColumn{"updated_at", [](R r, int c, Job& j) { j.updated_at = read_time(r, c); }},
    JobColumn{"finished_at", [](R r, int c, Job& j) { j.finished_at = read_optional_time(r, c); }},
    JobColumn{"device", [](R r, int c, Job& j) { j.file.device = static_cast<std::uint64_t>(r.int64(c)); }},
    JobColumn{"inode", [](R r, int c, Job& j) { j.file.inode = static_cast<std::uint64_t>(r.int64(c)); }},
    JobColumn{"mtime_ns", [](R r, int c, Job& j) { j.file.mtime_ns = r.int64(c); }},
    JobColumn{"budget_started_at", [](R r, int c, Job& j) { j.budget_started_at = read_time(r, c); }},
    JobColumn{"progress_at_ms",
              [](R r, int c, Job& j) {
                if (auto ms = r.optional_int64(c)) j.progress_at = WallTime{std::chrono::milliseconds(*ms)};
              }},
    JobColumn{"upload_rate_bytes_per_s", [](R r, int c, Job& j) { j.upload_rate_bytes_per_s = r.optional_real(c); }},
    JobColumn{"duplicate_of", [](R r, int c, Job& j) { j.duplicate_of = r.optional_int64(c); }},
    JobColumn{"ready_marker_path", [](R r, int c, Job& j) { j.ready_marker_path = read_optional_path(r, c); }},
    // NULL (jobs queued by version 1) means the default check.
    JobColumn{"validate",
              [](R r, int c, Job& j) {
                j.validate = preflight::parse_archive_validation(r.optional_text(c).value_or("archive"))
                                 .value_or(preflight::ArchiveValidation::archive);
              }},
    JobColumn{"sidecar_path", [](R r, int c, Job& j) { j.sidecar_path = read_optional_path(r, c); }},
    JobColumn{"token_file", [](R r, int c, Job& j) { j.token_file = r.optional_text(c); }},
    // A job registers a model when model_name is set; the two columns after it belong to it.
    JobColumn{"model_name",
              [](R r, int c, Job& j) {
                if (auto name = r.optional_text(c)) j.model = ModelRequest{std::move(*name), {}, std::nullopt};
              }},
    JobColumn{"model_base_model",
              [](R r, int c, Job& j) {
                if (j.model) j.model->base_model = r.text(c);
              }},
    JobColumn{"model_description",
              [](R r, int c, Job& j) {
                if (j.model) j.model->description = r.optional_text(c);
              }},
    JobColumn{"model_status", [](R r, int c, Job& j) { j.model_status = r.optional_text(c); }},
    JobColumn{"model_status_reason", [](R r, int c, Job& j) { j.model_status_reason = r.optional_text(c); }},
    JobColumn{"model_checked_at", [](R r, int c, Job& j) { j.model_checked_at = read_optional_time(r, c); }},
    JobColumn{"model_started_at", [](R r, int c, Job& j) { j.model_started_at = read_optional_time(r, c); }},
    JobColumn{"model_next_check_at", [](R r, int c, Job& j) { j.model_next_check_at = read_optional_time(r, c); }},
};

using AttemptColumn = ColumnMapping<Attempt>;

constexpr std::array kAttemptColumns{
    AttemptColumn{"job_id", [](R r, int c, Attempt& a) { a.job_id = r.int64(c); }},
    AttemptColumn{"attempt", [](R r, int c, Attempt& a) { a.attempt = static_cast<int>(r.int64(c)); }},
    AttemptColumn{"started_at", [](R r, int c, Attempt& a) { a.started_at = read_time(r, c); }},
    AttemptColumn{"finished_at", [](R r, int c, Attempt& a) { a.finished_at = read_optional_time(r, c); }},
    AttemptColumn{"http_status", [](R r, int c, Attempt& a) { a.http_status = read_optional_int(r, c); }},
    AttemptColumn{"bytes_sent", [](R r, int c, Attempt& a) { a.bytes_sent = read_uint64(r, c); }},
    AttemptColumn{"outcome",
                  [](R r, int c, Attempt& a) {
                    if (auto outcome = r.optional_text(c)) a.outcome = parse_attempt_outcome(*outcome);
                  }},
    AttemptColumn{"error", [](R r, int c, Attempt& a) { a.error = r.optional_text(c); }},
};

template <class Row>
std::string column_list(std::span<const ColumnMapping<Row>> columns) {
  std::string list;
  for (const auto& column : columns) {
    if (!list.empty()) list += ", ";
    list += column.name;
  }
  return list;
}

template <class Row>
Row read_row(std::span<const ColumnMapping<Row>> columns, const Statement& statement) {
  Row row;
  for (std::size_t i = 0; i < columns.size(); ++i) columns[i].read(statement, static_cast<int>(i), row);
  return row;
}

}  // namespace

const std::string& job_columns() {
  static const std::string list = column_list<Job>(kJobColumns);
  return list;
}

int job_column_count() {
  return static_cast<int>(kJobColumns.size());
}

std::string select_jobs(std::string_view rest) {
  return "SELECT " + job_columns() + " FROM jobs " + std::string(rest);
}

std::string returning_job(std::string_view statement) {
  return std::string(statement) + " RETURNING " + job_columns();
}

Job read_job(const Statement& row) {
  return read_row<Job>(kJobColumns, row);
}

const std::string& attempt_columns() {
  static const std::string list = column_list<Attempt>(kAttemptColumns);
  return list;
}

Attempt read_attempt(const Statement& row) {
  return read_row<Attempt>(kAttemptColumns, row);
}

std::string timestamp(WallTime t) {
  return format_timestamp(t);
}

std::optional<std::string> timestamp(const std::optional<WallTime>& t) {
  if (!t) return std::nullopt;
  return format_timestamp(*t);
}

std::int64_t unix_ms(WallTime t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(t.time_since_epoch()).count();
}

// Timestamps are written only by modeldrop; an outside edit that breaks one reads as the epoch
// rather than failing every listing.
WallTime read_time(const Statement& row, int column) {
  return parse_timestamp(row.text(column)).value_or(WallTime{});
}

std::optional<WallTime> read_optional_time(const Statement& row, int column) {
  if (row.is_null(column)) return std::nullopt;
  return read_time(row, column);
}

std::uint64_t read_uint64(const Statement& row, int column) {
  return static_cast<std::uint64_t>(std::max<std::int64_t>(0, row.int64(column)));
}

Error unknown_job(JobId job) {
  return make_error("job " + std::to_string(job) + ": no such job", StoreErrc::unknown_job);
}

Error illegal(const Job& job, std::string_view allowed) {
  return make_error(
      "job " + std::to_string(job.id) + " is " + std::string(to_string(job.state)) + "; " + std::string(allowed),
      StoreErrc::illegal_transition);
}

Error invalid(std::string message) {
  return make_error(std::move(message), StoreErrc::invalid_request);
}

bool is_final(JobState state) {
  return state == JobState::succeeded || state == JobState::failed || state == JobState::cancelled;
}

std::string skip_held(std::string_view alias, std::size_t held) {
  std::string clause;
  for (std::size_t i = 0; i < held; ++i) {
    clause += " AND " + std::string(alias) + "token_file IS NOT ?" + std::to_string(i + 2);
  }
  return clause;
}

void bind_held(Statement& statement, HeldTokens held) {
  for (std::size_t i = 0; i < held.size(); ++i) statement.bind(static_cast<int>(i + 2), held[i]);
}

Result<std::optional<Job>> claim_one(Connection& db, const std::string& sql, WallTime now, HeldTokens held) {
  auto write = AtomicWrite::begin(db, AtomicWrite::Size::one_statement);
  if (!write) return write.error();
  std::optional<Job> claimed;
  {
    auto statement = db.prepare(sql);
    if (!statement) return statement.error();
    StatementReset reset(**statement);
    (*statement)->bind(1, timestamp(now));
    bind_held(**statement, held);
    auto row = (*statement)->step();
    if (!row) return row.error();
    if (*row) claimed = read_job(**statement);
    // Run the statement to its end so that the RETURNING write is complete before the commit.
    if (auto rest = (*statement)->run(); !rest) return rest.error();
  }
  if (auto committed = write->commit(); !committed) return committed.error();
  return claimed;
}

Result<void> start_registration(Connection& db, JobId job, WallTime now) {
  return db.exec(
      "UPDATE jobs SET model_status = 'registering', model_status_reason = NULL, model_checked_at = NULL, "
      "model_started_at = ?2, model_next_check_at = NULL WHERE id = ?1 AND model_name IS NOT NULL",
      job, timestamp(now));
}

Result<std::optional<WallTime>> next_due_from(Connection& db, const std::string& sql, WallTime now, HeldTokens held) {
  auto statement = db.prepare(sql);
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  bind_held(**statement, held);
  auto row = (*statement)->step();
  if (!row) return row.error();
  if (!*row) return std::optional<WallTime>{};
  if ((*statement)->int64(0) != 0) return std::optional<WallTime>(now);
  return read_optional_time(**statement, 1);
}

}  // namespace modeldrop::store
