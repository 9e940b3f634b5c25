#pragma once

// A thin C++ face on SQLite for the job store: one connection, statements prepared once and
// cached, RAII guards for statements and transactions, and SQLite's result codes as
// std::error_code values. Nothing here knows about jobs.

#include "common/error.hpp"

#include <chrono>
#include <concepts>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <system_error>
#include <type_traits>
#include <utility>
#include <vector>

struct sqlite3;
struct sqlite3_stmt;

namespace modeldrop::store {

// Error codes are SQLite's extended result codes (SQLITE_BUSY_SNAPSHOT, SQLITE_CONSTRAINT_CHECK
// ...); each compares equal to the SqliteCondition of its primary code.
const std::error_category& sqlite_category() noexcept;
std::error_code make_sqlite_error_code(int result_code) noexcept;

// The primary result codes callers test for: `if (error.code == SqliteCondition::busy)`.
enum class SqliteCondition {
  busy = 5,             // SQLITE_BUSY: another connection held the lock past busy_timeout
  read_only = 8,        // SQLITE_READONLY
  io_error = 10,        // SQLITE_IOERR
  corrupt = 11,         // SQLITE_CORRUPT
  full = 13,            // SQLITE_FULL
  cannot_open = 14,     // SQLITE_CANTOPEN
  constraint = 19,      // SQLITE_CONSTRAINT: a CHECK, UNIQUE, NOT NULL or FOREIGN KEY rule
  not_a_database = 26,  // SQLITE_NOTADB
};
const std::error_category& sqlite_condition_category() noexcept;
std::error_condition make_error_condition(SqliteCondition condition) noexcept;

namespace detail {
struct ConnectionState;
}

// One prepared statement. Obtained from Connection::prepare, which owns and caches it; use it
// under a StatementReset so that it is reset and its bindings cleared when the scope ends.
class Statement {
 public:
  Statement(sqlite3_stmt* statement, detail::ConnectionState* connection) noexcept;
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  // Parameters are numbered from 1 (`?1`, `?2` ...). A failed bind is a programming error
  // (wrong index, integer out of range) and throws std::logic_error.
  void bind(int index, std::nullopt_t);
  void bind(int index, double value);
  void bind(int index, std::string_view value);
  void bind(int index, const std::string& value) { bind(index, std::string_view(value)); }
  void bind(int index, const char* value) { bind(index, std::string_view(value)); }
  void bind(int index, const std::filesystem::path& value) { bind(index, std::string_view(value.native())); }
  template <std::integral T>
  void bind(int index, T value) {
    if constexpr (std::is_unsigned_v<T> && sizeof(T) >= sizeof(std::int64_t)) {
      bind_int64(index, checked_int64(value));
    } else {
      bind_int64(index, static_cast<std::int64_t>(value));
    }
  }
  template <class T>
  void bind(int index, const std::optional<T>& value) {
    if (value) {
      bind(index, *value);
    } else {
      bind(index, std::nullopt);
    }
  }
  // bind(1, a), bind(2, b) ...
  template <class... Values>
  void bind_all(const Values&... values) {
    int index = 0;
    (bind(++index, values), ...);
  }

  // Runs to the next row: true when a row is ready, false when the statement is done.
  Result<bool> step();
  // Runs to completion, ignoring any rows.
  Result<void> run();

  // Columns of the current row, numbered from 0.
  [[nodiscard]] bool is_null(int column) const;
  [[nodiscard]] std::int64_t int64(int column) const;
  [[nodiscard]] double real(int column) const;
  [[nodiscard]] std::string text(int column) const;
  [[nodiscard]] std::optional<std::int64_t> optional_int64(int column) const;
  [[nodiscard]] std::optional<double> optional_real(int column) const;
  [[nodiscard]] std::optional<std::string> optional_text(int column) const;

  // Back to the start, bindings cleared; what StatementReset does.
  void reset() noexcept;
  [[nodiscard]] std::string_view sql() const;

 private:
  static std::int64_t checked_int64(std::uint64_t value);
  void bind_int64(int index, std::int64_t value);
  void check_bind(int result_code, int index) const;

  sqlite3_stmt* statement_;
  detail::ConnectionState* connection_;
};

// Resets a statement and clears its bindings when the scope ends, so a cached statement never
// keeps a read transaction open or a stale value bound.
class [[nodiscard]] StatementReset {
 public:
  explicit StatementReset(Statement& statement) noexcept : statement_(statement) {}
  ~StatementReset() { statement_.reset(); }
  StatementReset(const StatementReset&) = delete;
  StatementReset& operator=(const StatementReset&) = delete;

 private:
  Statement& statement_;
};

enum class OpenMode {
  create_if_missing,  // the daemon
  existing_only,      // `modeldrop`: never creates a database
  read_only,          // the metrics reader: an existing database, never written
};

// One SQLite connection, used by one thread at a time (opened SQLITE_OPEN_NOMUTEX).
class Connection {
 public:
  static Result<Connection> open(const std::filesystem::path& file, OpenMode mode,
                                 std::chrono::milliseconds busy_timeout);
  Connection(Connection&&) noexcept;
  Connection& operator=(Connection&&) noexcept;
  ~Connection();

  // One or more SQL statements that return no rows (pragmas, migrations).
  Result<void> execute(std::string_view sql);
  // The cached prepared statement for `sql`, prepared on first use. The reference stays valid
  // as long as the connection; use it under a StatementReset.
  Result<Statement*> prepare(std::string_view sql);
  // The first column of the first row of `sql` (a pragma such as user_version).
  Result<std::int64_t> query_int64(std::string_view sql);
  Result<std::string> query_text(std::string_view sql);

  // The cached statement for `sql` with `values` bound to ?1, ?2 ..., run to completion; rows
  // (a RETURNING clause) are ignored. changes() tells how many rows it wrote.
  template <class... Values>
  Result<void> exec(std::string_view sql, const Values&... values) {
    auto statement = prepare(sql);
    if (!statement) return statement.error();
    StatementReset reset(**statement);
    (*statement)->bind_all(values...);
    return (*statement)->run();
  }

  // The first row of `sql` as `read(const Statement&)` maps it; none when there is no row. The
  // statement still runs to completion, so a RETURNING write is done before the caller commits.
  template <class Read, class... Values>
  auto query_one(std::string_view sql, Read&& read, const Values&... values)
      -> Result<std::optional<std::invoke_result_t<Read&, const Statement&>>> {
    using Row = std::invoke_result_t<Read&, const Statement&>;
    auto statement = prepare(sql);
    if (!statement) return statement.error();
    StatementReset reset(**statement);
    (*statement)->bind_all(values...);
    auto step = (*statement)->step();
    if (!step) return step.error();
    if (!*step) return std::optional<Row>{};
    std::optional<Row> row(read(std::as_const(**statement)));
    if (auto rest = (*statement)->run(); !rest) return rest.error();
    return row;
  }

  // Every row of `sql`, each as `read(const Statement&)` maps it.
  template <class Read, class... Values>
  auto query_all(std::string_view sql, Read&& read, const Values&... values)
      -> Result<std::vector<std::invoke_result_t<Read&, const Statement&>>> {
    std::vector<std::invoke_result_t<Read&, const Statement&>> rows;
    auto statement = prepare(sql);
    if (!statement) return statement.error();
    StatementReset reset(**statement);
    (*statement)->bind_all(values...);
    for (;;) {
      auto step = (*statement)->step();
      if (!step) return step.error();
      if (!*step) return rows;
      rows.push_back(read(std::as_const(**statement)));
    }
  }

  [[nodiscard]] std::int64_t changes() const;
  [[nodiscard]] bool in_transaction() const;
  // How many times a statement on this connection has returned SQLITE_BUSY; the store worker
  // compares it before and after a batch to know that the batch must be run again.
  [[nodiscard]] std::uint64_t busy_results() const;
  [[nodiscard]] const std::filesystem::path& file() const;
  [[nodiscard]] sqlite3* handle() const;

  // An Error for `result_code` with SQLite's own message: "<context>: <message> (<file>)".
  [[nodiscard]] Error error(std::string_view context, int result_code) const;

 private:
  explicit Connection(std::unique_ptr<detail::ConnectionState> state) noexcept;
  std::unique_ptr<detail::ConnectionState> state_;
};

// BEGIN IMMEDIATE ... COMMIT; rolled back if the scope ends without commit(). IMMEDIATE takes
// the write lock up front, where busy_timeout applies, instead of failing with
// SQLITE_BUSY_SNAPSHOT when a deferred transaction later tries to write.
class [[nodiscard]] ImmediateTransaction {
 public:
  static Result<ImmediateTransaction> begin(Connection& connection);
  ImmediateTransaction(ImmediateTransaction&& other) noexcept;
  ImmediateTransaction& operator=(ImmediateTransaction&&) = delete;
  ImmediateTransaction(const ImmediateTransaction&) = delete;
  ~ImmediateTransaction();
  Result<void> commit();

 private:
  explicit ImmediateTransaction(Connection& connection) noexcept : connection_(&connection) {}
  Connection* connection_;
};

// All-or-nothing for one store operation: its own BEGIN IMMEDIATE transaction when none is
// open, a SAVEPOINT inside the caller's transaction (the store worker's group commit), so a
// failing operation is undone without undoing its neighbours in the batch. An operation of
// one statement needs no savepoint there: SQLite makes each statement atomic already.
class [[nodiscard]] AtomicWrite {
 public:
  enum class Size { one_statement, several_statements };
  static Result<AtomicWrite> begin(Connection& connection, Size size = Size::several_statements);
  AtomicWrite(AtomicWrite&& other) noexcept;
  AtomicWrite& operator=(AtomicWrite&&) = delete;
  AtomicWrite(const AtomicWrite&) = delete;
  ~AtomicWrite();
  Result<void> commit();

 private:
  enum class Kind { transaction, savepoint, statement };
  AtomicWrite(Connection& connection, Kind kind) noexcept : connection_(&connection), kind_(kind) {}
  Connection* connection_;
  Kind kind_;
};

// One consistent snapshot for several SELECTs (BEGIN ... COMMIT); nothing extra inside an
// already open transaction.
class [[nodiscard]] ReadSnapshot {
 public:
  static Result<ReadSnapshot> begin(Connection& connection);
  ReadSnapshot(ReadSnapshot&& other) noexcept;
  ReadSnapshot& operator=(ReadSnapshot&&) = delete;
  ReadSnapshot(const ReadSnapshot&) = delete;
  ~ReadSnapshot();

 private:
  explicit ReadSnapshot(Connection* owned) noexcept : connection_(owned) {}
  Connection* connection_;  // null when an outer transaction owns the snapshot
};

}  // namespace modeldrop::store

template <>
struct std::is_error_condition_enum<modeldrop::store::SqliteCondition> : std::true_type {};
