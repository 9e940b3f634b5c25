#pragma once

// Inside the job store: how `jobs` and `attempts` rows become Job and Attempt, and the small
// conversions and errors every part of JobStore shares. Not part of the store's interface.

#include "store/job_store.hpp"

#include <string>
#include <string_view>

namespace modeldrop::store {

// Every `jobs` column a Job is read from, comma-separated, in read_job's order; a column
// added to the job_rows.cpp table appears here and in read_job at once.
const std::string& job_columns();
// How many columns job_columns() names: the index of a column a query selects after them.
int job_column_count();
// "SELECT <job columns> FROM jobs <rest>".
std::string select_jobs(std::string_view rest);
// "<statement> RETURNING <job columns>".
std::string returning_job(std::string_view statement);
// The Job in a row that starts with job_columns().
Job read_job(const Statement& row);

const std::string& attempt_columns();
Attempt read_attempt(const Statement& row);

// Stored values.
std::string timestamp(WallTime t);
std::optional<std::string> timestamp(const std::optional<WallTime>& t);
std::int64_t unix_ms(WallTime t);
WallTime read_time(const Statement& row, int column);
std::optional<WallTime> read_optional_time(const Statement& row, int column);
std::uint64_t read_uint64(const Statement& row, int column);
// The first column as an integer: a count, an EXISTS, an id.
inline std::int64_t first_int64(const Statement& row) {
  return row.int64(0);
}

// The errors of requests the store refuses.
Error unknown_job(JobId job);
Error illegal(const Job& job, std::string_view allowed);
Error invalid(std::string message);

bool is_final(JobState state);

// " AND <alias>token_file IS NOT ?2 AND ...": the jobs of a held token wait (IS NOT, so a held
// global token, NULL, skips the jobs without a token_file). Bound by bind_held from ?2 on.
std::string skip_held(std::string_view alias, std::size_t held);
void bind_held(Statement& statement, HeldTokens held);

// Runs one claim statement (?1 = now, then the held tokens; RETURNING the job) in its own
// write; the job it took.
Result<std::optional<Job>> claim_one(Connection& db, const std::string& sql, WallTime now, HeldTokens held = {});
// A job that registers a model and has just succeeded: its registration starts, due now.
Result<void> start_registration(Connection& db, JobId job, WallTime now);
// When the next pending job is due, from "SELECT <one is due now>, <earliest next_attempt_at>":
// `now` for one due now, none when nothing is pending.
// The held tokens are bound from ?2 on (see skip_held).
Result<std::optional<WallTime>> next_due_from(Connection& db, const std::string& sql, WallTime now,
                                              HeldTokens held = {});

}  // namespace modeldrop::store
