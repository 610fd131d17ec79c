// The SQLite helper: migrations, statement cache, transactions.
#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "common/sqlite.h"
#include "temp_dir.h"

using namespace coop::sqlite;

namespace {
constexpr Migration kTwoSteps[] = {
    {1, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE);"},
    {2, "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;"},
};
constexpr Migration kBroken[] = {
    {1, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT NOT NULL UNIQUE);"},
    {2, "ALTER TABLE notes ADD COLUMN pinned INTEGER NOT NULL DEFAULT 0;"},
    {3, "CREATE TABLE tags (id INTEGER PRIMARY KEY); THIS IS NOT SQL;"},
};
}  // namespace

TEST_CASE("migrations run once, in order, and record the schema version") {
  coop::test::TempDir dir;
  {
    auto db = Database::open(dir.path() / "a.db");
    CHECK(db->schema_version() == 0);
    db->migrate(std::span(kTwoSteps).first(1));
    CHECK(db->schema_version() == 1);
    db->prepare("INSERT INTO notes (body) VALUES (?1)").bind(1, "kept").run();
  }
  auto db = Database::open(dir.path() / "a.db");
  db->migrate(kTwoSteps);
  CHECK(db->schema_version() == 2);
  auto& stmt = db->prepare("SELECT body, pinned FROM notes");
  REQUIRE(stmt.step());
  CHECK(stmt.column_text(0) == "kept");
  CHECK(stmt.column_int64(1) == 0);
  CHECK_FALSE(stmt.step());
}

TEST_CASE("a failing migration rolls back and leaves the previous version") {
  coop::test::TempDir dir;
  auto db = Database::open(dir.path() / "a.db");
  db->migrate(std::span(kBroken).first(2));
  CHECK_THROWS_AS(db->migrate(kBroken), coop::Error);
  CHECK(db->schema_version() == 2);
  CHECK_THROWS(db->exec("SELECT * FROM tags"));
}

TEST_CASE("a database newer than the code is refused untouched") {
  coop::test::TempDir dir;
  auto db = Database::open(dir.path() / "a.db");
  db->migrate(kTwoSteps);
  try {
    db->migrate(std::span(kTwoSteps).first(1));
    FAIL("migrated a newer database down");
  } catch (const coop::Error& e) {
    CHECK(e.code() == "schema_too_new");
  }
  CHECK(db->schema_version() == 2);
}

TEST_CASE("migration numbers must have no gaps") {
  coop::test::TempDir dir;
  constexpr Migration gap[] = {{1, "SELECT 1;"}, {3, "SELECT 1;"}};
  auto db = Database::open(dir.path() / "a.db");
  CHECK_THROWS_AS(db->migrate(gap), coop::Error);
  CHECK(db->schema_version() == 0);
}

TEST_CASE("databases open in WAL mode with a busy timeout") {
  coop::test::TempDir dir;
  auto db = Database::open(dir.path() / "a.db");
  auto& mode = db->prepare("PRAGMA journal_mode");
  REQUIRE(mode.step());
  CHECK(mode.column_text(0) == "wal");
  mode.reset();
  auto& timeout = db->prepare("PRAGMA busy_timeout");
  REQUIRE(timeout.step());
  CHECK(timeout.column_int64(0) == 5000);
}

TEST_CASE("two connections opening and migrating a new database at once both succeed") {
  // coop-room and coop-federate open room.db together on a shard's first start: the switch to
  // WAL and the migrations must wait for each other, not fail.
  coop::test::TempDir dir;
  for (int round = 0; round < 40; ++round) {
    const auto file = dir.path() / ("race" + std::to_string(round) + ".db");
    std::atomic<int> failures{0};
    auto open_and_migrate = [&] {
      try {
        auto db = Database::open(file);
        db->migrate(kTwoSteps, true);
      } catch (const coop::Error&) {
        ++failures;
      }
    };
    std::thread a(open_and_migrate), b(open_and_migrate);
    a.join();
    b.join();
    REQUIRE(failures == 0);
    auto db = Database::open(file);
    CHECK(db->schema_version() == 2);
  }
}

TEST_CASE("prepared statements are cached and come back reset") {
  coop::test::TempDir dir;
  auto db = Database::open(dir.path() / "a.db");
  db->migrate(kTwoSteps);
  auto& first = db->prepare("INSERT INTO notes (body) VALUES (?1)");
  first.bind(1, "one").run();
  auto& second = db->prepare("INSERT INTO notes (body) VALUES (?1)");
  CHECK(&first == &second);
  second.bind(1, "two").run();
  auto& count = db->prepare("SELECT count(*) FROM notes");
  count.step();
  CHECK(count.column_int64(0) == 2);
}

TEST_CASE("a transaction not committed is rolled back") {
  coop::test::TempDir dir;
  auto db = Database::open(dir.path() / "a.db");
  db->migrate(kTwoSteps);
  {
    Transaction tx(*db);
    db->prepare("INSERT INTO notes (body) VALUES ('lost')").run();
  }
  {
    Transaction tx(*db);
    db->prepare("INSERT INTO notes (body) VALUES ('kept')").run();
    tx.commit();
  }
  auto& count = db->prepare("SELECT group_concat(body) FROM notes");
  count.step();
  CHECK(count.column_text(0) == "kept");
}

TEST_CASE("constraint violations become a constraint error") {
  coop::test::TempDir dir;
  auto db = Database::open(dir.path() / "a.db");
  db->migrate(kTwoSteps);
  db->prepare("INSERT INTO notes (body) VALUES ('x')").run();
  try {
    db->prepare("INSERT INTO notes (body) VALUES ('x')").run();
    FAIL("inserted a duplicate");
  } catch (const coop::Error& e) {
    CHECK(e.code() == "constraint");
    CHECK(e.status() == 409);
  }
}

namespace {
int64_t count_notes(Database& db) {
  auto& stmt = db.prepare("SELECT count(*) FROM notes");
  stmt.step();
  const auto n = stmt.column_int64(0);
  stmt.reset();
  return n;
}
}  // namespace

TEST_CASE("a reader lease takes the writer's connection when it is free, a reader's otherwise") {
  coop::test::TempDir dir;
  auto writer = Database::open(dir.path() / "r.db");
  writer->migrate(kTwoSteps);
  std::mutex writer_mutex;
  ReaderPool pool(dir.path() / "r.db", 2, *writer, writer_mutex);
  {
    auto lease = pool.lease();
    CHECK(lease->handle() == writer->handle());
    CHECK_FALSE(writer_mutex.try_lock());  // the lease holds the writer's lock
  }
  REQUIRE(writer_mutex.try_lock());
  // While a write is in progress, readers see the last commit, never the write's rows.
  Transaction tx(*writer);
  writer->prepare("INSERT INTO notes (body) VALUES ('uncommitted')").run();
  {
    auto lease = pool.lease();
    CHECK(lease->handle() != writer->handle());
    CHECK(count_notes(*lease) == 0);
  }
  tx.commit();
  auto lease = pool.lease();
  CHECK(count_notes(*lease) == 1);
  writer_mutex.unlock();
}

TEST_CASE("a reader lease reads one snapshot, and a statement left mid-step does not keep it") {
  coop::test::TempDir dir;
  auto writer = Database::open(dir.path() / "s.db");
  writer->migrate(kTwoSteps);
  writer->prepare("INSERT INTO notes (body) VALUES ('one'), ('two')").run();
  std::mutex writer_mutex;
  ReaderPool pool(dir.path() / "s.db", 1, *writer, writer_mutex);
  std::lock_guard writing(writer_mutex);  // every lease below is a reader
  {
    auto lease = pool.lease();
    CHECK(count_notes(*lease) == 2);
    writer->prepare("INSERT INTO notes (body) VALUES ('three')").run();
    CHECK(count_notes(*lease) == 2);  // the same snapshot until the lease ends
    auto& open = lease->prepare("SELECT body FROM notes ORDER BY id");
    REQUIRE(open.step());  // and left stepping, as an exception between step and reset would
  }
  auto lease = pool.lease();  // the one connection again, in a fresh snapshot
  CHECK(count_notes(*lease) == 3);
}

TEST_CASE("reader leases beyond the pool's size wait for one to end") {
  coop::test::TempDir dir;
  auto writer = Database::open(dir.path() / "w.db");
  writer->migrate(kTwoSteps);
  std::mutex writer_mutex;
  ReaderPool pool(dir.path() / "w.db", 1, *writer, writer_mutex);
  std::lock_guard writing(writer_mutex);
  auto first = std::make_unique<ReaderPool::Lease>(pool.lease());
  std::atomic<bool> second_done{false};
  std::thread other([&] {
    auto lease = pool.lease();
    second_done = true;
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK_FALSE(second_done);
  first.reset();
  other.join();
  CHECK(second_done);
}
