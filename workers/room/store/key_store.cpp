// e2ee.db schema and queries: device and one-time keys, cross-signing, to-device inboxes and
// key backups.
#include "workers/room/store/key_store.h"

#include <algorithm>
#include <chrono>
#include <mutex>
#include <thread>

#include "common/error.h"
#include "common/clock.h"
#include "common/sqlite.h"
#include "workers/room/store/store_write.h"

namespace coop::room {

using nlohmann::json;

namespace {

constexpr sqlite::Migration kMigrations[] = {
    {1, R"sql(
      -- The keys stream: one position per device list change or to-device message.
      CREATE TABLE stream (position INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL);
      CREATE TABLE device_keys (
        user_id   TEXT NOT NULL,
        device_id TEXT NOT NULL,
        json      TEXT NOT NULL,
        PRIMARY KEY (user_id, device_id)
      ) WITHOUT ROWID;
      CREATE TABLE one_time_keys (
        id        INTEGER PRIMARY KEY,
        user_id   TEXT NOT NULL,
        device_id TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        key_id    TEXT NOT NULL,
        json      TEXT NOT NULL,
        UNIQUE (user_id, device_id, algorithm, key_id)
      );
      CREATE TABLE fallback_keys (
        user_id   TEXT NOT NULL,
        device_id TEXT NOT NULL,
        algorithm TEXT NOT NULL,
        key_id    TEXT NOT NULL,
        json      TEXT NOT NULL,
        used      INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user_id, device_id, algorithm)
      ) WITHOUT ROWID;
      CREATE TABLE cross_signing_keys (
        user_id TEXT NOT NULL,
        usage   TEXT NOT NULL CHECK (usage IN ('master', 'self_signing', 'user_signing')),
        json    TEXT NOT NULL,
        PRIMARY KEY (user_id, usage)
      ) WITHOUT ROWID;
      CREATE TABLE signatures (
        target_user   TEXT NOT NULL,
        target_key    TEXT NOT NULL,
        signer_user   TEXT NOT NULL,
        signer_key_id TEXT NOT NULL,
        signature     TEXT NOT NULL,
        PRIMARY KEY (target_user, target_key, signer_user, signer_key_id)
      ) WITHOUT ROWID;
      CREATE TABLE device_list_changes (position INTEGER PRIMARY KEY, user_id TEXT NOT NULL);
      CREATE TABLE to_device (
        position  INTEGER PRIMARY KEY,
        user_id   TEXT NOT NULL,
        device_id TEXT NOT NULL,
        sender    TEXT NOT NULL,
        type      TEXT NOT NULL,
        content   TEXT NOT NULL
      );
      CREATE INDEX to_device_by_device ON to_device (user_id, device_id, position);
      CREATE TABLE to_device_txns (
        sender    TEXT NOT NULL,
        device_id TEXT NOT NULL,
        txn_id    TEXT NOT NULL,
        PRIMARY KEY (sender, device_id, txn_id)
      ) WITHOUT ROWID;
      CREATE TABLE backup_versions (
        user_id   TEXT NOT NULL,
        version   INTEGER NOT NULL,
        algorithm TEXT NOT NULL,
        auth_data TEXT NOT NULL,
        etag      INTEGER NOT NULL DEFAULT 0,
        deleted   INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (user_id, version)
      ) WITHOUT ROWID;
      CREATE TABLE backup_keys (
        user_id             TEXT NOT NULL,
        version             INTEGER NOT NULL,
        room_id             TEXT NOT NULL,
        session_id          TEXT NOT NULL,
        first_message_index INTEGER NOT NULL,
        forwarded_count     INTEGER NOT NULL,
        is_verified         INTEGER NOT NULL,
        json                TEXT NOT NULL,
        PRIMARY KEY (user_id, version, room_id, session_id)
      ) WITHOUT ROWID;
    )sql"},
    // When each to-device transaction id was seen, so that old ones can go.
    {2, R"sql(
      ALTER TABLE to_device_txns ADD COLUMN at INTEGER NOT NULL DEFAULT 0;
    )sql"},
    // Federation (Server-Server API "Device Management"): which device or key each change was
    // of, so that other servers hear of that one; and how far they have been told, starting
    // from now (older changes were never theirs to hear).
    {3, R"sql(
      ALTER TABLE device_list_changes ADD COLUMN device_id TEXT NOT NULL DEFAULT '';
      CREATE INDEX device_list_changes_by_user ON device_list_changes (user_id, position);
      CREATE TABLE cursors (name TEXT PRIMARY KEY, position INTEGER NOT NULL) WITHOUT ROWID;
      INSERT INTO cursors (name, position) SELECT 'federation.device_lists', coalesce(max(position), 0) FROM stream;
    )sql"},
};

constexpr int64_t kMaxQueuedPerDevice = 10000;
// What one other server may have waiting in one device's inbox.
constexpr int64_t kMaxRemoteQueuedPerDevice = 1000;
constexpr int64_t kMaxRemoteQueuedBytes = 4 << 20;
// A to-device transaction id is remembered this long: a client retries a request within
// minutes, not days (Synapse keeps its transaction cache for half an hour).
constexpr int64_t kTxnKeptMs = 24LL * 3600 * 1000;
// The keys stream's rows only number positions; those older than this go, the last one stays.
constexpr int64_t kStreamRowsKeptMs = 24LL * 3600 * 1000;
constexpr int64_t kPruneEveryMs = 3600LL * 1000;

// "signed_curve25519:AAAAHQ" -> {"signed_curve25519", "AAAAHQ"}.
std::pair<std::string, std::string> split_key_id(const std::string& key_id) {
  const auto colon = key_id.find(':');
  if (colon == std::string::npos) return {key_id, ""};
  return {key_id.substr(0, colon), key_id.substr(colon + 1)};
}

int64_t integer_field(const json& object, const char* name) {
  const auto it = object.find(name);
  return it != object.end() && it->is_number_integer() ? it->get<int64_t>() : 0;
}

// The first column of every row a prepared statement yields; the statement is reset after.
std::vector<std::string> first_column(sqlite::Statement& stmt) {
  std::vector<std::string> values;
  while (stmt.step()) values.push_back(stmt.column_text(0));
  stmt.reset();
  return values;
}

// The first column of the first row as an integer, `otherwise` when there is no row; the
// statement is reset after.
int64_t first_integer(sqlite::Statement& stmt, int64_t otherwise = 0) {
  const int64_t value = stmt.step() ? stmt.column_int64(0) : otherwise;
  stmt.reset();
  return value;
}

bool boolean_field(const json& object, const char* name) {
  const auto it = object.find(name);
  return it != object.end() && it->is_boolean() && it->get<bool>();
}

}  // namespace

struct KeyStore::Impl {
  std::mutex mutex;  // the one writer: db, under this mutex
  std::unique_ptr<sqlite::Database> db;
  std::unique_ptr<sqlite::ReaderPool> readers;  // everything that only reads, in parallel
  std::function<void(const StoreChange&)> on_change;
  StoreChange pending;

  // What is only kept to number positions and spot retries, pruned at most once an hour
  // from inside a write, so that e2ee.db does not grow with every message sent.
  int64_t last_prune_ms = 0;
  void prune_if_due() {
    const auto now = unix_millis();
    if (now - last_prune_ms < kPruneEveryMs) return;
    last_prune_ms = now;
    db->prepare("DELETE FROM to_device_txns WHERE at < ?1").bind(1, now - kTxnKeptMs).run();
    db->prepare("DELETE FROM stream WHERE at < ?1 AND position < (SELECT max(position) FROM stream)")
        .bind(1, now - kStreamRowsKeptMs)
        .run();
  }

  int64_t next_position() {
    db->prepare("INSERT INTO stream (at) VALUES (?1)").bind(1, unix_millis()).run();
    return db->last_insert_rowid();
  }

  // device_id: the device whose keys changed, or the cross-signing key signed; "" for the
  // user's cross-signing keys as a whole.
  void device_list_changed(const std::string& user_id, const std::string& device_id) {
    pending.device_lists.insert(user_id);
    const auto position = next_position();
    db->prepare("INSERT INTO device_list_changes (position, user_id, device_id) VALUES (?1, ?2, ?3)")
        .bind(1, position)
        .bind(2, user_id)
        .bind(3, device_id)
        .run();
  }

  // Merges the stored signatures on a key (target_key: device id or public key) into it.
  static json with_signatures(sqlite::Database& db, json key, const std::string& user_id, const std::string& target_key) {
    auto& stmt = db.prepare(
        "SELECT signer_user, signer_key_id, signature FROM signatures WHERE target_user = ?1 AND target_key = ?2");
    stmt.bind(1, user_id).bind(2, target_key);
    while (stmt.step()) {
      if (!key.contains("signatures") || !key["signatures"].is_object()) key["signatures"] = json::object();
      key["signatures"][stmt.column_text(0)][stmt.column_text(1)] = stmt.column_text(2);
    }
    stmt.reset();
    return key;
  }

  std::string etag(const std::string& user_id, int64_t version) {
    auto& stmt = db->prepare("SELECT etag FROM backup_versions WHERE user_id = ?1 AND version = ?2");
    stmt.bind(1, user_id).bind(2, version);
    const std::string tag = stmt.step() ? std::to_string(stmt.column_int64(0)) : "0";
    stmt.reset();
    return tag;
  }

  static int64_t key_count(sqlite::Database& db, const std::string& user_id, int64_t version) {
    auto& stmt = db.prepare("SELECT count(*) FROM backup_keys WHERE user_id = ?1 AND version = ?2");
    stmt.bind(1, user_id).bind(2, version);
    stmt.step();
    const auto count = stmt.column_int64(0);
    stmt.reset();
    return count;
  }

  void bump_etag(const std::string& user_id, int64_t version) {
    db->prepare("UPDATE backup_versions SET etag = etag + 1 WHERE user_id = ?1 AND version = ?2").bind(1, user_id).bind(2, version).run();
  }

  sqlite::ReaderPool::Lease read() { return readers->lease(); }

  template <typename Fn>
  auto write(Fn&& fn) {
    return write_and_tell(mutex, *db, pending, on_change, std::forward<Fn>(fn));
  }
};

KeyStore::KeyStore(const std::filesystem::path& file) : impl_(std::make_unique<Impl>()) {
  impl_->db = sqlite::Database::open(file);
  impl_->db->migrate(kMigrations);
  impl_->readers = std::make_unique<sqlite::ReaderPool>(file, std::thread::hardware_concurrency() + 4,
                                                         *impl_->db, impl_->mutex);
}

KeyStore::~KeyStore() = default;

void KeyStore::on_change(std::function<void(const StoreChange&)> callback) {
  std::lock_guard lock(impl_->mutex);
  impl_->on_change = std::move(callback);
}

int64_t KeyStore::position() {
  auto db = impl_->read();
  return first_integer(db->prepare("SELECT coalesce(max(position), 0) FROM stream"));
}

void KeyStore::upload(const std::string& user_id, const std::string& device_id, const json& device_keys,
                      const json& one_time_keys, const json& fallback_keys) {
  impl_->write([&] {
    auto& db = *impl_->db;
    if (device_keys.is_object()) {
      auto& old = db.prepare("SELECT json FROM device_keys WHERE user_id = ?1 AND device_id = ?2");
      old.bind(1, user_id).bind(2, device_id);
      const bool same = old.step() && json::parse(old.column_text(0)) == device_keys;
      old.reset();
      if (!same) {
        db.prepare("INSERT OR REPLACE INTO device_keys (user_id, device_id, json) VALUES (?1, ?2, ?3)")
            .bind(1, user_id)
            .bind(2, device_id)
            .bind(3, device_keys.dump())
            .run();
        impl_->device_list_changed(user_id, device_id);
      }
    }
    if (one_time_keys.is_object()) {
      for (const auto& [key_id, key] : one_time_keys.items()) {
        const auto [algorithm, id] = split_key_id(key_id);
        auto& existing = db.prepare(
            "SELECT json FROM one_time_keys WHERE user_id = ?1 AND device_id = ?2 AND algorithm = ?3 AND key_id = ?4");
        existing.bind(1, user_id).bind(2, device_id).bind(3, algorithm).bind(4, id);
        std::optional<json> stored;
        if (existing.step()) stored = json::parse(existing.column_text(0));
        existing.reset();
        if (stored) {
          if (*stored != key) throw Error(errc::kMInvalidParam, "one-time key " + key_id + " already exists with other content", 400);
          continue;
        }
        db.prepare("INSERT INTO one_time_keys (user_id, device_id, algorithm, key_id, json) VALUES (?1, ?2, ?3, ?4, ?5)")
            .bind(1, user_id)
            .bind(2, device_id)
            .bind(3, algorithm)
            .bind(4, id)
            .bind(5, key.dump())
            .run();
      }
    }
    if (fallback_keys.is_object()) {
      for (const auto& [key_id, key] : fallback_keys.items()) {
        const auto [algorithm, id] = split_key_id(key_id);
        // The same key uploaded again keeps its used flag; a new one starts unused.
        db.prepare(
              "INSERT INTO fallback_keys (user_id, device_id, algorithm, key_id, json, used) VALUES (?1, ?2, ?3, ?4, ?5, 0) "
              "ON CONFLICT (user_id, device_id, algorithm) DO UPDATE SET key_id = excluded.key_id, json = excluded.json, "
              "used = CASE WHEN fallback_keys.key_id = excluded.key_id AND fallback_keys.json = excluded.json "
              "THEN fallback_keys.used ELSE 0 END")
            .bind(1, user_id)
            .bind(2, device_id)
            .bind(3, algorithm)
            .bind(4, id)
            .bind(5, key.dump())
            .run();
      }
    }
    return 0;
  });
}

std::map<std::string, int64_t> KeyStore::one_time_key_counts(const std::string& user_id, const std::string& device_id) {
  auto db = impl_->read();
  std::map<std::string, int64_t> counts{{"signed_curve25519", 0}};
  auto& stmt = db->prepare(
      "SELECT algorithm, count(*) FROM one_time_keys WHERE user_id = ?1 AND device_id = ?2 GROUP BY algorithm");
  stmt.bind(1, user_id).bind(2, device_id);
  while (stmt.step()) counts[stmt.column_text(0)] = stmt.column_int64(1);
  stmt.reset();
  return counts;
}

std::vector<std::string> KeyStore::unused_fallback_key_types(const std::string& user_id, const std::string& device_id) {
  auto db = impl_->read();
  return first_column(
      db->prepare("SELECT algorithm FROM fallback_keys WHERE user_id = ?1 AND device_id = ?2 AND used = 0")
          .bind(1, user_id)
          .bind(2, device_id));
}

json KeyStore::device_keys(const std::string& user_id, const std::vector<std::string>& devices) {
  auto db = impl_->read();
  std::vector<std::pair<std::string, json>> found;
  auto& stmt = db->prepare("SELECT device_id, json FROM device_keys WHERE user_id = ?1 ORDER BY device_id");
  stmt.bind(1, user_id);
  while (stmt.step()) {
    const auto device = stmt.column_text(0);
    if (devices.empty() || std::find(devices.begin(), devices.end(), device) != devices.end())
      found.emplace_back(device, json::parse(stmt.column_text(1)));
  }
  stmt.reset();
  json out = json::object();
  for (auto& [device, keys] : found) out[device] = Impl::with_signatures(*db, std::move(keys), user_id, device);
  return out;
}

std::optional<json> KeyStore::claim(const std::string& user_id, const std::string& device_id, const std::string& algorithm) {
  std::optional<json> claimed;
  impl_->write([&] {
    auto& db = *impl_->db;
    auto& oldest = db.prepare(
        "SELECT id, key_id, json FROM one_time_keys WHERE user_id = ?1 AND device_id = ?2 AND algorithm = ?3 ORDER BY id LIMIT 1");
    oldest.bind(1, user_id).bind(2, device_id).bind(3, algorithm);
    if (oldest.step()) {
      const auto id = oldest.column_int64(0);
      claimed = json{{algorithm + ":" + oldest.column_text(1), json::parse(oldest.column_text(2))}};
      oldest.reset();
      db.prepare("DELETE FROM one_time_keys WHERE id = ?1").bind(1, id).run();
      return 0;
    }
    oldest.reset();
    auto& fallback = db.prepare("SELECT key_id, json FROM fallback_keys WHERE user_id = ?1 AND device_id = ?2 AND algorithm = ?3");
    fallback.bind(1, user_id).bind(2, device_id).bind(3, algorithm);
    if (fallback.step()) claimed = json{{algorithm + ":" + fallback.column_text(0), json::parse(fallback.column_text(1))}};
    fallback.reset();
    if (claimed)
      db.prepare("UPDATE fallback_keys SET used = 1 WHERE user_id = ?1 AND device_id = ?2 AND algorithm = ?3")
          .bind(1, user_id)
          .bind(2, device_id)
          .bind(3, algorithm)
          .run();
    return 0;
  });
  return claimed;
}

std::optional<json> KeyStore::cross_signing_key(const std::string& user_id, const std::string& usage) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT json FROM cross_signing_keys WHERE user_id = ?1 AND usage = ?2");
  stmt.bind(1, user_id).bind(2, usage);
  std::optional<json> key;
  if (stmt.step()) key = json::parse(stmt.column_text(0));
  stmt.reset();
  if (!key) return std::nullopt;
  // Signatures on a cross-signing key are stored against its public key.
  std::string public_key;
  if (key->contains("keys") && (*key)["keys"].is_object() && !(*key)["keys"].empty()) {
    const auto& first = *(*key)["keys"].begin();
    if (first.is_string()) public_key = first.get<std::string>();
  }
  return Impl::with_signatures(*db, std::move(*key), user_id, public_key);
}

void KeyStore::set_cross_signing_keys(const std::string& user_id, const std::map<std::string, json>& keys) {
  impl_->write([&] {
    for (const auto& [usage, key] : keys)
      impl_->db->prepare("INSERT OR REPLACE INTO cross_signing_keys (user_id, usage, json) VALUES (?1, ?2, ?3)")
          .bind(1, user_id)
          .bind(2, usage)
          .bind(3, key.dump())
          .run();
    impl_->device_list_changed(user_id, "");
    return 0;
  });
}

void KeyStore::add_signatures(const std::vector<Signature>& signatures) {
  if (signatures.empty()) return;
  impl_->write([&] {
    std::set<std::pair<std::string, std::string>> targets;
    for (const auto& s : signatures) {
      impl_->db
          ->prepare("INSERT OR REPLACE INTO signatures (target_user, target_key, signer_user, signer_key_id, signature) "
                    "VALUES (?1, ?2, ?3, ?4, ?5)")
          .bind(1, s.target_user)
          .bind(2, s.target_key)
          .bind(3, s.signer_user)
          .bind(4, s.signer_key_id)
          .bind(5, s.signature)
          .run();
      targets.emplace(s.target_user, s.target_key);
    }
    for (const auto& [user, key] : targets) impl_->device_list_changed(user, key);
    return 0;
  });
}

std::set<std::string> KeyStore::changed_users(int64_t from, int64_t to) {
  auto db = impl_->read();
  const auto users = first_column(
      db->prepare("SELECT DISTINCT user_id FROM device_list_changes WHERE position > ?1 AND position <= ?2")
          .bind(1, from)
          .bind(2, to));
  return {users.begin(), users.end()};
}

void KeyStore::delete_devices(const std::string& user_id, const std::vector<std::string>& devices) {
  if (devices.empty()) return;
  impl_->write([&] {
    auto& db = *impl_->db;
    for (const auto& device : devices) {
      for (const char* sql : {"DELETE FROM device_keys WHERE user_id = ?1 AND device_id = ?2",
                              "DELETE FROM one_time_keys WHERE user_id = ?1 AND device_id = ?2",
                              "DELETE FROM fallback_keys WHERE user_id = ?1 AND device_id = ?2",
                              "DELETE FROM to_device WHERE user_id = ?1 AND device_id = ?2",
                              "DELETE FROM signatures WHERE target_user = ?1 AND target_key = ?2"})
        db.prepare(sql).bind(1, user_id).bind(2, device).run();
      impl_->device_list_changed(user_id, device);
    }
    return 0;
  });
}

void KeyStore::delete_user(const std::string& user_id) {
  impl_->write([&] {
    auto& db = *impl_->db;
    const auto devices = first_column(db.prepare("SELECT device_id FROM device_keys WHERE user_id = ?1").bind(1, user_id));
    // Signatures on the devices first, while device_keys still says which they are; the
    // cross-signing keys and their signatures stay (they belong to the member, not a device).
    for (const char* sql :
         {"DELETE FROM signatures WHERE target_user = ?1 AND target_key IN (SELECT device_id FROM device_keys WHERE user_id = ?1)",
          "DELETE FROM device_keys WHERE user_id = ?1", "DELETE FROM one_time_keys WHERE user_id = ?1",
          "DELETE FROM fallback_keys WHERE user_id = ?1", "DELETE FROM to_device WHERE user_id = ?1"})
      db.prepare(sql).bind(1, user_id).run();
    for (const auto& device : devices) impl_->device_list_changed(user_id, device);
    if (devices.empty()) impl_->device_list_changed(user_id, "");
    return 0;
  });
}

void KeyStore::remote_device_list_changed(const std::string& user_id) {
  impl_->write([&] {
    impl_->device_list_changed(user_id, "");
    return 0;
  });
}

std::vector<KeyStore::DeviceChange> KeyStore::device_changes_after(int64_t after, int limit) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT c.position, c.user_id, c.device_id, (SELECT max(p.position) FROM device_list_changes p "
      "WHERE p.user_id = c.user_id AND p.position < c.position) FROM device_list_changes c "
      "WHERE c.position > ?1 ORDER BY c.position LIMIT ?2");
  stmt.bind(1, after).bind(2, limit);
  std::vector<DeviceChange> changes;
  while (stmt.step())
    changes.push_back({stmt.column_int64(0), stmt.column_text(1), stmt.column_text(2),
                       stmt.column_is_null(3) ? 0 : stmt.column_int64(3)});
  stmt.reset();
  return changes;
}

int64_t KeyStore::last_device_change(const std::string& user_id) {
  auto db = impl_->read();
  return first_integer(db->prepare("SELECT coalesce(max(position), 0) FROM device_list_changes WHERE user_id = ?1").bind(1, user_id));
}

int64_t KeyStore::cursor(const std::string& name) {
  auto db = impl_->read();
  return first_integer(db->prepare("SELECT position FROM cursors WHERE name = ?1").bind(1, name));
}

void KeyStore::set_cursor(const std::string& name, int64_t position) {
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare("INSERT OR REPLACE INTO cursors (name, position) VALUES (?1, ?2)").bind(1, name).bind(2, position).run();
}

std::map<std::string, std::vector<std::string>> KeyStore::devices_with_keys() {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT user_id, device_id FROM device_keys UNION SELECT user_id, device_id FROM one_time_keys "
      "UNION SELECT user_id, device_id FROM fallback_keys");
  std::map<std::string, std::vector<std::string>> devices;
  while (stmt.step()) devices[stmt.column_text(0)].push_back(stmt.column_text(1));
  stmt.reset();
  return devices;
}

bool KeyStore::send_to_device(const std::string& sender, const std::string& sender_device, const std::string& txn_id,
                              const std::string& type, const std::vector<ToDevice>& messages) {
  return impl_->write([&] {
    auto& db = *impl_->db;
    impl_->prune_if_due();
    db.prepare("INSERT OR IGNORE INTO to_device_txns (sender, device_id, txn_id, at) VALUES (?1, ?2, ?3, ?4)")
        .bind(1, sender)
        .bind(2, sender_device)
        .bind(3, txn_id)
        .bind(4, unix_millis())
        .run();
    if (db.changes() == 0) return false;
    std::map<std::pair<std::string, std::string>, int64_t> queued;
    // Another server's messages (no sender device: they came over federation) have a smaller
    // share of each device's inbox, counted per sending server in messages and bytes, so that
    // no server can fill our members' inboxes however many users it makes up.
    const bool remote = sender_device.empty();
    const auto colon = sender.find(':');
    const std::string origin = colon == std::string::npos ? "" : sender.substr(colon + 1);
    std::map<std::pair<std::string, std::string>, std::pair<int64_t, int64_t>> from_origin;  // (messages, bytes)
    for (const auto& m : messages) {
      // A device that never syncs cannot be made to hold without end what others send it: past
      // kMaxQueuedPerDevice messages, more are dropped (a sender re-sends keys it finds missing).
      auto [it, fresh] = queued.try_emplace({m.user_id, m.device_id}, 0);
      if (fresh) {
        auto& count = db.prepare("SELECT count(*) FROM to_device WHERE user_id = ?1 AND device_id = ?2");
        count.bind(1, m.user_id).bind(2, m.device_id);
        count.step();
        it->second = count.column_int64(0);
        count.reset();
      }
      if (it->second++ >= kMaxQueuedPerDevice) continue;
      if (remote) {
        auto [share, first] = from_origin.try_emplace({m.user_id, m.device_id}, std::pair<int64_t, int64_t>{0, 0});
        if (first) {
          auto& used = db.prepare(
              "SELECT count(*), coalesce(sum(length(content)), 0) FROM to_device WHERE user_id = ?1 AND device_id = ?2 "
              "AND substr(sender, instr(sender, ':') + 1) = ?3");
          used.bind(1, m.user_id).bind(2, m.device_id).bind(3, origin);
          used.step();
          share->second = {used.column_int64(0), used.column_int64(1)};
          used.reset();
        }
        const auto bytes = static_cast<int64_t>(m.content.dump().size());
        if (share->second.first >= kMaxRemoteQueuedPerDevice || share->second.second + bytes > kMaxRemoteQueuedBytes) continue;
        share->second.first += 1;
        share->second.second += bytes;
      }
      impl_->pending.users.insert(m.user_id);
      const auto position = impl_->next_position();
      db.prepare("INSERT INTO to_device (position, user_id, device_id, sender, type, content) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
          .bind(1, position)
          .bind(2, m.user_id)
          .bind(3, m.device_id)
          .bind(4, sender)
          .bind(5, type)
          .bind(6, m.content.dump())
          .run();
    }
    return true;
  });
}

std::pair<std::vector<json>, int64_t> KeyStore::to_device(const std::string& user_id, const std::string& device_id,
                                                          int64_t after, int64_t up_to, int limit) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT position, sender, type, content FROM to_device WHERE user_id = ?1 AND device_id = ?2 "
      "AND position > ?3 AND position <= ?4 ORDER BY position LIMIT ?5");
  stmt.bind(1, user_id).bind(2, device_id).bind(3, after).bind(4, up_to).bind(5, limit);
  std::vector<json> events;
  int64_t last = after;
  while (stmt.step()) {
    last = stmt.column_int64(0);
    events.push_back({{"sender", stmt.column_text(1)}, {"type", stmt.column_text(2)}, {"content", json::parse(stmt.column_text(3))}});
  }
  stmt.reset();
  return {std::move(events), last};
}

void KeyStore::acknowledge_to_device(const std::string& user_id, const std::string& device_id, int64_t up_to) {
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare("DELETE FROM to_device WHERE user_id = ?1 AND device_id = ?2 AND position <= ?3")
      .bind(1, user_id)
      .bind(2, device_id)
      .bind(3, up_to)
      .run();
}

std::optional<KeyStore::BackupVersion> KeyStore::backup_version(const std::string& user_id, std::optional<int64_t> version) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      version ? "SELECT version, algorithm, auth_data, etag FROM backup_versions WHERE user_id = ?1 AND deleted = 0 AND version = ?2"
              : "SELECT version, algorithm, auth_data, etag FROM backup_versions WHERE user_id = ?1 AND deleted = 0 "
                "ORDER BY version DESC LIMIT 1");
  stmt.bind(1, user_id);
  if (version) stmt.bind(2, *version);
  if (!stmt.step()) {
    stmt.reset();
    return std::nullopt;
  }
  BackupVersion found{stmt.column_int64(0), stmt.column_text(1), json::parse(stmt.column_text(2)), 0,
                      std::to_string(stmt.column_int64(3))};
  stmt.reset();
  found.count = Impl::key_count(*db, user_id, found.version);
  return found;
}

int64_t KeyStore::create_backup_version(const std::string& user_id, const std::string& algorithm, const json& auth_data) {
  return impl_->write([&] {
    auto& db = *impl_->db;
    auto& last = db.prepare("SELECT coalesce(max(version), 0) FROM backup_versions WHERE user_id = ?1");
    last.bind(1, user_id);
    last.step();
    const auto version = last.column_int64(0) + 1;
    last.reset();
    db.prepare("INSERT INTO backup_versions (user_id, version, algorithm, auth_data) VALUES (?1, ?2, ?3, ?4)")
        .bind(1, user_id)
        .bind(2, version)
        .bind(3, algorithm)
        .bind(4, auth_data.dump())
        .run();
    return version;
  });
}

bool KeyStore::update_backup_version(const std::string& user_id, int64_t version, const json& auth_data) {
  return impl_->write([&] {
    impl_->db->prepare("UPDATE backup_versions SET auth_data = ?3 WHERE user_id = ?1 AND version = ?2 AND deleted = 0")
        .bind(1, user_id)
        .bind(2, version)
        .bind(3, auth_data.dump())
        .run();
    return impl_->db->changes() > 0;
  });
}

bool KeyStore::delete_backup_version(const std::string& user_id, int64_t version) {
  return impl_->write([&] {
    auto& db = *impl_->db;
    db.prepare("UPDATE backup_versions SET deleted = 1 WHERE user_id = ?1 AND version = ?2 AND deleted = 0")
        .bind(1, user_id)
        .bind(2, version)
        .run();
    const bool existed = db.changes() > 0;
    db.prepare("DELETE FROM backup_keys WHERE user_id = ?1 AND version = ?2").bind(1, user_id).bind(2, version).run();
    return existed;
  });
}

std::pair<std::string, int64_t> KeyStore::put_backup_keys(const std::string& user_id, int64_t version,
                                                          const std::vector<BackedUpKey>& keys) {
  return impl_->write([&] {
    auto& db = *impl_->db;
    bool changed = false;
    for (const auto& key : keys) {
      const int64_t first_index = integer_field(key.key_data, "first_message_index");
      const int64_t forwarded = integer_field(key.key_data, "forwarded_count");
      const bool verified = boolean_field(key.key_data, "is_verified");
      auto& existing = db.prepare(
          "SELECT first_message_index, forwarded_count, is_verified FROM backup_keys "
          "WHERE user_id = ?1 AND version = ?2 AND room_id = ?3 AND session_id = ?4");
      existing.bind(1, user_id).bind(2, version).bind(3, key.room_id).bind(4, key.session_id);
      bool replace = true;
      if (existing.step()) {
        // Client-Server API "Server-side key backups", storing keys: the verified key wins,
        // then the lower first_message_index, then the lower forwarded_count.
        const int64_t old_index = existing.column_int64(0), old_forwarded = existing.column_int64(1);
        const bool old_verified = existing.column_int64(2) != 0;
        if (verified != old_verified) replace = verified;
        else if (first_index != old_index) replace = first_index < old_index;
        else replace = forwarded < old_forwarded;
      }
      existing.reset();
      if (!replace) continue;
      db.prepare(
            "INSERT OR REPLACE INTO backup_keys (user_id, version, room_id, session_id, first_message_index, "
            "forwarded_count, is_verified, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
          .bind(1, user_id)
          .bind(2, version)
          .bind(3, key.room_id)
          .bind(4, key.session_id)
          .bind(5, first_index)
          .bind(6, forwarded)
          .bind(7, verified ? 1 : 0)
          .bind(8, key.key_data.dump())
          .run();
      changed = true;
    }
    if (changed) impl_->bump_etag(user_id, version);
    return std::pair{impl_->etag(user_id, version), Impl::key_count(*impl_->db, user_id, version)};
  });
}

std::vector<KeyStore::BackedUpKey> KeyStore::backup_keys(const std::string& user_id, int64_t version,
                                                         const std::string& room_id, const std::string& session_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT room_id, session_id, json FROM backup_keys WHERE user_id = ?1 AND version = ?2 "
      "AND (?3 = '' OR room_id = ?3) AND (?4 = '' OR session_id = ?4) ORDER BY room_id, session_id");
  stmt.bind(1, user_id).bind(2, version).bind(3, room_id).bind(4, session_id);
  std::vector<BackedUpKey> keys;
  while (stmt.step()) keys.push_back({stmt.column_text(0), stmt.column_text(1), json::parse(stmt.column_text(2))});
  stmt.reset();
  return keys;
}

std::pair<std::string, int64_t> KeyStore::delete_backup_keys(const std::string& user_id, int64_t version,
                                                             const std::string& room_id, const std::string& session_id) {
  return impl_->write([&] {
    impl_->db
        ->prepare("DELETE FROM backup_keys WHERE user_id = ?1 AND version = ?2 AND (?3 = '' OR room_id = ?3) "
                  "AND (?4 = '' OR session_id = ?4)")
        .bind(1, user_id)
        .bind(2, version)
        .bind(3, room_id)
        .bind(4, session_id)
        .run();
    if (impl_->db->changes() > 0) impl_->bump_etag(user_id, version);
    return std::pair{impl_->etag(user_id, version), Impl::key_count(*impl_->db, user_id, version)};
  });
}

}  // namespace coop::room
