// SQLite helper: RAII handles, a prepared-statement cache, numbered migrations, WAL.
#pragma once

#include <sqlite3.h>

#include <condition_variable>
#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coop::sqlite {

// One schema step. Versions start at 1 and have no gaps; PRAGMA user_version holds the
// highest applied.
struct Migration {
  int version;
  const char* sql;
};

class Statement {
 public:
  Statement(sqlite3* db, std::string_view sql);
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement();

  // Bind by 1-based index; return *this to chain.
  Statement& bind(int index, int64_t value);
  Statement& bind(int index, int value) { return bind(index, static_cast<int64_t>(value)); }
  Statement& bind(int index, double value);
  Statement& bind(int index, std::string_view text);
  Statement& bind(int index, const char* text) { return bind(index, std::string_view(text)); }
  Statement& bind_blob(int index, std::string_view bytes);
  Statement& bind_null(int index);

  // True while there is a row; false when done. Throws coop::Error on failure.
  bool step();
  // Runs to completion (for INSERT/UPDATE/DELETE) and resets.
  void run();
  void reset();

  int64_t column_int64(int column) const;
  double column_double(int column) const;
  std::string column_text(int column) const;
  std::optional<std::string> column_optional_text(int column) const;
  bool column_is_null(int column) const;

 private:
  sqlite3* db_;
  sqlite3_stmt* stmt_ = nullptr;
};

struct OpenOptions {
  int busy_timeout_ms = 5000;
  bool read_only = false;
};

class Database {
 public:
  // Opens (creating when allowed) in WAL mode with synchronous=FULL: a committed
  // transaction survives power loss, which is what "acknowledge only what is durable" needs.
  static std::unique_ptr<Database> open(const std::filesystem::path& file, OpenOptions options = {});

  Database(const Database&) = delete;
  Database& operator=(const Database&) = delete;
  ~Database();

  void exec(std::string_view sql);
  // A cached prepared statement, reset and with bindings cleared, ready to bind.
  Statement& prepare(std::string_view sql);

  int schema_version();
  // Applies the migrations above the current version, each in its own transaction.
  // Refuses a database newer than the code (a downgrade) without touching it. An upgrade of
  // an existing database is logged once, with its file and versions (at debug level when
  // `quiet`: one index per member would say it once per mailbox); a new one is not.
  void migrate(std::span<const Migration> migrations, bool quiet = false);

  int64_t last_insert_rowid() const;
  int changes() const;
  sqlite3* handle() const { return db_; }

 private:
  explicit Database(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::map<std::string, std::unique_ptr<Statement>, std::less<>> cache_;
};

// BEGIN IMMEDIATE on construction, ROLLBACK on destruction unless commit() ran.
class Transaction {
 public:
  explicit Transaction(Database& db);
  Transaction(const Transaction&) = delete;
  Transaction& operator=(const Transaction&) = delete;
  ~Transaction();
  void commit();

 private:
  Database& db_;
  bool done_ = false;
};

// Reads beside the one writer of a WAL database (SQLite "Write-Ahead Logging": readers do
// not block the writer and the writer does not block readers). A reading call leases the
// writer's own connection when its mutex is free (its page cache is the warm one: a
// reader's cache is dropped whenever the writer has committed since its last read), and
// otherwise one of up to `max_connections` read-only connections, in a read transaction:
// one snapshot from the lease's first statement to its end.
class ReaderPool {
 public:
  // The caller never holds writer_mutex when it asks for a lease.
  ReaderPool(std::filesystem::path file, unsigned max_connections, Database& writer, std::mutex& writer_mutex);
  ReaderPool(const ReaderPool&) = delete;
  ReaderPool& operator=(const ReaderPool&) = delete;
  ~ReaderPool();

  class Lease {
   public:
    Lease(Lease&& other) noexcept
        : pool_(other.pool_), db_(std::exchange(other.db_, nullptr)), reader_(std::move(other.reader_)),
          writer_lock_(std::move(other.writer_lock_)) {}
    Lease(const Lease&) = delete;
    Lease& operator=(const Lease&) = delete;
    Lease& operator=(Lease&&) = delete;
    ~Lease();
    Database* operator->() const { return db_; }
    Database& operator*() const { return *db_; }

   private:
    friend class ReaderPool;
    Lease(ReaderPool& pool, Database& writer, std::unique_lock<std::mutex> lock)
        : pool_(&pool), db_(&writer), writer_lock_(std::move(lock)) {}
    Lease(ReaderPool& pool, std::unique_ptr<Database> reader) : pool_(&pool), db_(reader.get()), reader_(std::move(reader)) {}
    ReaderPool* pool_;
    Database* db_;
    std::unique_ptr<Database> reader_;
    std::unique_lock<std::mutex> writer_lock_;
  };
  Lease lease();

 private:
  void give_back(std::unique_ptr<Database> db);

  std::filesystem::path file_;
  unsigned max_;
  Database& writer_;
  std::mutex& writer_mutex_;
  std::mutex mutex_;
  std::condition_variable returned_;
  std::vector<std::unique_ptr<Database>> idle_;
  unsigned open_ = 0;
};

}  // namespace coop::sqlite
