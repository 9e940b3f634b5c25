// The SQLite wrapper: error codes as testable conditions, the statement cache, and the
// transaction guards the store builds on.
#include "store/sqlite.hpp"
#include "store_fixture.hpp"

#include <sqlite3.h>

#include <gtest/gtest.h>

namespace modeldrop::store {
namespace {

using namespace test_support;

class SqliteTest : public ::testing::Test {
 protected:
  void SetUp() override {
    db_.emplace(must(Connection::open(dir_ / "t.db", OpenMode::create_if_missing, std::chrono::milliseconds(100))));
    must(db_->execute("CREATE TABLE t (x INTEGER NOT NULL CHECK (x >= 0));"));
  }
  std::int64_t rows() { return must(db_->query_int64("SELECT count(*) FROM t")); }
  void insert(std::int64_t x) {
    auto* statement = must(db_->prepare("INSERT INTO t (x) VALUES (?1)"));
    StatementReset reset(*statement);
    statement->bind(1, x);
    must(statement->run());
  }

  test::TempDir dir_;
  std::optional<Connection> db_;
};

TEST(SqliteCategory, ExtendedCodesCompareEqualToTheirPrimaryCondition) {
  EXPECT_EQ(make_sqlite_error_code(SQLITE_BUSY_SNAPSHOT), SqliteCondition::busy);
  EXPECT_EQ(make_sqlite_error_code(SQLITE_BUSY), SqliteCondition::busy);
  EXPECT_EQ(make_sqlite_error_code(SQLITE_CONSTRAINT_CHECK), SqliteCondition::constraint);
  EXPECT_NE(make_sqlite_error_code(SQLITE_CONSTRAINT_CHECK), SqliteCondition::busy);
  EXPECT_EQ(make_sqlite_error_code(SQLITE_BUSY).category().name(), std::string("sqlite"));
  EXPECT_EQ(make_sqlite_error_code(SQLITE_BUSY).message(), "database is locked");
}

TEST_F(SqliteTest, ACheckViolationIsAConstraintError) {
  auto* statement = must(db_->prepare("INSERT INTO t (x) VALUES (?1)"));
  StatementReset reset(*statement);
  statement->bind(1, -1);
  auto result = statement->run();
  ASSERT_FALSE(result);
  EXPECT_EQ(result.error().code, SqliteCondition::constraint);
  EXPECT_NE(result.error().message.find("CHECK constraint failed"), std::string::npos) << result.error().message;
}

TEST_F(SqliteTest, PreparedStatementsAreCachedBySqlText) {
  auto* first = must(db_->prepare("SELECT x FROM t WHERE x = ?1"));
  auto* second = must(db_->prepare("SELECT x FROM t WHERE x = ?1"));
  auto* other = must(db_->prepare("SELECT x FROM t WHERE x > ?1"));
  EXPECT_EQ(first, second);
  EXPECT_NE(first, other);
}

TEST_F(SqliteTest, StatementResetClearsBindingsAndRewinds) {
  insert(5);
  auto* statement = must(db_->prepare("SELECT count(*) FROM t WHERE x = ?1"));
  {
    StatementReset reset(*statement);
    statement->bind(1, 5);
    ASSERT_TRUE(must(statement->step()));
    EXPECT_EQ(statement->int64(0), 1);
  }
  // Unbound again: x = NULL matches nothing.
  StatementReset reset(*statement);
  ASSERT_TRUE(must(statement->step()));
  EXPECT_EQ(statement->int64(0), 0);
}

TEST_F(SqliteTest, ExecBindsInOrderAndQueriesMapRows) {
  must(db_->exec("INSERT INTO t (x) VALUES (?1), (?2), (?3)", 3, 1, 2));
  EXPECT_EQ(db_->changes(), 3);
  const auto x = [](const Statement& row) { return row.int64(0); };
  EXPECT_EQ(must(db_->query_all("SELECT x FROM t WHERE x >= ?1 ORDER BY x", x, 2)), (std::vector<std::int64_t>{2, 3}));
  EXPECT_EQ(must(db_->query_one("SELECT x FROM t WHERE x = ?1", x, 1)), std::optional<std::int64_t>(1));
  EXPECT_EQ(must(db_->query_one("SELECT x FROM t WHERE x = ?1", x, 9)), std::nullopt);
  // A statement with rows after the first still runs to its end: every row is written.
  const auto first = must(db_->query_one("UPDATE t SET x = x + 10 RETURNING x", x));
  ASSERT_TRUE(first);
  EXPECT_EQ(rows(), 3);
  EXPECT_EQ(must(db_->query_int64("SELECT min(x) FROM t")), 11);
  // Failures come back as values, and the cached statement is usable again afterwards.
  auto refused = db_->exec("INSERT INTO t (x) VALUES (?1)", -1);
  ASSERT_FALSE(refused);
  EXPECT_EQ(refused.error().code, SqliteCondition::constraint);
  must(db_->exec("INSERT INTO t (x) VALUES (?1)", 0));
  EXPECT_EQ(rows(), 4);
}

TEST_F(SqliteTest, AnIntegerSqliteCannotHoldIsAProgrammingError) {
  auto* statement = must(db_->prepare("SELECT ?1"));
  StatementReset reset(*statement);
  EXPECT_THROW(statement->bind(1, std::uint64_t{1} << 63), std::logic_error);
  EXPECT_THROW(statement->bind(7, 1), std::logic_error);  // no such parameter
}

TEST_F(SqliteTest, AtomicWriteRollsBackUnlessCommitted) {
  {
    auto write = must(AtomicWrite::begin(*db_));
    insert(1);
  }
  EXPECT_EQ(rows(), 0);
  EXPECT_FALSE(db_->in_transaction());
  {
    auto write = must(AtomicWrite::begin(*db_));
    insert(1);
    must(write.commit());
  }
  EXPECT_EQ(rows(), 1);
}

TEST_F(SqliteTest, AtomicWriteInsideATransactionUndoesOnlyItsOwnWork) {
  auto outer = must(ImmediateTransaction::begin(*db_));
  insert(1);
  {
    auto failing = must(AtomicWrite::begin(*db_));
    insert(2);
  }
  {
    auto succeeding = must(AtomicWrite::begin(*db_));
    insert(3);
    must(succeeding.commit());
  }
  EXPECT_TRUE(db_->in_transaction());
  must(outer.commit());
  EXPECT_EQ(rows(), 2);
  EXPECT_EQ(must(db_->query_int64("SELECT sum(x) FROM t")), 4);
}

TEST_F(SqliteTest, ImmediateTransactionTakesTheWriteLockAtBegin) {
  auto other = must(Connection::open(dir_ / "t.db", OpenMode::existing_only, std::chrono::milliseconds(0)));
  auto held = must(ImmediateTransaction::begin(*db_));
  auto second = ImmediateTransaction::begin(other);
  ASSERT_FALSE(second);
  EXPECT_EQ(second.error().code, SqliteCondition::busy);
  EXPECT_GT(other.busy_results(), 0u);
}

TEST_F(SqliteTest, ReadSnapshotSeesOneStateOfTheDatabase) {
  auto other = must(Connection::open(dir_ / "t.db", OpenMode::existing_only, std::chrono::milliseconds(100)));
  must(db_->execute("PRAGMA journal_mode = WAL"));
  insert(1);
  {
    auto snapshot = must(ReadSnapshot::begin(other));
    EXPECT_EQ(must(other.query_int64("SELECT count(*) FROM t")), 1);
    insert(2);
    EXPECT_EQ(must(other.query_int64("SELECT count(*) FROM t")), 1);
  }
  EXPECT_EQ(must(other.query_int64("SELECT count(*) FROM t")), 2);
}

TEST(SqliteOpen, ExistingOnlyNeverCreatesAFile) {
  test::TempDir dir;
  auto opened = Connection::open(dir / "absent.db", OpenMode::existing_only, std::chrono::milliseconds(0));
  ASSERT_FALSE(opened);
  EXPECT_EQ(opened.error().code, SqliteCondition::cannot_open);
  EXPECT_FALSE(std::filesystem::exists(dir / "absent.db"));
}

}  // namespace
}  // namespace modeldrop::store
