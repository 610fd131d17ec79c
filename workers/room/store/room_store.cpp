// room.db schema, event creation with hashes and signatures, and the authorization rules.
#include "workers/room/store/room_store.h"

#include <openssl/evp.h>
#include <openssl/rand.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <limits>
#include <map>
#include <set>
#include <thread>

#include "workers/room/store/room_store_impl.h"

namespace coop::room {

using nlohmann::json;

namespace {

constexpr sqlite::Migration kMigrations[] = {
    {1, R"sql(
      CREATE TABLE rooms (
        room_id    TEXT PRIMARY KEY,
        version    TEXT NOT NULL,
        creator    TEXT NOT NULL,
        room_type  TEXT NOT NULL DEFAULT '',
        created_at INTEGER NOT NULL
      );
      CREATE TABLE events (
        stream          INTEGER PRIMARY KEY AUTOINCREMENT,
        event_id        TEXT NOT NULL UNIQUE,
        room_id         TEXT NOT NULL,
        type            TEXT NOT NULL,
        state_key       TEXT,
        sender          TEXT NOT NULL,
        depth           INTEGER NOT NULL,
        json            TEXT NOT NULL
      );
      CREATE INDEX events_by_room ON events (room_id, stream);
      CREATE TABLE current_state (
        room_id   TEXT NOT NULL,
        type      TEXT NOT NULL,
        state_key TEXT NOT NULL,
        event_id  TEXT NOT NULL,
        PRIMARY KEY (room_id, type, state_key)
      ) WITHOUT ROWID;
      CREATE TABLE memberships (
        room_id    TEXT NOT NULL,
        user_id    TEXT NOT NULL,
        membership TEXT NOT NULL,
        event_id   TEXT NOT NULL,
        PRIMARY KEY (room_id, user_id)
      ) WITHOUT ROWID;
      CREATE INDEX memberships_by_user ON memberships (user_id);
      CREATE TABLE devices (
        user_id      TEXT NOT NULL,
        device_id    TEXT NOT NULL,
        display_name TEXT NOT NULL DEFAULT '',
        last_seen    INTEGER NOT NULL,
        PRIMARY KEY (user_id, device_id)
      ) WITHOUT ROWID;
      CREATE TABLE access_tokens (
        token_hash TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL,
        device_id  TEXT NOT NULL,
        created_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE txns (
        user_id   TEXT NOT NULL,
        device_id TEXT NOT NULL,
        txn_id    TEXT NOT NULL,
        event_id  TEXT NOT NULL,
        PRIMARY KEY (user_id, device_id, txn_id)
      ) WITHOUT ROWID;
      CREATE TABLE other_stream (position INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL);
      CREATE TABLE account_data (
        user_id  TEXT NOT NULL,
        room_id  TEXT NOT NULL,
        type     TEXT NOT NULL,
        content  TEXT NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (user_id, room_id, type)
      ) WITHOUT ROWID;
      CREATE TABLE receipts (
        room_id  TEXT NOT NULL,
        user_id  TEXT NOT NULL,
        type     TEXT NOT NULL,
        event_id TEXT NOT NULL,
        ts       INTEGER NOT NULL,
        position INTEGER NOT NULL,
        PRIMARY KEY (room_id, user_id, type)
      ) WITHOUT ROWID;
      CREATE TABLE aliases (alias TEXT PRIMARY KEY, room_id TEXT NOT NULL, creator TEXT NOT NULL);
      CREATE TABLE filters (id INTEGER PRIMARY KEY, user_id TEXT NOT NULL, json TEXT NOT NULL);
    )sql"},
    {2, R"sql(
      CREATE TABLE coop_spaces (
        room_id    TEXT PRIMARY KEY,
        kind       TEXT NOT NULL CHECK (kind IN ('cooperative', 'group', 'space')),
        group_name TEXT NOT NULL DEFAULT ''
      );
      CREATE INDEX events_by_relation ON events (json_extract(json, '$.content."m.relates_to".event_id'));
      CREATE TABLE media (
        media_id     TEXT PRIMARY KEY,
        blob         TEXT NOT NULL,
        content_type TEXT NOT NULL,
        filename     TEXT NOT NULL DEFAULT '',
        size         INTEGER NOT NULL,
        uploader     TEXT NOT NULL,
        created_at   INTEGER NOT NULL
      );
    )sql"},
    // State as deltas: each state event starts a group holding only what it changed, on top
    // of the previous group; every kSnapshotEvery-th group is a full snapshot, so reading the
    // state at any event walks a bounded chain and a 10,000-member room never copies its
    // whole state per event.
    {3, R"sql(
      CREATE TABLE state_groups (
        id      INTEGER PRIMARY KEY,
        room_id TEXT NOT NULL,
        prev_id INTEGER,
        chain   INTEGER NOT NULL
      );
      CREATE TABLE state_group_entries (
        group_id  INTEGER NOT NULL,
        type      TEXT NOT NULL,
        state_key TEXT NOT NULL,
        event_id  TEXT NOT NULL,
        PRIMARY KEY (group_id, type, state_key)
      ) WITHOUT ROWID;
      ALTER TABLE events ADD COLUMN state_group INTEGER;
      ALTER TABLE rooms ADD COLUMN current_group INTEGER;
    )sql"},
    {4, R"sql(
      ALTER TABLE memberships ADD COLUMN forgotten INTEGER NOT NULL DEFAULT 0;
      CREATE TABLE room_directory (room_id TEXT PRIMARY KEY);
    )sql"},
    // A user's membership history and a room's history_visibility changes, for visibility.
    {5, R"sql(
      CREATE INDEX events_by_state_key ON events (room_id, type, state_key, stream);
    )sql"},
    // unsigned.transaction_id for the sender's device, looked up per timeline event.
    {6, R"sql(
      CREATE INDEX txns_by_event ON txns (event_id);
    )sql"},
    // OpenID tokens (Client-Server API "OpenID"), kept as hashes like access tokens.
    {7, R"sql(
      CREATE TABLE openid_tokens (
        token_hash TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;
      -- A member's Matrix profile where they changed it; otherwise the registry's name.
      CREATE TABLE profiles (
        user_id     TEXT PRIMARY KEY,
        displayname TEXT,
        avatar_url  TEXT
      ) WITHOUT ROWID;
      -- What each member's push rules made of each event ("Push Notifications"), written in
      -- the event's own transaction: the unread counts and GET /notifications read it.
      CREATE TABLE notifications (
        id        INTEGER PRIMARY KEY,
        user_id   TEXT NOT NULL,
        room_id   TEXT NOT NULL,
        event_id  TEXT NOT NULL,
        stream    INTEGER NOT NULL,
        thread_id TEXT NOT NULL DEFAULT '',
        highlight INTEGER NOT NULL,
        actions   TEXT NOT NULL,
        ts        INTEGER NOT NULL
      );
      CREATE INDEX notifications_by_room ON notifications (user_id, room_id, stream);
      CREATE INDEX notifications_by_user ON notifications (user_id, id);
      CREATE TABLE pushers (
        user_id TEXT NOT NULL,
        app_id  TEXT NOT NULL,
        pushkey TEXT NOT NULL,
        json    TEXT NOT NULL,
        PRIMARY KEY (user_id, app_id, pushkey)
      ) WITHOUT ROWID;
    )sql"},
    // Client-Server API "Server Side Search": the searchable text of each event (message
    // bodies, room names and topics) in an FTS5 index; encrypted events have none.
    {8, R"sql(
      CREATE VIRTUAL TABLE event_search USING fts5(
        event_id UNINDEXED, room_id UNINDEXED, key UNINDEXED, value, tokenize = 'unicode61 remove_diacritics 2'
      );
      INSERT INTO event_search (event_id, room_id, key, value)
        SELECT event_id, room_id, 'content.body', json_extract(json, '$.content.body') FROM events
        WHERE type = 'm.room.message' AND json_type(json, '$.content.body') = 'text'
        UNION ALL
        SELECT event_id, room_id, 'content.name', json_extract(json, '$.content.name') FROM events
        WHERE type = 'm.room.name' AND json_type(json, '$.content.name') = 'text'
        UNION ALL
        SELECT event_id, room_id, 'content.topic', json_extract(json, '$.content.topic') FROM events
        WHERE type = 'm.room.topic' AND json_type(json, '$.content.topic') = 'text';
    )sql"},
    // How far push gateway delivery has come through the notifications table.
    {9, R"sql(
      CREATE TABLE push_state (name TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
    )sql"},
    // Client-Server API "Threaded read receipts": a receipt is unthreaded (''), for the main
    // timeline ('main') or for one thread (its root's event ID), and each is kept apart.
    {10, R"sql(
      CREATE TABLE receipts_threaded (
        room_id   TEXT NOT NULL,
        user_id   TEXT NOT NULL,
        type      TEXT NOT NULL,
        thread_id TEXT NOT NULL DEFAULT '',
        event_id  TEXT NOT NULL,
        ts        INTEGER NOT NULL,
        position  INTEGER NOT NULL,
        PRIMARY KEY (room_id, user_id, type, thread_id)
      ) WITHOUT ROWID;
      INSERT INTO receipts_threaded (room_id, user_id, type, event_id, ts, position)
        SELECT room_id, user_id, type, event_id, ts, position FROM receipts;
      DROP TABLE receipts;
      ALTER TABLE receipts_threaded RENAME TO receipts;
    )sql"},
    // Expired OpenID tokens are deleted whenever one is made: by an index, not a scan (Jitsi
    // calls make one per member token, thousands an hour on a busy shard).
    {11, R"sql(
      CREATE INDEX openid_tokens_expiry ON openid_tokens (expires_at);
      CREATE INDEX openid_tokens_user ON openid_tokens (user_id);
    )sql"},
    // Federation (Server-Server API "Room DAG concepts"): a room's history may fork, so the
    // next event's prev_events are the room's forward extremities, not its latest event.
    // status: 0 in the timeline; 1 an outlier (an auth or state event learnt from a join,
    // outside the timeline); 2 soft-failed (stored, never shown, never built on). relay: an
    // event this server sends to the other servers in the room (its own, and joins and
    // leaves made through it). invite_state: what an invitation from another server showed
    // of its room (stripped state), for the invitee's client until they join. event_edges: the DAG's prev_events links, so that an event that
    // comes late never becomes an extremity when a later one already builds on it. Events
    // that failed the auth rules are kept apart, so that
    // nothing builds on them and a second copy is refused at once.
    {12, R"sql(
      CREATE TABLE extremities (
        room_id  TEXT NOT NULL,
        event_id TEXT NOT NULL,
        PRIMARY KEY (room_id, event_id)
      ) WITHOUT ROWID;
      INSERT INTO extremities (room_id, event_id)
        SELECT room_id, event_id FROM events e WHERE stream = (SELECT max(stream) FROM events WHERE room_id = e.room_id);
      ALTER TABLE events ADD COLUMN status INTEGER NOT NULL DEFAULT 0;
      ALTER TABLE events ADD COLUMN relay INTEGER NOT NULL DEFAULT 1;
      CREATE TABLE event_edges (
        event_id TEXT NOT NULL,
        prev_id  TEXT NOT NULL,
        PRIMARY KEY (event_id, prev_id)
      ) WITHOUT ROWID;
      CREATE INDEX event_edges_by_prev ON event_edges (prev_id);
      INSERT OR IGNORE INTO event_edges (event_id, prev_id)
        SELECT e.event_id, p.value FROM events e, json_each(e.json, '$.prev_events') p WHERE p.type = 'text';
      CREATE TABLE invite_state (
        room_id TEXT NOT NULL,
        user_id TEXT NOT NULL,
        state   TEXT NOT NULL,
        PRIMARY KEY (room_id, user_id)
      ) WITHOUT ROWID;
      CREATE TABLE rejected_events (
        event_id TEXT PRIMARY KEY,
        room_id  TEXT NOT NULL,
        reason   TEXT NOT NULL,
        at       INTEGER NOT NULL
      ) WITHOUT ROWID;
    )sql"},
    // Redactions by what they redact: an event from another server may come after a
    // redaction of it, and is then redacted as it is stored.
    {13, R"sql(
      CREATE INDEX events_by_redacted ON events (coalesce(json_extract(json, '$.content.redacts'), json_extract(json, '$.redacts')))
        WHERE type = 'm.room.redaction';
    )sql"},
    // The auth graph as rows (Server-Server API "Auth chain"): an event's auth events,
    // with the create event a room version 12 room ID implies. Auth chains are walked here
    // in SQL, not by parsing every event of a room's history.
    {14, R"sql(
      CREATE TABLE auth_edges (
        event_id TEXT NOT NULL,
        auth_id  TEXT NOT NULL,
        PRIMARY KEY (event_id, auth_id)
      ) WITHOUT ROWID;
      INSERT OR IGNORE INTO auth_edges (event_id, auth_id)
        SELECT e.event_id, a.value FROM events e, json_each(e.json, '$.auth_events') a WHERE a.type = 'text';
      INSERT OR IGNORE INTO auth_edges (event_id, auth_id)
        SELECT event_id, '$' || substr(room_id, 2) FROM events WHERE type != 'm.room.create' AND instr(room_id, ':') = 0;
    )sql"},
    // A rejected event's state for what builds on it (Server-Server API "Rejection": the state
    // before it, not updated with it), when it was rejected against that state.
    {15, R"sql(
      ALTER TABLE rejected_events ADD COLUMN state_group INTEGER;
    )sql"},
    // Simplified sliding sync (MSC4186): each position a connection was handed, with the
    // stream token it stands for and how far each room was sent, so that a position survives
    // a restart and a retried request gets the same answer.
    {16, R"sql(
      CREATE TABLE sliding_positions (
        id        INTEGER PRIMARY KEY AUTOINCREMENT,
        user_id   TEXT NOT NULL,
        device_id TEXT NOT NULL,
        conn_id   TEXT NOT NULL,
        token     TEXT NOT NULL,
        rooms     TEXT NOT NULL,
        at        INTEGER NOT NULL
      );
      CREATE INDEX sliding_positions_by_connection ON sliding_positions (user_id, device_id, conn_id, id);
    )sql"},
    // Login tokens (Client-Server API POST /login/get_token, m.login.token): a signed-in
    // device lets a new one sign in once, within two minutes; kept as hashes.
    {17, R"sql(
      CREATE TABLE login_tokens (
        token_hash TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL,
        expires_at INTEGER NOT NULL
      ) WITHOUT ROWID;
    )sql"},
    // A room's latest timeline event in one index step (sliding sync sorts every room a
    // member has by it on each answer; events_by_room alone made that read all of them).
    {18, R"sql(
      CREATE INDEX events_by_room_status ON events (room_id, status, stream);
    )sql"},
};

}  // namespace

std::optional<StreamPosition> StreamPosition::parse(const std::string& token) {
  if (token.size() < 4 || token[0] != 's') return std::nullopt;
  const auto first = token.find('_');
  if (first == std::string::npos) return std::nullopt;
  const auto second = token.find('_', first + 1);
  try {
    std::size_t used = 0;
    StreamPosition p;
    p.events = std::stoll(token.substr(1, first - 1), &used);
    if (used != first - 1) return std::nullopt;
    const auto other = token.substr(first + 1, second == std::string::npos ? std::string::npos : second - first - 1);
    p.other = std::stoll(other, &used);
    if (used != other.size()) return std::nullopt;
    if (second != std::string::npos) {
      const auto keys = token.substr(second + 1);
      p.keys = std::stoll(keys, &used);
      if (used != keys.size()) return std::nullopt;
    }
    if (p.events < 0 || p.other < 0 || p.keys < 0) return std::nullopt;
    return p;
  } catch (...) {
    return std::nullopt;
  }
}

RoomStore::RoomStore(const std::filesystem::path& file, std::string server_name, const matrix::SigningKey& key)
    : impl_(std::make_unique<Impl>(key, server_name)), server_name_(std::move(server_name)) {
  impl_->db = sqlite::Database::open(file);
  impl_->db->migrate(kMigrations);
  // One reader per I/O thread, and a few for the push sender and blocking jobs.
  impl_->readers = std::make_unique<sqlite::ReaderPool>(file, std::thread::hardware_concurrency() + 4,
                                                         *impl_->db, impl_->mutex);
}

RoomStore::~RoomStore() = default;

void RoomStore::on_change(std::function<void(const StoreChange&)> callback) {
  std::lock_guard lock(impl_->mutex);
  impl_->on_change = std::move(callback);
}

std::pair<std::string, std::string> RoomStore::create_session(const std::string& user_id, const std::string& device_id_in,
                                                              const std::string& display_name) {
  const std::string device_id = device_id_in.empty() ? random_id(8) : device_id_in;
  // The token is shown once; only its hash is stored, like any other password.
  const std::string token = "coop_" + random_id(32);
  std::lock_guard lock(impl_->mutex);
  sqlite::Transaction tx(*impl_->db);
  impl_->db->prepare("INSERT OR REPLACE INTO devices (user_id, device_id, display_name, last_seen) VALUES (?1, ?2, ?3, ?4)")
      .bind(1, user_id)
      .bind(2, device_id)
      .bind(3, display_name)
      .bind(4, unix_millis())
      .run();
  impl_->db->prepare("DELETE FROM access_tokens WHERE user_id = ?1 AND device_id = ?2").bind(1, user_id).bind(2, device_id).run();
  impl_->db->prepare("INSERT INTO access_tokens (token_hash, user_id, device_id, created_at) VALUES (?1, ?2, ?3, ?4)")
      .bind(1, sha256_hex(token))
      .bind(2, user_id)
      .bind(3, device_id)
      .bind(4, unix_millis())
      .run();
  tx.commit();
  return {token, device_id};
}

namespace {
// A random token kept as its hash in `table` (token_hash, user_id, expires_at), with that
// table's expired tokens swept first. Under the writer's mutex.
std::string mint_token(sqlite::Database& db, const char* table, const std::string& user_id, int64_t lifetime_ms) {
  const std::string token = random_id(32);
  db.prepare(std::string("DELETE FROM ") + table + " WHERE expires_at < ?1").bind(1, unix_millis()).run();
  db.prepare(std::string("INSERT INTO ") + table + " (token_hash, user_id, expires_at) VALUES (?1, ?2, ?3)")
      .bind(1, sha256_hex(token))
      .bind(2, user_id)
      .bind(3, unix_millis() + lifetime_ms)
      .run();
  return token;
}
}  // namespace

std::string RoomStore::create_openid_token(const std::string& user_id, int64_t lifetime_seconds) {
  std::lock_guard lock(impl_->mutex);
  return mint_token(*impl_->db, "openid_tokens", user_id, lifetime_seconds * 1000);
}

std::string RoomStore::create_login_token(const std::string& user_id, int64_t lifetime_ms) {
  std::lock_guard lock(impl_->mutex);
  return mint_token(*impl_->db, "login_tokens", user_id, lifetime_ms);
}

std::optional<std::string> RoomStore::take_login_token(const std::string& token) {
  std::lock_guard lock(impl_->mutex);
  auto& stmt = impl_->db->prepare("DELETE FROM login_tokens WHERE token_hash = ?1 AND expires_at >= ?2 RETURNING user_id");
  stmt.bind(1, sha256_hex(token)).bind(2, unix_millis());
  std::optional<std::string> user;
  if (stmt.step()) user = stmt.column_text(0);
  stmt.reset();
  return user;
}

std::optional<std::string> RoomStore::openid_user(const std::string& token) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT user_id FROM openid_tokens WHERE token_hash = ?1 AND expires_at >= ?2");
  stmt.bind(1, sha256_hex(token)).bind(2, unix_millis());
  std::optional<std::string> user;
  if (stmt.step()) user = stmt.column_text(0);
  stmt.reset();
  return user;
}

std::pair<std::optional<std::string>, std::optional<std::string>> RoomStore::profile(const std::string& user_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT displayname, avatar_url FROM profiles WHERE user_id = ?1");
  stmt.bind(1, user_id);
  std::pair<std::optional<std::string>, std::optional<std::string>> found;
  if (stmt.step()) found = {stmt.column_optional_text(0), stmt.column_optional_text(1)};
  stmt.reset();
  return found;
}

void RoomStore::set_profile_field(const std::string& user_id, const std::string& field, const std::string& value) {
  if (field != "displayname" && field != "avatar_url") throw Error(errc::kMInvalidParam, "no such profile field", 400);
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare("INSERT OR IGNORE INTO profiles (user_id) VALUES (?1)").bind(1, user_id).run();
  impl_->db->prepare("UPDATE profiles SET " + field + " = ?2 WHERE user_id = ?1").bind(1, user_id).bind(2, value).run();
}

int64_t RoomStore::allocate_other_position() {
  std::lock_guard lock(impl_->mutex);
  return impl_->other_position();
}

std::optional<Session> RoomStore::session_for(const std::string& access_token) {
  auto db = impl_->read();
  return Impl::find_session(*db, access_token);
}

void RoomStore::delete_session(const std::string& access_token) {
  std::lock_guard lock(impl_->mutex);
  const auto session = Impl::find_session(*impl_->db, access_token);
  if (!session) return;
  sqlite::Transaction tx(*impl_->db);
  impl_->db->prepare("DELETE FROM access_tokens WHERE token_hash = ?1").bind(1, sha256_hex(access_token)).run();
  impl_->db->prepare("DELETE FROM devices WHERE user_id = ?1 AND device_id = ?2").bind(1, session->user_id).bind(2, session->device_id).run();
  impl_->db->prepare("DELETE FROM sliding_positions WHERE user_id = ?1 AND device_id = ?2")
      .bind(1, session->user_id)
      .bind(2, session->device_id)
      .run();
  tx.commit();
}

void RoomStore::delete_sessions(const std::string& user_id) {
  std::lock_guard lock(impl_->mutex);
  sqlite::Transaction tx(*impl_->db);
  impl_->db->prepare("DELETE FROM access_tokens WHERE user_id = ?1").bind(1, user_id).run();
  impl_->db->prepare("DELETE FROM devices WHERE user_id = ?1").bind(1, user_id).run();
  // OpenID and login tokens go too: a suspended member's token no longer admits them to a
  // call, nor signs in a new device.
  impl_->db->prepare("DELETE FROM openid_tokens WHERE user_id = ?1").bind(1, user_id).run();
  impl_->db->prepare("DELETE FROM login_tokens WHERE user_id = ?1").bind(1, user_id).run();
  impl_->db->prepare("DELETE FROM sliding_positions WHERE user_id = ?1").bind(1, user_id).run();
  tx.commit();
}

std::vector<std::string> RoomStore::delete_sessions_except(const std::string& user_id, const std::set<std::string>& keep) {
  std::lock_guard lock(impl_->mutex);
  std::vector<std::string> removed;
  auto& stmt = impl_->db->prepare("SELECT device_id FROM devices WHERE user_id = ?1");
  stmt.bind(1, user_id);
  while (stmt.step())
    if (!keep.count(stmt.column_text(0))) removed.push_back(stmt.column_text(0));
  stmt.reset();
  sqlite::Transaction tx(*impl_->db);
  for (const auto& device : removed) {
    impl_->db->prepare("DELETE FROM access_tokens WHERE user_id = ?1 AND device_id = ?2").bind(1, user_id).bind(2, device).run();
    impl_->db->prepare("DELETE FROM devices WHERE user_id = ?1 AND device_id = ?2").bind(1, user_id).bind(2, device).run();
    impl_->db->prepare("DELETE FROM sliding_positions WHERE user_id = ?1 AND device_id = ?2").bind(1, user_id).bind(2, device).run();
  }
  // A login token from before a password change signs nobody in after it.
  impl_->db->prepare("DELETE FROM login_tokens WHERE user_id = ?1").bind(1, user_id).run();
  tx.commit();
  return removed;
}

json RoomStore::devices(const std::string& user_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT device_id, display_name, last_seen FROM devices WHERE user_id = ?1 ORDER BY device_id");
  stmt.bind(1, user_id);
  json list = json::array();
  while (stmt.step())
    list.push_back({{"device_id", stmt.column_text(0)}, {"display_name", stmt.column_text(1)}, {"last_seen_ts", stmt.column_int64(2)}});
  stmt.reset();
  return list;
}

bool RoomStore::rename_device(const std::string& user_id, const std::string& device_id, const std::string& display_name) {
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare("UPDATE devices SET display_name = ?3 WHERE user_id = ?1 AND device_id = ?2")
      .bind(1, user_id)
      .bind(2, device_id)
      .bind(3, display_name)
      .run();
  return impl_->db->changes() > 0;
}

bool RoomStore::delete_device(const std::string& user_id, const std::string& device_id) {
  std::lock_guard lock(impl_->mutex);
  sqlite::Transaction tx(*impl_->db);
  impl_->db->prepare("DELETE FROM devices WHERE user_id = ?1 AND device_id = ?2").bind(1, user_id).bind(2, device_id).run();
  const bool existed = impl_->db->changes() > 0;
  impl_->db->prepare("DELETE FROM access_tokens WHERE user_id = ?1 AND device_id = ?2").bind(1, user_id).bind(2, device_id).run();
  tx.commit();
  return existed;
}

namespace {
void require_creatable(const std::string& version) {
  if (version != "10" && version != "11" && version != "12")
    throw Error(errc::kMUnsupportedRoomVersion, "this server supports room versions 10, 11 and 12", 400);
}
}  // namespace

void RoomStore::set_default_room_version(const std::string& version) {
  require_creatable(version);
  default_room_version_ = version;
}

json RoomStore::create_room(const std::string& creator, const json& request, const json& creator_profile) {
  if (request.contains("room_version") && !request["room_version"].is_string())
    throw Error(errc::kMBadJson, "room_version must be a string", 400);
  const std::string version = request.value("room_version", default_room_version_);
  require_creatable(version);
  const bool v12 = matrix::has_room_creators(version);
  const std::string preset = request.value("preset", request.value("visibility", "private") == "public" ? "public_chat" : "private_chat");
  return impl_->write([&] {
    json create_content = request.value("creation_content", json::object());
    if (!create_content.is_object()) throw Error(errc::kMBadJson, "creation_content must be an object", 400);
    if (version == "10") create_content["creator"] = creator;  // v11 takes the sender instead
    create_content["room_version"] = version;
    // Room version 12: a trusted private chat's invitees are its creators with the inviter
    // (Client-Server API POST /createRoom), and the ID is the create event's; a random key
    // keeps two rooms made in the same millisecond apart.
    if (v12 && preset == "trusted_private_chat")
      for (const auto& invitee : request.value("invite", json::array()))
        if (invitee.is_string() && invitee != creator) create_content["additional_creators"].push_back(invitee);
    if (v12) create_content["org.cooperative.coop.nonce"] = random_id(12);
    const std::string room_type = create_content.value("type", "");
    json create;
    std::string room_id;
    if (v12) {
      create = impl_->build("", version, creator, "m.room.create", create_content, "");
      room_id = "!" + create["event_id"].get<std::string>().substr(1);
    } else {
      room_id = "!" + random_id(18) + ":" + server_name_;
    }
    impl_->db->prepare("INSERT INTO rooms (room_id, version, creator, room_type, created_at) VALUES (?1, ?2, ?3, ?4, ?5)")
        .bind(1, room_id)
        .bind(2, version)
        .bind(3, creator)
        .bind(4, room_type)
        .bind(5, unix_millis())
        .run();
    if (v12)
      impl_->store(room_id, create, create_content);
    else
      impl_->append(room_id, version, creator, "m.room.create", create_content, "");
    json join = {{"membership", "join"}};
    for (const char* field : {"displayname", "avatar_url"})
      if (creator_profile.is_object() && creator_profile.contains(field) && creator_profile[field].is_string() &&
          !creator_profile[field].get<std::string>().empty())
        join[field] = creator_profile[field];
    impl_->append(room_id, version, creator, "m.room.member", join, creator);
    // Client-Server API "Creating a room": power levels, then preset state, then the rest.
    // Room version 12: creators hold an infinite level and are never listed; the tombstone
    // needs more than any listed level (150).
    json levels = {{"users", json::object()}, {"users_default", 0}, {"events_default", 0}, {"state_default", 50},
                   {"ban", 50}, {"kick", 50}, {"redact", 50}, {"invite", preset == "public_chat" ? 0 : 0},
                   {"events", {{"m.room.name", 50}, {"m.room.power_levels", 100}, {"m.room.history_visibility", 100},
                               {"m.room.canonical_alias", 50}, {"m.room.avatar", 50}, {"m.room.tombstone", v12 ? 150 : 100},
                               {"m.room.server_acl", 100}, {"m.room.encryption", 100}, {"m.space.child", 50}}}};
    if (!v12) levels["users"][creator] = 100;
    if (preset == "trusted_private_chat" && !v12)
      for (const auto& invitee : request.value("invite", json::array())) levels["users"][invitee.get<std::string>()] = 100;
    if (request.contains("power_level_content_override") && request["power_level_content_override"].is_object())
      levels.merge_patch(request["power_level_content_override"]);
    if (v12 && levels["users"].is_object())
      for (const auto& c : matrix::room_creators(create)) levels["users"].erase(c);  // rule 10.4
    impl_->append(room_id, version, creator, "m.room.power_levels", levels, "");
    if (request.contains("room_alias_name")) {
      const std::string alias = "#" + request.value("room_alias_name", "") + ":" + server_name_;
      impl_->db->prepare("INSERT INTO aliases (alias, room_id, creator) VALUES (?1, ?2, ?3)").bind(1, alias).bind(2, room_id).bind(3, creator).run();
      impl_->append(room_id, version, creator, "m.room.canonical_alias", {{"alias", alias}}, "");
    }
    impl_->append(room_id, version, creator, "m.room.join_rules",
                  {{"join_rule", preset == "public_chat" ? "public" : "invite"}}, "");
    impl_->append(room_id, version, creator, "m.room.history_visibility", {{"history_visibility", "shared"}}, "");
    if (preset != "public_chat")
      impl_->append(room_id, version, creator, "m.room.guest_access", {{"guest_access", "can_join"}}, "");
    for (const auto& state : request.value("initial_state", json::array()))
      impl_->append(room_id, version, creator, state.value("type", ""), state.value("content", json::object()),
                    state.value("state_key", ""));
    if (request.contains("name")) impl_->append(room_id, version, creator, "m.room.name", {{"name", request["name"]}}, "");
    if (request.contains("topic")) impl_->append(room_id, version, creator, "m.room.topic", {{"topic", request["topic"]}}, "");
    for (const auto& invitee : request.value("invite", json::array()))
      impl_->append(room_id, version, creator, "m.room.member",
                    {{"membership", "invite"}, {"is_direct", request.value("is_direct", false)}}, invitee.get<std::string>());
    return json{{"room_id", room_id}};
  });
}

json RoomStore::send_event(const std::string& room_id, const std::string& sender, const std::string& type,
                           const json& content, const std::optional<std::string>& state_key,
                           const std::string& txn_device, const std::string& txn_id) {
  return impl_->write([&] {
    const auto version = Impl::version_of(*impl_->db, room_id);
    if (!version) throw Error(errc::kMNotFound, "no room " + room_id + " here", 404);
    auto event = impl_->append(room_id, *version, sender, type, content, state_key);
    if (type == "m.room.redaction") impl_->apply_redaction(event, *version);
    if (!txn_id.empty())
      impl_->db->prepare("INSERT INTO txns (user_id, device_id, txn_id, event_id) VALUES (?1, ?2, ?3, ?4)")
          .bind(1, sender)
          .bind(2, txn_device)
          .bind(3, txn_id)
          .bind(4, event.value("event_id", ""))
          .run();
    return event;
  });
}

// The spec's algorithm ("History visibility", server behaviour), with the membership and the
// visibility in force at the event (the event itself included, so a join is seen by its user):
// world_readable, or joined at the event, or shared and joined at any point since, or invited
// and invited at the event. The user's own membership events are always theirs to see.
bool HistoryVisibility::allows(const StoredEvent& e) const {
  const auto at = [&e](const std::vector<std::pair<int64_t, std::string>>& changes, const std::string& fallback) {
    std::string value = fallback;
    for (const auto& [stream, v] : changes) {
      if (stream > e.stream) break;
      value = v;
    }
    return value;
  };
  if (e.event.value("type", "") == "m.room.member" && e.event.value("state_key", "") == user_id_) return true;
  const std::string visibility = at(visibilities_, "shared");
  if (visibility == "world_readable") return true;
  const std::string membership = at(memberships_, "");
  if (membership == "join") return true;
  if (visibility == "shared")
    for (const auto& [stream, m] : memberships_)
      if (stream >= e.stream && m == "join") return true;
  return visibility == "invited" && membership == "invite";
}

std::set<std::string> RoomStore::rooms_changed_since(const std::string& user_id, int64_t events_after, int64_t other_after) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT m.room_id FROM memberships m WHERE m.user_id = ?1 AND m.forgotten = 0 AND ("
      "EXISTS (SELECT 1 FROM events e WHERE e.room_id = m.room_id AND e.stream > ?2) OR "
      "EXISTS (SELECT 1 FROM receipts r WHERE r.room_id = m.room_id AND r.position > ?3))");
  stmt.bind(1, user_id).bind(2, events_after).bind(3, other_after);
  std::set<std::string> rooms;
  while (stmt.step()) rooms.insert(stmt.column_text(0));
  stmt.reset();
  return rooms;
}

std::set<std::string> RoomStore::users_sharing_rooms(const std::string& user_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT DISTINCT theirs.user_id FROM memberships mine JOIN memberships theirs ON theirs.room_id = mine.room_id "
      "WHERE mine.user_id = ?1 AND mine.membership = 'join' AND theirs.membership IN ('join', 'invite')");
  stmt.bind(1, user_id);
  std::set<std::string> users{user_id};
  while (stmt.step()) users.insert(stmt.column_text(0));
  stmt.reset();
  return users;
}

RoomStore::RoomSummary RoomStore::room_summary(const std::string& room_id, const std::string& user_id, int heroes) {
  auto db = impl_->read();
  RoomSummary summary;
  auto& counts = db->prepare("SELECT membership, count(*) FROM memberships WHERE room_id = ?1 GROUP BY membership");
  counts.bind(1, room_id);
  while (counts.step()) {
    const auto m = counts.column_text(0);
    if (m == "join") summary.joined = counts.column_int64(1);
    if (m == "invite") summary.invited = counts.column_int64(1);
  }
  counts.reset();
  auto& first = db->prepare(
      "SELECT m.user_id FROM memberships m JOIN events e ON e.event_id = m.event_id WHERE m.room_id = ?1 "
      "AND m.membership IN ('join', 'invite') AND m.user_id != ?2 ORDER BY e.stream LIMIT ?3");
  first.bind(1, room_id).bind(2, user_id).bind(3, heroes);
  while (first.step()) summary.heroes.push_back(first.column_text(0));
  first.reset();
  return summary;
}

std::vector<std::string> RoomStore::room_members(const std::string& room_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT user_id FROM memberships WHERE room_id = ?1 AND membership IN ('join', 'invite')");
  stmt.bind(1, room_id);
  std::vector<std::string> users;
  while (stmt.step()) users.push_back(stmt.column_text(0));
  stmt.reset();
  return users;
}

std::vector<RoomStore::MembershipChange> RoomStore::membership_changes(const std::string& user_id, int64_t after,
                                                                       int64_t up_to) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT e.room_id, e.state_key, coalesce(json_extract(e.json, '$.content.membership'), '') FROM events e "
      "WHERE e.room_id IN (SELECT room_id FROM memberships WHERE user_id = ?1) AND e.type = 'm.room.member' "
      "AND e.stream > ?2 AND e.stream <= ?3 ORDER BY e.stream");
  stmt.bind(1, user_id).bind(2, after).bind(3, up_to);
  std::vector<MembershipChange> changes;
  while (stmt.step()) changes.push_back({stmt.column_text(0), stmt.column_text(1), stmt.column_text(2)});
  stmt.reset();
  return changes;
}

HistoryVisibility RoomStore::history_visibility(const std::string& room_id, const std::string& user_id) {
  auto db = impl_->read();
  auto changes = [&](const std::string& type, const std::string& key, const char* field) {
    auto& stmt = db->prepare(
        "SELECT stream, coalesce(json_extract(json, ?4), '') FROM events "
        "WHERE room_id = ?1 AND type = ?2 AND state_key = ?3 ORDER BY stream");
    stmt.bind(1, room_id).bind(2, type).bind(3, key).bind(4, std::string(field));
    std::vector<std::pair<int64_t, std::string>> out;
    while (stmt.step()) out.emplace_back(stmt.column_int64(0), stmt.column_text(1));
    stmt.reset();
    return out;
  };
  return HistoryVisibility(user_id, changes("m.room.member", user_id, "$.content.membership"),
                           changes("m.room.history_visibility", "", "$.content.history_visibility"));
}

std::optional<std::string> RoomStore::event_for_txn(const std::string& user_id, const std::string& device_id,
                                                    const std::string& txn_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT event_id FROM txns WHERE user_id = ?1 AND device_id = ?2 AND txn_id = ?3");
  stmt.bind(1, user_id).bind(2, device_id).bind(3, txn_id);
  if (!stmt.step()) return std::nullopt;
  auto id = stmt.column_text(0);
  stmt.reset();
  return id;
}

std::optional<std::pair<std::string, std::string>> RoomStore::txn_of(const std::string& event_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT device_id, txn_id FROM txns WHERE event_id = ?1");
  stmt.bind(1, event_id);
  std::optional<std::pair<std::string, std::string>> found;
  if (stmt.step()) {
    // Stored as "endpoint\n...\ntxn id" (scoped per endpoint); the client's id is the last part.
    auto txn = stmt.column_text(1);
    found.emplace(stmt.column_text(0), txn.substr(txn.rfind('\n') + 1));
  }
  stmt.reset();
  return found;
}

std::optional<std::string> RoomStore::room_version(const std::string& room_id) {
  auto db = impl_->read();
  return Impl::version_of(*db, room_id);
}

std::optional<json> RoomStore::state_event(const std::string& room_id, const std::string& type, const std::string& key) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT e.json FROM current_state s JOIN events e ON e.event_id = s.event_id WHERE s.room_id = ?1 AND s.type = ?2 AND s.state_key = ?3");
  stmt.bind(1, room_id).bind(2, type).bind(3, key);
  if (!stmt.step()) return std::nullopt;
  auto event = json::parse(stmt.column_text(0));
  stmt.reset();
  return event;
}

std::vector<json> RoomStore::current_state(const std::string& room_id, const StateWanted& wanted) {
  auto db = impl_->read();
  std::vector<json> out;
  if (!wanted) {
    for (auto& [key, event] : Impl::state_map(*db, room_id)) out.push_back(std::move(event));
    return out;
  }
  std::vector<std::string> ids;
  auto& stmt = db->prepare("SELECT type, state_key, event_id FROM current_state WHERE room_id = ?1");
  stmt.bind(1, room_id);
  while (stmt.step())
    if (wanted(stmt.column_text(0), stmt.column_text(1))) ids.push_back(stmt.column_text(2));
  stmt.reset();
  for (const auto& id : ids) {
    auto& e = db->prepare("SELECT json FROM events WHERE event_id = ?1");
    e.bind(1, id);
    if (e.step()) out.push_back(json::parse(e.column_text(0)));
    e.reset();
  }
  return out;
}

std::string RoomStore::membership(const std::string& room_id, const std::string& user_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT membership FROM memberships WHERE room_id = ?1 AND user_id = ?2");
  stmt.bind(1, room_id).bind(2, user_id);
  if (!stmt.step()) return "";
  auto m = stmt.column_text(0);
  stmt.reset();
  return m;
}

std::vector<std::pair<std::string, std::string>> RoomStore::rooms_of(const std::string& user_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT room_id, membership FROM memberships WHERE user_id = ?1 AND forgotten = 0 ORDER BY room_id");
  stmt.bind(1, user_id);
  std::vector<std::pair<std::string, std::string>> out;
  while (stmt.step()) out.emplace_back(stmt.column_text(0), stmt.column_text(1));
  stmt.reset();
  return out;
}

std::vector<RoomStore::ListedRoom> RoomStore::listed_rooms(const std::string& user_id, const std::string& only_room) {
  auto db = impl_->read();
  // The bump stamp's event types: what a room list reorders for (MSC4186, as Synapse counts).
  auto& stmt = db->prepare(
      "SELECT m.room_id, m.membership, coalesce(e.stream, 0), coalesce(e.sender, ''), "
      "  (SELECT max(x.stream) FROM events x WHERE x.room_id = m.room_id AND x.status = 0), "
      "  (SELECT b.stream FROM events b WHERE b.room_id = m.room_id AND b.status = 0 AND b.type IN "
      "     ('m.room.create', 'm.room.message', 'm.room.encrypted', 'm.sticker', 'm.call.invite', 'm.poll.start', "
      "      'm.beacon_info') ORDER BY b.stream DESC LIMIT 1), "
      "  coalesce(r.room_type, ''), coalesce(json_extract(e.json, '$.content.membership'), '') "
      "FROM memberships m LEFT JOIN events e ON e.event_id = m.event_id LEFT JOIN rooms r ON r.room_id = m.room_id "
      "WHERE m.user_id = ?1 AND m.forgotten = 0 AND (?2 = '' OR m.room_id = ?2)");
  stmt.bind(1, user_id).bind(2, only_room);
  std::vector<ListedRoom> out;
  while (stmt.step()) {
    ListedRoom room;
    room.room_id = stmt.column_text(0);
    room.membership = stmt.column_text(1);
    room.member_stream = stmt.column_int64(2);
    room.member_sender = stmt.column_text(3);
    room.latest = stmt.column_is_null(4) ? 0 : stmt.column_int64(4);
    room.bump = stmt.column_is_null(5) ? 0 : stmt.column_int64(5);
    room.room_type = stmt.column_text(6);
    room.member_event_membership = stmt.column_text(7);
    out.push_back(std::move(room));
  }
  stmt.reset();
  return out;
}

RoomStore::ListingChanges RoomStore::listing_changes(const std::string& user_id, int64_t after) {
  auto db = impl_->read();
  ListingChanges out;
  // Changes no event shows (a remote invitation declined here, a room forgotten) change this.
  auto& count = db->prepare(
      "SELECT count(*) * 1000003 + total(CASE membership WHEN 'join' THEN 1 WHEN 'invite' THEN 7 WHEN 'leave' THEN 49 "
      "WHEN 'ban' THEN 343 ELSE 2401 END) FROM memberships WHERE user_id = ?1 AND forgotten = 0");
  count.bind(1, user_id);
  if (count.step()) out.memberships = count.column_int64(0);
  count.reset();
  if (after <= 0) return out;  // no listing yet: the caller reads it whole
  // The rooms with events after `after`, one index step each; at most 65 (past 64 the caller
  // reads the listing whole anyway).
  auto& stmt = db->prepare(
      "SELECT m.room_id FROM memberships m WHERE m.user_id = ?1 AND m.forgotten = 0 "
      "AND EXISTS (SELECT 1 FROM events e WHERE e.room_id = m.room_id AND e.stream > ?2) LIMIT 65");
  stmt.bind(1, user_id).bind(2, after);
  while (stmt.step()) out.rooms.insert(stmt.column_text(0));
  stmt.reset();
  return out;
}

std::optional<RoomStore::SlidingPosition> RoomStore::sliding_position(const std::string& user_id, const std::string& device_id,
                                                                      const std::string& conn_id, int64_t id) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT token, rooms FROM sliding_positions WHERE id = ?1 AND user_id = ?2 AND device_id = ?3 AND conn_id = ?4");
  stmt.bind(1, id).bind(2, user_id).bind(3, device_id).bind(4, conn_id);
  std::optional<SlidingPosition> out;
  if (stmt.step()) {
    out.emplace();
    out->id = id;
    out->token = stmt.column_text(0);
    out->rooms = json::parse(stmt.column_text(1), nullptr, false);
    if (!out->rooms.is_object()) out->rooms = json::object();
  }
  stmt.reset();
  return out;
}

int64_t RoomStore::save_sliding_position(const std::string& user_id, const std::string& device_id, const std::string& conn_id,
                                         int64_t used, const std::string& token, const json& rooms) {
  std::lock_guard lock(impl_->mutex);
  // A position is not worth an fsync on every answer: written to the WAL it survives a crash
  // of coop-room, and only a power cut may lose the newest, whose client then starts again
  // (M_UNKNOWN_POS). Everything else room.db holds keeps synchronous=FULL, restored below
  // under the same lock before any other write.
  impl_->db->exec("PRAGMA synchronous=NORMAL");
  struct RestoreFull {
    sqlite::Database& db;
    ~RestoreFull() {
      try {
        db.exec("PRAGMA synchronous=FULL");
      } catch (const std::exception& e) {
        spdlog::error("room.db: cannot go back to synchronous=FULL: {}", e.what());
      }
    }
  } restore{*impl_->db};
  sqlite::Transaction tx(*impl_->db);
  // The position the client used stays (it may send it again), and the few newest (answers
  // it may not have had yet); those before it are done with, and a request without a
  // position starts the connection afresh.
  impl_->db->prepare(
      "DELETE FROM sliding_positions WHERE user_id = ?1 AND device_id = ?2 AND conn_id = ?3 AND (id < ?4 OR "
      "(id != ?4 AND id NOT IN (SELECT id FROM sliding_positions WHERE user_id = ?1 AND device_id = ?2 AND conn_id = ?3 "
      "ORDER BY id DESC LIMIT 3)))")
      .bind(1, user_id)
      .bind(2, device_id)
      .bind(3, conn_id)
      .bind(4, used > 0 ? used : std::numeric_limits<int64_t>::max())
      .run();
  // At most 10 connections a device: the longest unused goes.
  impl_->db->prepare(
      "DELETE FROM sliding_positions WHERE user_id = ?1 AND device_id = ?2 AND conn_id NOT IN ("
      "SELECT conn_id FROM sliding_positions WHERE user_id = ?1 AND device_id = ?2 GROUP BY conn_id "
      "ORDER BY max(id) DESC LIMIT 9) AND conn_id != ?3")
      .bind(1, user_id)
      .bind(2, device_id)
      .bind(3, conn_id)
      .run();
  const auto now = unix_millis();
  impl_->db->prepare("INSERT INTO sliding_positions (user_id, device_id, conn_id, token, rooms, at) VALUES (?1, ?2, ?3, ?4, ?5, ?6)")
      .bind(1, user_id)
      .bind(2, device_id)
      .bind(3, conn_id)
      .bind(4, token)
      .bind(5, rooms.dump())
      .bind(6, now)
      .run();
  const int64_t id = impl_->db->last_insert_rowid();
  // Connections unused for a week are forgotten (their clients start again: M_UNKNOWN_POS),
  // looked for once an hour.
  static std::atomic<int64_t> last_sweep{0};
  if (now - last_sweep.load() > int64_t{3600} * 1000) {
    last_sweep = now;
    impl_->db->prepare("DELETE FROM sliding_positions WHERE at < ?1").bind(1, now - int64_t{7} * 24 * 3600 * 1000).run();
  }
  tx.commit();
  return id;
}

std::vector<StoredEvent> RoomStore::events_between(const std::string& room_id, int64_t after, int64_t up_to, int limit,
                                                   bool backwards) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      backwards ? "SELECT stream, json FROM events WHERE room_id = ?1 AND stream > ?2 AND stream <= ?3 AND status = 0 ORDER BY stream DESC LIMIT ?4"
                : "SELECT stream, json FROM events WHERE room_id = ?1 AND stream > ?2 AND stream <= ?3 AND status = 0 ORDER BY stream ASC LIMIT ?4");
  stmt.bind(1, room_id).bind(2, after).bind(3, up_to).bind(4, limit);
  std::vector<StoredEvent> out;
  while (stmt.step()) out.push_back({stmt.column_int64(0), json::parse(stmt.column_text(1))});
  stmt.reset();
  return out;
}

std::optional<StoredEvent> RoomStore::event(const std::string& event_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT stream, json FROM events WHERE event_id = ?1");
  stmt.bind(1, event_id);
  if (!stmt.step()) return std::nullopt;
  StoredEvent e{stmt.column_int64(0), json::parse(stmt.column_text(1))};
  stmt.reset();
  return e;
}

std::optional<std::string> RoomStore::room_for_alias(const std::string& alias) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT room_id FROM aliases WHERE alias = ?1");
  stmt.bind(1, alias);
  if (!stmt.step()) return std::nullopt;
  auto id = stmt.column_text(0);
  stmt.reset();
  return id;
}

void RoomStore::add_alias(const std::string& alias, const std::string& room_id, const std::string& creator) {
  std::lock_guard lock(impl_->mutex);
  auto& existing = impl_->db->prepare("SELECT 1 FROM aliases WHERE alias = ?1");
  existing.bind(1, alias);
  if (existing.step()) {
    existing.reset();
    throw Error(errc::kMRoomInUse, "alias " + alias + " is taken", 409);
  }
  impl_->db->prepare("INSERT INTO aliases (alias, room_id, creator) VALUES (?1, ?2, ?3)").bind(1, alias).bind(2, room_id).bind(3, creator).run();
}

std::vector<std::string> RoomStore::public_rooms() {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT room_id FROM room_directory ORDER BY room_id");
  std::vector<std::string> out;
  while (stmt.step()) out.push_back(stmt.column_text(0));
  stmt.reset();
  return out;
}

void RoomStore::set_published(const std::string& room_id, bool published) {
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare(published ? "INSERT OR IGNORE INTO room_directory (room_id) VALUES (?1)"
                               : "DELETE FROM room_directory WHERE room_id = ?1")
      .bind(1, room_id)
      .run();
}

bool RoomStore::published(const std::string& room_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT 1 FROM room_directory WHERE room_id = ?1");
  stmt.bind(1, room_id);
  const bool found = stmt.step();
  stmt.reset();
  return found;
}

std::vector<std::string> RoomStore::aliases_of(const std::string& room_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT alias FROM aliases WHERE room_id = ?1 ORDER BY alias");
  stmt.bind(1, room_id);
  std::vector<std::string> out;
  while (stmt.step()) out.push_back(stmt.column_text(0));
  stmt.reset();
  return out;
}

void RoomStore::remove_alias(const std::string& alias) {
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare("DELETE FROM aliases WHERE alias = ?1").bind(1, alias).run();
  if (impl_->db->changes() == 0) throw Error(errc::kMNotFound, "no alias " + alias, 404);
}

std::string RoomStore::alias_creator(const std::string& alias) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT creator FROM aliases WHERE alias = ?1");
  stmt.bind(1, alias);
  if (!stmt.step()) return "";
  auto creator = stmt.column_text(0);
  stmt.reset();
  return creator;
}

void RoomStore::forget(const std::string& room_id, const std::string& user_id) {
  std::lock_guard lock(impl_->mutex);
  auto& stmt = impl_->db->prepare("SELECT membership FROM memberships WHERE room_id = ?1 AND user_id = ?2");
  stmt.bind(1, room_id).bind(2, user_id);
  const std::string membership = stmt.step() ? stmt.column_text(0) : "";
  stmt.reset();
  // Client-Server API "Leaving rooms": only a room one has left can be forgotten.
  if (membership == "join" || membership == "invite")
    throw Error(errc::kMUnknown, "leave the room before forgetting it", 400);
  impl_->db->prepare("UPDATE memberships SET forgotten = 1 WHERE room_id = ?1 AND user_id = ?2").bind(1, room_id).bind(2, user_id).run();
}

void RoomStore::set_account_data(const std::string& user_id, const std::string& room_id, const std::string& type,
                                 const json& content) {
  impl_->write([&] {
    impl_->pending.users.insert(user_id);
    if (room_id.empty() && type == "m.push_rules") {
      impl_->push_rules_cache.erase(user_id);
      if (impl_->customized_push) impl_->customized_push->insert(user_id);
    }
    const auto position = impl_->other_position();
    impl_->db->prepare("INSERT OR REPLACE INTO account_data (user_id, room_id, type, content, position) VALUES (?1, ?2, ?3, ?4, ?5)")
        .bind(1, user_id)
        .bind(2, room_id)
        .bind(3, type)
        .bind(4, content.dump())
        .bind(5, position)
        .run();
    return 0;
  });
}

std::optional<json> RoomStore::account_data(const std::string& user_id, const std::string& room_id, const std::string& type) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT content FROM account_data WHERE user_id = ?1 AND room_id = ?2 AND type = ?3");
  stmt.bind(1, user_id).bind(2, room_id).bind(3, type);
  if (!stmt.step()) return std::nullopt;
  auto content = json::parse(stmt.column_text(0));
  stmt.reset();
  return content;
}

std::vector<std::tuple<std::string, std::string, json>> RoomStore::account_data_since(const std::string& user_id, int64_t after) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT room_id, type, content FROM account_data WHERE user_id = ?1 AND position > ?2");
  stmt.bind(1, user_id).bind(2, after);
  std::vector<std::tuple<std::string, std::string, json>> out;
  while (stmt.step()) out.emplace_back(stmt.column_text(0), stmt.column_text(1), json::parse(stmt.column_text(2)));
  stmt.reset();
  return out;
}

void RoomStore::set_receipt(const std::string& room_id, const std::string& user_id, const std::string& type,
                            const std::string& event_id, const std::string& thread_id) {
  impl_->write([&] {
    impl_->pending.rooms.insert(room_id);
    // Notifications this receipt reads that are older than GET /notifications looks back.
    impl_->db
        ->prepare("DELETE FROM notifications WHERE user_id = ?1 AND room_id = ?2 AND ts < ?3 "
                  "AND stream <= coalesce((SELECT stream FROM events WHERE event_id = ?4), 0) "
                  "AND (?5 = '' OR thread_id = CASE ?5 WHEN 'main' THEN '' ELSE ?5 END)")
        .bind(1, user_id)
        .bind(2, room_id)
        .bind(3, unix_millis() - kNotificationsKeptMs)
        .bind(4, event_id)
        .bind(5, thread_id)
        .run();
    const auto position = impl_->other_position();
    impl_->db
        ->prepare("INSERT OR REPLACE INTO receipts (room_id, user_id, type, thread_id, event_id, ts, position) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
        .bind(1, room_id)
        .bind(2, user_id)
        .bind(3, type)
        .bind(4, thread_id)
        .bind(5, event_id)
        .bind(6, unix_millis())
        .bind(7, position)
        .run();
    return 0;
  });
}

json RoomStore::receipts_since(const std::string& room_id, int64_t after, const std::string& viewer) {
  auto db = impl_->read();
  // m.read.private receipts go to their sender only (Client-Server API "Private read receipts").
  auto& stmt = db->prepare(
      "SELECT user_id, type, event_id, ts, thread_id FROM receipts WHERE room_id = ?1 AND position > ?2 "
      "AND (type != 'm.read.private' OR user_id = ?3)");
  stmt.bind(1, room_id).bind(2, after).bind(3, viewer);
  json content = json::object();
  while (stmt.step()) {
    json receipt = {{"ts", stmt.column_int64(3)}};
    if (auto thread = stmt.column_text(4); !thread.empty()) receipt["thread_id"] = std::move(thread);
    content[stmt.column_text(2)][stmt.column_text(1)][stmt.column_text(0)] = std::move(receipt);
  }
  stmt.reset();
  return content;
}

RoomStore::UnreadCounts RoomStore::unread_counts(const std::string& room_id, const std::string& user_id, bool by_thread) {
  auto db = impl_->read();
  // After the member's read receipt for the notification's thread, and after their current
  // membership (what came before their join is not theirs to read).
  static const std::string sql =
      "SELECT n.thread_id, count(*), sum(n.highlight) FROM notifications n WHERE n.user_id = ?2 AND n.room_id = ?1 "
      "AND n.stream > max(" + read_up_to("?1", "?2", "n.thread_id") + ", "
      "coalesce((SELECT e.stream FROM memberships m JOIN events e ON e.event_id = m.event_id "
      "WHERE m.room_id = ?1 AND m.user_id = ?2), 0)) GROUP BY n.thread_id";
  auto& stmt = db->prepare(sql);
  stmt.bind(1, room_id).bind(2, user_id);
  UnreadCounts counts;
  while (stmt.step()) {
    const auto thread = stmt.column_text(0);
    const std::pair<int64_t, int64_t> c{stmt.column_int64(1), stmt.column_int64(2)};
    if (by_thread && !thread.empty()) {
      counts.threads[thread] = c;
    } else {
      counts.main.first += c.first;
      counts.main.second += c.second;
    }
  }
  stmt.reset();
  return counts;
}

std::vector<RoomStore::Notification> RoomStore::notifications(const std::string& user_id, int64_t before_id, int limit,
                                                              bool only_highlights) {
  auto db = impl_->read();
  static const std::string sql =
      "SELECT n.id, n.room_id, n.actions, n.ts, e.json, n.stream <= " + read_up_to("n.room_id", "n.user_id", "n.thread_id") +
      " FROM notifications n JOIN events e ON e.event_id = n.event_id "
      "WHERE n.user_id = ?1 AND (?2 = 0 OR n.id < ?2) AND (?3 = 0 OR n.highlight = 1) ORDER BY n.id DESC LIMIT ?4";
  auto& stmt = db->prepare(sql);
  stmt.bind(1, user_id).bind(2, before_id).bind(3, only_highlights ? 1 : 0).bind(4, limit);
  std::vector<Notification> out;
  while (stmt.step())
    out.push_back({stmt.column_int64(0), stmt.column_text(1), json::parse(stmt.column_text(2)), stmt.column_int64(3),
                   json::parse(stmt.column_text(4)), stmt.column_int64(5) != 0});
  stmt.reset();
  return out;
}

RoomStore::SearchPage RoomStore::search(const std::vector<std::string>& rooms, const std::string& match,
                                        const std::vector<std::string>& keys, bool by_rank, int limit, int offset,
                                        const std::function<bool(const StoredEvent&)>& visible) {
  auto db = impl_->read();
  SearchPage page;
  if (rooms.empty() || match.empty()) return page;
  json room_list = rooms, key_list = keys;
  auto& stmt = db->prepare(
      std::string("SELECT e.stream, e.json, bm25(event_search) FROM event_search JOIN events e ON e.event_id = event_search.event_id "
                  "WHERE event_search MATCH ?1 AND event_search.room_id IN (SELECT value FROM json_each(?2)) "
                  "AND event_search.key IN (SELECT value FROM json_each(?3)) ORDER BY ") +
      (by_rank ? "bm25(event_search), e.stream DESC" : "e.stream DESC") + " LIMIT ?4");
  stmt.bind(1, match).bind(2, room_list.dump()).bind(3, key_list.dump()).bind(4, kMaxSearchScan);
  int index = 0;
  while (stmt.step()) {
    StoredEvent e{stmt.column_int64(0), json::parse(stmt.column_text(1))};
    if (!visible(e)) continue;
    ++page.count;
    if (index++ < offset || static_cast<int>(page.results.size()) >= limit) continue;
    // bm25 is lower for better matches; clients want higher ranks first.
    page.results.push_back({std::move(e), -stmt.column_double(2)});
  }
  stmt.reset();
  page.more = page.count > offset + static_cast<int>(page.results.size());
  return page;
}

std::vector<RoomStore::PendingPush> RoomStore::notifications_after(int64_t after_id, int limit) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT n.id, n.user_id, n.actions, e.json FROM notifications n JOIN events e ON e.event_id = n.event_id "
      "WHERE n.id > ?1 ORDER BY n.id LIMIT ?2");
  stmt.bind(1, after_id).bind(2, limit);
  std::vector<PendingPush> out;
  while (stmt.step())
    out.push_back({stmt.column_int64(0), stmt.column_text(1), json::parse(stmt.column_text(2)), json::parse(stmt.column_text(3))});
  stmt.reset();
  return out;
}

int64_t RoomStore::push_position() {
  std::lock_guard lock(impl_->mutex);
  auto& stmt = impl_->db->prepare("SELECT value FROM push_state WHERE name = 'delivered'");
  int64_t position = -1;
  if (stmt.step()) position = stmt.column_int64(0);
  stmt.reset();
  if (position < 0) {  // delivery starts now: what came before has nobody to go to
    auto& last = impl_->db->prepare("SELECT coalesce(max(id), 0) FROM notifications");
    last.step();
    position = last.column_int64(0);
    last.reset();
    impl_->db->prepare("INSERT INTO push_state (name, value) VALUES ('delivered', ?1)").bind(1, position).run();
  }
  return position;
}

void RoomStore::set_push_position(int64_t position) {
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare("INSERT OR REPLACE INTO push_state (name, value) VALUES ('delivered', ?1)").bind(1, position).run();
}

int64_t RoomStore::unread_total(const std::string& user_id) {
  auto db = impl_->read();
  static const std::string sql =
      "SELECT count(*) FROM notifications n WHERE n.user_id = ?1 AND n.stream > max(" +
      read_up_to("n.room_id", "?1", "n.thread_id") +
      ", coalesce((SELECT e.stream FROM memberships m JOIN events e ON e.event_id = m.event_id "
      "WHERE m.room_id = n.room_id AND m.user_id = ?1 AND m.membership = 'join'), 1 << 62))";
  auto& stmt = db->prepare(sql);
  stmt.bind(1, user_id);
  stmt.step();
  const auto total = stmt.column_int64(0);
  stmt.reset();
  return total;
}

json RoomStore::pushers(const std::string& user_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT json FROM pushers WHERE user_id = ?1 ORDER BY app_id, pushkey");
  stmt.bind(1, user_id);
  json list = json::array();
  while (stmt.step()) list.push_back(json::parse(stmt.column_text(0)));
  stmt.reset();
  return list;
}

void RoomStore::set_pusher(const std::string& user_id, const json& pusher, bool append) {
  impl_->write([&] {
    const std::string app_id = pusher.value("app_id", ""), pushkey = pusher.value("pushkey", "");
    // "append": false takes this app and pushkey away from any other user (a device changed hands).
    if (!append)
      impl_->db->prepare("DELETE FROM pushers WHERE app_id = ?1 AND pushkey = ?2 AND user_id != ?3")
          .bind(1, app_id)
          .bind(2, pushkey)
          .bind(3, user_id)
          .run();
    impl_->db->prepare("INSERT OR REPLACE INTO pushers (user_id, app_id, pushkey, json) VALUES (?1, ?2, ?3, ?4)")
        .bind(1, user_id)
        .bind(2, app_id)
        .bind(3, pushkey)
        .bind(4, pusher.dump())
        .run();
    return 0;
  });
}

void RoomStore::delete_pusher(const std::string& user_id, const std::string& app_id, const std::string& pushkey) {
  impl_->write([&] {
    impl_->db->prepare("DELETE FROM pushers WHERE user_id = ?1 AND app_id = ?2 AND pushkey = ?3")
        .bind(1, user_id)
        .bind(2, app_id)
        .bind(3, pushkey)
        .run();
    return 0;
  });
}

int64_t RoomStore::filter_create(const std::string& user_id, const json& filter) {
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare("INSERT INTO filters (user_id, json) VALUES (?1, ?2)").bind(1, user_id).bind(2, filter.dump()).run();
  return impl_->db->last_insert_rowid();
}

std::optional<json> RoomStore::filter(const std::string& user_id, int64_t id) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT json FROM filters WHERE id = ?1 AND user_id = ?2");
  stmt.bind(1, id).bind(2, user_id);
  if (!stmt.step()) return std::nullopt;
  auto f = json::parse(stmt.column_text(0));
  stmt.reset();
  return f;
}

StreamPosition RoomStore::position() {
  auto db = impl_->read();
  StreamPosition p;
  auto& events = db->prepare("SELECT coalesce(max(stream), 0) FROM events");
  events.step();
  p.events = events.column_int64(0);
  events.reset();
  auto& other = db->prepare("SELECT coalesce(max(position), 0) FROM other_stream");
  other.step();
  p.other = other.column_int64(0);
  other.reset();
  return p;
}

void RoomStore::mark_space(const std::string& room_id, const std::string& kind, const std::string& group) {
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare("INSERT OR REPLACE INTO coop_spaces (room_id, kind, group_name) VALUES (?1, ?2, ?3)")
      .bind(1, room_id)
      .bind(2, kind)
      .bind(3, group)
      .run();
}

std::vector<std::tuple<std::string, std::string, std::string>> RoomStore::coop_spaces() {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT room_id, kind, group_name FROM coop_spaces ORDER BY kind, group_name, room_id");
  std::vector<std::tuple<std::string, std::string, std::string>> out;
  while (stmt.step()) out.emplace_back(stmt.column_text(0), stmt.column_text(1), stmt.column_text(2));
  stmt.reset();
  return out;
}

std::vector<std::string> RoomStore::all_rooms() {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT room_id FROM rooms ORDER BY created_at, room_id");
  std::vector<std::string> out;
  while (stmt.step()) out.push_back(stmt.column_text(0));
  stmt.reset();
  return out;
}

void RoomStore::add_media(const std::string& media_id, const std::string& blob, const std::string& content_type,
                          const std::string& filename, int64_t size, const std::string& uploader) {
  std::lock_guard lock(impl_->mutex);
  impl_->db->prepare(
        "INSERT OR IGNORE INTO media (media_id, blob, content_type, filename, size, uploader, created_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)")
      .bind(1, media_id)
      .bind(2, blob)
      .bind(3, content_type)
      .bind(4, filename)
      .bind(5, size)
      .bind(6, uploader)
      .bind(7, unix_millis())
      .run();
}

std::optional<RoomStore::Media> RoomStore::media(const std::string& media_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT blob, content_type, filename, size FROM media WHERE media_id = ?1");
  stmt.bind(1, media_id);
  if (!stmt.step()) return std::nullopt;
  Media m{stmt.column_text(0), stmt.column_text(1), stmt.column_text(2), stmt.column_int64(3)};
  stmt.reset();
  return m;
}

std::vector<StoredEvent> RoomStore::relations(const std::string& room_id, const std::string& event_id,
                                              const std::string& rel_type, int limit) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT stream, json FROM events WHERE json_extract(json, '$.content.\"m.relates_to\".event_id') = ?1 "
      "AND room_id = ?2 AND status = 0 AND (?3 = '' OR json_extract(json, '$.content.\"m.relates_to\".rel_type') = ?3) "
      "ORDER BY stream LIMIT ?4");
  stmt.bind(1, event_id).bind(2, room_id).bind(3, rel_type).bind(4, limit);
  std::vector<StoredEvent> out;
  while (stmt.step()) out.push_back({stmt.column_int64(0), json::parse(stmt.column_text(1))});
  stmt.reset();
  return out;
}

RoomStore::RelationSummary RoomStore::relation_summary(const json& event, const std::string& viewer) {
  auto db = impl_->read();
  RelationSummary summary;
  const std::string event_id = event.value("event_id", ""), room_id = event.value("room_id", "");
  constexpr const char* kChildren =
      "FROM events WHERE json_extract(json, '$.content.\"m.relates_to\".event_id') = ?1 AND room_id = ?2 AND status = 0 ";
  auto& any = db->prepare(std::string("SELECT 1 ") + kChildren + "LIMIT 1");
  any.bind(1, event_id).bind(2, room_id);
  const bool has_children = any.step();
  any.reset();
  if (!has_children) return summary;
  auto& edit = db->prepare(
      std::string("SELECT stream, json ") + kChildren +
      "AND json_extract(json, '$.content.\"m.relates_to\".rel_type') = 'm.replace' AND sender = ?3 AND type = ?4 "
      "AND json_extract(json, '$.content.\"m.new_content\"') IS NOT NULL ORDER BY stream DESC LIMIT 1");
  edit.bind(1, event_id).bind(2, room_id).bind(3, event.value("sender", "")).bind(4, event.value("type", ""));
  if (edit.step()) summary.latest_edit = StoredEvent{edit.column_int64(0), json::parse(edit.column_text(1))};
  edit.reset();
  auto& thread = db->prepare(
      std::string("SELECT count(*), coalesce(max(stream), 0), coalesce(sum(sender = ?3), 0) ") + kChildren +
      "AND json_extract(json, '$.content.\"m.relates_to\".rel_type') = 'm.thread'");
  thread.bind(1, event_id).bind(2, room_id).bind(3, viewer);
  thread.step();
  summary.replies = thread.column_int64(0);
  const int64_t latest = thread.column_int64(1);
  summary.viewer_replied = thread.column_int64(2) > 0;
  thread.reset();
  if (summary.replies > 0) {
    auto& reply = db->prepare("SELECT json FROM events WHERE stream = ?1");
    reply.bind(1, latest);
    if (reply.step()) summary.latest_reply = StoredEvent{latest, json::parse(reply.column_text(0))};
    reply.reset();
  }
  auto& references = db->prepare(
      std::string("SELECT event_id ") + kChildren +
      "AND json_extract(json, '$.content.\"m.relates_to\".rel_type') = 'm.reference' ORDER BY stream LIMIT 100");
  references.bind(1, event_id).bind(2, room_id);
  while (references.step()) summary.references.push_back(references.column_text(0));
  references.reset();
  return summary;
}

std::optional<std::vector<json>> RoomStore::state_after(const std::string& event_id, const StateWanted& wanted) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT state_group FROM events WHERE event_id = ?1");
  stmt.bind(1, event_id);
  if (!stmt.step() || stmt.column_is_null(0)) {
    stmt.reset();
    return std::nullopt;
  }
  const auto group = stmt.column_int64(0);
  stmt.reset();
  return Impl::state_of_group(*db, group, wanted);
}

std::optional<std::vector<json>> RoomStore::state_before(const std::string& event_id, const StateWanted& wanted) {
  const auto ids = state_ids_before(event_id);
  if (!ids) return std::nullopt;
  auto events = events_by_id(*ids);
  if (wanted)
    events.erase(std::remove_if(events.begin(), events.end(),
                                [&](const json& e) { return !wanted(e.value("type", ""), e.value("state_key", "")); }),
                 events.end());
  return events;
}

std::vector<StoredEvent> RoomStore::thread_replies(const std::string& room_id, int limit) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT stream, json FROM events WHERE room_id = ?1 AND status = 0 "
      "AND json_extract(json, '$.content.\"m.relates_to\".rel_type') = 'm.thread' ORDER BY stream LIMIT ?2");
  stmt.bind(1, room_id).bind(2, limit);
  std::vector<StoredEvent> out;
  while (stmt.step()) out.push_back({stmt.column_int64(0), json::parse(stmt.column_text(1))});
  stmt.reset();
  return out;
}

std::vector<StoredEvent> RoomStore::room_events(const std::string& room_id, int64_t after, int limit) {
  return events_between(room_id, after, INT64_MAX, limit, false);
}

}  // namespace coop::room
