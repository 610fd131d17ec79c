// SQLite helper: RAII handles, a prepared-statement cache, numbered migrations, WAL.
#pragma once

#include <sqlite3.h>

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>

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
  // Refuses a database newer than the code (a downgrade) without touching it.
  void migrate(std::span<const Migration> migrations);

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

}  // namespace coop::sqlite
