#include "store/migrations.hpp"

#include "store/store_error.hpp"

#include <string>

namespace modeldrop::store {

int latest_schema_version(std::span<const Migration> migrations) {
  return migrations.empty() ? 0 : migrations.back().version;
}

Result<int> schema_version(Connection& connection) {
  auto version = connection.query_int64("PRAGMA user_version");
  if (!version) return version.error();
  return static_cast<int>(*version);
}

namespace {

Error too_new(const Connection& connection, int found, int latest) {
  return make_error(connection.file().string() + ": the database schema is version " + std::to_string(found) +
                        ", newer than this modeldrop understands (" + std::to_string(latest) +
                        "); use the modeldrop release that wrote it, or a newer one",
                    StoreErrc::schema_too_new);
}

}  // namespace

Result<MigrationReport> apply_migrations(Connection& connection, std::span<const Migration> migrations) {
  const int latest = latest_schema_version(migrations);
  auto found = schema_version(connection);
  if (!found) return found.error();
  if (*found > latest) return too_new(connection, *found, latest);
  if (*found == latest) return MigrationReport{*found, *found};

  auto transaction = ImmediateTransaction::begin(connection);
  if (!transaction) return transaction.error();
  // Another process may have migrated while this one waited for the write lock.
  found = schema_version(connection);
  if (!found) return found.error();
  if (*found > latest) return too_new(connection, *found, latest);
  for (const auto& migration : migrations) {
    if (migration.version <= *found) continue;
    if (auto applied = connection.execute(migration.sql); !applied) {
      return make_error("migration " + std::string(migration.name) + ": " + applied.error().message,
                        applied.error().code);
    }
  }
  // PRAGMA takes no parameters; the value is an integer of ours.
  if (auto recorded = connection.execute("PRAGMA user_version = " + std::to_string(latest)); !recorded) {
    return recorded.error();
  }
  if (auto committed = transaction->commit(); !committed) return committed.error();
  return MigrationReport{*found, latest};
}

}  // namespace modeldrop::store
