// The inside of RoomStore, shared by the sources that implement it (room_store.cpp for the
// client side, room_federation.cpp for events from other servers). Not for anyone else.
#pragma once

#include <openssl/rand.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <optional>
#include <set>
#include <string>

#include <nlohmann/json.hpp>

#include "common/clock.h"
#include "common/digest.h"
#include "common/error.h"
#include "common/sqlite.h"
#include "workers/matrix/auth_rules.h"
#include "workers/matrix/base64.h"
#include "workers/matrix/canonical_json.h"
#include "workers/matrix/event_hash.h"
#include "workers/matrix/signing.h"
#include "workers/matrix/state_res.h"
#include "workers/room/push_rules.h"
#include "workers/room/store/room_store.h"
#include "workers/room/store/store_write.h"

namespace coop::room {

using nlohmann::json;

// SQL for the stream position up to which `user` has read a notification of `thread` ('' for
// the main timeline) in `room`: their latest read receipt, public or private, that is
// unthreaded or for that thread ("Receiving notifications", "Threaded read receipts").
inline std::string read_up_to(const std::string& room, const std::string& user, const std::string& thread) {
  return "coalesce((SELECT max(re.stream) FROM receipts r JOIN events re ON re.event_id = r.event_id WHERE r.room_id = " +
         room + " AND r.user_id = " + user + " AND r.type IN ('m.read', 'm.read.private') AND r.thread_id IN ('', CASE " +
         thread + " WHEN '' THEN 'main' ELSE " + thread + " END)), 0)";
}

inline constexpr int kSnapshotEvery = 100;
inline constexpr std::size_t kMaxCachedPushRules = 10000;
// One search reads at most this many matches (then visibility, then the page).
inline constexpr int kMaxSearchScan = 10000;
// GET /notifications looks back this far; older rows that were read go.
inline constexpr int64_t kNotificationsKeptMs = 30LL * 24 * 3600 * 1000;
// Client-Server API "Size limits" (and the PDU size limit of the Server-Server API).
inline constexpr std::size_t kMaxEventBytes = 65536;
inline constexpr std::size_t kMaxIdBytes = 255;
// The PDU format: depth is at most 2^63 - 1.
inline constexpr int64_t kMaxDepth = INT64_MAX;

inline std::string random_id(std::size_t bytes) {
  std::string raw(bytes, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(raw.data()), static_cast<int>(bytes));
  auto text = matrix::unpadded_base64_url(raw);
  return text;
}

struct RoomStore::Impl {
  std::mutex mutex;                   // the one writer: db, under this mutex
  std::unique_ptr<sqlite::Database> db;
  std::unique_ptr<sqlite::ReaderPool> readers;  // everything that only reads, in parallel
  const matrix::SigningKey& key;
  std::string server;
  std::function<void(const StoreChange&)> on_change;
  StoreChange pending;  // what the write in progress changed

  Impl(const matrix::SigningKey& key, std::string server) : key(key), server(std::move(server)) {}

  static matrix::StateMap state_map(sqlite::Database& db, const std::string& room_id) {
    matrix::StateMap map;
    auto& stmt = db.prepare(
        "SELECT s.type, s.state_key, e.json FROM current_state s JOIN events e ON e.event_id = s.event_id WHERE s.room_id = ?1");
    stmt.bind(1, room_id);
    while (stmt.step()) map[{stmt.column_text(0), stmt.column_text(1)}] = json::parse(stmt.column_text(2));
    stmt.reset();
    return map;
  }

  // Only the state the auth rules and auth_events selection read for an event of this type
  // by sender (Server-Server API "Auth events selection"): create, power levels, join rules,
  // and the sender's and target's memberships. Loading the whole state instead made every
  // join to the cooperative's Space parse every member event: quadratic in members (a
  // 10,000-member import kept coop-room busy for minutes).
  matrix::StateMap auth_state(const std::string& room_id, const std::string& sender,
                              const std::optional<std::string>& state_key) {
    matrix::StateMap map;
    auto& stmt = db->prepare(
        "SELECT e.json FROM current_state s JOIN events e ON e.event_id = s.event_id "
        "WHERE s.room_id = ?1 AND s.type = ?2 AND s.state_key = ?3");
    const std::pair<std::string, std::string> keys[] = {{"m.room.create", ""},    {"m.room.power_levels", ""},
                                                       {"m.room.join_rules", ""}, {"m.room.member", sender},
                                                       {"m.room.member", state_key.value_or(sender)}};
    for (const auto& [type, key] : keys) {
      stmt.bind(1, room_id).bind(2, type).bind(3, key);
      if (stmt.step()) map[{type, key}] = json::parse(stmt.column_text(0));
      stmt.reset();
    }
    return map;
  }

  static std::optional<std::string> version_of(sqlite::Database& db, const std::string& room_id) {
    auto& stmt = db.prepare("SELECT version FROM rooms WHERE room_id = ?1");
    stmt.bind(1, room_id);
    if (!stmt.step()) return std::nullopt;
    auto v = stmt.column_text(0);
    stmt.reset();
    return v;
  }

  static std::optional<Session> find_session(sqlite::Database& db, const std::string& access_token) {
    auto& stmt = db.prepare("SELECT user_id, device_id FROM access_tokens WHERE token_hash = ?1");
    stmt.bind(1, sha256_hex(access_token));
    if (!stmt.step()) return std::nullopt;
    Session s{stmt.column_text(0), stmt.column_text(1)};
    stmt.reset();
    return s;
  }

  int64_t other_position() {
    db->prepare("INSERT INTO other_stream (at) VALUES (?1)").bind(1, unix_millis()).run();
    return db->last_insert_rowid();
  }

  // Builds, signs, authorises and appends one event inside the caller's transaction.
  json append(const std::string& room_id, const std::string& version, const std::string& sender,
              const std::string& type, const json& content, const std::optional<std::string>& state_key) {
    auto event = build(room_id, version, sender, type, content, state_key);
    store(room_id, event, content);
    return event;
  }

  // Builds, authorises, hashes and signs an event of ours, with its event_id; stores nothing.
  // A room version 12 create event has no room_id: its own ID makes the room's.
  json build(const std::string& room_id, const std::string& version, const std::string& sender,
             const std::string& type, const json& content, const std::optional<std::string>& state_key) {
    // Client-Server API "Size limits" and the PDU format: content is an object; type and
    // state_key at most 255 bytes; the whole event at most 65,536 bytes (checked once signed).
    if (!content.is_object()) throw Error(errc::kMBadJson, "event content must be a JSON object", 400);
    if (type.size() > kMaxIdBytes) throw Error(errc::kMBadJson, "event type longer than 255 bytes", 400);
    if (state_key && state_key->size() > kMaxIdBytes) throw Error(errc::kMBadJson, "state_key longer than 255 bytes", 400);
    matrix::StateMap state = auth_state(room_id, sender, state_key);
    json event = {{"type", type}, {"room_id", room_id}, {"sender", sender}, {"content", content},
                  {"origin_server_ts", unix_millis()}};
    if (state_key) event["state_key"] = *state_key;
    if (type == "m.room.create" && matrix::has_room_creators(version)) event.erase("room_id");
    const auto [prev, depth] = next_prev_events(room_id);
    event["prev_events"] = prev;
    event["depth"] = depth;
    // auth_events (Server-Server API "Auth events selection", one rule for every event we
    // make or receive): create (not in version 12), power levels, the sender's member event;
    // for a membership the target's, and the join rules only for join, invite and knock.
    json auth = json::array();
    for (const auto& [t, k] : matrix::auth_types_for(event))
      if (const auto* e = matrix::state_of(state, t, k))
        if (std::find(auth.begin(), auth.end(), e->value("event_id", "")) == auth.end()) auth.push_back(e->value("event_id", ""));
    event["auth_events"] = auth;
    matrix::authorize(event, state, [this](const std::string& other_room, const std::string& user) {
      auto& stmt = db->prepare("SELECT membership FROM memberships WHERE room_id = ?1 AND user_id = ?2");
      stmt.bind(1, other_room).bind(2, user);
      const bool joined = stmt.step() && stmt.column_text(0) == "join";
      stmt.reset();
      return joined;
    });
    event = matrix::with_content_hash(std::move(event));
    event = matrix::sign_event(std::move(event), server, key, version);
    const auto event_id = matrix::event_id_for(event, version);
    event["event_id"] = event_id;
    if (matrix::canonical_json(event).size() > kMaxEventBytes)
      throw Error(errc::kMTooLarge, "events are at most 65536 bytes", 413);
    return event;
  }

  // Appends an event build() made to the room's timeline and state.
  void store(const std::string& room_id, const json& event, const json& content) {
    const std::string event_id = event["event_id"];
    const std::string type = event["type"], sender = event["sender"];
    const int64_t depth = event["depth"];
    const json& prev = event["prev_events"];
    const std::optional<std::string> state_key =
        event.contains("state_key") ? std::optional<std::string>(event["state_key"].get<std::string>()) : std::nullopt;
    auto& insert = db->prepare("INSERT INTO events (event_id, room_id, type, state_key, sender, depth, json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)");
    insert.bind(1, event_id).bind(2, room_id).bind(3, type).bind(5, sender).bind(6, depth).bind(7, event.dump());
    if (state_key)
      insert.bind(4, *state_key);
    else
      insert.bind_null(4);
    insert.run();
    record_auth_edges(event);
    record_state_group(room_id, event_id, type, state_key);
    set_extremity(room_id, event_id, prev);
    if (state_key) {
      db->prepare("INSERT OR REPLACE INTO current_state (room_id, type, state_key, event_id) VALUES (?1, ?2, ?3, ?4)")
          .bind(1, room_id)
          .bind(2, type)
          .bind(3, *state_key)
          .bind(4, event_id)
          .run();
      if (type == "m.room.member")
        db->prepare("INSERT OR REPLACE INTO memberships (room_id, user_id, membership, event_id) VALUES (?1, ?2, ?3, ?4)")
            .bind(1, room_id)
            .bind(2, *state_key)
            .bind(3, content.value("membership", ""))
            .bind(4, event_id)
            .run();
    }
    record_push_actions(event, stream_of(event_id));
    index_for_search(event);
    pending.rooms.insert(room_id);
    if (type == "m.room.member" && state_key) pending.users.insert(*state_key);  // invites reach non-members
  }

  // The next event's prev_events: the room's forward extremities (Server-Server API "Room DAG
  // concepts"), at most 20 of them, the deepest first; and its depth, one more than the
  // deepest.
  std::pair<json, int64_t> next_prev_events(const std::string& room_id) {
    auto& last = db->prepare(
        "SELECT x.event_id, e.depth FROM extremities x JOIN events e ON e.event_id = x.event_id "
        "WHERE x.room_id = ?1 ORDER BY e.depth DESC, e.stream DESC LIMIT 20");
    last.bind(1, room_id);
    int64_t depth = 1;
    json prev = json::array();
    while (last.step()) {
      prev.push_back(last.column_text(0));
      depth = std::max(depth, std::min(last.column_int64(1), kMaxDepth - 1) + 1);
    }
    last.reset();
    return {prev, depth};
  }

  // The event's rows in the auth graph (auth_edges): its auth events, and in room version 12
  // the create event its room ID names.
  void record_auth_edges(const json& event) {
    auto& edge = db->prepare("INSERT OR IGNORE INTO auth_edges (event_id, auth_id) VALUES (?1, ?2)");
    const std::string event_id = event.value("event_id", "");
    if (const auto auth = event.find("auth_events"); auth != event.end() && auth->is_array())
      for (const auto& id : *auth)
        if (id.is_string()) edge.bind(1, event_id).bind(2, id.get<std::string>()).run();
    if (const auto create = matrix::implied_create_id(event); !create.empty()) edge.bind(1, event_id).bind(2, create).run();
  }

  // Every event reachable from `from` through auth_edges, `from` itself not counted unless
  // it is reached: the auth chain of a set of events, walked in SQL.
  static std::set<std::string> auth_chain_ids(sqlite::Database& db, const std::vector<std::string>& from) {
    auto& stmt = db.prepare(
        "WITH RECURSIVE chain(id) AS ("
        "  SELECT a.auth_id FROM json_each(?1) f JOIN auth_edges a ON a.event_id = f.value"
        "  UNION SELECT a.auth_id FROM chain c JOIN auth_edges a ON a.event_id = c.id"
        ") SELECT id FROM chain");
    stmt.bind(1, json(from).dump());
    std::set<std::string> ids;
    while (stmt.step()) ids.insert(stmt.column_text(0));
    stmt.reset();
    return ids;
  }

  // A timeline event's place in the DAG: its prev_events are no longer forward extremities,
  // and it is one unless an event we hold already builds on it (it came late).
  void set_extremity(const std::string& room_id, const std::string& event_id, const json& prev_events) {
    auto& drop = db->prepare("DELETE FROM extremities WHERE room_id = ?1 AND event_id = ?2");
    auto& edge = db->prepare("INSERT OR IGNORE INTO event_edges (event_id, prev_id) VALUES (?1, ?2)");
    for (const auto& prev : prev_events) {
      if (!prev.is_string()) continue;
      drop.bind(1, room_id).bind(2, prev.get<std::string>()).run();
      edge.bind(1, event_id).bind(2, prev.get<std::string>()).run();
    }
    auto& child = db->prepare("SELECT 1 FROM event_edges WHERE prev_id = ?1 LIMIT 1");
    child.bind(1, event_id);
    const bool built_on = child.step();
    child.reset();
    if (!built_on)
      db->prepare("INSERT OR IGNORE INTO extremities (room_id, event_id) VALUES (?1, ?2)").bind(1, room_id).bind(2, event_id).run();
  }

  void index_for_search(const json& event) {
    const std::string type = event.value("type", "");
    const char* key = type == "m.room.message" ? "body" : type == "m.room.name" ? "name" : type == "m.room.topic" ? "topic" : nullptr;
    if (!key || !event["content"].contains(key) || !event["content"][key].is_string()) return;
    db->prepare("INSERT INTO event_search (event_id, room_id, key, value) VALUES (?1, ?2, ?3, ?4)")
        .bind(1, event.value("event_id", ""))
        .bind(2, event.value("room_id", ""))
        .bind(3, std::string("content.") + key)
        .bind(4, event["content"][key].get<std::string>())
        .run();
  }

  int64_t stream_of(const std::string& event_id) {
    auto& stmt = db->prepare("SELECT stream FROM events WHERE event_id = ?1");
    stmt.bind(1, event_id);
    const int64_t stream = stmt.step() ? stmt.column_int64(0) : 0;
    stmt.reset();
    return stream;
  }

  // Members who have stored push rules of their own (loaded once, kept by set_account_data).
  std::optional<std::set<std::string>> customized_push;
  const std::set<std::string>& customized_push_users() {
    if (!customized_push) {
      customized_push.emplace();
      auto& stmt = db->prepare("SELECT user_id FROM account_data WHERE room_id = '' AND type = 'm.push_rules'");
      while (stmt.step()) customized_push->insert(stmt.column_text(0));
      stmt.reset();
    }
    return *customized_push;
  }

  // A member's push rules, completed with the defaults; cached until they change them.
  std::map<std::string, json> push_rules_cache;
  const json& push_rules_of(const std::string& user_id) {
    auto it = push_rules_cache.find(user_id);
    if (it != push_rules_cache.end()) return it->second;
    json stored;
    auto& stmt = db->prepare("SELECT content FROM account_data WHERE user_id = ?1 AND room_id = '' AND type = 'm.push_rules'");
    stmt.bind(1, user_id);
    if (stmt.step()) {
      const auto parsed = json::parse(stmt.column_text(0), nullptr, false);
      if (parsed.is_object() && parsed.contains("global")) stored = parsed["global"];
    }
    stmt.reset();
    if (push_rules_cache.size() > kMaxCachedPushRules) push_rules_cache.clear();
    return push_rules_cache[user_id] = complete_push_rules(stored, user_id);
  }

  // Client-Server API "Push Notifications": each member's rules decide whether the event
  // notifies them and whether it highlights; the sender is never notified by their own event.
  void record_push_actions(const json& event, int64_t stream) {
    const std::string room_id = event.value("room_id", ""), sender = event.value("sender", "");
    std::vector<std::string> members;
    {
      auto& stmt = db->prepare("SELECT user_id FROM memberships WHERE room_id = ?1 AND membership = 'join'");
      stmt.bind(1, room_id);
      while (stmt.step()) members.push_back(stmt.column_text(0));
      stmt.reset();
    }
    const int64_t joined = static_cast<int64_t>(members.size());
    // Only our own members: other servers' users get their notifications from their server.
    const std::string ours = ":" + server;
    std::erase_if(members, [&ours](const std::string& m) { return m.size() <= ours.size() || !m.ends_with(ours); });
    if (event.value("type", "") == "m.room.member") {
      // The default rules never notify of membership except an invitation to the member
      // (.m.rule.member_event): only members with rules of their own are asked, which keeps
      // a 10,000-member Space filling up from costing a rule pass per member per join.
      const auto& customized = customized_push_users();
      std::erase_if(members, [&](const std::string& m) { return !customized.count(m); });
      // coop's own invitations (@coop, into the Spaces a member belongs in) are followed by
      // the join at once: nothing to tell the member about.
      if (event.contains("state_key") && event["content"].value("membership", "") == "invite" && sender != "@coop:" + server)
        members.push_back(event.value("state_key", ""));  // .m.rule.invite_for_me
    }
    // The room's power levels and create event (version 12 creators are above any level).
    std::optional<json> levels_event, create_event;
    {
      auto& stmt = db->prepare(
          "SELECT s.type, e.json FROM current_state s JOIN events e ON e.event_id = s.event_id "
          "WHERE s.room_id = ?1 AND s.type IN ('m.room.power_levels', 'm.room.create') AND s.state_key = ''");
      stmt.bind(1, room_id);
      while (stmt.step()) (stmt.column_text(0) == "m.room.create" ? create_event : levels_event) = json::parse(stmt.column_text(1));
      stmt.reset();
    }
    const json levels = levels_event ? levels_event->value("content", json::object()) : json::object();
    const auto level_of = [&](const std::string& user) -> int64_t {
      return matrix::power_level_of(create_event ? &*create_event : nullptr, levels_event ? &*levels_event : nullptr, user);
    };
    const auto sender_may_notify = [&](const std::string& key) {
      const auto notifications = levels.value("notifications", json::object());
      const json needed = notifications.is_object() ? notifications.value(key, json(50)) : json(50);
      return level_of(sender) >= (needed.is_number_integer() ? needed.get<int64_t>() : 50);
    };
    std::string thread_id;
    if (event.contains("content") && event["content"].is_object() && event["content"].contains("m.relates_to") &&
        event["content"]["m.relates_to"].is_object() && event["content"]["m.relates_to"].value("rel_type", "") == "m.thread")
      thread_id = event["content"]["m.relates_to"].value("event_id", "");
    for (const auto& member : members) {
      if (member == sender) continue;
      PushContext context;
      context.user_id = member;
      context.member_count = joined;
      context.sender_may_notify = sender_may_notify;
      auto& name = db->prepare(
          "SELECT json_extract(e.json, '$.content.displayname') FROM current_state s JOIN events e ON e.event_id = s.event_id "
          "WHERE s.room_id = ?1 AND s.type = 'm.room.member' AND s.state_key = ?2");
      name.bind(1, room_id).bind(2, member);
      if (name.step()) context.display_name = name.column_optional_text(0).value_or("");
      name.reset();
      const auto actions = evaluate_push_rules(push_rules_of(member), event, context);
      if (!actions.notify) continue;
      db->prepare("INSERT INTO notifications (user_id, room_id, event_id, stream, thread_id, highlight, actions, ts) "
                  "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)")
          .bind(1, member)
          .bind(2, room_id)
          .bind(3, event.value("event_id", ""))
          .bind(4, stream)
          .bind(5, thread_id)
          .bind(6, actions.highlight ? 1 : 0)
          .bind(7, actions.actions().dump())
          .bind(8, unix_millis())
          .run();
    }
  }

  // The state group after an event: the room's current one for a message, a new delta (or
  // a snapshot every kSnapshotEvery) for a state event. Runs before current_state changes.
  void record_state_group(const std::string& room_id, const std::string& event_id, const std::string& type,
                          const std::optional<std::string>& state_key) {
    auto& current = db->prepare("SELECT current_group FROM rooms WHERE room_id = ?1");
    current.bind(1, room_id);
    std::optional<int64_t> group;
    if (current.step() && !current.column_is_null(0)) group = current.column_int64(0);
    current.reset();
    if (state_key) {
      int64_t chain = 0;
      if (group) {
        auto& c = db->prepare("SELECT chain FROM state_groups WHERE id = ?1");
        c.bind(1, *group);
        if (c.step()) chain = c.column_int64(0);
        c.reset();
      }
      const bool snapshot = !group || chain + 1 >= kSnapshotEvery;
      auto& insert = db->prepare("INSERT INTO state_groups (room_id, prev_id, chain) VALUES (?1, ?2, ?3)");
      insert.bind(1, room_id).bind(3, snapshot ? 0 : chain + 1);
      if (snapshot)
        insert.bind_null(2);
      else
        insert.bind(2, *group);
      insert.run();
      const int64_t id = db->last_insert_rowid();
      if (snapshot) {
        db->prepare("INSERT INTO state_group_entries (group_id, type, state_key, event_id) "
                    "SELECT ?1, type, state_key, event_id FROM current_state WHERE room_id = ?2")
            .bind(1, id)
            .bind(2, room_id)
            .run();
      }
      db->prepare("INSERT OR REPLACE INTO state_group_entries (group_id, type, state_key, event_id) VALUES (?1, ?2, ?3, ?4)")
          .bind(1, id)
          .bind(2, type)
          .bind(3, *state_key)
          .bind(4, event_id)
          .run();
      db->prepare("UPDATE rooms SET current_group = ?2 WHERE room_id = ?1").bind(1, room_id).bind(2, id).run();
      group = id;
    }
    if (group) db->prepare("UPDATE events SET state_group = ?2 WHERE event_id = ?1").bind(1, event_id).bind(2, *group).run();
  }

  // The room state a group stands for, by event ID: its chain of deltas down to the last
  // snapshot.
  static matrix::StateIds state_ids_of_group(sqlite::Database& db, int64_t group) {
    matrix::StateIds state;
    std::optional<int64_t> at = group;
    while (at) {
      auto& entries = db.prepare("SELECT type, state_key, event_id FROM state_group_entries WHERE group_id = ?1");
      entries.bind(1, *at);
      while (entries.step()) state.emplace(std::make_pair(entries.column_text(0), entries.column_text(1)), entries.column_text(2));
      entries.reset();
      auto& prev = db.prepare("SELECT prev_id FROM state_groups WHERE id = ?1");
      prev.bind(1, *at);
      at.reset();
      if (prev.step() && !prev.column_is_null(0)) at = prev.column_int64(0);
      prev.reset();
    }
    return state;
  }

  static std::vector<json> state_of_group(sqlite::Database& db, int64_t group, const RoomStore::StateWanted& wanted = {}) {
    std::vector<json> out;
    for (const auto& [key, id] : state_ids_of_group(db, group)) {
      if (wanted && !wanted(key.first, key.second)) continue;
      auto& e = db.prepare("SELECT json FROM events WHERE event_id = ?1");
      e.bind(1, id);
      if (e.step()) out.push_back(json::parse(e.column_text(0)));
      e.reset();
    }
    return out;
  }

  // Client-Server API "Redactions": the target keeps only what the room version's redaction
  // algorithm keeps, and says what redacted it.
  void apply_redaction(const json& redaction, const std::string& version) {
    const std::string target = redaction["content"].value("redacts", redaction.value("redacts", ""));
    auto& stmt = db->prepare("SELECT json FROM events WHERE event_id = ?1 AND room_id = ?2");
    stmt.bind(1, target).bind(2, redaction.value("room_id", ""));
    if (!stmt.step()) {
      stmt.reset();
      return;
    }
    json original = json::parse(stmt.column_text(0));
    stmt.reset();
    json redacted = matrix::redact(original, version);
    redacted["event_id"] = target;
    redacted["unsigned"] = {{"redacted_because", redaction}};
    db->prepare("UPDATE events SET json = ?2 WHERE event_id = ?1").bind(1, target).bind(2, redacted.dump()).run();
    db->prepare("DELETE FROM event_search WHERE event_id = ?1").bind(1, target).run();  // redacted text is gone
  }

  sqlite::ReaderPool::Lease read() { return readers->lease(); }

  template <typename Fn>
  auto write(Fn&& fn) {
    return write_and_tell(mutex, *db, pending, on_change, std::forward<Fn>(fn));
  }
};

}  // namespace coop::room
