#include "store/sqlite.hpp"

#include <sqlite3.h>

#include <limits>
#include <mutex>
#include <stdexcept>
#include <unordered_map>

namespace modeldrop::store {

namespace {

class SqliteCategory final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "sqlite"; }
  [[nodiscard]] std::string message(int code) const override { return sqlite3_errstr(code); }
  [[nodiscard]] std::error_condition default_error_condition(int code) const noexcept override {
    return {code & 0xff, sqlite_condition_category()};
  }
};

class SqliteConditionCategory final : public std::error_category {
 public:
  [[nodiscard]] const char* name() const noexcept override { return "sqlite condition"; }
  [[nodiscard]] std::string message(int code) const override { return sqlite3_errstr(code); }
};

}  // namespace

const std::error_category& sqlite_category() noexcept {
  static const SqliteCategory category;
  return category;
}

const std::error_category& sqlite_condition_category() noexcept {
  static const SqliteConditionCategory category;
  return category;
}

std::error_code make_sqlite_error_code(int result_code) noexcept {
  return {result_code, sqlite_category()};
}

std::error_condition make_error_condition(SqliteCondition condition) noexcept {
  return {static_cast<int>(condition), sqlite_condition_category()};
}

namespace detail {

struct ConnectionState {
  sqlite3* db = nullptr;
  std::filesystem::path file;
  std::uint64_t busy_results = 0;
  // Keyed by the SQL text (looked up without copying it); the statements live as long as the connection.
  struct SqlHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view sql) const noexcept { return std::hash<std::string_view>{}(sql); }
  };
  std::unordered_map<std::string, std::unique_ptr<Statement>, SqlHash, std::equal_to<>> statements;

  ~ConnectionState() {
    statements.clear();  // finalize every statement before closing
    if (db != nullptr) sqlite3_close_v2(db);
  }

  [[nodiscard]] Error error(std::string_view context, int result_code) const {
    // The connection's message is more specific ("no such table: x") when it belongs to this code.
    const bool connection_message = db != nullptr && sqlite3_extended_errcode(db) == result_code;
    std::string message(context);
    message += ": ";
    message += connection_message ? sqlite3_errmsg(db) : sqlite3_errstr(result_code);
    message += " (" + file.string() + ")";
    return Error{std::move(message), make_sqlite_error_code(result_code)};
  }
};

}  // namespace detail

// ---- Statement

Statement::Statement(sqlite3_stmt* statement, detail::ConnectionState* connection) noexcept
    : statement_(statement), connection_(connection) {}

Statement::~Statement() {
  sqlite3_finalize(statement_);
}

std::int64_t Statement::checked_int64(std::uint64_t value) {
  if (value > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max())) {
    throw std::logic_error("integer too large for SQLite: " + std::to_string(value));
  }
  return static_cast<std::int64_t>(value);
}

void Statement::check_bind(int result_code, int index) const {
  if (result_code != SQLITE_OK) {
    throw std::logic_error("binding parameter " + std::to_string(index) + " of \"" + std::string(sql()) +
                           "\": " + sqlite3_errstr(result_code));
  }
}

void Statement::bind(int index, std::nullopt_t) {
  check_bind(sqlite3_bind_null(statement_, index), index);
}

void Statement::bind(int index, double value) {
  check_bind(sqlite3_bind_double(statement_, index, value), index);
}

void Statement::bind(int index, std::string_view value) {
  check_bind(sqlite3_bind_text64(statement_, index, value.data(), value.size(), SQLITE_TRANSIENT, SQLITE_UTF8), index);
}

void Statement::bind_int64(int index, std::int64_t value) {
  check_bind(sqlite3_bind_int64(statement_, index, value), index);
}

Result<bool> Statement::step() {
  const int rc = sqlite3_step(statement_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  if ((rc & 0xff) == SQLITE_BUSY) ++connection_->busy_results;
  return connection_->error("running \"" + std::string(sql()) + "\"", rc);
}

Result<void> Statement::run() {
  for (;;) {
    auto row = step();
    if (!row) return row.error();
    if (!*row) return {};
  }
}

bool Statement::is_null(int column) const {
  return sqlite3_column_type(statement_, column) == SQLITE_NULL;
}

std::int64_t Statement::int64(int column) const {
  return sqlite3_column_int64(statement_, column);
}

double Statement::real(int column) const {
  return sqlite3_column_double(statement_, column);
}

std::string Statement::text(int column) const {
  const auto* data = sqlite3_column_text(statement_, column);
  const auto size = sqlite3_column_bytes(statement_, column);
  if (data == nullptr) return {};
  return {reinterpret_cast<const char*>(data), static_cast<std::size_t>(size)};
}

std::optional<std::int64_t> Statement::optional_int64(int column) const {
  if (is_null(column)) return std::nullopt;
  return int64(column);
}

std::optional<double> Statement::optional_real(int column) const {
  if (is_null(column)) return std::nullopt;
  return real(column);
}

std::optional<std::string> Statement::optional_text(int column) const {
  if (is_null(column)) return std::nullopt;
  return text(column);
}

void Statement::reset() noexcept {
  sqlite3_reset(statement_);
  sqlite3_clear_bindings(statement_);
}

std::string_view Statement::sql() const {
  return sqlite3_sql(statement_);
}

// ---- Connection

Connection::Connection(std::unique_ptr<detail::ConnectionState> state) noexcept : state_(std::move(state)) {}
Connection::Connection(Connection&&) noexcept = default;
Connection& Connection::operator=(Connection&&) noexcept = default;
Connection::~Connection() = default;

namespace {

// Process-wide SQLite settings, before its first use. Without memory statistics every SQLite
// allocation skips a global mutex; modeldrop never reads those statistics. A failure (SQLite
// already initialised by someone else) only costs that speed.
void configure_sqlite_once() {
  static std::once_flag once;
  std::call_once(once, [] { (void)sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0); });
}

}  // namespace

Result<Connection> Connection::open(const std::filesystem::path& file, OpenMode mode,
                                    std::chrono::milliseconds busy_timeout) {
  configure_sqlite_once();
  auto state = std::make_unique<detail::ConnectionState>();
  state->file = file;
  // NOMUTEX: each connection is used by one thread at a time (the store thread, or the CLI).
  int flags = (mode == OpenMode::read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE) | SQLITE_OPEN_NOMUTEX |
              SQLITE_OPEN_EXRESCODE;
  if (mode == OpenMode::create_if_missing) flags |= SQLITE_OPEN_CREATE;
  const int rc = sqlite3_open_v2(file.c_str(), &state->db, flags, nullptr);
  if (rc != SQLITE_OK) return state->error("cannot open the database", rc);
  sqlite3_extended_result_codes(state->db, 1);
  sqlite3_busy_timeout(state->db, static_cast<int>(busy_timeout.count()));
  return Connection(std::move(state));
}

Result<void> Connection::execute(std::string_view sql) {
  const std::string text(sql);
  char* message = nullptr;
  const int rc = sqlite3_exec(state_->db, text.c_str(), nullptr, nullptr, &message);
  if (message != nullptr) sqlite3_free(message);
  if (rc == SQLITE_OK) return {};
  if ((rc & 0xff) == SQLITE_BUSY) ++state_->busy_results;
  const auto first_line = text.substr(0, text.find('\n'));
  return state_->error("running \"" + first_line + "\"", sqlite3_extended_errcode(state_->db));
}

Result<Statement*> Connection::prepare(std::string_view sql) {
  if (auto found = state_->statements.find(sql); found != state_->statements.end()) return found->second.get();
  const std::string key(sql);
  sqlite3_stmt* raw = nullptr;
  const int rc = sqlite3_prepare_v3(state_->db, key.c_str(), static_cast<int>(key.size() + 1),
                                    SQLITE_PREPARE_PERSISTENT, &raw, nullptr);
  if (rc != SQLITE_OK) {
    sqlite3_finalize(raw);
    if ((rc & 0xff) == SQLITE_BUSY) ++state_->busy_results;
    return state_->error("preparing \"" + key + "\"", rc);
  }
  auto statement = std::make_unique<Statement>(raw, state_.get());
  auto* pointer = statement.get();
  state_->statements.emplace(key, std::move(statement));
  return pointer;
}

Result<std::int64_t> Connection::query_int64(std::string_view sql) {
  auto statement = prepare(sql);
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  auto row = (*statement)->step();
  if (!row) return row.error();
  if (!*row) return error("no result from \"" + std::string(sql) + "\"", SQLITE_ERROR);
  return (*statement)->int64(0);
}

Result<std::string> Connection::query_text(std::string_view sql) {
  auto statement = prepare(sql);
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  auto row = (*statement)->step();
  if (!row) return row.error();
  if (!*row) return error("no result from \"" + std::string(sql) + "\"", SQLITE_ERROR);
  // in_place: Error is constructible from a string too (C++20 aggregate), so say which one this is.
  return Result<std::string>(boost::system::in_place_value, (*statement)->text(0));
}

std::int64_t Connection::changes() const {
  return sqlite3_changes64(state_->db);
}

bool Connection::in_transaction() const {
  return sqlite3_get_autocommit(state_->db) == 0;
}

std::uint64_t Connection::busy_results() const {
  return state_->busy_results;
}

const std::filesystem::path& Connection::file() const {
  return state_->file;
}

sqlite3* Connection::handle() const {
  return state_->db;
}

Error Connection::error(std::string_view context, int result_code) const {
  return state_->error(context, result_code);
}

// ---- Transactions

namespace {

Result<void> run_cached(Connection& connection, std::string_view sql) {
  auto statement = connection.prepare(sql);
  if (!statement) return statement.error();
  StatementReset reset(**statement);
  return (*statement)->run();
}

// Undoes an open transaction when a guard is dropped without commit. Errors are ignored: a
// failed ROLLBACK leaves SQLite to roll back on its own when the connection next reads.
void rollback_quietly(Connection& connection) {
  if (connection.in_transaction()) (void)run_cached(connection, "ROLLBACK");
}

}  // namespace

Result<ImmediateTransaction> ImmediateTransaction::begin(Connection& connection) {
  if (auto begun = run_cached(connection, "BEGIN IMMEDIATE"); !begun) return begun.error();
  return ImmediateTransaction(connection);
}

ImmediateTransaction::ImmediateTransaction(ImmediateTransaction&& other) noexcept
    : connection_(std::exchange(other.connection_, nullptr)) {}

ImmediateTransaction::~ImmediateTransaction() {
  if (connection_ != nullptr) rollback_quietly(*connection_);
}

Result<void> ImmediateTransaction::commit() {
  auto* connection = std::exchange(connection_, nullptr);
  auto committed = run_cached(*connection, "COMMIT");
  if (!committed) rollback_quietly(*connection);
  return committed;
}

Result<AtomicWrite> AtomicWrite::begin(Connection& connection, Size size) {
  if (connection.in_transaction()) {
    if (size == Size::one_statement) return AtomicWrite(connection, Kind::statement);
    if (auto begun = run_cached(connection, "SAVEPOINT atomic_write"); !begun) return begun.error();
    return AtomicWrite(connection, Kind::savepoint);
  }
  if (auto begun = run_cached(connection, "BEGIN IMMEDIATE"); !begun) return begun.error();
  return AtomicWrite(connection, Kind::transaction);
}

AtomicWrite::AtomicWrite(AtomicWrite&& other) noexcept
    : connection_(std::exchange(other.connection_, nullptr)), kind_(other.kind_) {}

AtomicWrite::~AtomicWrite() {
  if (connection_ == nullptr) return;
  switch (kind_) {
    case Kind::transaction:
      rollback_quietly(*connection_);
      break;
    case Kind::savepoint:
      // ROLLBACK TO undoes the savepoint's work but keeps it open; RELEASE then removes it.
      if (connection_->in_transaction()) {
        (void)run_cached(*connection_, "ROLLBACK TO atomic_write");
        (void)run_cached(*connection_, "RELEASE atomic_write");
      }
      break;
    case Kind::statement:
      break;  // a failed statement has already undone itself
  }
}

Result<void> AtomicWrite::commit() {
  auto* connection = std::exchange(connection_, nullptr);
  switch (kind_) {
    case Kind::transaction: {
      auto committed = run_cached(*connection, "COMMIT");
      if (!committed) rollback_quietly(*connection);
      return committed;
    }
    case Kind::savepoint:
      return run_cached(*connection, "RELEASE atomic_write");
    case Kind::statement:
      return {};
  }
  return {};
}

Result<ReadSnapshot> ReadSnapshot::begin(Connection& connection) {
  if (connection.in_transaction()) return ReadSnapshot(nullptr);
  if (auto begun = run_cached(connection, "BEGIN"); !begun) return begun.error();
  return ReadSnapshot(&connection);
}

ReadSnapshot::ReadSnapshot(ReadSnapshot&& other) noexcept : connection_(std::exchange(other.connection_, nullptr)) {}

ReadSnapshot::~ReadSnapshot() {
  // A read-only transaction has nothing to commit; ending it releases the snapshot.
  if (connection_ != nullptr && connection_->in_transaction()) (void)run_cached(*connection_, "COMMIT");
}

}  // namespace modeldrop::store
