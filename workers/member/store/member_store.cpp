// member.db schema and queries.
#include "workers/member/store/member_store.h"

#include "common/sqlite.h"

namespace coop::member {

namespace {

// Numbered, append-only: a released migration is never edited, a new one is added.
constexpr sqlite::Migration kMigrations[] = {
    {1, R"sql(
      CREATE TABLE members (
        id           INTEGER PRIMARY KEY,
        handle       TEXT NOT NULL UNIQUE,
        display_name TEXT NOT NULL DEFAULT '',
        status       TEXT NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'suspended', 'removed')),
        role         TEXT NOT NULL DEFAULT 'member' CHECK (role IN ('admin', 'member', 'guest')),
        created_at   INTEGER NOT NULL,
        updated_at   INTEGER NOT NULL
      );
    )sql"},
};

}  // namespace

MemberStore::MemberStore(const std::filesystem::path& file) : db_(sqlite::Database::open(file)) {
  db_->migrate(kMigrations);
}

MemberStore::~MemberStore() = default;

int MemberStore::schema_version() {
  std::lock_guard lock(mutex_);
  return db_->schema_version();
}

int64_t MemberStore::count(const char* status) {
  std::lock_guard lock(mutex_);
  auto& stmt = db_->prepare("SELECT count(*) FROM members WHERE status = ?1");
  stmt.bind(1, status);
  stmt.step();
  const auto n = stmt.column_int64(0);
  stmt.reset();
  return n;
}

}  // namespace coop::member
