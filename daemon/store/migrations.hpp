#pragma once

#include "common/error.hpp"
#include "store/sqlite.hpp"

#include <span>
#include <string_view>

namespace modeldrop::store {

// One file of migrations/: version N is NNNN_name.sql. Append-only: a released file never changes.
struct Migration {
  int version;
  std::string_view name;
  std::string_view sql;
};

// Every migration compiled into this binary, in order, versions 1, 2, 3 ... (generated at build
// time from migrations/*.sql by embed_migrations.cmake).
std::span<const Migration> embedded_migrations();

// The schema version this binary writes: the last migration's.
int latest_schema_version(std::span<const Migration> migrations = embedded_migrations());

struct MigrationReport {
  int from_version = 0;
  int to_version = 0;
};

// Applies the migrations newer than PRAGMA user_version, all in one BEGIN IMMEDIATE
// transaction, and records the new version there: either every step lands or none. A
// database already up to date is left untouched; one newer than the binary is refused
// (StoreErrc::schema_too_new).
Result<MigrationReport> apply_migrations(Connection& connection,
                                         std::span<const Migration> migrations = embedded_migrations());

// The schema version recorded in the database (PRAGMA user_version).
Result<int> schema_version(Connection& connection);

}  // namespace modeldrop::store
