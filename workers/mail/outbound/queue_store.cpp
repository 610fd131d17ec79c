// The outbound queue in SQLite (WAL, synchronous=FULL).
#include "workers/mail/outbound/queue_store.h"

#include <algorithm>
#include <chrono>
#include <map>
#include <set>

#include "common/error.h"
#include "common/sqlite.h"
#include "common/text.h"
#include "workers/mail/smtp_parser.h"

namespace coop::mail {

namespace {

constexpr sqlite::Migration kMigrations[] = {
    {1, R"sql(
      CREATE TABLE messages (
        id         INTEGER PRIMARY KEY,
        blob       TEXT NOT NULL,
        size       INTEGER NOT NULL,
        sender     TEXT NOT NULL,
        handle     TEXT NOT NULL DEFAULT '',
        created_ms INTEGER NOT NULL,
        smtputf8   INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE recipients (
        id              INTEGER PRIMARY KEY,
        message_id      INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
        address         TEXT NOT NULL,
        domain          TEXT NOT NULL,
        state           TEXT NOT NULL DEFAULT 'queued',
        attempts        INTEGER NOT NULL DEFAULT 0,
        next_attempt_ms INTEGER NOT NULL,
        last_error      TEXT NOT NULL DEFAULT '',
        remote          TEXT NOT NULL DEFAULT '',
        delay_notified  INTEGER NOT NULL DEFAULT 0
      );
      CREATE INDEX recipients_due ON recipients(state, next_attempt_ms);
      CREATE INDEX recipients_message ON recipients(message_id);
    )sql"},
    {2, R"sql(
      CREATE TABLE finished (
        message_id  INTEGER NOT NULL,
        address     TEXT NOT NULL,
        state       TEXT NOT NULL,
        last_error  TEXT NOT NULL,
        remote      TEXT NOT NULL,
        finished_ms INTEGER NOT NULL
      );
      CREATE INDEX finished_message ON finished(message_id);
      CREATE INDEX finished_age ON finished(finished_ms);
    )sql"},
};

// How long what became of a message is kept after it left the queue (JMAP's deliveryStatus).
constexpr int64_t kFinishedKeptMs = 30LL * 24 * 3600 * 1000;

constexpr const char* kRecipientColumns =
    "id, message_id, address, domain, state, attempts, next_attempt_ms, last_error, remote, delay_notified";

OutboundRecipient read_recipient(sqlite::Statement& q) {
  OutboundRecipient r;
  r.id = q.column_int64(0);
  r.message_id = q.column_int64(1);
  r.address = q.column_text(2);
  r.domain = q.column_text(3);
  r.state = q.column_text(4);
  r.attempts = static_cast<int>(q.column_int64(5));
  r.next_attempt_ms = q.column_int64(6);
  r.last_error = q.column_text(7);
  r.remote = q.column_text(8);
  r.delay_notified = q.column_int64(9) != 0;
  return r;
}

}  // namespace

int64_t queue_clock_ms() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

QueueStore::QueueStore(const std::filesystem::path& file) : db_(sqlite::Database::open(file)) {
  db_->exec("PRAGMA foreign_keys = ON");
  db_->migrate(kMigrations);
}

QueueStore::~QueueStore() = default;

int64_t QueueStore::insert(const OutboundMessage& m, const std::vector<std::string>& recipients, int64_t now_ms) {
  // Ids are never used twice, not even after the queue emptied: what became of a message
  // (finished) is found by its id.
  db_->prepare("INSERT INTO messages (id, blob, size, sender, handle, created_ms, smtputf8) VALUES ("
               "(SELECT max(n) + 1 FROM (SELECT coalesce(max(id), 0) AS n FROM messages"
               " UNION ALL SELECT coalesce(max(message_id), 0) FROM finished)), ?1, ?2, ?3, ?4, ?5, ?6)")
      .bind(1, m.blob)
      .bind(2, m.size)
      .bind(3, m.sender)
      .bind(4, m.handle)
      .bind(5, now_ms)
      .bind(6, m.smtputf8 ? 1 : 0)
      .run();
  const auto id = db_->last_insert_rowid();
  std::set<std::string> seen;
  for (const auto& address : recipients) {
    auto [local, domain] = split_address(address);
    const auto normalised = local + "@" + ascii_lower(domain);
    if (!seen.insert(ascii_lower(normalised)).second) continue;  // one copy per address
    db_->prepare("INSERT INTO recipients (message_id, address, domain, next_attempt_ms) VALUES (?1, ?2, ?3, ?4)")
        .bind(1, id)
        .bind(2, normalised)
        .bind(3, ascii_lower(domain))
        .bind(4, now_ms)
        .run();
  }
  return id;
}

int64_t QueueStore::enqueue(const OutboundMessage& m, const std::vector<std::string>& recipients, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  sqlite::Transaction tx(*db_);
  const auto id = insert(m, recipients, now_ms);
  tx.commit();
  return id;
}

OutboundMessage QueueStore::message_row(int64_t id) {
  auto& q = db_->prepare("SELECT id, blob, size, sender, handle, created_ms, smtputf8 FROM messages WHERE id = ?1");
  q.bind(1, id);
  OutboundMessage m;
  if (q.step()) {
    m.id = q.column_int64(0);
    m.blob = q.column_text(1);
    m.size = q.column_int64(2);
    m.sender = q.column_text(3);
    m.handle = q.column_text(4);
    m.created_ms = q.column_int64(5);
    m.smtputf8 = q.column_int64(6) != 0;
  }
  q.reset();
  return m;
}

std::vector<DeliveryBatch> QueueStore::due(int64_t now_ms, std::size_t limit, const std::vector<int64_t>& in_flight) {
  std::lock_guard lock(mutex_);
  const std::set<int64_t> busy(in_flight.begin(), in_flight.end());
  auto& q = db_->prepare(std::string("SELECT ") + kRecipientColumns +
                         " FROM recipients WHERE state = 'queued' AND next_attempt_ms <= ?1"
                         " ORDER BY next_attempt_ms, id LIMIT ?2");
  q.bind(1, now_ms).bind(2, static_cast<int64_t>(limit * 8 + busy.size()));
  std::map<std::pair<int64_t, std::string>, std::vector<OutboundRecipient>> groups;
  std::vector<std::pair<int64_t, std::string>> order;
  while (q.step()) {
    auto r = read_recipient(q);
    if (busy.count(r.id)) continue;
    const auto key = std::make_pair(r.message_id, r.domain);
    auto& group = groups[key];
    if (group.empty()) order.push_back(key);
    group.push_back(std::move(r));
  }
  q.reset();
  std::vector<DeliveryBatch> out;
  for (const auto& key : order) {
    if (out.size() >= limit) break;
    out.push_back(DeliveryBatch{message_row(key.first), key.second, std::move(groups[key])});
  }
  return out;
}

std::optional<int64_t> QueueStore::next_due() {
  std::lock_guard lock(mutex_);
  auto& q = db_->prepare("SELECT MIN(next_attempt_ms) FROM recipients WHERE state = 'queued'");
  std::optional<int64_t> out;
  if (q.step() && !q.column_is_null(0)) out = q.column_int64(0);
  q.reset();
  return out;
}

void QueueStore::remove_finished(int64_t message_id) {
  auto& q = db_->prepare("SELECT COUNT(*) FROM recipients WHERE message_id = ?1 AND state = 'queued'");
  q.bind(1, message_id);
  const bool done = q.step() && q.column_int64(0) == 0;
  q.reset();
  if (!done) return;
  // What became of each recipient outlives the message, for a while.
  const auto now = queue_clock_ms();
  db_->prepare("INSERT INTO finished (message_id, address, state, last_error, remote, finished_ms)"
               " SELECT message_id, address, state, last_error, remote, ?2 FROM recipients WHERE message_id = ?1")
      .bind(1, message_id)
      .bind(2, now)
      .run();
  db_->prepare("DELETE FROM finished WHERE finished_ms < ?1").bind(1, now - kFinishedKeptMs).run();
  db_->prepare("DELETE FROM messages WHERE id = ?1").bind(1, message_id).run();
}

std::vector<OutboundRecipient> QueueStore::outcome(int64_t message_id) {
  std::lock_guard lock(mutex_);
  if (message_row(message_id).id != 0) return recipients_of(message_id);
  auto& q = db_->prepare("SELECT address, state, last_error, remote FROM finished WHERE message_id = ?1 ORDER BY rowid");
  q.bind(1, message_id);
  std::vector<OutboundRecipient> out;
  while (q.step()) {
    OutboundRecipient r;
    r.message_id = message_id;
    r.address = q.column_text(0);
    r.state = q.column_text(1);
    r.last_error = q.column_text(2);
    r.remote = q.column_text(3);
    out.push_back(std::move(r));
  }
  q.reset();
  return out;
}

void QueueStore::record(const std::vector<DeliveryOutcome>& outcomes,
                        const std::vector<std::pair<OutboundMessage, std::vector<std::string>>>& reports, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  sqlite::Transaction tx(*db_);
  std::set<int64_t> messages;
  for (const auto& o : outcomes) {
    const char* state = o.kind == DeliveryOutcome::Kind::delivered ? "delivered"
                        : o.kind == DeliveryOutcome::Kind::failed  ? "failed"
                                                                   : "queued";
    db_->prepare("UPDATE recipients SET state = ?2, attempts = attempts + 1, next_attempt_ms = ?3, last_error = ?4,"
                 " remote = ?5, delay_notified = MAX(delay_notified, ?6) WHERE id = ?1")
        .bind(1, o.recipient_id)
        .bind(2, state)
        .bind(3, o.next_attempt_ms)
        .bind(4, o.reply)
        .bind(5, o.remote)
        .bind(6, o.delay_notified ? 1 : 0)
        .run();
    auto& q = db_->prepare("SELECT message_id FROM recipients WHERE id = ?1");
    q.bind(1, o.recipient_id);
    if (q.step()) messages.insert(q.column_int64(0));
    q.reset();
  }
  for (const auto& [message, recipients] : reports) insert(message, recipients, now_ms);
  for (const auto id : messages) remove_finished(id);
  tx.commit();
}

std::vector<OutboundRecipient> QueueStore::recipients_of(int64_t message_id) {
  std::vector<OutboundRecipient> out;
  auto& q = db_->prepare(std::string("SELECT ") + kRecipientColumns + " FROM recipients WHERE message_id = ?1 ORDER BY id");
  q.bind(1, message_id);
  while (q.step()) out.push_back(read_recipient(q));
  q.reset();
  return out;
}

std::vector<std::pair<OutboundMessage, std::vector<OutboundRecipient>>> QueueStore::list() {
  std::lock_guard lock(mutex_);
  std::vector<int64_t> ids;
  auto& q = db_->prepare("SELECT id FROM messages ORDER BY id");
  while (q.step()) ids.push_back(q.column_int64(0));
  q.reset();
  std::vector<std::pair<OutboundMessage, std::vector<OutboundRecipient>>> out;
  for (const auto id : ids) out.emplace_back(message_row(id), recipients_of(id));
  return out;
}

std::optional<std::pair<OutboundMessage, std::vector<OutboundRecipient>>> QueueStore::find(int64_t id) {
  std::lock_guard lock(mutex_);
  auto m = message_row(id);
  if (m.id == 0) return std::nullopt;
  return std::make_pair(m, recipients_of(id));
}

bool QueueStore::retry(int64_t id, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  if (message_row(id).id == 0) return false;
  db_->prepare("UPDATE recipients SET next_attempt_ms = ?2 WHERE message_id = ?1 AND state = 'queued'")
      .bind(1, id)
      .bind(2, now_ms)
      .run();
  return true;
}

bool QueueStore::remove(int64_t id) {
  std::lock_guard lock(mutex_);
  db_->prepare("DELETE FROM messages WHERE id = ?1").bind(1, id).run();
  return db_->changes() > 0;
}

std::size_t QueueStore::size() {
  std::lock_guard lock(mutex_);
  auto& q = db_->prepare("SELECT COUNT(*) FROM messages");
  const std::size_t n = q.step() ? static_cast<std::size_t>(q.column_int64(0)) : 0;
  q.reset();
  return n;
}

}  // namespace coop::mail
