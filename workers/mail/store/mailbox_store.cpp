// Per-member SQLite mail indexes.
#include "workers/mail/store/mailbox_store.h"

#include <sqlite3.h>

#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>
#include <utility>

#include "common/error.h"
#include "common/mail/mailbox_name.h"
#include "common/sqlite.h"
#include "common/text.h"

namespace coop::mail {

namespace {

constexpr sqlite::Migration kMigrations[] = {
    {1, R"sql(
      CREATE TABLE mailboxes (
        id             INTEGER PRIMARY KEY,
        name           TEXT NOT NULL UNIQUE,
        special_use    TEXT NOT NULL DEFAULT '',
        uidvalidity    INTEGER NOT NULL,
        uidnext        INTEGER NOT NULL DEFAULT 1,
        highest_modseq INTEGER NOT NULL DEFAULT 1,
        subscribed     INTEGER NOT NULL DEFAULT 1
      );
      CREATE TABLE messages (
        mailbox_id     INTEGER NOT NULL REFERENCES mailboxes (id),
        uid            INTEGER NOT NULL,
        modseq         INTEGER NOT NULL,
        blob           TEXT NOT NULL,
        size           INTEGER NOT NULL,
        internal_date  INTEGER NOT NULL,
        flags          INTEGER NOT NULL DEFAULT 0,
        keywords       TEXT NOT NULL DEFAULT '',
        message_id     TEXT NOT NULL DEFAULT '',
        subject        TEXT NOT NULL DEFAULT '',
        envelope       TEXT NOT NULL DEFAULT '{}',
        body_structure TEXT NOT NULL DEFAULT '{}',
        PRIMARY KEY (mailbox_id, uid)
      ) WITHOUT ROWID;
      CREATE INDEX messages_by_blob ON messages (mailbox_id, blob);
    )sql"},
    // RFC 7162 QRESYNC: which UIDs went, and at which MODSEQ, for VANISHED (EARLIER).
    {2, R"sql(
      CREATE TABLE expunged (
        mailbox_id INTEGER NOT NULL,
        uid        INTEGER NOT NULL,
        modseq     INTEGER NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
      ) WITHOUT ROWID;
    )sql"},
    // IMAP speed: a scan reads every byte of the rows it passes, so each thing read for a
    // whole mailbox has a table of its own: lean message rows (SELECT), the ENVELOPE as IMAP
    // sends it, rendered at delivery (FETCH ENVELOPE), the header section (SEARCH FROM/TO/
    // HEADER, THREAD), the SORT keys, and the parsed summaries (BODYSTRUCTURE, sections).
    // Messages stored before have none of the three: their JSON and files stand in.
    {3, R"sql(
      CREATE TABLE summaries (
        mailbox_id     INTEGER NOT NULL,
        uid            INTEGER NOT NULL,
        envelope       TEXT NOT NULL DEFAULT '{}',
        body_structure TEXT NOT NULL DEFAULT '{}'
      );
      INSERT INTO summaries (mailbox_id, uid, envelope, body_structure)
        SELECT mailbox_id, uid, envelope, body_structure FROM messages;
      CREATE UNIQUE INDEX summaries_by_uid ON summaries (mailbox_id, uid);
      CREATE TABLE imap_envelopes (
        mailbox_id INTEGER NOT NULL,
        uid        INTEGER NOT NULL,
        envelope   TEXT NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
      ) WITHOUT ROWID;
      CREATE TABLE headers (
        mailbox_id INTEGER NOT NULL,
        uid        INTEGER NOT NULL,
        header     BLOB NOT NULL
      );
      CREATE UNIQUE INDEX headers_by_uid ON headers (mailbox_id, uid);
      CREATE TABLE sort_keys (
        mailbox_id   INTEGER NOT NULL,
        uid          INTEGER NOT NULL,
        sent_date    INTEGER NOT NULL,
        from_mailbox TEXT NOT NULL,
        to_mailbox   TEXT NOT NULL,
        cc_mailbox   TEXT NOT NULL,
        PRIMARY KEY (mailbox_id, uid)
      ) WITHOUT ROWID;
      CREATE TABLE lean_messages (
        mailbox_id     INTEGER NOT NULL REFERENCES mailboxes (id),
        uid            INTEGER NOT NULL,
        modseq         INTEGER NOT NULL,
        blob           TEXT NOT NULL,
        size           INTEGER NOT NULL,
        internal_date  INTEGER NOT NULL,
        flags          INTEGER NOT NULL DEFAULT 0,
        keywords       TEXT NOT NULL DEFAULT '',
        message_id     TEXT NOT NULL DEFAULT '',
        subject        TEXT NOT NULL DEFAULT '',
        PRIMARY KEY (mailbox_id, uid)
      ) WITHOUT ROWID;
      INSERT INTO lean_messages SELECT mailbox_id, uid, modseq, blob, size, internal_date, flags, keywords, message_id,
        subject FROM messages;
      DROP TABLE messages;
      ALTER TABLE lean_messages RENAME TO messages;
      CREATE INDEX messages_by_blob ON messages (mailbox_id, blob);
    )sql"},
    // RFC 9051 2.3.1.1: a mailbox made again under a name must not get a UIDVALIDITY that
    // name had, even within the second: the last one issued is kept, and each is above it.
    {4, R"sql(
      CREATE TABLE uidvalidity_issued (last INTEGER NOT NULL);
      INSERT INTO uidvalidity_issued (last) SELECT coalesce(max(uidvalidity), 0) FROM mailboxes;
    )sql"},
    // RFC 3501 2.3.2 \Recent: the highest UID some session has already been told is recent.
    // Messages already stored when this came are not recent.
    {5, R"sql(
      ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 0;
      UPDATE mailboxes SET recent_uid = uidnext - 1;
    )sql"},
    // RFC 9051 6.3.7: subscriptions are names, not mailboxes; deleting a mailbox leaves its
    // name subscribed (LIST (SUBSCRIBED) then says \NonExistent), as RFC 5258 expects.
    {6, R"sql(
      CREATE TABLE subscriptions (name TEXT PRIMARY KEY) WITHOUT ROWID;
      INSERT INTO subscriptions (name) SELECT name FROM mailboxes WHERE subscribed = 1;
      ALTER TABLE mailboxes DROP COLUMN subscribed;
    )sql"},
    // RFC 8514 SAVEDATE: when a message came into its mailbox (append, delivery, copy, move);
    // NULL for messages stored before, which then answer with their internal date.
    {7, R"sql(
      ALTER TABLE messages ADD COLUMN saved_at INTEGER;
    )sql"},
    // RFC 5464 METADATA: annotations of the server ("") and of mailboxes, by name.
    {8, R"sql(
      CREATE TABLE metadata (
        mailbox TEXT NOT NULL,
        entry   TEXT NOT NULL,
        value   BLOB NOT NULL,
        PRIMARY KEY (mailbox, entry)
      ) WITHOUT ROWID;
    )sql"},
};

// Starts a MailboxStore::key_of key: a control character, which no mailbox name may hold.
constexpr char kKeyMark = '\x01';

bool valid_handle_path(const std::string& handle) {
  // Handles are checked by the registry; this guards the file name all the same.
  if (handle.empty() || handle.size() > 64 || handle.front() == '.') return false;
  for (char c : handle)
    if (!((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-')) return false;
  return true;
}

// A message's keywords after a STORE: space-separated, in the order they came, each once
// whatever its case.
std::string changed_keywords(const std::string& before, MailboxStore::FlagChange change, const std::vector<std::string>& keywords) {
  std::vector<std::string> now;
  auto has = [&](const std::string& k) {
    return std::any_of(now.begin(), now.end(), [&](const std::string& x) { return ascii_lower(x) == ascii_lower(k); });
  };
  if (change != MailboxStore::FlagChange::replace)
    for (std::size_t at = 0; at < before.size();) {
      const auto end = std::min(before.find(' ', at), before.size());
      if (end > at) now.push_back(before.substr(at, end - at));
      at = end + 1;
    }
  if (change == MailboxStore::FlagChange::remove) {
    std::erase_if(now, [&](const std::string& x) {
      return std::any_of(keywords.begin(), keywords.end(), [&](const std::string& k) { return ascii_lower(x) == ascii_lower(k); });
    });
  } else {
    for (const auto& k : keywords)
      if (!has(k)) now.push_back(k);
  }
  if (now.size() > kMaxKeywords)
    throw Error(errc::kTooManyKeywords, "a message takes at most " + std::to_string(kMaxKeywords) + " keywords", 400);
  std::string out;
  for (const auto& k : now) out += (out.empty() ? "" : " ") + k;
  return out;
}

}  // namespace

const CachedMessage* MailboxCache::find(int64_t uid) const {
  const auto it = std::lower_bound(messages.begin(), messages.end(), uid, [](const CachedMessage& m, int64_t u) { return m.uid < u; });
  return it != messages.end() && it->uid == uid ? &*it : nullptr;
}

CachedMessage* MailboxCache::find(int64_t uid) { return const_cast<CachedMessage*>(std::as_const(*this).find(uid)); }

struct MailboxStore::Index {
  std::mutex mutex;
  std::unique_ptr<sqlite::Database> db;
  struct Held {
    int holders = 0;
    MailboxCache cache;
    std::map<uint64_t, std::function<void()>> watchers;
  };
  std::map<int64_t, Held> held;  // by mailbox id
  uint64_t next_watcher = 1;
  // Told of every commit to this member's index (RFC 5465 NOTIFY): SQLite calls on_commit
  // on the committing thread, which holds `mutex`.
  std::map<uint64_t, std::function<void()>> account_watchers;

  static int on_commit(void* self) {
    for (const auto& [token, changed] : static_cast<Index*>(self)->account_watchers) changed();
    return 0;  // 0: the commit goes ahead
  }

  // The UIDVALIDITY for a mailbox made now: the clock's second, or one above the last issued
  // when that is not below it (RFC 9051 2.3.1.1: strictly ascending for a name). Caller holds
  // the mutex (or is opening the index).
  int64_t next_uidvalidity() {
    auto& last = db->prepare("SELECT last FROM uidvalidity_issued");
    const int64_t previous = last.step() ? last.column_int64(0) : 0;
    last.reset();
    const int64_t value = std::max<int64_t>(static_cast<int64_t>(::time(nullptr)), previous + 1);
    db->prepare("UPDATE uidvalidity_issued SET last = ?1").bind(1, value).run();
    return value;
  }

  MailboxCache* cached(int64_t id) {
    const auto it = held.find(id);
    return it == held.end() ? nullptr : &it->second.cache;
  }

  void notify(int64_t id) {
    if (const auto it = held.find(id); it != held.end())
      for (const auto& [token, changed] : it->second.watchers) changed();
  }

  MailboxCache load(int64_t id) {
    MailboxCache cache;
    auto& box = db->prepare("SELECT uidvalidity, uidnext, highest_modseq FROM mailboxes WHERE id = ?1");
    box.bind(1, id);
    if (!box.step()) throw Error(errc::kNoSuchMailbox, "no such mailbox", 404);
    cache.uidvalidity = box.column_int64(0);
    cache.uidnext = box.column_int64(1);
    cache.highest_modseq = box.column_int64(2);
    box.reset();
    auto& rows = db->prepare(
        "SELECT uid, modseq, size, internal_date, flags, blob, subject, keywords, coalesce(saved_at, internal_date) "
        "FROM messages WHERE mailbox_id = ?1 ORDER BY uid");
    rows.bind(1, id);
    while (rows.step())
      cache.messages.push_back({rows.column_int64(0), rows.column_int64(1), rows.column_int64(2), rows.column_int64(3),
                                static_cast<unsigned>(rows.column_int64(4)), rows.column_text(5), rows.column_text(6),
                                rows.column_text(7), rows.column_int64(8)});
    rows.reset();
    return cache;
  }

  // A mailbox is subscribed when it is made (clients show subscribed mailboxes only).
  void subscribe(const std::string& name) { db->prepare("INSERT OR IGNORE INTO subscriptions (name) VALUES (?1)").bind(1, name).run(); }

  // The same, nullopt instead of an error for a mailbox that is not (or no longer) there.
  std::optional<int64_t> find_mailbox_id(const std::string& name) {
    try {
      return mailbox_id(name);
    } catch (const Error&) {
      return std::nullopt;
    }
  }

  int64_t mailbox_id(const std::string& name) {
    if (!name.empty() && name.front() == kKeyMark) {  // MailboxStore::key_of
      int64_t id = 0, uidvalidity = 0;
      if (std::sscanf(name.c_str() + 1, "%" SCNd64 ":%" SCNd64, &id, &uidvalidity) != 2)
        throw Error(errc::kNoSuchMailbox, "not a mailbox key", 404);
      auto& stmt = db->prepare("SELECT 1 FROM mailboxes WHERE id = ?1 AND uidvalidity = ?2");
      stmt.bind(1, id).bind(2, uidvalidity);
      const bool there = stmt.step();
      stmt.reset();
      if (!there) throw Error(errc::kNoSuchMailbox, "the mailbox was deleted", 404);
      return id;
    }
    auto& stmt = db->prepare("SELECT id FROM mailboxes WHERE name = ?1");
    stmt.bind(1, name);
    if (!stmt.step()) throw Error(errc::kNoSuchMailbox, "no mailbox '" + name + "'", 404);
    const auto id = stmt.column_int64(0);
    stmt.reset();
    return id;
  }
};

MailboxStore::MailboxStore(std::filesystem::path dir) : dir_(std::move(dir)) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw Error(errc::kIoError, "cannot create " + dir_.string() + ": " + ec.message(), 500);
}

MailboxStore::~MailboxStore() = default;

bool MailboxStore::has_index(const std::string& handle) const {
  std::error_code ec;
  return valid_handle_path(handle) && std::filesystem::exists(dir_ / (handle + ".db"), ec);
}

MailboxStore::Index& MailboxStore::index(const std::string& handle) {
  if (!valid_handle_path(handle)) throw Error(errc::kInvalidHandle, "invalid handle '" + handle + "'", 400);
  std::lock_guard lock(mutex_);
  auto& slot = indexes_[handle];
  if (!slot) {
    auto index = std::make_unique<Index>();
    index->db = sqlite::Database::open(dir_ / (handle + ".db"));
    index->db->migrate(kMigrations, /*quiet=*/true);  // one per member: not a log line each
    // The special-use mailboxes exist from the start, with UIDVALIDITY from the clock.
    sqlite::Transaction tx(*index->db);
    for (const auto& [name, use] : kSpecialMailboxes) {
      auto& exists = index->db->prepare("SELECT 1 FROM mailboxes WHERE name = ?1");
      exists.bind(1, name);
      const bool there = exists.step();
      exists.reset();
      if (there) continue;
      index->db->prepare("INSERT INTO mailboxes (name, special_use, uidvalidity) VALUES (?1, ?2, ?3)")
          .bind(1, name)
          .bind(2, use)
          .bind(3, index->next_uidvalidity())
          .run();
      index->subscribe(name);
    }
    tx.commit();
    sqlite3_commit_hook(index->db->handle(), &Index::on_commit, index.get());
    slot = std::move(index);
  }
  return *slot;
}

uint64_t MailboxStore::watch(const std::string& handle, std::function<void()> changed) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  const auto token = ix.next_watcher++;
  ix.account_watchers.emplace(token, std::move(changed));
  return token;
}

void MailboxStore::unwatch(const std::string& handle, uint64_t token) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  ix.account_watchers.erase(token);
}

StoredMessage MailboxStore::append(const std::string& handle, const std::string& mailbox, const MessageMeta& meta,
                                   int64_t quota_bytes) {
  return append_batch(handle, mailbox, {meta}, quota_bytes).front();
}

std::vector<StoredMessage> MailboxStore::append_batch(const std::string& handle, const std::string& mailbox,
                                                      const std::vector<MessageMeta>& metas, int64_t quota_bytes) {
  std::vector<StoredMessage> out;
  if (metas.empty()) return out;
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& db = *ix.db;
  sqlite::Transaction tx(db);
  if (quota_bytes > 0) {
    auto& used = db.prepare("SELECT coalesce(sum(size), 0) FROM messages");
    used.step();
    const auto bytes = used.column_int64(0);
    used.reset();
    int64_t adding = 0;
    for (const auto& meta : metas) adding += meta.size;
    if (bytes + adding > quota_bytes)
      throw Error(errc::kQuotaExceeded, handle + "'s mailbox is full (" + std::to_string(bytes) + " of " +
                                        std::to_string(quota_bytes) + " bytes used)", 552);
  }
  const auto id = ix.mailbox_id(mailbox);
  auto& next = db.prepare("SELECT uidnext, highest_modseq FROM mailboxes WHERE id = ?1");
  next.bind(1, id);
  next.step();
  int64_t uid = next.column_int64(0), modseq = next.column_int64(1);
  next.reset();
  out.reserve(metas.size());
  const auto now = static_cast<int64_t>(::time(nullptr));
  for (const auto& meta : metas) {
    const StoredMessage& stored = out.emplace_back(StoredMessage{uid++, ++modseq, mailbox, meta});
    db.prepare(
          "INSERT INTO messages (mailbox_id, uid, modseq, blob, size, internal_date, flags, message_id, subject, keywords, saved_at) "
          "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)")
        .bind(1, id)
        .bind(2, stored.uid)
        .bind(3, stored.modseq)
        .bind(4, meta.blob)
        .bind(5, meta.size)
        .bind(6, meta.internal_date)
        .bind(7, static_cast<int64_t>(meta.flags))
        .bind(8, meta.message_id)
        .bind(9, meta.subject)
        .bind(10, meta.keywords)
        .bind(11, now)
        .run();
    db.prepare("INSERT INTO summaries (mailbox_id, uid, envelope, body_structure) VALUES (?1, ?2, ?3, ?4)")
        .bind(1, id).bind(2, stored.uid).bind(3, meta.envelope).bind(4, meta.body_structure)
        .run();
    if (!meta.imap_envelope.empty())
      db.prepare("INSERT INTO imap_envelopes (mailbox_id, uid, envelope) VALUES (?1, ?2, ?3)")
          .bind(1, id).bind(2, stored.uid).bind(3, meta.imap_envelope)
          .run();
    if (!meta.header.empty())
      db.prepare("INSERT INTO headers (mailbox_id, uid, header) VALUES (?1, ?2, ?3)").bind(1, id).bind(2, stored.uid).bind_blob(3, meta.header).run();
    if (!meta.imap_envelope.empty())  // summarized at delivery (not a bare meta from an old path)
      db.prepare("INSERT INTO sort_keys (mailbox_id, uid, sent_date, from_mailbox, to_mailbox, cc_mailbox) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
          .bind(1, id).bind(2, stored.uid).bind(3, meta.sent_date).bind(4, meta.from_mailbox).bind(5, meta.to_mailbox).bind(6, meta.cc_mailbox)
          .run();
  }
  db.prepare("UPDATE mailboxes SET uidnext = ?2, highest_modseq = ?3 WHERE id = ?1").bind(1, id).bind(2, uid).bind(3, modseq).run();
  tx.commit();
  if (auto* cache = ix.cached(id)) {
    for (const auto& stored : out)
      cache->messages.push_back({stored.uid, stored.modseq, stored.meta.size, stored.meta.internal_date, stored.meta.flags,
                                 stored.meta.blob, stored.meta.subject, stored.meta.keywords, now});
    cache->uidnext = uid;
    cache->highest_modseq = modseq;
    ix.notify(id);
  }
  return out;
}

void MailboxStore::ensure_mailbox(const std::string& handle, const std::string& mailbox) {
  if (const auto problem = mailbox_name_problem(mailbox); !problem.empty()) throw Error(errc::kInvalidMailbox, problem, 400);
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& exists = ix.db->prepare("SELECT 1 FROM mailboxes WHERE name = ?1");
  exists.bind(1, mailbox);
  const bool there = exists.step();
  exists.reset();
  if (there) return;
  sqlite::Transaction tx(*ix.db);
  ix.db->prepare("INSERT INTO mailboxes (name, uidvalidity) VALUES (?1, ?2)")
      .bind(1, mailbox)
      .bind(2, ix.next_uidvalidity())
      .run();
  ix.subscribe(mailbox);
  tx.commit();
}

std::optional<int64_t> MailboxStore::find_blob(const std::string& handle, const std::string& mailbox,
                                               const std::string& blob) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& stmt = ix.db->prepare("SELECT uid FROM messages WHERE mailbox_id = ?1 AND blob = ?2 LIMIT 1");
  stmt.bind(1, ix.mailbox_id(mailbox)).bind(2, blob);
  if (!stmt.step()) return std::nullopt;
  const auto uid = stmt.column_int64(0);
  stmt.reset();
  return uid;
}

int64_t MailboxStore::usage(const std::string& handle) {
  if (!has_index(handle)) return 0;
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& stmt = ix.db->prepare("SELECT coalesce(sum(size), 0) FROM messages");
  stmt.step();
  const auto bytes = stmt.column_int64(0);
  stmt.reset();
  return bytes;
}

std::vector<MailboxInfo> MailboxStore::mailboxes(const std::string& handle) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& stmt = ix.db->prepare(
      "SELECT b.name, b.special_use, b.uidvalidity, b.uidnext, b.highest_modseq, count(m.uid), "
      "coalesce(sum(m.flags & 1 = 0), 0), coalesce(sum(m.size), 0), EXISTS (SELECT 1 FROM subscriptions s WHERE s.name = b.name), "
      "coalesce(sum(m.uid > b.recent_uid), 0), b.id "
      "FROM mailboxes b LEFT JOIN messages m ON m.mailbox_id = b.id GROUP BY b.id ORDER BY b.id");
  std::vector<MailboxInfo> out;
  while (stmt.step())
    out.push_back({stmt.column_text(0), stmt.column_text(1), stmt.column_int64(2), stmt.column_int64(3),
                   stmt.column_int64(4), stmt.column_int64(5), stmt.column_int64(6), stmt.column_int64(7),
                   stmt.column_int64(8) != 0, stmt.column_int64(9), stmt.column_int64(10)});
  stmt.reset();
  return out;
}

std::vector<MailboxInfo> MailboxStore::mailbox_heads(const std::string& handle) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& stmt = ix.db->prepare(
      "SELECT b.name, b.special_use, b.uidvalidity, b.uidnext, b.highest_modseq, "
      "EXISTS (SELECT 1 FROM subscriptions s WHERE s.name = b.name), b.id FROM mailboxes b ORDER BY b.id");
  std::vector<MailboxInfo> out;
  while (stmt.step())
    out.push_back({stmt.column_text(0), stmt.column_text(1), stmt.column_int64(2), stmt.column_int64(3), stmt.column_int64(4),
                   0, 0, 0, stmt.column_int64(5) != 0, 0, stmt.column_int64(6)});
  stmt.reset();
  return out;
}

std::vector<StoredMessage> MailboxStore::messages(const std::string& handle, const std::string& mailbox,
                                                  int64_t after_uid, int limit) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& stmt = ix.db->prepare(
      "SELECT uid, modseq, blob, size, internal_date, flags, message_id, subject, keywords FROM messages "
      "WHERE mailbox_id = ?1 AND uid > ?2 ORDER BY uid LIMIT ?3");
  stmt.bind(1, ix.mailbox_id(mailbox)).bind(2, after_uid).bind(3, limit);
  std::vector<StoredMessage> out;
  while (stmt.step()) {
    StoredMessage m;
    m.uid = stmt.column_int64(0);
    m.modseq = stmt.column_int64(1);
    m.mailbox = mailbox;
    m.meta.blob = stmt.column_text(2);
    m.meta.size = stmt.column_int64(3);
    m.meta.internal_date = stmt.column_int64(4);
    m.meta.flags = static_cast<unsigned>(stmt.column_int64(5));
    m.meta.message_id = stmt.column_text(6);
    m.meta.subject = stmt.column_text(7);
    m.meta.keywords = stmt.column_text(8);
    out.push_back(std::move(m));
  }
  stmt.reset();
  return out;
}

void MailboxStore::delete_mailbox(const std::string& handle, const std::string& mailbox) {
  if (mailbox == "INBOX") throw Error(errc::kCannot, "INBOX cannot be deleted", 400);
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& db = *ix.db;
  sqlite::Transaction tx(db);
  const auto id = ix.mailbox_id(mailbox);
  // instr() and length() count characters as substr() does: names may be UTF-8.
  auto& children = db.prepare("SELECT 1 FROM mailboxes WHERE instr(name, ?1) = 1 LIMIT 1");
  children.bind(1, mailbox + "/");
  const bool has_children = children.step();
  children.reset();
  if (has_children) throw Error(errc::kHasChildren, "delete the mailboxes below " + mailbox + " first", 409);
  db.prepare("DELETE FROM messages WHERE mailbox_id = ?1").bind(1, id).run();
  db.prepare("DELETE FROM expunged WHERE mailbox_id = ?1").bind(1, id).run();
  for (const char* table : {"summaries", "imap_envelopes", "headers", "sort_keys"})
    db.prepare(std::string("DELETE FROM ") + table + " WHERE mailbox_id = ?1").bind(1, id).run();
  db.prepare("DELETE FROM mailboxes WHERE id = ?1").bind(1, id).run();
  db.prepare("DELETE FROM metadata WHERE mailbox = ?1").bind(1, mailbox).run();
  tx.commit();
  ix.held.erase(id);
}

void MailboxStore::rename_mailbox(const std::string& handle, const std::string& from, const std::string& to) {
  if (const auto problem = mailbox_name_problem(to); !problem.empty()) throw Error(errc::kInvalidMailbox, problem, 400);
  if (to == "INBOX") throw Error(errc::kInvalidMailbox, "INBOX already exists", 400);
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& db = *ix.db;
  sqlite::Transaction tx(db);
  const auto id = ix.mailbox_id(from);
  auto& taken = db.prepare("SELECT 1 FROM mailboxes WHERE name = ?1 OR instr(name, ?2) = 1 LIMIT 1");
  taken.bind(1, to).bind(2, to + "/");
  const bool exists = taken.step();
  taken.reset();
  if (exists) throw Error(errc::kExists, "there is a mailbox " + to + " already", 409);
  if (from == "INBOX") {
    // RFC 9051 6.3.6: renaming INBOX moves its messages to a new mailbox and leaves INBOX
    // empty; the mailboxes below INBOX stay. The messages keep their UIDs in the new
    // mailbox (a new UIDVALIDITY); INBOX's clients see them expunged.
    db.prepare("INSERT INTO mailboxes (name, uidvalidity, uidnext, highest_modseq, recent_uid) "
               "SELECT ?2, ?3, uidnext, highest_modseq, recent_uid FROM mailboxes WHERE id = ?1")
        .bind(1, id).bind(2, to).bind(3, ix.next_uidvalidity())
        .run();
    const auto moved_to = db.last_insert_rowid();
    ix.subscribe(to);
    db.prepare("UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ?1").bind(1, id).run();
    auto& now = db.prepare("SELECT highest_modseq FROM mailboxes WHERE id = ?1");
    now.bind(1, id);
    now.step();
    const int64_t modseq = now.column_int64(0);
    now.reset();
    db.prepare("INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) SELECT mailbox_id, uid, ?2 FROM messages WHERE mailbox_id = ?1")
        .bind(1, id).bind(2, modseq).run();
    for (const char* table : {"messages", "summaries", "imap_envelopes", "headers", "sort_keys"})
      db.prepare(std::string("UPDATE ") + table + " SET mailbox_id = ?2 WHERE mailbox_id = ?1").bind(1, id).bind(2, moved_to).run();
    tx.commit();
    if (auto* cache = ix.cached(id)) {
      cache->messages.clear();
      cache->highest_modseq = modseq;
      ix.notify(id);
    }
    return;
  }
  // The mailbox and everything below it: "from/x" becomes "to/x".
  db.prepare("UPDATE mailboxes SET name = ?2 || substr(name, length(?1) + 1) WHERE name = ?1 OR instr(name, ?1 || '/') = 1")
      .bind(1, from).bind(2, to)
      .run();
  // Their subscriptions and annotations go with them.
  db.prepare("UPDATE OR REPLACE subscriptions SET name = ?2 || substr(name, length(?1) + 1) WHERE name = ?1 OR instr(name, ?1 || '/') = 1")
      .bind(1, from).bind(2, to)
      .run();
  db.prepare("UPDATE OR REPLACE metadata SET mailbox = ?2 || substr(mailbox, length(?1) + 1) WHERE mailbox = ?1 OR instr(mailbox, ?1 || '/') = 1")
      .bind(1, from).bind(2, to)
      .run();
  tx.commit();
}

void MailboxStore::set_subscribed(const std::string& handle, const std::string& mailbox, bool subscribed) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  if (subscribed) {
    ix.mailbox_id(mailbox);  // RFC 9051 6.3.7 lets a server refuse a name with no mailbox: we do
    ix.subscribe(mailbox);
    return;
  }
  // A name whose mailbox went can still be unsubscribed.
  auto& had = ix.db->prepare("SELECT 1 FROM subscriptions WHERE name = ?1");
  had.bind(1, mailbox);
  const bool was = had.step();
  had.reset();
  if (!was) ix.mailbox_id(mailbox);  // NONEXISTENT when it is neither
  ix.db->prepare("DELETE FROM subscriptions WHERE name = ?1").bind(1, mailbox).run();
}

void MailboxStore::set_special_use(const std::string& handle, const std::string& mailbox, const std::string& use) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  const auto id = ix.mailbox_id(mailbox);
  ix.db->prepare("UPDATE mailboxes SET special_use = ?2 WHERE id = ?1").bind(1, id).bind(2, use).run();
}

std::vector<std::string> MailboxStore::subscriptions(const std::string& handle) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& stmt = ix.db->prepare("SELECT name FROM subscriptions ORDER BY name");
  std::vector<std::string> out;
  while (stmt.step()) out.push_back(stmt.column_text(0));
  stmt.reset();
  return out;
}

std::vector<std::pair<std::string, std::string>> MailboxStore::metadata(const std::string& handle, const std::string& mailbox) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  if (!mailbox.empty()) ix.mailbox_id(mailbox);  // NONEXISTENT
  auto& stmt = ix.db->prepare("SELECT entry, value FROM metadata WHERE mailbox = ?1 ORDER BY entry");
  stmt.bind(1, mailbox);
  std::vector<std::pair<std::string, std::string>> out;
  while (stmt.step()) out.emplace_back(stmt.column_text(0), stmt.column_text(1));
  stmt.reset();
  return out;
}

void MailboxStore::set_metadata(const std::string& handle, const std::string& mailbox,
                                const std::vector<std::pair<std::string, std::optional<std::string>>>& entries,
                                std::size_t max_entries) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& db = *ix.db;
  sqlite::Transaction tx(db);
  if (!mailbox.empty()) ix.mailbox_id(mailbox);
  for (const auto& [entry, value] : entries) {
    if (value) db.prepare("INSERT OR REPLACE INTO metadata (mailbox, entry, value) VALUES (?1, ?2, ?3)").bind(1, mailbox).bind(2, entry).bind_blob(3, *value).run();
    else db.prepare("DELETE FROM metadata WHERE mailbox = ?1 AND entry = ?2").bind(1, mailbox).bind(2, entry).run();
  }
  auto& count = db.prepare("SELECT count(*) FROM metadata WHERE mailbox = ?1");
  count.bind(1, mailbox);
  count.step();
  const auto n = count.column_int64(0);
  count.reset();
  // RFC 5464 4.3: over the limit nothing is set (the transaction goes back).
  if (static_cast<std::size_t>(n) > max_entries) throw Error(errc::kTooLarge, "too many annotations", 400);
  tx.commit();
}

std::string MailboxStore::key_of(int64_t mailbox_id, int64_t uidvalidity) {
  return std::string(1, kKeyMark) + std::to_string(mailbox_id) + ":" + std::to_string(uidvalidity);
}

std::optional<std::string> MailboxStore::name_of(const std::string& handle, const std::string& mailbox) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  const auto found = ix.find_mailbox_id(mailbox);
  if (!found) return std::nullopt;
  const int64_t id = *found;
  auto& stmt = ix.db->prepare("SELECT name FROM mailboxes WHERE id = ?1");
  stmt.bind(1, id);
  std::optional<std::string> name;
  if (stmt.step()) name = stmt.column_text(0);
  stmt.reset();
  return name;
}

int64_t MailboxStore::claim_recent(const std::string& handle, const std::string& mailbox, int64_t up_to_uid) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  const auto id = ix.mailbox_id(mailbox);
  auto& stmt = ix.db->prepare("SELECT recent_uid FROM mailboxes WHERE id = ?1");
  stmt.bind(1, id);
  const int64_t before = stmt.step() ? stmt.column_int64(0) : 0;
  stmt.reset();
  if (up_to_uid > before) ix.db->prepare("UPDATE mailboxes SET recent_uid = ?2 WHERE id = ?1").bind(1, id).bind(2, up_to_uid).run();
  return before;
}

std::vector<int64_t> MailboxStore::expunged_since(const std::string& handle, const std::string& mailbox, int64_t modseq) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& stmt = ix.db->prepare("SELECT uid FROM expunged WHERE mailbox_id = ?1 AND modseq > ?2 ORDER BY uid");
  stmt.bind(1, ix.mailbox_id(mailbox)).bind(2, modseq);
  std::vector<int64_t> out;
  while (stmt.step()) out.push_back(stmt.column_int64(0));
  stmt.reset();
  return out;
}

std::optional<MailboxStore::Hold> MailboxStore::hold(const std::string& handle, const std::string& mailbox,
                                                     std::function<void()> changed) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  const auto found = ix.find_mailbox_id(mailbox);
  if (!found) return std::nullopt;
  const int64_t id = *found;
  auto& held = ix.held[id];
  if (held.holders == 0) {
    try {
      held.cache = ix.load(id);
    } catch (...) {
      ix.held.erase(id);
      throw;
    }
  }
  ++held.holders;
  Hold out{id, 0, key_of(id, held.cache.uidvalidity)};
  if (changed) {
    out.watcher = ix.next_watcher++;
    held.watchers.emplace(out.watcher, std::move(changed));
  }
  return out;
}

void MailboxStore::release(const std::string& handle, const Hold& hold) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  const auto it = ix.held.find(hold.mailbox_id);
  // A mailbox deleted meanwhile lost its holds; its id may now be another's.
  if (it == ix.held.end() || (hold.watcher != 0 && it->second.watchers.erase(hold.watcher) == 0)) return;
  if (--it->second.holders <= 0) ix.held.erase(it);
}

bool MailboxStore::with_cache(const std::string& handle, const std::string& mailbox,
                              const std::function<void(const MailboxCache&)>& read) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  const auto found = ix.find_mailbox_id(mailbox);
  if (!found) return false;
  const int64_t id = *found;
  if (const auto* cache = ix.cached(id)) {
    read(*cache);
  } else {
    read(ix.load(id));
  }
  return true;
}

std::vector<EnvelopeText> MailboxStore::envelopes(const std::string& handle, const std::string& mailbox,
                                                  const std::vector<int64_t>& uids) {
  std::vector<EnvelopeText> out;
  if (uids.empty()) return out;
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  const auto id = ix.mailbox_id(mailbox);
  auto& stmt = ix.db->prepare("SELECT uid, envelope FROM imap_envelopes WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3 ORDER BY uid");
  stmt.bind(1, id).bind(2, uids.front()).bind(3, uids.back());
  out.reserve(uids.size());
  while (stmt.step()) {
    const auto uid = stmt.column_int64(0);
    if (std::binary_search(uids.begin(), uids.end(), uid)) out.push_back({uid, stmt.column_text(1), {}});
  }
  stmt.reset();
  if (out.size() == uids.size()) return out;
  // Messages stored before ENVELOPEs were rendered at delivery: their JSON.
  std::vector<EnvelopeText> older;
  auto& json = ix.db->prepare("SELECT envelope FROM summaries WHERE mailbox_id = ?1 AND uid = ?2");
  auto have = out.begin();
  for (const auto uid : uids) {
    while (have != out.end() && have->uid < uid) ++have;
    if (have != out.end() && have->uid == uid) continue;
    json.bind(1, id).bind(2, uid);
    if (json.step()) older.push_back({uid, {}, json.column_text(0)});
    json.reset();
  }
  out.insert(out.end(), std::make_move_iterator(older.begin()), std::make_move_iterator(older.end()));
  std::sort(out.begin(), out.end(), [](const EnvelopeText& a, const EnvelopeText& b) { return a.uid < b.uid; });
  return out;
}

std::vector<SortRow> MailboxStore::sort_rows(const std::string& handle, const std::string& mailbox, int64_t first, int64_t last) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& stmt = ix.db->prepare(
      "SELECT uid, sent_date, from_mailbox, to_mailbox, cc_mailbox FROM sort_keys WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3 "
      "ORDER BY uid");
  stmt.bind(1, ix.mailbox_id(mailbox)).bind(2, first).bind(3, last);
  std::vector<SortRow> out;
  out.reserve(static_cast<std::size_t>(std::min<int64_t>(last - first + 1, 1 << 20)));  // UIDs are dense, mostly
  while (stmt.step())
    out.push_back({stmt.column_int64(0), stmt.column_int64(1), stmt.column_text(2), stmt.column_text(3), stmt.column_text(4)});
  stmt.reset();
  return out;
}

std::vector<std::pair<int64_t, std::string>> MailboxStore::headers(const std::string& handle, const std::string& mailbox,
                                                                   int64_t first, int64_t last) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& stmt = ix.db->prepare("SELECT uid, header FROM headers WHERE mailbox_id = ?1 AND uid BETWEEN ?2 AND ?3 ORDER BY uid");
  stmt.bind(1, ix.mailbox_id(mailbox)).bind(2, first).bind(3, last);
  std::vector<std::pair<int64_t, std::string>> out;
  while (stmt.step()) out.emplace_back(stmt.column_int64(0), stmt.column_text(1));
  stmt.reset();
  return out;
}

std::vector<SummaryRow> MailboxStore::summary_rows(const std::string& handle, const std::string& mailbox,
                                                  const std::vector<int64_t>& uids) {
  std::vector<SummaryRow> out;
  if (uids.empty()) return out;
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  const auto id = ix.mailbox_id(mailbox);
  constexpr const char* kColumns =
      "SELECT s.uid, s.envelope, s.body_structure, h.header, k.sent_date FROM summaries s "
      "LEFT JOIN headers h ON h.mailbox_id = s.mailbox_id AND h.uid = s.uid "
      "LEFT JOIN sort_keys k ON k.mailbox_id = s.mailbox_id AND k.uid = s.uid ";
  auto row = [](sqlite::Statement& q) {
    SummaryRow r{q.column_int64(0), q.column_text(1), q.column_text(2), std::nullopt, std::nullopt};
    if (!q.column_is_null(3)) r.header = q.column_text(3);
    if (!q.column_is_null(4)) r.sent_date = q.column_int64(4);
    return r;
  };
  out.reserve(uids.size());
  // One range scan when the UIDs are close together (a page of a mailbox), else one lookup each.
  if (uids.back() - uids.front() < static_cast<int64_t>(uids.size()) * 4) {
    auto& q = ix.db->prepare(std::string(kColumns) + "WHERE s.mailbox_id = ?1 AND s.uid BETWEEN ?2 AND ?3 ORDER BY s.uid");
    q.bind(1, id).bind(2, uids.front()).bind(3, uids.back());
    while (q.step())
      if (std::binary_search(uids.begin(), uids.end(), q.column_int64(0))) out.push_back(row(q));
    q.reset();
    return out;
  }
  auto& q = ix.db->prepare(std::string(kColumns) + "WHERE s.mailbox_id = ?1 AND s.uid = ?2");
  for (const auto uid : uids) {
    q.bind(1, id).bind(2, uid);
    if (q.step()) out.push_back(row(q));
    q.reset();
  }
  return out;
}

std::pair<std::string, std::string> MailboxStore::summaries(const std::string& handle, const std::string& mailbox,
                                                            int64_t uid) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& stmt = ix.db->prepare("SELECT envelope, body_structure FROM summaries WHERE mailbox_id = ?1 AND uid = ?2");
  stmt.bind(1, ix.mailbox_id(mailbox)).bind(2, uid);
  if (!stmt.step()) return {"{}", "{}"};
  std::pair<std::string, std::string> out{stmt.column_text(0), stmt.column_text(1)};
  stmt.reset();
  return out;
}

std::vector<StoredMessage> MailboxStore::change_flags(const std::string& handle, const std::string& mailbox,
                                                      const std::vector<int64_t>& uids, FlagChange change, unsigned flags,
                                                      const std::vector<std::string>& keywords) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& db = *ix.db;
  sqlite::Transaction tx(db);
  const auto id = ix.mailbox_id(mailbox);
  auto& modseq_now = db.prepare("SELECT highest_modseq FROM mailboxes WHERE id = ?1");
  modseq_now.bind(1, id);
  modseq_now.step();
  const int64_t modseq = modseq_now.column_int64(0) + 1;
  modseq_now.reset();
  std::vector<StoredMessage> changed;
  for (const int64_t uid : uids) {
    auto& read = db.prepare("SELECT flags, keywords FROM messages WHERE mailbox_id = ?1 AND uid = ?2");
    read.bind(1, id).bind(2, uid);
    if (!read.step()) continue;
    const auto before = static_cast<unsigned>(read.column_int64(0));
    const auto keywords_before = read.column_text(1);
    read.reset();
    const unsigned after = change == FlagChange::add ? (before | flags) : change == FlagChange::remove ? (before & ~flags) : flags;
    const auto keywords_after = changed_keywords(keywords_before, change, keywords);
    if (after == before && keywords_after == keywords_before) continue;
    db.prepare("UPDATE messages SET flags = ?3, keywords = ?4, modseq = ?5 WHERE mailbox_id = ?1 AND uid = ?2")
        .bind(1, id).bind(2, uid).bind(3, static_cast<int64_t>(after)).bind(4, keywords_after).bind(5, modseq).run();
    StoredMessage m;
    m.uid = uid;
    m.modseq = modseq;
    m.mailbox = mailbox;
    m.meta.flags = after;
    m.meta.keywords = keywords_after;
    changed.push_back(std::move(m));
  }
  if (!changed.empty()) db.prepare("UPDATE mailboxes SET highest_modseq = ?2 WHERE id = ?1").bind(1, id).bind(2, modseq).run();
  tx.commit();
  if (auto* cache = ix.cached(id); cache && !changed.empty()) {
    for (const auto& m : changed)
      if (auto* row = cache->find(m.uid)) {
        row->flags = m.meta.flags;
        row->keywords = m.meta.keywords;
        row->modseq = modseq;
      }
    cache->highest_modseq = modseq;
    ix.notify(id);
  }
  return changed;
}

std::vector<int64_t> MailboxStore::expunge(const std::string& handle, const std::string& mailbox,
                                           const std::optional<std::vector<int64_t>>& only) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& db = *ix.db;
  sqlite::Transaction tx(db);
  const auto id = ix.mailbox_id(mailbox);
  auto& select = db.prepare("SELECT uid FROM messages WHERE mailbox_id = ?1 AND (flags & 8) != 0 ORDER BY uid");
  select.bind(1, id);
  std::vector<int64_t> doomed;
  while (select.step()) {
    const auto uid = select.column_int64(0);
    if (!only || std::binary_search(only->begin(), only->end(), uid)) doomed.push_back(uid);
  }
  select.reset();
  int64_t modseq = 0;
  if (!doomed.empty()) {
    db.prepare("UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ?1").bind(1, id).run();
    auto& now = db.prepare("SELECT highest_modseq FROM mailboxes WHERE id = ?1");
    now.bind(1, id);
    now.step();
    modseq = now.column_int64(0);
    now.reset();
    for (const auto uid : doomed) {
      db.prepare("DELETE FROM messages WHERE mailbox_id = ?1 AND uid = ?2").bind(1, id).bind(2, uid).run();
      for (const char* table : {"summaries", "imap_envelopes", "headers", "sort_keys"})
        db.prepare(std::string("DELETE FROM ") + table + " WHERE mailbox_id = ?1 AND uid = ?2").bind(1, id).bind(2, uid).run();
      db.prepare("INSERT OR REPLACE INTO expunged (mailbox_id, uid, modseq) VALUES (?1, ?2, ?3)").bind(1, id).bind(2, uid).bind(3, modseq).run();
    }
  }
  tx.commit();
  if (auto* cache = ix.cached(id); cache && !doomed.empty()) {
    std::erase_if(cache->messages, [&](const CachedMessage& m) { return std::binary_search(doomed.begin(), doomed.end(), m.uid); });
    cache->highest_modseq = modseq;
    ix.notify(id);
  }
  return doomed;
}

std::vector<std::pair<int64_t, int64_t>> MailboxStore::copy(const std::string& handle, const std::string& from,
                                                            const std::string& to, const std::vector<int64_t>& uids) {
  auto& ix = index(handle);
  std::lock_guard lock(ix.mutex);
  auto& db = *ix.db;
  sqlite::Transaction tx(db);
  const auto source = ix.mailbox_id(from);
  const auto target = ix.mailbox_id(to);
  auto& next = db.prepare("SELECT uidnext, highest_modseq FROM mailboxes WHERE id = ?1");
  next.bind(1, target);
  next.step();
  int64_t uid = next.column_int64(0);
  const int64_t modseq = next.column_int64(1) + 1;
  next.reset();
  std::vector<std::pair<int64_t, int64_t>> out;
  for (const auto old : uids) {
    db.prepare(
          "INSERT INTO messages (mailbox_id, uid, modseq, blob, size, internal_date, flags, keywords, message_id, "
          "subject, saved_at) SELECT ?3, ?4, ?5, blob, size, internal_date, flags, keywords, message_id, subject, ?6 "
          "FROM messages WHERE mailbox_id = ?1 AND uid = ?2")
        .bind(1, source).bind(2, old).bind(3, target).bind(4, uid).bind(5, modseq).bind(6, static_cast<int64_t>(::time(nullptr))).run();
    if (db.changes() == 0) continue;
    db.prepare(
          "INSERT INTO summaries (mailbox_id, uid, envelope, body_structure) SELECT ?3, ?4, envelope, body_structure "
          "FROM summaries WHERE mailbox_id = ?1 AND uid = ?2")
        .bind(1, source).bind(2, old).bind(3, target).bind(4, uid).run();
    db.prepare("INSERT INTO imap_envelopes (mailbox_id, uid, envelope) SELECT ?3, ?4, envelope FROM imap_envelopes WHERE mailbox_id = ?1 AND uid = ?2")
        .bind(1, source).bind(2, old).bind(3, target).bind(4, uid).run();
    db.prepare("INSERT INTO headers (mailbox_id, uid, header) SELECT ?3, ?4, header FROM headers WHERE mailbox_id = ?1 AND uid = ?2")
        .bind(1, source).bind(2, old).bind(3, target).bind(4, uid).run();
    db.prepare(
          "INSERT INTO sort_keys (mailbox_id, uid, sent_date, from_mailbox, to_mailbox, cc_mailbox) SELECT ?3, ?4, sent_date, "
          "from_mailbox, to_mailbox, cc_mailbox FROM sort_keys WHERE mailbox_id = ?1 AND uid = ?2")
        .bind(1, source).bind(2, old).bind(3, target).bind(4, uid).run();
    out.emplace_back(old, uid++);
  }
  if (!out.empty())
    db.prepare("UPDATE mailboxes SET uidnext = ?2, highest_modseq = ?3 WHERE id = ?1").bind(1, target).bind(2, uid).bind(3, modseq).run();
  // What the target's cache needs, read inside the transaction (the source may change after).
  std::vector<CachedMessage> added;
  if (ix.cached(target) && !out.empty()) {
    auto& row = db.prepare(
        "SELECT uid, modseq, size, internal_date, flags, blob, subject, keywords, coalesce(saved_at, internal_date) FROM messages "
        "WHERE mailbox_id = ?1 AND uid >= ?2 ORDER BY uid");
    row.bind(1, target).bind(2, out.front().second);
    while (row.step())
      added.push_back({row.column_int64(0), row.column_int64(1), row.column_int64(2), row.column_int64(3),
                       static_cast<unsigned>(row.column_int64(4)), row.column_text(5), row.column_text(6), row.column_text(7),
                       row.column_int64(8)});
    row.reset();
  }
  tx.commit();
  if (auto* cache = ix.cached(target); cache && !out.empty()) {
    for (auto& m : added) cache->messages.push_back(std::move(m));
    cache->uidnext = uid;
    cache->highest_modseq = modseq;
    ix.notify(target);
  }
  return out;
}

}  // namespace coop::mail
