#pragma once

#include <system_error>

namespace modeldrop::store {

// Expected failures of the job store that callers act on (the CLI maps them to exit codes).
enum class StoreErrc {
  no_database = 1,           // `modeldrop` found no database file (it never creates one)
  not_a_modeldrop_database,  // a SQLite file without modeldrop's schema, or not SQLite at all
  schema_too_new,            // written by a newer modeldrop than this binary
  unknown_job,               // no job with that id
  illegal_transition,        // the job's state does not allow the request (e.g. retry a succeeded job)
  invalid_request,           // a value the store refuses (bad sha256, contradictory outcome)
  daemon_already_running,    // another live modeldropd is registered on this database
  daemon_not_registered,     // heartbeat or hold from a process that is not the registered daemon
};

const std::error_category& store_category() noexcept;
std::error_code make_error_code(StoreErrc errc) noexcept;

}  // namespace modeldrop::store

template <>
struct std::is_error_code_enum<modeldrop::store::StoreErrc> : std::true_type {};
