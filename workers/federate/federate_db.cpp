#include "workers/federate/federate_db.h"

#include "common/sqlite.h"

namespace coop::federate {

namespace {

constexpr sqlite::Migration kMigrations[] = {
    {1, R"sql(
      CREATE TABLE server_policy (
        server TEXT PRIMARY KEY,
        policy TEXT NOT NULL CHECK (policy IN ('allow', 'deny')),
        since  INTEGER NOT NULL
      ) WITHOUT ROWID;
    )sql"},
    // Outbound (Server-Server API "Transactions"): how far each destination has received
    // room.db's stream of events, and its backoff after failures. Inbound: the transactions
    // each origin sent, with our answer, so that a retried one is answered alike and nothing
    // in it is processed twice.
    {2, R"sql(
      CREATE TABLE destinations (
        server       TEXT PRIMARY KEY,
        position     INTEGER NOT NULL,
        retry_at     INTEGER NOT NULL DEFAULT 0,
        backoff_ms   INTEGER NOT NULL DEFAULT 0,
        last_error   TEXT NOT NULL DEFAULT '',
        last_sent_ts INTEGER NOT NULL DEFAULT 0,
        sent         INTEGER NOT NULL DEFAULT 0
      ) WITHOUT ROWID;
      CREATE TABLE inbound_txns (
        origin   TEXT NOT NULL,
        txn_id   TEXT NOT NULL,
        response TEXT NOT NULL,
        at       INTEGER NOT NULL,
        PRIMARY KEY (origin, txn_id)
      ) WITHOUT ROWID;
      CREATE INDEX inbound_txns_by_age ON inbound_txns (at);
    )sql"},
    // EDUs that must not be lost (to-device messages, device list updates): kept here until
    // their destination has acknowledged a transaction holding them.
    {3, R"sql(
      CREATE TABLE edu_outbox (
        id     INTEGER PRIMARY KEY,
        server TEXT NOT NULL,
        edu    TEXT NOT NULL,
        at     INTEGER NOT NULL
      );
      CREATE INDEX edu_outbox_by_server ON edu_outbox (server, id);
    )sql"},
};

}  // namespace

std::unique_ptr<sqlite::Database> open_federate_db(const std::filesystem::path& file) {
  auto db = sqlite::Database::open(file);
  db->migrate(kMigrations);
  return db;
}

}  // namespace coop::federate
