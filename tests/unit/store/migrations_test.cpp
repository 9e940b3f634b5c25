// Migrations and opening: the schema from an empty file, an idempotent re-run, refusal of a
// newer schema, files that are not modeldrop databases, and the file's mode and group.
#include "store/migrations.hpp"
#include "store/database_file.hpp"
#include "store_fixture.hpp"

#include <grp.h>
#include <sqlite3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <set>

namespace modeldrop::store {
namespace {

using namespace test_support;

std::set<std::string> columns_of(Connection& db, const std::string& table) {
  std::set<std::string> names;
  auto* statement = must(db.prepare("SELECT name FROM pragma_table_info(?1)"));
  StatementReset reset(*statement);
  statement->bind(1, table);
  while (must(statement->step())) names.insert(statement->text(0));
  return names;
}

std::string schema_text(Connection& db) {
  return must(
      db.query_text("SELECT group_concat(type || ' ' || name || ': ' || coalesce(sql, ''), char(10)) "
                    "FROM (SELECT * FROM sqlite_schema ORDER BY name)"));
}

TEST(EmbeddedMigrations, AreNumberedFromOneWithoutGaps) {
  const auto migrations = embedded_migrations();
  ASSERT_FALSE(migrations.empty());
  for (std::size_t i = 0; i < migrations.size(); ++i) {
    EXPECT_EQ(migrations[i].version, static_cast<int>(i) + 1);
    EXPECT_FALSE(migrations[i].sql.empty());
  }
  EXPECT_EQ(migrations.front().name, "0001_init.sql");
  EXPECT_EQ(latest_schema_version(), migrations.back().version);
}

TEST(Migrations, CreateTheContractSchemaFromNothing) {
  test::TempDir dir;
  auto store = must(JobStore::open_for_daemon(dir / "state" / "jobs.db"));
  auto& db = store.connection();
  EXPECT_EQ(must(schema_version(db)), latest_schema_version());
  const std::set<std::string> jobs_columns{
      "id",          "path",       "current_path",    "watch_dir",  "project_id", "size_bytes",  "sha256",
      "state",       "attempts",   "next_attempt_at", "bytes_sent", "file_id",    "file_status", "file_status_details",
      "http_status", "last_error", "created_at",      "updated_at", "finished_at"};
  const auto jobs = columns_of(db, "jobs");
  for (const auto& column : jobs_columns) EXPECT_TRUE(jobs.count(column)) << "jobs." << column;
  const auto attempts = columns_of(db, "attempts");
  for (const auto* column :
       {"job_id", "attempt", "started_at", "finished_at", "http_status", "bytes_sent", "outcome", "error"}) {
    EXPECT_TRUE(attempts.count(column)) << "attempts." << column;
  }
  const auto daemon = columns_of(db, "daemon");
  for (const auto* column : {"pid", "version", "started_at", "heartbeat_at", "held_reason"}) {
    EXPECT_TRUE(daemon.count(column)) << "daemon." << column;
  }
  EXPECT_EQ(columns_of(db, "queue_summary"), (std::set<std::string>{"state", "jobs", "bytes"}));
}

TEST(Migrations, ARunOnAnUpToDateDatabaseChangesNothing) {
  test::TempDir dir;
  auto store = must(JobStore::open_for_daemon(dir / "jobs.db"));
  auto& db = store.connection();
  const auto before = schema_text(db);
  const auto changes_before = sqlite3_total_changes64(db.handle());
  const auto report = must(apply_migrations(db));
  EXPECT_EQ(report.from_version, latest_schema_version());
  EXPECT_EQ(report.to_version, latest_schema_version());
  EXPECT_EQ(schema_text(db), before);
  EXPECT_EQ(sqlite3_total_changes64(db.handle()), changes_before);
  // And a second open of the same file neither fails nor changes the schema.
  auto again = must(JobStore::open_for_daemon(dir / "jobs.db"));
  EXPECT_EQ(schema_text(again.connection()), before);
}

TEST(Migrations, ApplyOnlyTheStepsNewerThanTheDatabaseInOneTransaction) {
  test::TempDir dir;
  auto db = must(Connection::open(dir / "m.db", OpenMode::create_if_missing, std::chrono::milliseconds(100)));
  const Migration v1[] = {{1, "0001_a.sql", "CREATE TABLE a (x);"}};
  const Migration v2[] = {{1, "0001_a.sql", "CREATE TABLE a (x);"}, {2, "0002_b.sql", "CREATE TABLE b (y);"}};
  auto first = must(apply_migrations(db, v1));
  EXPECT_EQ(first.from_version, 0);
  EXPECT_EQ(first.to_version, 1);
  auto second = must(apply_migrations(db, v2));  // would fail if 0001 ran again (table a exists)
  EXPECT_EQ(second.from_version, 1);
  EXPECT_EQ(second.to_version, 2);
  EXPECT_EQ(must(db.query_int64("SELECT count(*) FROM sqlite_schema WHERE name IN ('a', 'b')")), 2);
}

TEST(Migrations, AFailingStepLeavesTheDatabaseAsItWas) {
  test::TempDir dir;
  auto db = must(Connection::open(dir / "m.db", OpenMode::create_if_missing, std::chrono::milliseconds(100)));
  const Migration broken[] = {{1, "0001_a.sql", "CREATE TABLE a (x);"}, {2, "0002_b.sql", "CREATE TABLE oops ("}};
  auto result = apply_migrations(db, broken);
  ASSERT_FALSE(result);
  EXPECT_NE(result.error().message.find("0002_b.sql"), std::string::npos) << result.error().message;
  EXPECT_EQ(must(schema_version(db)), 0);
  EXPECT_EQ(must(db.query_int64("SELECT count(*) FROM sqlite_schema")), 0);
}

TEST(Migrations, ADatabaseNewerThanTheBinaryIsRefused) {
  test::TempDir dir;
  {
    auto store = must(JobStore::open_for_daemon(dir / "jobs.db"));
    must(store.connection().execute("PRAGMA user_version = " + std::to_string(latest_schema_version() + 1)));
  }
  for (const bool daemon : {true, false}) {
    auto opened = daemon ? JobStore::open_for_daemon(dir / "jobs.db") : JobStore::open_existing(dir / "jobs.db");
    ASSERT_FALSE(opened);
    EXPECT_EQ(opened.error().code, StoreErrc::schema_too_new);
    EXPECT_NE(opened.error().message.find("newer than this modeldrop"), std::string::npos) << opened.error().message;
  }
}

TEST(OpenExisting, RefusesAMissingFileWithoutCreatingIt) {
  test::TempDir dir;
  auto opened = JobStore::open_existing(dir / "none" / "jobs.db");
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, StoreErrc::no_database);
  EXPECT_NE(opened.error().message.find("no database at"), std::string::npos);
  EXPECT_FALSE(std::filesystem::exists(dir / "none"));
}

TEST(OpenExisting, RefusesAFileThatIsNotSqlite) {
  test::TempDir dir;
  const auto file = dir.write("jobs.db", std::string(4096, 'x'));
  for (const bool daemon : {true, false}) {
    auto opened = daemon ? JobStore::open_for_daemon(file) : JobStore::open_existing(file);
    ASSERT_FALSE(opened);
    EXPECT_EQ(opened.error().code, StoreErrc::not_a_modeldrop_database);
    EXPECT_NE(opened.error().message.find("is not a SQLite database"), std::string::npos) << opened.error().message;
  }
  EXPECT_EQ(test::read_file(file), std::string(4096, 'x'));
}

TEST(OpenExisting, RefusesASqliteFileWithoutTheSchema) {
  test::TempDir dir;
  must(Connection::open(dir / "empty.db", OpenMode::create_if_missing, std::chrono::milliseconds(0))
           ->execute("PRAGMA user_version = 0"));
  auto opened = JobStore::open_existing(dir / "empty.db");
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, StoreErrc::not_a_modeldrop_database);
  EXPECT_NE(opened.error().message.find("holds no modeldrop job tables"), std::string::npos);
}

TEST(OpenForDaemon, NeverAddsItsTablesToAnotherProgramsDatabase) {
  test::TempDir dir;
  must(Connection::open(dir / "other.db", OpenMode::create_if_missing, std::chrono::milliseconds(0))
           ->execute("CREATE TABLE unrelated (x)"));
  for (const bool daemon : {true, false}) {
    auto opened = daemon ? JobStore::open_for_daemon(dir / "other.db") : JobStore::open_existing(dir / "other.db");
    ASSERT_FALSE(opened);
    EXPECT_EQ(opened.error().code, StoreErrc::not_a_modeldrop_database);
    EXPECT_NE(opened.error().message.find("another program"), std::string::npos) << opened.error().message;
  }
  auto db = must(Connection::open(dir / "other.db", OpenMode::existing_only, std::chrono::milliseconds(0)));
  EXPECT_EQ(must(db.query_int64("SELECT count(*) FROM sqlite_schema")), 1);
}

TEST(OpenExisting, RefusesADirectory) {
  test::TempDir dir;
  auto opened = JobStore::open_existing(dir.path());
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, StoreErrc::not_a_modeldrop_database);
}

TEST(OpenForDaemon, ConfiguresWalFullSyncForeignKeysAndAJournalSizeLimit) {
  test::TempDir dir;
  auto store = must(JobStore::open_for_daemon(dir / "jobs.db"));
  auto& db = store.connection();
  EXPECT_EQ(must(db.query_text("PRAGMA journal_mode")), "wal");
  EXPECT_EQ(must(db.query_int64("PRAGMA synchronous")), 2);  // FULL
  EXPECT_EQ(must(db.query_int64("PRAGMA foreign_keys")), 1);
  EXPECT_EQ(must(db.query_int64("PRAGMA journal_size_limit")), 8 * 1024 * 1024);
  EXPECT_EQ(must(db.query_int64("PRAGMA busy_timeout")), 5000);
  EXPECT_EQ(must(db.query_int64("PRAGMA cache_size")), -32768);
  EXPECT_EQ(must(db.query_int64("PRAGMA secure_delete")), 0);
  EXPECT_EQ(must(db.query_int64("PRAGMA temp_store")), 2);  // MEMORY
  // The CLI's connection is configured the same way.
  auto cli = must(JobStore::open_existing(dir / "jobs.db"));
  EXPECT_EQ(must(cli.connection().query_int64("PRAGMA synchronous")), 2);
  EXPECT_EQ(must(cli.connection().query_int64("PRAGMA foreign_keys")), 1);
}

TEST(OpenForDaemon, CreatesTheDirectoryAndFileWithTheContractModesAndGroup) {
  test::TempDir dir;
  // "modeldrop" rarely exists on a build machine; any existing group shows the same code path.
  group* users = ::getgrnam("users");
  const std::string group_name = users != nullptr ? "users" : "modeldrop";
  const auto old_umask = ::umask(0077);  // the modes must not depend on the caller's umask
  StoreOptions options;
  options.group = group_name;
  std::vector<std::string> warnings;
  auto store = JobStore::open_for_daemon(dir / "var" / "lib" / "modeldrop" / "jobs.db", options, &warnings);
  ::umask(old_umask);
  ASSERT_TRUE(store) << store.error().message;
  struct stat dir_info {
  }, file_info{};
  ASSERT_EQ(::stat((dir / "var" / "lib" / "modeldrop").c_str(), &dir_info), 0);
  ASSERT_EQ(::stat((dir / "var" / "lib" / "modeldrop" / "jobs.db").c_str(), &file_info), 0);
  EXPECT_EQ(dir_info.st_mode & 07777, kDatabaseDirectoryMode);
  EXPECT_EQ(file_info.st_mode & 07777, kDatabaseFileMode);
  if (users != nullptr && ::geteuid() == 0) {
    EXPECT_TRUE(warnings.empty());
    EXPECT_EQ(dir_info.st_gid, users->gr_gid);
    EXPECT_EQ(file_info.st_gid, users->gr_gid);
  }
}

TEST(OpenForDaemon, LeavesAnExistingDirectoryAlone) {
  test::TempDir dir;
  std::filesystem::create_directories(dir / "db");
  ::chmod((dir / "db").c_str(), 0755);
  StoreOptions options;
  options.group = "no-such-group-for-modeldrop";
  auto store = must(JobStore::open_for_daemon(dir / "db" / "jobs.db", options));
  struct stat info {};
  ASSERT_EQ(::stat((dir / "db").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, 0755u);
  ASSERT_EQ(::stat((dir / "db" / "jobs.db").c_str(), &info), 0);
  EXPECT_EQ(info.st_mode & 07777, kDatabaseFileMode);
}

TEST(SchemaChecks, RefuseStatesAndOutcomesOutsideTheContract) {
  test::TempDir dir;
  auto store = must(JobStore::open_for_daemon(dir / "jobs.db"));
  auto& db = store.connection();
  const std::string insert =
      "INSERT INTO jobs (path, size_bytes, state, created_at, updated_at, device, inode, mtime_ns, "
      "budget_started_at) VALUES ('/a', 1, '%s', 'x', 'x', 1, 1, 1, 'x')";
  const auto with_state = [&](const std::string& state) {
    auto text = insert;
    text.replace(text.find("%s"), 2, state);
    return db.execute(text);
  };
  auto bad = with_state("done");
  ASSERT_FALSE(bad);
  EXPECT_EQ(bad.error().code, SqliteCondition::constraint);
  must(with_state("pending"));
  auto bad_outcome = db.execute(
      "INSERT INTO attempts (job_id, attempt, started_at, finished_at, outcome) VALUES (1, 1, 'x', 'y', 'ok')");
  ASSERT_FALSE(bad_outcome);
  EXPECT_EQ(bad_outcome.error().code, SqliteCondition::constraint);
  auto orphan = db.execute("INSERT INTO attempts (job_id, attempt, started_at) VALUES (99, 1, 'x')");
  ASSERT_FALSE(orphan);  // foreign_keys = ON
  EXPECT_EQ(orphan.error().code, SqliteCondition::constraint);
  auto succeeded_without_file = db.execute("UPDATE jobs SET state = 'succeeded', finished_at = 'x'");
  EXPECT_FALSE(succeeded_without_file);
  auto final_without_finished_at = db.execute("UPDATE jobs SET state = 'failed'");
  EXPECT_FALSE(final_without_finished_at);
}

}  // namespace
}  // namespace modeldrop::store
