// SQLite RAII wrappers and the migration runner.
#include "common/sqlite.h"

#include <spdlog/spdlog.h>

#include <chrono>
#include <thread>

#include "common/error.h"

namespace coop::sqlite {

namespace {
[[noreturn]] void fail(sqlite3* db, const std::string& what) {
  const int code = db ? sqlite3_extended_errcode(db) : SQLITE_ERROR;
  const std::string message = what + ": " + (db ? sqlite3_errmsg(db) : "out of memory");
  if ((code & 0xff) == SQLITE_BUSY || (code & 0xff) == SQLITE_LOCKED)
    throw Error(errc::kDatabaseBusy, message, 503);
  if ((code & 0xff) == SQLITE_CONSTRAINT) throw Error(errc::kConstraint, message, 409);
  throw Error(errc::kDatabaseError, message, 500);
}
}  // namespace

Statement::Statement(sqlite3* db, std::string_view sql) : db_(db) {
  if (sqlite3_prepare_v3(db, sql.data(), static_cast<int>(sql.size()), SQLITE_PREPARE_PERSISTENT,
                         &stmt_, nullptr) != SQLITE_OK)
    fail(db, "prepare '" + std::string(sql) + "'");
}

Statement::~Statement() { sqlite3_finalize(stmt_); }

Statement& Statement::bind(int index, int64_t value) {
  if (sqlite3_bind_int64(stmt_, index, value) != SQLITE_OK) fail(db_, "bind");
  return *this;
}
Statement& Statement::bind(int index, double value) {
  if (sqlite3_bind_double(stmt_, index, value) != SQLITE_OK) fail(db_, "bind");
  return *this;
}
Statement& Statement::bind(int index, std::string_view text) {
  if (sqlite3_bind_text64(stmt_, index, text.data(), text.size(), SQLITE_TRANSIENT, SQLITE_UTF8) != SQLITE_OK)
    fail(db_, "bind");
  return *this;
}
Statement& Statement::bind_blob(int index, std::string_view bytes) {
  if (sqlite3_bind_blob64(stmt_, index, bytes.data(), bytes.size(), SQLITE_TRANSIENT) != SQLITE_OK)
    fail(db_, "bind");
  return *this;
}
Statement& Statement::bind_null(int index) {
  if (sqlite3_bind_null(stmt_, index) != SQLITE_OK) fail(db_, "bind");
  return *this;
}

bool Statement::step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  const std::string sql = sqlite3_sql(stmt_) ? sqlite3_sql(stmt_) : "";
  sqlite3_reset(stmt_);
  fail(db_, "step '" + sql + "'");
}

void Statement::run() {
  while (step()) {
  }
  reset();
}

void Statement::reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

int64_t Statement::column_int64(int column) const { return sqlite3_column_int64(stmt_, column); }
double Statement::column_double(int column) const { return sqlite3_column_double(stmt_, column); }
std::string Statement::column_text(int column) const {
  const auto* text = sqlite3_column_text(stmt_, column);
  return text ? std::string(reinterpret_cast<const char*>(text), sqlite3_column_bytes(stmt_, column))
              : std::string();
}
std::optional<std::string> Statement::column_optional_text(int column) const {
  if (column_is_null(column)) return std::nullopt;
  return column_text(column);
}
bool Statement::column_is_null(int column) const {
  return sqlite3_column_type(stmt_, column) == SQLITE_NULL;
}

std::unique_ptr<Database> Database::open(const std::filesystem::path& file, OpenOptions options) {
  sqlite3* raw = nullptr;
  const int flags = (options.read_only ? SQLITE_OPEN_READONLY : SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) |
                    SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(file.c_str(), &raw, flags, nullptr) != SQLITE_OK) {
    const std::string message = raw ? sqlite3_errmsg(raw) : "out of memory";
    sqlite3_close_v2(raw);
    throw Error(errc::kDatabaseError, "cannot open " + file.string() + ": " + message, 500);
  }
  std::unique_ptr<Database> db(new Database(raw));
  sqlite3_extended_result_codes(raw, 1);
  sqlite3_busy_timeout(raw, options.busy_timeout_ms);
  if (!options.read_only) {
    // Switching a new file to WAL takes an exclusive lock that SQLite's busy handler does not
    // wait for: when two processes open one database at once (coop-room and coop-federate,
    // room.db, on a shard's first start), the second is told "locked" and asks again.
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(options.busy_timeout_ms);
    while (sqlite3_exec(raw, "PRAGMA journal_mode=WAL", nullptr, nullptr, nullptr) != SQLITE_OK) {
      const int code = sqlite3_errcode(raw) & 0xff;
      if ((code != SQLITE_BUSY && code != SQLITE_LOCKED) || std::chrono::steady_clock::now() > deadline)
        fail(raw, "exec 'PRAGMA journal_mode=WAL'");
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    db->exec("PRAGMA synchronous=FULL");
  }
  db->exec("PRAGMA foreign_keys=ON");
  return db;
}

Database::~Database() {
  cache_.clear();  // statements must be finalized before the connection closes
  sqlite3_close_v2(db_);
}

void Database::exec(std::string_view sql) {
  const std::string text(sql);
  if (sqlite3_exec(db_, text.c_str(), nullptr, nullptr, nullptr) != SQLITE_OK)
    fail(db_, "exec '" + text.substr(0, 80) + "'");
}

Statement& Database::prepare(std::string_view sql) {
  auto it = cache_.find(sql);
  if (it == cache_.end())
    it = cache_.emplace(std::string(sql), std::make_unique<Statement>(db_, sql)).first;
  else
    it->second->reset();
  return *it->second;
}

int Database::schema_version() {
  auto& stmt = prepare("PRAGMA user_version");
  stmt.step();
  const int version = static_cast<int>(stmt.column_int64(0));
  stmt.reset();
  return version;
}

void Database::migrate(std::span<const Migration> migrations, bool quiet) {
  int expected = 1;
  for (const auto& m : migrations) {
    if (m.version != expected++)
      throw Error(errc::kInternal, "migrations must be numbered 1, 2, 3... without gaps", 500);
  }
  const int current = schema_version();
  const int latest = static_cast<int>(migrations.size());
  if (current > latest)
    throw Error(errc::kSchemaTooNew,
                "database schema version " + std::to_string(current) + " is newer than this coop (" +
                    std::to_string(latest) + "); refusing to touch it",
                500);
  for (const auto& m : migrations) {
    if (m.version <= current) continue;
    Transaction tx(*this);
    // Two processes share some databases (coop-room and coop-federate, room.db): the one that
    // waited for the other's write lock finds the step done.
    if (schema_version() >= m.version) continue;
    exec(m.sql);
    exec("PRAGMA user_version = " + std::to_string(m.version));
    tx.commit();
  }
  if (current > 0 && current < latest) {
    const char* file = sqlite3_db_filename(db_, "main");
    spdlog::log(quiet ? spdlog::level::debug : spdlog::level::info, "{}: schema upgraded from version {} to {}",
                file ? file : "database", current, latest);
  }
}

int64_t Database::last_insert_rowid() const { return sqlite3_last_insert_rowid(db_); }
int Database::changes() const { return sqlite3_changes(db_); }

Transaction::Transaction(Database& db) : db_(db) { db_.exec("BEGIN IMMEDIATE"); }

Transaction::~Transaction() {
  if (!done_) sqlite3_exec(db_.handle(), "ROLLBACK", nullptr, nullptr, nullptr);
}

void Transaction::commit() {
  db_.exec("COMMIT");
  done_ = true;
}

ReaderPool::ReaderPool(std::filesystem::path file, unsigned max_connections, Database& writer, std::mutex& writer_mutex)
    : file_(std::move(file)), max_(max_connections ? max_connections : 1), writer_(writer), writer_mutex_(writer_mutex) {}

ReaderPool::~ReaderPool() = default;  // every lease has ended: they live inside calls on the owner

ReaderPool::Lease ReaderPool::lease() {
  if (std::unique_lock writer_lock(writer_mutex_, std::try_to_lock); writer_lock.owns_lock())
    return Lease(*this, writer_, std::move(writer_lock));
  std::unique_ptr<Database> db;
  {
    std::unique_lock lock(mutex_);
    returned_.wait(lock, [this] { return !idle_.empty() || open_ < max_; });
    if (!idle_.empty()) {
      db = std::move(idle_.back());
      idle_.pop_back();
    } else {
      ++open_;
    }
  }
  if (!db) {
    try {
      db = Database::open(file_, OpenOptions{.read_only = true});
    } catch (...) {
      give_back(nullptr);
      throw;
    }
  }
  Lease lease(*this, std::move(db));
  lease->prepare("BEGIN").run();  // deferred: the snapshot is taken by the first statement
  return lease;
}

void ReaderPool::give_back(std::unique_ptr<Database> db) {
  {
    std::lock_guard lock(mutex_);
    if (db)
      idle_.push_back(std::move(db));
    else
      --open_;
  }
  returned_.notify_one();
}

namespace {
// A statement left mid-step (an exception between step and reset) keeps its snapshot open,
// even past COMMIT, and on the writer's connection makes the next BEGIN fail.
void reset_busy_statements(sqlite3* handle) {
  for (sqlite3_stmt* stmt = sqlite3_next_stmt(handle, nullptr); stmt; stmt = sqlite3_next_stmt(handle, stmt))
    if (sqlite3_stmt_busy(stmt)) sqlite3_reset(stmt);
}
}  // namespace

ReaderPool::Lease::~Lease() {
  if (!db_) return;  // moved from
  reset_busy_statements(db_->handle());
  if (!reader_) return;  // the writer's connection: its lock ends with the lease
  sqlite3* handle = reader_->handle();
  try {
    reader_->prepare("COMMIT").run();  // cached: this runs once per reading call
  } catch (const std::exception&) {
    // below: a connection still in its transaction is closed rather than lent again
  }
  if (!sqlite3_get_autocommit(handle)) reader_.reset();
  pool_->give_back(std::move(reader_));
}

}  // namespace coop::sqlite
