// room.db for federation: storing the events other servers send (Server-Server API "Checks
// performed on receipt of a PDU", steps 4 to 6), the room's forward extremities and its
// current state where its history forks (state resolution v2), and the reads other servers
// ask for (auth chains, state before an event, missing events, what to send whom).
#include <algorithm>
#include <deque>

#include "workers/matrix/ids.h"
#include "workers/matrix/pdu_checks.h"
#include "workers/room/store/room_store_impl.h"

namespace coop::room {

namespace {

// Events for state resolution, read from room.db inside the writer's transaction.
class StoreEvents : public matrix::EventSource {
 public:
  explicit StoreEvents(sqlite::Database& db) : db_(db) {}
  const json* event(const std::string& event_id) override {
    auto it = cache_.find(event_id);
    if (it == cache_.end()) {
      std::optional<json> found;
      auto& stmt = db_.prepare("SELECT json FROM events WHERE event_id = ?1");
      stmt.bind(1, event_id);
      if (stmt.step()) found = json::parse(stmt.column_text(0));
      stmt.reset();
      it = cache_.emplace(event_id, std::move(found)).first;
    }
    return it->second ? &*it->second : nullptr;
  }
  // Auth chains from the auth_edges index: no event parsed to find them.
  const std::set<std::string>& auth_chain(const std::string& event_id) override {
    auto it = chains_.find(event_id);
    if (it == chains_.end()) it = chains_.emplace(event_id, RoomStore::Impl::auth_chain_ids(db_, {event_id})).first;
    return it->second;
  }
  std::set<std::string> auth_chain_of_set(const std::vector<std::string>& event_ids) override {
    return RoomStore::Impl::auth_chain_ids(db_, event_ids);
  }

 private:
  sqlite::Database& db_;
  std::map<std::string, std::optional<json>> cache_;
  std::map<std::string, std::set<std::string>> chains_;
};

struct Row {
  int64_t stream = 0;
  int status = 0;
  std::optional<int64_t> group;
  json event;
};

std::optional<Row> load(sqlite::Database& db, const std::string& event_id) {
  auto& stmt = db.prepare("SELECT stream, status, state_group, json FROM events WHERE event_id = ?1");
  stmt.bind(1, event_id);
  std::optional<Row> row;
  if (stmt.step()) {
    row.emplace();
    row->stream = stmt.column_int64(0);
    row->status = static_cast<int>(stmt.column_int64(1));
    if (!stmt.column_is_null(2)) row->group = stmt.column_int64(2);
    row->event = json::parse(stmt.column_text(3));
  }
  stmt.reset();
  return row;
}

std::optional<std::string> rejection_of(sqlite::Database& db, const std::string& event_id) {
  auto& stmt = db.prepare("SELECT reason FROM rejected_events WHERE event_id = ?1");
  stmt.bind(1, event_id);
  std::optional<std::string> reason;
  if (stmt.step()) reason = stmt.column_text(0);
  stmt.reset();
  return reason;
}

std::vector<std::string> string_list(const json& event, const char* field) {
  std::vector<std::string> out;
  if (event.contains(field) && event[field].is_array())
    for (const auto& id : event[field])
      if (id.is_string()) out.push_back(id.get<std::string>());
  return out;
}

using matrix::server_of;

using matrix::room_of;

std::optional<std::string> state_key_of(const json& event) {
  if (event.contains("state_key") && event["state_key"].is_string()) return event["state_key"].get<std::string>();
  return std::nullopt;
}

// What the writer needs for federation on top of Impl: state groups built from any state
// (not only from the current one), the current state replaced by a resolved one.
struct Federation {
  RoomStore::Impl& s;
  sqlite::Database& db;

  explicit Federation(RoomStore::Impl& impl) : s(impl), db(*impl.db) {}

  matrix::MembershipLookup joined_elsewhere() {
    return [this](const std::string& room, const std::string& user) {
      auto& stmt = db.prepare("SELECT membership FROM memberships WHERE room_id = ?1 AND user_id = ?2");
      stmt.bind(1, room).bind(2, user);
      const bool joined = stmt.step() && stmt.column_text(0) == "join";
      stmt.reset();
      return joined;
    };
  }

  // `state_before`: the state group it was checked against, which events built on it take as
  // its state (Server-Server API "Rejection").
  void reject(const json& event, const std::string& reason, std::optional<int64_t> state_before = std::nullopt) {
    auto& stmt = db.prepare(
        "INSERT OR REPLACE INTO rejected_events (event_id, room_id, reason, at, state_group) VALUES (?1, ?2, ?3, ?4, ?5)");
    stmt.bind(1, event.value("event_id", "")).bind(2, room_of(event)).bind(3, reason).bind(4, unix_millis());
    if (state_before) stmt.bind(5, *state_before);
    else stmt.bind_null(5);
    stmt.run();
  }

  // A rejected event's state for what builds on it, when it has one.
  std::optional<int64_t> rejected_state(const std::string& event_id) {
    auto& stmt = db.prepare("SELECT state_group FROM rejected_events WHERE event_id = ?1 AND state_group IS NOT NULL");
    stmt.bind(1, event_id);
    std::optional<int64_t> group;
    if (stmt.step()) group = stmt.column_int64(0);
    stmt.reset();
    return group;
  }

  // One entry of the state a group stands for, walking its deltas (no whole-state read).
  std::optional<std::string> lookup(int64_t group, const std::string& type, const std::string& key) {
    std::optional<int64_t> at = group;
    while (at) {
      auto& entry = db.prepare("SELECT event_id FROM state_group_entries WHERE group_id = ?1 AND type = ?2 AND state_key = ?3");
      entry.bind(1, *at).bind(2, type).bind(3, key);
      if (entry.step()) {
        auto id = entry.column_text(0);
        entry.reset();
        return id;
      }
      entry.reset();
      auto& prev = db.prepare("SELECT prev_id FROM state_groups WHERE id = ?1");
      prev.bind(1, *at);
      at.reset();
      if (prev.step() && !prev.column_is_null(0)) at = prev.column_int64(0);
      prev.reset();
    }
    return std::nullopt;
  }

  // The part of a state the auth rules read for `event`, as events.
  matrix::StateMap auth_map(const json& event, const std::function<std::optional<std::string>(const std::string&, const std::string&)>& find) {
    matrix::StateMap map;
    for (const auto& [type, key] : matrix::auth_types_for(event))
      if (const auto id = find(type, key))
        if (auto row = load(db, *id)) map[{type, key}] = std::move(row->event);
    // Room version 12: the rules read the create event the room ID names.
    if (const auto implied = matrix::implied_create_id(event); !implied.empty())
      if (auto row = load(db, implied)) map[{"m.room.create", ""}] = std::move(row->event);
    return map;
  }

  int64_t snapshot(const std::string& room_id, const matrix::StateIds& state) {
    db.prepare("INSERT INTO state_groups (room_id, prev_id, chain) VALUES (?1, NULL, 0)").bind(1, room_id).run();
    const int64_t id = db.last_insert_rowid();
    auto& entry = db.prepare("INSERT INTO state_group_entries (group_id, type, state_key, event_id) VALUES (?1, ?2, ?3, ?4)");
    for (const auto& [key, event_id] : state) entry.bind(1, id).bind(2, key.first).bind(3, key.second).bind(4, event_id).run();
    return id;
  }

  // The group after a state event on top of `base`: a delta, or a snapshot every
  // kSnapshotEvery links so that reads stay bounded.
  int64_t after(const std::string& room_id, int64_t base, const std::string& type, const std::string& key,
                const std::string& event_id) {
    auto& c = db.prepare("SELECT chain FROM state_groups WHERE id = ?1");
    c.bind(1, base);
    const int64_t chain = c.step() ? c.column_int64(0) : kSnapshotEvery;
    c.reset();
    if (chain + 1 >= kSnapshotEvery) {
      auto state = RoomStore::Impl::state_ids_of_group(db, base);
      state[{type, key}] = event_id;
      return snapshot(room_id, state);
    }
    db.prepare("INSERT INTO state_groups (room_id, prev_id, chain) VALUES (?1, ?2, ?3)").bind(1, room_id).bind(2, base).bind(3, chain + 1).run();
    const int64_t id = db.last_insert_rowid();
    db.prepare("INSERT INTO state_group_entries (group_id, type, state_key, event_id) VALUES (?1, ?2, ?3, ?4)")
        .bind(1, id)
        .bind(2, type)
        .bind(3, key)
        .bind(4, event_id)
        .run();
    return id;
  }

  matrix::StateIds current_ids(const std::string& room_id) {
    matrix::StateIds state;
    auto& stmt = db.prepare("SELECT type, state_key, event_id FROM current_state WHERE room_id = ?1");
    stmt.bind(1, room_id);
    while (stmt.step()) state[{stmt.column_text(0), stmt.column_text(1)}] = stmt.column_text(2);
    stmt.reset();
    return state;
  }

  std::optional<int64_t> current_group(const std::string& room_id) {
    auto& stmt = db.prepare("SELECT current_group FROM rooms WHERE room_id = ?1");
    stmt.bind(1, room_id);
    std::optional<int64_t> group;
    if (stmt.step() && !stmt.column_is_null(0)) group = stmt.column_int64(0);
    stmt.reset();
    return group;
  }

  void set_state_entry(const std::string& room_id, const std::string& type, const std::string& key, const std::string& event_id) {
    db.prepare("INSERT OR REPLACE INTO current_state (room_id, type, state_key, event_id) VALUES (?1, ?2, ?3, ?4)")
        .bind(1, room_id)
        .bind(2, type)
        .bind(3, key)
        .bind(4, event_id)
        .run();
    if (type != "m.room.member") return;
    std::string membership;
    if (auto row = load(db, event_id); row && row->event.contains("content") && row->event["content"].is_object())
      membership = row->event["content"].value("membership", "");
    db.prepare("INSERT OR REPLACE INTO memberships (room_id, user_id, membership, event_id) VALUES (?1, ?2, ?3, ?4)")
        .bind(1, room_id)
        .bind(2, key)
        .bind(3, membership)
        .bind(4, event_id)
        .run();
    s.pending.users.insert(key);
  }

  // The current state becomes `next` (state group `group`): only what differs is written.
  void set_current(const std::string& room_id, const matrix::StateIds& next, int64_t group) {
    const auto now = current_ids(room_id);
    for (const auto& [key, id] : now)
      if (!next.count(key)) {
        db.prepare("DELETE FROM current_state WHERE room_id = ?1 AND type = ?2 AND state_key = ?3")
            .bind(1, room_id)
            .bind(2, key.first)
            .bind(3, key.second)
            .run();
        if (key.first == "m.room.member")
          db.prepare("DELETE FROM memberships WHERE room_id = ?1 AND user_id = ?2").bind(1, room_id).bind(2, key.second).run();
      }
    for (const auto& [key, id] : next) {
      const auto it = now.find(key);
      if (it == now.end() || it->second != id) set_state_entry(room_id, key.first, key.second, id);
    }
    db.prepare("UPDATE rooms SET current_group = ?2 WHERE room_id = ?1").bind(1, room_id).bind(2, group).run();
    s.pending.rooms.insert(room_id);
  }

  int64_t insert(const json& event, int status, bool relay, std::optional<int64_t> group) {
    if (auto outlier = load(db, event.value("event_id", ""))) {
      // An outlier joins the timeline where it was stored.
      auto& update = db.prepare("UPDATE events SET status = ?2, relay = ?3, state_group = ?4 WHERE event_id = ?1");
      update.bind(1, event.value("event_id", "")).bind(2, status).bind(3, relay ? 1 : 0);
      if (group)
        update.bind(4, *group);
      else
        update.bind_null(4);
      update.run();
      return outlier->stream;
    }
    const auto key = state_key_of(event);
    auto& insert = db.prepare(
        "INSERT INTO events (event_id, room_id, type, state_key, sender, depth, json, status, relay, state_group) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)");
    insert.bind(1, event.value("event_id", ""))
        .bind(2, room_of(event))
        .bind(3, event.value("type", ""))
        .bind(5, event.value("sender", ""))
        .bind(6, event.value("depth", int64_t{0}))
        .bind(7, event.dump())
        .bind(8, status)
        .bind(9, relay ? 1 : 0);
    if (key)
      insert.bind(4, *key);
    else
      insert.bind_null(4);
    if (group)
      insert.bind(10, *group);
    else
      insert.bind_null(10);
    insert.run();
    const auto stream = db.last_insert_rowid();
    s.record_auth_edges(event);
    return stream;
  }

  // Step 4: the auth events are here, none rejected, and they admit the event. Empty when
  // it passes; otherwise `missing` or a rejection is filled in.
  bool check_auth_events(const json& event, RoomStore::Accepted& out) {
    std::vector<json> auth;
    for (const auto& id : string_list(event, "auth_events")) {
      if (auto row = load(db, id)) {
        auth.push_back(std::move(row->event));
      } else if (rejection_of(db, id)) {
        out.kind = RoomStore::Accepted::Kind::kRejected;
        out.reason = "its auth event " + id + " was rejected";
        reject(event, out.reason);
        return false;
      } else {
        out.missing.push_back(id);
      }
    }
    // Room version 12: the create event its room ID names, which auth_events never list.
    std::optional<json> room_create;
    if (const auto implied = matrix::implied_create_id(event); !implied.empty()) {
      if (auto row = load(db, implied))
        room_create = std::move(row->event);
      else
        out.missing.push_back(implied);
    }
    if (!out.missing.empty()) {
      out.kind = RoomStore::Accepted::Kind::kMissing;
      return false;
    }
    try {
      matrix::check_against_auth_events(event, auth, joined_elsewhere(), room_create ? &*room_create : nullptr);
    } catch (const Error& e) {
      out.kind = RoomStore::Accepted::Kind::kRejected;
      out.reason = e.what();
      reject(event, out.reason);
      return false;
    }
    return true;
  }

  // Room versions before 11 let keys of up to 255 codepoints through (matrix::oversized_key);
  // over 255 bytes they are kept rejected, with the state before them when it is known.
  bool oversized(const json& event, RoomStore::Accepted& out, std::optional<int64_t> state_before) {
    const auto key = matrix::oversized_key(event);
    if (key.empty()) return false;
    out.kind = RoomStore::Accepted::Kind::kRejected;
    out.reason = key + " is longer than 255 bytes";
    reject(event, out.reason, state_before);
    return true;
  }

  // Duplicate or known-rejected: answered before any work. An outlier that now comes for the
  // timeline is not a duplicate when `outlier_is_new` (it gets its state and its place).
  bool seen(const json& event, RoomStore::Accepted& out, bool outlier_is_new = false) {
    const auto id = event.value("event_id", "");
    if (auto row = load(db, id); row && !(outlier_is_new && row->status == 1)) {
      out.kind = RoomStore::Accepted::Kind::kDuplicate;
      out.stream = row->stream;
      return true;
    }
    if (auto reason = rejection_of(db, id)) {
      out.kind = RoomStore::Accepted::Kind::kRejected;
      out.reason = *reason;
      return true;
    }
    return false;
  }

  // Room versions 3+ "Redactions": the auth rules let any member send one; it is applied
  // only when its sender may redact others (the room's redact level) or redacts an event
  // of their own server.
  bool may_redact(const json& redaction) {
    const auto& content = redaction["content"];
    const json target_id = content.is_object() && content.contains("redacts") ? content["redacts"] : redaction.value("redacts", json());
    if (!target_id.is_string()) return false;
    const auto target = load(db, target_id.get<std::string>());
    if (!target || target->event.value("room_id", "") != redaction.value("room_id", "")) return false;
    const std::string sender = redaction.value("sender", "");
    if (server_of(target->event.value("sender", "")) == server_of(sender)) return true;
    const auto state = s.auth_state(redaction.value("room_id", ""), sender, std::nullopt);
    const auto* levels = matrix::state_of(state, "m.room.power_levels");
    const json pl = levels && (*levels)["content"].is_object() ? (*levels)["content"] : json::object();
    const json needed = pl.value("redact", json(50));
    return matrix::power_level_of(matrix::state_of(state, "m.room.create"), levels, sender) >=
           (needed.is_number_integer() ? needed.get<int64_t>() : 50);
  }

  // For a timeline event we show clients: what they and push rules see of it.
  void publish(const json& event, int64_t stream, const std::string& version) {
    s.record_push_actions(event, stream);
    s.index_for_search(event);
    if (event.value("type", "") == "m.room.redaction") {
      if (may_redact(event)) s.apply_redaction(event, version);
    } else {
      // A redaction that came first (Complement's TestFederationRedactSendsWithoutEvent):
      // applied now that its target is here, if its sender may.
      auto& earlier = db.prepare(
          "SELECT json FROM events WHERE type = 'm.room.redaction' AND room_id = ?2 AND "
          "coalesce(json_extract(json, '$.content.redacts'), json_extract(json, '$.redacts')) = ?1 AND status = 0");
      earlier.bind(1, event.value("event_id", "")).bind(2, event.value("room_id", ""));
      std::vector<json> redactions;
      while (earlier.step()) redactions.push_back(json::parse(earlier.column_text(0)));
      earlier.reset();
      for (const auto& redaction : redactions)
        if (may_redact(redaction)) {
          s.apply_redaction(redaction, version);
          break;
        }
    }
    s.pending.rooms.insert(event.value("room_id", ""));
  }
};

// Remote events keep nothing from the sender's "unsigned": it is not covered by any
// signature (age, transaction IDs and the like would be someone else's claims).
json stored_form(json event) {
  event.erase("unsigned");
  return event;
}

}  // namespace

void RoomStore::add_remote_room(const std::string& room_id, const std::string& version, const json& create_event) {
  impl_->write([&] {
    const auto& content = create_event.contains("content") && create_event["content"].is_object() ? create_event["content"] : json::object();
    const std::string creator = version == "10" ? content.value("creator", create_event.value("sender", "")) : create_event.value("sender", "");
    // Until we hold the room's state (a join went through), a later answer may correct what
    // an earlier, failed one said.
    impl_->db->prepare("INSERT INTO rooms (room_id, version, creator, room_type, created_at) VALUES (?1, ?2, ?3, ?4, ?5) "
                       "ON CONFLICT (room_id) DO UPDATE SET version = excluded.version, creator = excluded.creator, "
                       "room_type = excluded.room_type WHERE rooms.current_group IS NULL")
        .bind(1, room_id)
        .bind(2, version)
        .bind(3, creator)
        .bind(4, content.contains("type") && content["type"].is_string() ? content["type"].get<std::string>() : "")
        .bind(5, unix_millis())
        .run();
    return 0;
  });
}

RoomStore::Accepted RoomStore::accept_outlier(const json& pdu) {
  return impl_->write([&] {
    Federation f(*impl_);
    Accepted out;
    const auto event = stored_form(pdu);
    if (!Impl::version_of(f.db, room_of(event))) throw Error(errc::kMNotFound, "unknown room", 404);
    if (f.seen(event, out) || !f.check_auth_events(event, out) || f.oversized(event, out, std::nullopt)) return out;
    out.stream = f.insert(event, 1, false, std::nullopt);
    return out;
  });
}

RoomStore::Accepted RoomStore::accept_remote(const json& pdu, bool relay) {
  return impl_->write([&] {
    Federation f(*impl_);
    Accepted out;
    const auto event = stored_form(pdu);
    const std::string room_id = room_of(event), event_id = event.value("event_id", "");
    const auto version = Impl::version_of(f.db, room_id);
    if (!version) throw Error(errc::kMNotFound, "unknown room " + room_id, 404);
    if (f.seen(event, out, true)) return out;
    const bool auth_events_pass = f.check_auth_events(event, out);
    if (!auth_events_pass && out.kind == Accepted::Kind::kMissing) return out;

    // The state before the event: after its one prev event, or resolved from several. A
    // soft-failed prev event has its state too; an outlier has none yet.
    // A rejected prev event stands for the state it was checked against, when it has one.
    std::vector<Row> prevs;
    for (const auto& id : string_list(event, "prev_events")) {
      auto row = load(f.db, id);
      if (row && row->group) {
        prevs.push_back(std::move(*row));
      } else if (const auto group = row ? std::nullopt : f.rejected_state(id)) {
        Row rejected;
        rejected.group = group;
        prevs.push_back(std::move(rejected));
      } else if (!rejection_of(f.db, id)) {
        out.missing.push_back(id);  // unknown, or an outlier whose state we do not know
      }
    }
    if (!auth_events_pass) {
      // Rejected against its auth events: what builds on it takes the state before it, when
      // that is known.
      if (out.missing.empty() && !prevs.empty() &&
          std::all_of(prevs.begin(), prevs.end(), [&](const Row& r) { return r.group == prevs[0].group; }))
        f.reject(event, out.reason, prevs[0].group);
      out.missing.clear();
      return out;
    }
    if (!out.missing.empty() || prevs.empty()) {
      out.kind = Accepted::Kind::kMissing;
      return out;
    }
    StoreEvents source(f.db);
    std::optional<int64_t> base;
    std::optional<matrix::StateIds> resolved;
    if (std::all_of(prevs.begin(), prevs.end(), [&](const Row& r) { return r.group == prevs[0].group; })) {
      base = prevs[0].group;
    } else {
      std::vector<matrix::StateIds> sets;
      for (const auto& prev : prevs) sets.push_back(Impl::state_ids_of_group(f.db, *prev.group));
      resolved = matrix::resolve_state_v2(sets, source, f.joined_elsewhere(), matrix::state_res_for(*version));
    }
    if (matrix::oversized_key(event) != "") {
      if (!base) base = f.snapshot(room_id, *resolved);
      f.oversized(event, out, base);
      return out;
    }
    // Step 5: against the state before it.
    const auto before = f.auth_map(event, [&](const std::string& type, const std::string& key) -> std::optional<std::string> {
      if (base) return f.lookup(*base, type, key);
      const auto it = resolved->find({type, key});
      return it == resolved->end() ? std::nullopt : std::optional<std::string>(it->second);
    });
    try {
      matrix::authorize(event, before, f.joined_elsewhere());
    } catch (const Error& e) {
      out.kind = Accepted::Kind::kRejected;
      out.reason = std::string("against the state before it: ") + e.what();
      if (!base) base = f.snapshot(room_id, *resolved);
      f.reject(event, out.reason, base);
      return out;
    }
    // Step 6: against the current state; failing only here is a soft failure.
    const auto key = state_key_of(event);
    bool soft_failed = false;
    try {
      matrix::authorize(event, impl_->auth_state(room_id, event.value("sender", ""), key), f.joined_elsewhere());
    } catch (const Error& e) {
      soft_failed = true;
      out.reason = std::string("against the current state: ") + e.what();
    }

    if (!base) base = f.snapshot(room_id, *resolved);
    const int64_t after = key ? f.after(room_id, *base, event.value("type", ""), *key, event_id) : *base;
    out.stream = f.insert(event, soft_failed ? 2 : 0, relay, after);
    if (soft_failed) {
      out.kind = Accepted::Kind::kSoftFailed;
      return out;
    }
    impl_->set_extremity(room_id, event_id, event["prev_events"]);
    const auto extremities = [&] {
      std::vector<std::string> ids;
      auto& stmt = f.db.prepare("SELECT event_id FROM extremities WHERE room_id = ?1");
      stmt.bind(1, room_id);
      while (stmt.step()) ids.push_back(stmt.column_text(0));
      stmt.reset();
      return ids;
    }();
    const auto current = f.current_group(room_id);
    if (std::find(extremities.begin(), extremities.end(), event_id) == extremities.end()) {
      // It came late: events we hold already build on it, and the current state has them.
    } else if (extremities.size() == 1 && current && *current == *base) {
      // The common case: the event extends the room's one line of history.
      if (key) f.set_state_entry(room_id, event.value("type", ""), *key, event_id);
      f.db.prepare("UPDATE rooms SET current_group = ?2 WHERE room_id = ?1").bind(1, room_id).bind(2, after).run();
    } else if (extremities.size() == 1) {
      f.set_current(room_id, Impl::state_ids_of_group(f.db, after), after);
    } else {
      // The room forked: its current state is the resolution of the states after each of its
      // forward extremities, as the next event's state before will be, here and on every
      // other server that holds the same events (not a fold over the order they came in).
      std::vector<matrix::StateIds> sets;
      std::set<int64_t> groups;
      for (const auto& id : extremities)
        if (auto row = load(f.db, id); row && row->group && groups.insert(*row->group).second)
          sets.push_back(Impl::state_ids_of_group(f.db, *row->group));
      const auto next = sets.size() == 1 ? sets[0]
                                         : matrix::resolve_state_v2(sets, source, f.joined_elsewhere(), matrix::state_res_for(*version));
      const auto state_after = Impl::state_ids_of_group(f.db, after);
      f.set_current(room_id, next, next == state_after ? after : f.snapshot(room_id, next));
    }
    f.publish(event, out.stream, *version);
    return out;
  });
}

bool RoomStore::accept_outlier_state(const std::string& event_id, const std::vector<std::string>& state_before) {
  return impl_->write([&] {
    Federation f(*impl_);
    const auto row = load(f.db, event_id);
    if (!row || row->status != 1 || row->group) return false;
    const std::string room_id = room_of(row->event);
    matrix::StateIds state;
    for (const auto& id : state_before)
      if (auto e = load(f.db, id); e && room_of(e->event) == room_id)
        if (const auto key = state_key_of(e->event)) state[{e->event.value("type", ""), *key}] = id;
    int64_t group = f.snapshot(room_id, state);
    if (const auto key = state_key_of(row->event)) group = f.after(room_id, group, row->event.value("type", ""), *key, event_id);
    f.db.prepare("UPDATE events SET state_group = ?2 WHERE event_id = ?1").bind(1, event_id).bind(2, group).run();
    return true;
  });
}

RoomStore::Accepted RoomStore::accept_join(const json& pdu, const std::vector<std::string>& state_ids) {
  return impl_->write([&] {
    Federation f(*impl_);
    Accepted out;
    const auto join = stored_form(pdu);
    const std::string room_id = room_of(join), event_id = join.value("event_id", "");
    const auto version = Impl::version_of(f.db, room_id);
    if (!version) throw Error(errc::kMNotFound, "unknown room " + room_id, 404);
    if (f.seen(join, out, true) || !f.check_auth_events(join, out)) return out;
    matrix::StateIds state;
    for (const auto& id : state_ids)
      if (auto row = load(f.db, id); row && row->event.contains("state_key") && row->event["state_key"].is_string())
        state[{row->event.value("type", ""), row->event["state_key"].get<std::string>()}] = id;
    const auto before = f.auth_map(join, [&](const std::string& type, const std::string& key) -> std::optional<std::string> {
      const auto it = state.find({type, key});
      return it == state.end() ? std::nullopt : std::optional<std::string>(it->second);
    });
    try {
      matrix::authorize(join, before, f.joined_elsewhere());
    } catch (const Error& e) {
      out.kind = Accepted::Kind::kRejected;
      out.reason = std::string("the room's state does not admit the join: ") + e.what();
      f.reject(join, out.reason);
      return out;
    }
    const int64_t base = f.snapshot(room_id, state);
    const auto key = state_key_of(join).value_or("");
    const int64_t after = f.after(room_id, base, "m.room.member", key, event_id);
    out.stream = f.insert(join, 0, false, after);
    f.db.prepare("DELETE FROM extremities WHERE room_id = ?1").bind(1, room_id).run();
    impl_->set_extremity(room_id, event_id, join["prev_events"]);
    state[{"m.room.member", key}] = event_id;
    f.set_current(room_id, state, after);
    f.publish(join, out.stream, *version);
    return out;
  });
}

json RoomStore::membership_template(const std::string& room_id, const std::string& user_id, const std::string& membership,
                                   const std::string& sender_in) {
  return impl_->write([&] {
    Federation f(*impl_);
    if (!Impl::version_of(f.db, room_id)) throw Error(errc::kMNotFound, "no room " + room_id + " here", 404);
    const std::string sender = sender_in.empty() ? user_id : sender_in;
    json event = {{"type", "m.room.member"},       {"room_id", room_id},
                  {"sender", sender},              {"state_key", user_id},
                  {"content", {{"membership", membership}}}, {"origin_server_ts", unix_millis()},
                  {"origin", server_of(sender)}};
    const auto state = impl_->auth_state(room_id, sender, user_id);
    json auth = json::array();
    for (const auto& [type, key] : matrix::auth_types_for(event))
      if (const auto* e = matrix::state_of(state, type, key))
        if (std::find(auth.begin(), auth.end(), e->value("event_id", "")) == auth.end()) auth.push_back(e->value("event_id", ""));
    event["auth_events"] = auth;
    const auto [prev, depth] = impl_->next_prev_events(room_id);
    event["prev_events"] = prev;
    event["depth"] = depth;
    matrix::authorize(event, state, f.joined_elsewhere());  // M_FORBIDDEN when it would fail now
    return event;
  });
}

bool RoomStore::add_remote_invite(const json& invite, const json& stripped_state) {
  return impl_->write([&] {
    Federation f(*impl_);
    const std::string room_id = invite.value("room_id", ""), user_id = invite.value("state_key", "");
    // A room one of our members is in gets its invitations as events, through /send. One we
    // only hold the state of (our members all left) takes them here, as a room we never saw.
    if (f.current_group(room_id)) {
      auto& ours = f.db.prepare(
          "SELECT 1 FROM memberships WHERE room_id = ?1 AND membership = 'join' "
          "AND substr(user_id, instr(user_id, ':') + 1) = ?2 LIMIT 1");
      ours.bind(1, room_id).bind(2, impl_->server);
      const bool joined_here = ours.step();
      ours.reset();
      if (joined_here) return false;
    }
    const auto event = stored_form(invite);
    if (!load(f.db, event.value("event_id", ""))) f.insert(event, 1, false, std::nullopt);
    // An invitation never overrides a join. A ban we hold may be stale (its lifting still on
    // the way): the inviting server's auth rules let no banned user be invited.
    auto& now = f.db.prepare("SELECT membership FROM memberships WHERE room_id = ?1 AND user_id = ?2");
    now.bind(1, room_id).bind(2, user_id);
    const std::string membership = now.step() ? now.column_text(0) : "";
    now.reset();
    if (membership == "join") return false;
    f.db.prepare("INSERT OR REPLACE INTO memberships (room_id, user_id, membership, event_id) VALUES (?1, ?2, 'invite', ?3)")
        .bind(1, room_id)
        .bind(2, user_id)
        .bind(3, event.value("event_id", ""))
        .run();
    f.db.prepare("INSERT OR REPLACE INTO invite_state (room_id, user_id, state) VALUES (?1, ?2, ?3)")
        .bind(1, room_id)
        .bind(2, user_id)
        .bind(3, stripped_state.dump())
        .run();
    impl_->pending.users.insert(user_id);
    impl_->pending.rooms.insert(room_id);
    return true;
  });
}

std::optional<RoomStore::RemoteInvite> RoomStore::remote_invite(const std::string& room_id, const std::string& user_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT i.state, e.stream, e.sender FROM invite_state i "
      "JOIN memberships m ON m.room_id = i.room_id AND m.user_id = i.user_id AND m.membership = 'invite' "
      "JOIN events e ON e.event_id = m.event_id WHERE i.room_id = ?1 AND i.user_id = ?2");
  stmt.bind(1, room_id).bind(2, user_id);
  std::optional<RemoteInvite> invite;
  if (stmt.step()) invite = RemoteInvite{json::parse(stmt.column_text(0), nullptr, false), stmt.column_int64(1), stmt.column_text(2)};
  stmt.reset();
  return invite;
}

void RoomStore::decline_remote_invite(const std::string& room_id, const std::string& user_id) {
  impl_->write([&] {
    impl_->db->prepare("UPDATE memberships SET membership = 'leave' WHERE room_id = ?1 AND user_id = ?2 AND membership = 'invite'")
        .bind(1, room_id)
        .bind(2, user_id)
        .run();
    impl_->db->prepare("DELETE FROM invite_state WHERE room_id = ?1 AND user_id = ?2").bind(1, room_id).bind(2, user_id).run();
    impl_->pending.users.insert(user_id);
    return 0;
  });
}

std::vector<json> RoomStore::events_by_id(const std::vector<std::string>& event_ids) {
  auto db = impl_->read();
  std::vector<json> out;
  for (const auto& id : event_ids)
    if (auto row = load(*db, id)) out.push_back(std::move(row->event));
  return out;
}

std::vector<std::string> RoomStore::unknown_event_ids(const std::vector<std::string>& event_ids) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT EXISTS (SELECT 1 FROM events WHERE event_id = ?1) OR EXISTS (SELECT 1 FROM rejected_events WHERE event_id = ?1)");
  std::vector<std::string> out;
  for (const auto& id : event_ids) {
    stmt.bind(1, id);
    if (stmt.step() && stmt.column_int64(0) == 0) out.push_back(id);
    stmt.reset();
  }
  return out;
}

std::vector<json> RoomStore::auth_chain(const std::vector<std::string>& event_ids) {
  auto db = impl_->read();
  std::vector<json> out;
  for (const auto& id : Impl::auth_chain_ids(*db, event_ids))
    if (auto row = load(*db, id)) out.push_back(std::move(row->event));
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) { return a.value("depth", int64_t{0}) < b.value("depth", int64_t{0}); });
  return out;
}

std::optional<std::vector<std::string>> RoomStore::state_ids_before(const std::string& event_id) {
  auto db = impl_->read();
  auto row = load(*db, event_id);
  if (!row) return std::nullopt;
  std::vector<matrix::StateIds> sets;
  for (const auto& id : string_list(row->event, "prev_events"))
    if (auto prev = load(*db, id); prev && prev->group) sets.push_back(Impl::state_ids_of_group(*db, *prev->group));
  if (sets.empty()) {
    // The room's first event, or one whose prev events we only hold as outliers: the state
    // after it, less itself.
    if (!row->group) return std::nullopt;
    auto state = Impl::state_ids_of_group(*db, *row->group);
    if (const auto key = state_key_of(row->event)) state.erase({row->event.value("type", ""), *key});
    sets.push_back(std::move(state));
  }
  matrix::StateIds state = sets[0];
  if (sets.size() > 1) {
    StoreEvents source(*db);
    const auto version = Impl::version_of(*db, room_of(row->event)).value_or("11");
    state = matrix::resolve_state_v2(sets, source, [&db](const std::string& room, const std::string& user) {
      auto& stmt = db->prepare("SELECT membership FROM memberships WHERE room_id = ?1 AND user_id = ?2");
      stmt.bind(1, room).bind(2, user);
      const bool joined = stmt.step() && stmt.column_text(0) == "join";
      stmt.reset();
      return joined;
    }, matrix::state_res_for(version));
  }
  std::vector<std::string> ids;
  for (const auto& [key, id] : state) ids.push_back(id);
  return ids;
}

std::vector<std::string> RoomStore::extremities(const std::string& room_id) {
  auto db = impl_->read();
  std::vector<std::string> ids;
  auto& stmt = db->prepare("SELECT event_id FROM extremities WHERE room_id = ?1");
  stmt.bind(1, room_id);
  while (stmt.step()) ids.push_back(stmt.column_text(0));
  stmt.reset();
  return ids;
}

std::vector<json> RoomStore::events_before(const std::string& room_id, const std::vector<std::string>& latest,
                                           const std::set<std::string>& earliest, int limit) {
  auto db = impl_->read();
  std::set<std::string> seen(earliest.begin(), earliest.end());
  std::deque<std::string> todo;
  for (const auto& id : latest)
    if (auto row = load(*db, id); row && room_of(row->event) == room_id)
      for (const auto& p : string_list(row->event, "prev_events")) todo.push_back(p);
  std::vector<json> out;
  while (!todo.empty() && static_cast<int>(out.size()) < limit) {
    const auto id = todo.front();
    todo.pop_front();
    if (!seen.insert(id).second) continue;
    auto row = load(*db, id);
    if (!row || row->status == 1 || room_of(row->event) != room_id) continue;
    for (const auto& p : string_list(row->event, "prev_events")) todo.push_back(p);
    out.push_back(std::move(row->event));
  }
  std::sort(out.begin(), out.end(), [](const json& a, const json& b) { return a.value("depth", int64_t{0}) < b.value("depth", int64_t{0}); });
  return out;
}

bool RoomStore::server_in_room(const std::string& room_id, const std::string& server) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT 1 FROM memberships WHERE room_id = ?1 AND membership = 'join' "
      "AND substr(user_id, instr(user_id, ':') + 1) = ?2 LIMIT 1");
  stmt.bind(1, room_id).bind(2, server);
  const bool in = stmt.step();
  stmt.reset();
  return in;
}

std::vector<std::string> RoomStore::remote_servers_in(const std::string& room_id) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT DISTINCT substr(user_id, instr(user_id, ':') + 1) AS server FROM memberships "
      "WHERE room_id = ?1 AND membership = 'join' AND server != ?2");
  stmt.bind(1, room_id).bind(2, server_name_);
  std::vector<std::string> out;
  while (stmt.step()) out.push_back(stmt.column_text(0));
  stmt.reset();
  return out;
}

bool RoomStore::server_has_memberships(const std::string& server) {
  auto db = impl_->read();
  auto& stmt = db->prepare("SELECT 1 FROM memberships WHERE substr(user_id, instr(user_id, ':') + 1) = ?1 LIMIT 1");
  stmt.bind(1, server);
  const bool found = stmt.step();
  stmt.reset();
  return found;
}

std::vector<std::string> RoomStore::remote_servers() {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT DISTINCT substr(user_id, instr(user_id, ':') + 1) AS server FROM memberships "
      "WHERE membership = 'join' AND server != ?1");
  stmt.bind(1, server_name_);
  std::vector<std::string> out;
  while (stmt.step()) out.push_back(stmt.column_text(0));
  stmt.reset();
  return out;
}

std::vector<StoredEvent> RoomStore::events_for_server(const std::string& server, int64_t after, int limit) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT stream, json FROM events ev WHERE stream > ?2 AND relay = 1 AND status = 0 "
      "AND substr(sender, instr(sender, ':') + 1) != ?1 "
      // Events of a room the server is in, from its users' (current) joins on: not the
      // history it had no part in.
      "AND (stream > (SELECT min(j.stream) FROM memberships m JOIN events j ON j.event_id = m.event_id "
      "               WHERE m.room_id = ev.room_id AND m.membership = 'join' "
      "               AND substr(m.user_id, instr(m.user_id, ':') + 1) = ?1) "
      "     OR (type = 'm.room.member' AND substr(state_key, instr(state_key, ':') + 1) = ?1)) "
      "ORDER BY stream LIMIT ?3");
  stmt.bind(1, server).bind(2, after).bind(3, limit);
  std::vector<StoredEvent> out;
  while (stmt.step()) out.push_back({stmt.column_int64(0), json::parse(stmt.column_text(1))});
  stmt.reset();
  return out;
}

int64_t RoomStore::first_join_stream(const std::string& server) {
  auto db = impl_->read();
  auto& stmt = db->prepare(
      "SELECT coalesce(min(e.stream), (SELECT coalesce(max(stream), 0) FROM events)) FROM memberships m "
      "JOIN events e ON e.event_id = m.event_id WHERE m.membership = 'join' "
      "AND substr(m.user_id, instr(m.user_id, ':') + 1) = ?1");
  stmt.bind(1, server);
  stmt.step();
  const int64_t stream = stmt.column_int64(0);
  stmt.reset();
  return stream;
}

std::optional<std::string> RoomStore::rejection(const std::string& event_id) {
  auto db = impl_->read();
  return rejection_of(*db, event_id);
}

}  // namespace coop::room
