// See inbound.h. Server-Server API "Transactions", "PDUs", "Joining Rooms", "Retrieving
// events", "Backfilling and retrieving missing events".
#include "workers/federate/inbound.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>

#include "common/clock.h"
#include "common/control/client.h"
#include "common/sqlite.h"
#include "common/text.h"
#include "common/worker_runtime.h"
#include "workers/federate/context.h"
#include "workers/federate/federate_db.h"
#include "workers/federate/remote_keys.h"
#include "workers/federate/sender.h"
#include "workers/federate/server_policy.h"
#include "workers/matrix/event_hash.h"
#include "workers/matrix/pdu_checks.h"
#include "workers/matrix/signing.h"
#include "workers/room/store/room_store.h"

namespace coop::federate {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;
using Kind = room::RoomStore::Accepted::Kind;

// The spec's limits on one transaction.
constexpr std::size_t kMaxPdus = 50;
constexpr std::size_t kMaxEdus = 100;
// get_missing_events asks for this many at a time.
constexpr int kMissingLimit = 20;
// The state at a gap: at most this many unknown events are fetched one by one, more come
// with the whole state.
constexpr std::size_t kFetchEach = 50;
// Answers to others' reads are bounded.
constexpr int kMaxBackfill = 100;
// Inbound transactions are remembered this long for duplicates.
constexpr int64_t kTxnMemoryMs = 24 * 3600 * 1000;

std::vector<json> sorted_by_depth(std::vector<json> events) {
  std::stable_sort(events.begin(), events.end(), [](const json& a, const json& b) {
    const auto depth = [](const json& e) {
      return e.is_object() && e.contains("depth") && e["depth"].is_number_integer() ? e["depth"].get<int64_t>() : int64_t{0};
    };
    return depth(a) < depth(b);
  });
  return events;
}

std::string id_of(const json& pdu, const std::string& version) {
  try {
    json copy = pdu;
    copy.erase("event_id");
    return matrix::event_id_for(copy, version);
  } catch (const std::exception&) {
    return "";
  }
}

// Outliers, oldest first; what lacks an auth event after a pass gets another, until nothing
// moves. Events that do not check out are dropped.
void store_outliers(Context& c, const std::string& origin, const std::string& room_id, const std::string& version,
                    std::vector<json> pdus) {
  std::vector<json> waiting;
  for (auto& pdu : sorted_by_depth(std::move(pdus))) {
    try {
      auto event = verified_pdu(c, pdu, version);
      if (event.value("room_id", "") == room_id) waiting.push_back(std::move(event));
    } catch (const Error& e) {
      spdlog::info("an event from {} is dropped: {}", origin, e.what());
    }
  }
  while (!waiting.empty()) {
    std::vector<json> again;
    for (auto& event : waiting)
      if (c.store.accept_outlier(event).kind == Kind::kMissing) again.push_back(std::move(event));
    if (again.size() == waiting.size()) break;
    waiting = std::move(again);
  }
}

// Auth events the store lacks, from the origin's /event_auth: stored as outliers, oldest
// first; those that fail their own checks are left out (and the event that needs them then
// fails too).
void fetch_auth_chain(Context& c, const std::string& origin, const std::string& room_id, const std::string& event_id,
                      const std::string& version) {
  const auto answer = federation_request(
      c, "GET", origin, "/_matrix/federation/v1/event_auth/" + percent_encode(room_id) + "/" + percent_encode(event_id),
      nullptr, 16 << 20, 30000);
  if (!answer.ok() || !answer.body.contains("auth_chain") || !answer.body["auth_chain"].is_array()) {
    spdlog::info("cannot fetch the auth chain of {} from {}: {}", event_id, origin, answer.error);
    return;
  }
  store_outliers(c, origin, room_id, version, answer.body["auth_chain"].get<std::vector<json>>());
}

// Prev events the store lacks (Server-Server API "Backfilling and retrieving missing
// events"): asked from the origin between our forward extremities and the event, then taken
// oldest first.
void fetch_missing_prevs(Context& c, const std::string& origin, const json& event) {
  const std::string room_id = event.value("room_id", "");
  const json body = {{"earliest_events", c.store.extremities(room_id)},
                     {"latest_events", {event.value("event_id", "")}},
                     {"limit", kMissingLimit},
                     {"min_depth", 0}};
  const auto answer = federation_request(c, "POST", origin, "/_matrix/federation/v1/get_missing_events/" + percent_encode(room_id),
                                         &body, 16 << 20, 30000);
  if (!answer.ok() || !answer.body.contains("events") || !answer.body["events"].is_array()) {
    spdlog::info("cannot fetch the events missing before {} from {}: {}", event.value("event_id", ""), origin, answer.error);
    return;
  }
  auto events = answer.body["events"].get<std::vector<json>>();
  if (events.size() > static_cast<std::size_t>(kMissingLimit)) events.resize(kMissingLimit);  // what we asked for, no more
  events = sorted_by_depth(std::move(events));
  std::set<std::string> batch;
  const std::string version = c.store.room_version(room_id).value_or("11");
  for (const auto& pdu : events) batch.insert(id_of(pdu, version));
  for (const auto& pdu : events) {
    // The oldest of the batch (those whose prev events it does not hold) may need the state at
    // what is still further back; the others build on the batch.
    bool oldest = true;
    if (pdu.is_object() && pdu.contains("prev_events") && pdu["prev_events"].is_array())
      for (const auto& prev : pdu["prev_events"])
        if (prev.is_string() && batch.count(prev.get<std::string>())) oldest = false;
    const auto taken = take_pdu(c, origin, pdu, oldest ? Fetch::kState : Fetch::kNone);
    if (!taken.error.empty()) spdlog::info("a missing event {} from {} is not taken: {}", taken.event_id, origin, taken.error);
  }
}

// One event by ID from the origin (GET /event): nullopt unless the answer is that event.
std::optional<json> fetch_event(Context& c, const std::string& origin, const std::string& event_id, const std::string& version) {
  const auto event = federation_request(c, "GET", origin, "/_matrix/federation/v1/event/" + percent_encode(event_id), nullptr);
  if (event.ok() && event.body.contains("pdus") && event.body["pdus"].is_array() && event.body["pdus"].size() == 1 &&
      id_of(event.body["pdus"][0], version) == event_id)
    return event.body["pdus"][0];
  spdlog::info("cannot fetch {} from {}: {}", event_id, origin, event.ok() ? "not that event" : event.error);
  return std::nullopt;
}

std::optional<std::vector<std::string>> string_list(const json& body, const char* field) {
  if (!body.is_object() || !body.contains(field) || !body[field].is_array()) return std::nullopt;
  std::vector<std::string> out;
  for (const auto& id : body[field]) {
    if (!id.is_string()) return std::nullopt;
    out.push_back(id.get<std::string>());
  }
  return out;
}

// A prev event get_missing_events could not reach (history from before we joined, or too
// long a gap): the event and the state before it from the origin ("Room State"), so that
// what builds on it can be checked. /state_ids names the state and its auth chain; when we
// lack at most kFetchEach of those events they come one by one from /event, else the whole
// state from /state. Events whose auth events cannot be had are not stored, and neither is
// anything that cites them: they stay out of the state.
void fetch_state_at(Context& c, const std::string& origin, const std::string& room_id, const std::string& prev,
                    const std::string& version) {
  const auto named = federation_request(
      c, "GET", origin, "/_matrix/federation/v1/state_ids/" + percent_encode(room_id) + "?event_id=" + percent_encode(prev),
      nullptr, 16 << 20, 60000);
  const auto state_ids = string_list(named.body, "pdu_ids");
  const auto chain_ids = string_list(named.body, "auth_chain_ids");
  if (named.ok() && state_ids && chain_ids) {
    std::vector<std::string> wanted = *chain_ids;
    wanted.insert(wanted.end(), state_ids->begin(), state_ids->end());
    wanted.push_back(prev);
    std::sort(wanted.begin(), wanted.end());
    wanted.erase(std::unique(wanted.begin(), wanted.end()), wanted.end());
    const auto unknown = c.store.unknown_event_ids(wanted);
    if (unknown.size() <= kFetchEach) {
      std::vector<json> events;
      for (const auto& id : unknown)
        if (auto event = fetch_event(c, origin, id, version)) events.push_back(std::move(*event));
      store_outliers(c, origin, room_id, version, std::move(events));
      c.store.accept_outlier_state(prev, *state_ids);
      return;
    }
  } else {
    spdlog::info("cannot fetch the state IDs at {} from {}: {}", prev, origin, named.ok() ? "malformed answer" : named.error);
  }
  const auto state = federation_request(
      c, "GET", origin, "/_matrix/federation/v1/state/" + percent_encode(room_id) + "?event_id=" + percent_encode(prev),
      nullptr, 64 << 20, 60000);
  if (!state.ok() || !state.body.contains("pdus") || !state.body["pdus"].is_array()) {
    spdlog::info("cannot fetch the state at {} from {}: {}", prev, origin, state.error);
    return;
  }
  std::vector<json> events;
  std::vector<std::string> ids;
  for (const auto& pdu : state.body["pdus"]) {
    events.push_back(pdu);
    ids.push_back(id_of(pdu, version));
  }
  if (state.body.contains("auth_chain") && state.body["auth_chain"].is_array())
    for (const auto& pdu : state.body["auth_chain"]) events.push_back(pdu);
  if (c.store.events_by_id({prev}).empty())
    if (auto event = fetch_event(c, origin, prev, version)) events.push_back(std::move(*event));
  store_outliers(c, origin, room_id, version, std::move(events));
  c.store.accept_outlier_state(prev, ids);
}

// Inbound transactions seen, with our answer.
class TxnLog {
 public:
  explicit TxnLog(const std::filesystem::path& file) : db_(open_federate_db(file)) {}
  std::optional<json> answer(const std::string& origin, const std::string& txn) {
    std::lock_guard lock(mutex_);
    auto& stmt = db_->prepare("SELECT response FROM inbound_txns WHERE origin = ?1 AND txn_id = ?2");
    stmt.bind(1, origin).bind(2, txn);
    std::optional<json> found;
    if (stmt.step()) found = json::parse(stmt.column_text(0), nullptr, false);
    stmt.reset();
    return found;
  }
  void remember(const std::string& origin, const std::string& txn, const json& response) {
    std::lock_guard lock(mutex_);
    const auto now = unix_millis();
    db_->prepare("INSERT OR REPLACE INTO inbound_txns (origin, txn_id, response, at) VALUES (?1, ?2, ?3, ?4)")
        .bind(1, origin)
        .bind(2, txn)
        .bind(3, response.dump())
        .bind(4, now)
        .run();
    if (++writes_ % 100 == 0) db_->prepare("DELETE FROM inbound_txns WHERE at < ?1").bind(1, now - kTxnMemoryMs).run();
  }

 private:
  std::unique_ptr<sqlite::Database> db_;
  std::mutex mutex_;  // guards db_
  uint64_t writes_ = 0;
};

// One transaction at a time per origin (the spec: a server sends the next only when the last
// was answered); a retry that arrives while the first is processed waits for its answer.
std::mutex& origin_lock(const std::string& origin) {
  static std::mutex guard;
  static std::map<std::string, std::unique_ptr<std::mutex>> locks;
  std::lock_guard lock(guard);
  auto& slot = locks[origin];
  if (!slot) slot = std::make_unique<std::mutex>();
  return *slot;
}

// The room's server ACL lets the origin in (make_join, send_join, make_leave, send_leave,
// invite, and through require_in_room every read of the room).
void require_acl(Context& c, const std::string& room_id, const std::string& origin) {
  if (!acl_admits(c, room_id, origin)) throw Error(errc::kMForbidden, "the server ACL of " + room_id + " forbids " + origin, 403);
}

// A room we hold, whose ACL lets the origin in: its version (404 or 403 otherwise).
std::string require_room(Context& c, const std::string& room_id, const std::string& origin) {
  const auto version = c.store.room_version(room_id);
  if (!version) throw Error(errc::kMNotFound, "no room " + room_id + " here", 404);
  require_acl(c, room_id, origin);
  return *version;
}

void require_in_room(Context& c, const std::string& room_id, const std::string& origin) {
  require_room(c, room_id, origin);
  if (!c.store.server_in_room(room_id, origin))
    throw Error(errc::kMForbidden, origin + " has no member in " + room_id, 403);
}

json wire_list(const std::vector<json>& events) {
  json out = json::array();
  for (const auto& e : events) out.push_back(pdu_for_wire(e));
  return out;
}

}  // namespace

json verified_pdu(Context& c, const json& pdu, const std::string& room_version) {
  const auto check = matrix::check_pdu(pdu, room_version, [&c](const std::string& server, const std::string& key_id) {
    // Our own events come back too (in join answers and missing events): our key is here.
    if (server == c.server_name)
      return key_id == c.key.key_id() ? std::optional<std::string>(c.key.public_key_base64()) : std::nullopt;
    if (!c.policy.admits(server)) return std::optional<std::string>();
    return c.remote.public_key(server, key_id);
  });
  if (check.verdict == matrix::PduVerdict::kDropped) throw Error(errc::kMBadJson, check.reason, 400);
  if (check.verdict == matrix::PduVerdict::kRedacted) spdlog::info("{} is stored redacted: {}", check.event_id, check.reason);
  return check.event;
}

void take_checked(Context& c, const std::string& origin, const json& event, const std::string& version, Fetch fetch,
                  Taken& out);

Taken take_pdu(Context& c, const std::string& origin, const json& pdu, Fetch fetch) {
  Taken out;
  if (!pdu.is_object() || !pdu.contains("room_id") || !pdu["room_id"].is_string()) {
    out.error = "not a PDU";
    return out;
  }
  const std::string room_id = pdu["room_id"];
  const auto version = c.store.room_version(room_id);
  out.event_id = id_of(pdu, version.value_or("11"));
  if (!version) {
    out.error = "this server is not in room " + room_id;
    return out;
  }
  if (!acl_admits(c, room_id, origin)) {
    out.error = "the room's server ACL forbids " + origin;
    return out;
  }
  json event;
  try {
    event = verified_pdu(c, pdu, *version);
  } catch (const Error& e) {
    out.error = e.what();
    return out;
  }
  out.event_id = event.value("event_id", "");
  try {
    take_checked(c, origin, event, *version, fetch, out);
  } catch (const std::exception& e) {
    // A malformed field somewhere down the line is this PDU's problem only.
    out.error = std::string("cannot take the event: ") + e.what();
  }
  return out;
}

void take_checked(Context& c, const std::string& origin, const json& event, const std::string& version, Fetch fetch,
                  Taken& out) {
  const std::string room_id = event.value("room_id", "");
  auto accepted = c.store.accept_remote(event);
  if (accepted.kind == Kind::kMissing) {
    const auto& auth = event["auth_events"];
    const bool auth_missing = std::any_of(accepted.missing.begin(), accepted.missing.end(), [&](const std::string& id) {
      return std::find(auth.begin(), auth.end(), id) != auth.end();
    });
    if (auth_missing) fetch_auth_chain(c, origin, room_id, out.event_id, version);
    else if (fetch == Fetch::kAll) fetch_missing_prevs(c, origin, event);
    accepted = c.store.accept_remote(event);
    if (accepted.kind == Kind::kMissing && auth_missing && fetch == Fetch::kAll) {
      fetch_missing_prevs(c, origin, event);
      accepted = c.store.accept_remote(event);
    }
    // Still short: the state at each prev event we lack, which also brings auth events that
    // /event_auth did not give.
    if (accepted.kind == Kind::kMissing && fetch != Fetch::kNone) {
      std::vector<std::string> prevs;
      for (const auto& id : event["prev_events"])
        if (id.is_string()) prevs.push_back(id.get<std::string>());
      prevs = c.store.unknown_event_ids(prevs);
      for (const auto& id : prevs) fetch_state_at(c, origin, room_id, id, version);
      if (!prevs.empty()) accepted = c.store.accept_remote(event);
    }
  }
  switch (accepted.kind) {
    case Kind::kStored:
    case Kind::kDuplicate:
      break;
    case Kind::kSoftFailed:
      spdlog::info("{} from {} is soft-failed: {}", out.event_id, origin, accepted.reason);
      break;
    case Kind::kRejected:
      out.error = "rejected: " + accepted.reason;
      break;
    case Kind::kMissing:
      out.error = "cannot fetch the events it refers to:";
      for (const auto& id : accepted.missing) out.error += " " + id;
      break;
  }
}

void add_inbound_routes(http::Router& r, Context& c, const http::Runner& run) {
  auto log = std::make_shared<TxnLog>(c.runtime.home().database("federate"));

  // "Transactions": PDUs each with its own result (one bad PDU never fails the others), EDUs,
  // and the same answer for the same transaction ID however often it comes.
  r.add_blocking("PUT", "/_matrix/federation/v1/send/{txnId}", run,
                 signed_by_peer(c, [&c, log](const Request& q, const std::string& origin) {
                   const auto txn = q.param("txnId");
                   const auto body = q.json();
                   if (body.contains("origin") && body["origin"] != origin)
                     return matrix_error(400, "M_BAD_JSON", "origin is not the server that signed the request");
                   const auto pdus = body.value("pdus", json::array());
                   const auto edus = body.value("edus", json::array());
                   if (!pdus.is_array() || !edus.is_array()) return matrix_error(400, "M_BAD_JSON", "pdus and edus are lists");
                   if (pdus.size() > kMaxPdus || edus.size() > kMaxEdus)
                     return matrix_error(400, "M_BAD_JSON", "a transaction holds at most 50 PDUs and 100 EDUs");
                   if (auto seen = log->answer(origin, txn)) return Response::json(*seen);
                   // One transaction per origin at a time: a second one while the first is
                   // processed is refused (it is sent again), not parked on a worker thread.
                   std::unique_lock one_at_a_time(origin_lock(origin), std::try_to_lock);
                   if (!one_at_a_time.owns_lock())
                     return matrix_error(429, "M_LIMIT_EXCEEDED", "a transaction from " + origin + " is being processed");
                   if (auto seen = log->answer(origin, txn)) return Response::json(*seen);
                   json results = json::object();
                   for (const auto& pdu : sorted_by_depth(pdus.get<std::vector<json>>())) {
                     const auto taken = take_pdu(c, origin, pdu, Fetch::kAll);
                     if (taken.event_id.empty()) continue;
                     results[taken.event_id] = taken.error.empty() ? json::object() : json{{"error", taken.error}};
                   }
                   // EDUs go to coop-room, which checks each against the origin (and typing
                   // and receipts against the room's members). Presence is not kept.
                   json passed = json::array();
                   bool durable = false;  // to-device messages and device list updates
                   for (const auto& edu : edus) {
                     const auto type = edu.is_object() ? edu.value("edu_type", json()) : json();
                     if (type == "m.typing" || type == "m.receipt") passed.push_back(edu);
                     if (type == "m.direct_to_device" || type == "m.device_list_update" || type == "m.signing_key_update") {
                       passed.push_back(edu);
                       durable = true;
                     }
                   }
                   if (!passed.empty()) {
                     std::string lost;
                     try {
                       const auto answer = control::Client(c.runtime.home().socket("room"))
                           .request("POST", "/v1/federation/edus", json{{"origin", origin}, {"edus", passed}}.dump(), std::chrono::seconds(10));
                       if (!answer.ok()) lost = "HTTP " + std::to_string(answer.status);
                     } catch (const std::exception& e) {
                       lost = e.what();
                     }
                     // What must not be lost is not acknowledged: the origin sends the
                     // transaction again, its PDUs are known by then and its EDUs carry IDs.
                     if (!lost.empty() && durable)
                       return matrix_error(503, "M_UNKNOWN", "to-device messages could not be stored now: " + lost);
                     if (!lost.empty()) spdlog::info("typing and receipts from {} are lost: {}", origin, lost);
                   }
                   const json answer = {{"pdus", results}};
                   log->remember(origin, txn, answer);
                   return Response::json(answer);
                 }),
                 "a transaction of PDUs and EDUs from another server");

  // "Joining Rooms", resident side: a join template for the remote user...
  r.add_blocking("GET", "/_matrix/federation/v1/make_join/{roomId}/{userId}", run,
                 signed_by_peer(c, [&c](const Request& q, const std::string& origin) {
                   const auto room_id = q.param("roomId"), user_id = q.param("userId");
                   if (server_of(user_id) != origin || user_id.size() > 255 || user_id[0] != '@')
                     return matrix_error(403, "M_FORBIDDEN", "a server joins its own users only");
                   const auto version = require_room(c, room_id, origin);
                   auto versions = q.query_values("ver");
                   if (versions.empty()) versions.push_back("1");  // the spec's default
                   if (std::find(versions.begin(), versions.end(), version) == versions.end())
                     return Response::json({{"errcode", "M_INCOMPATIBLE_ROOM_VERSION"},
                                            {"error", "the room's version is " + version},
                                            {"room_version", version}},
                                           400);
                   return Response::json({{"room_version", version}, {"event", c.store.membership_template(room_id, user_id, "join")}});
                 }),
                 "the template of a join for a user of the asking server");

  // ...and the signed join, stored and sent on, answered with the room's state and auth chain.
  auto send_join = [&c](const Request& q, const std::string& origin, bool v2) {
    const auto room_id = q.param("roomId"), event_id = q.param("eventId");
    const auto version = require_room(c, room_id, origin);
    const auto pdu = q.json();
    const auto event = verified_pdu(c, pdu, version);
    const auto& content = event["content"];
    if (event.value("event_id", "") != event_id || event.value("room_id", "") != room_id || event.value("type", "") != "m.room.member" ||
        content.value("membership", "") != "join" || event.value("state_key", "") != event.value("sender", "") ||
        server_of(event.value("sender", "")) != origin)
      return matrix_error(400, "M_BAD_JSON", "not a join of the asking server's user to this room with this event ID");
    const auto accepted = c.store.accept_remote(event, true);
    if (accepted.kind == Kind::kRejected || accepted.kind == Kind::kSoftFailed)
      return matrix_error(403, "M_FORBIDDEN", "the join is refused: " + accepted.reason);
    if (accepted.kind == Kind::kMissing) return matrix_error(400, "M_BAD_JSON", "the join refers to events this server does not have");
    if (c.sender) c.sender->wake();
    auto state = c.store.events_by_id(c.store.state_ids_before(event_id).value_or(std::vector<std::string>{}));
    // A partial state (send_join v2 `omit_members`, MSC3706) for a server that asks: no
    // membership events but those of the room's heroes when it has neither a name nor a
    // canonical alias (MSC3943, so that the joiner's clients can still name it), no auth
    // events the state already holds, and the servers joined before this join.
    const bool partial = v2 && q.query_value("omit_members") == "true";
    json servers = json::array();
    if (partial) {
      std::set<std::string> joined_servers;
      bool named = false;
      for (const auto& e : state) {
        const auto type = e.value("type", "");
        named = named || type == "m.room.name" || type == "m.room.canonical_alias";
        if (type == "m.room.member" && e["content"].is_object() && e["content"].value("membership", "") == "join")
          joined_servers.insert(server_of(e.value("state_key", "")));
      }
      for (const auto& server : joined_servers) servers.push_back(server);
      std::set<std::string> heroes;
      if (!named)
        for (auto& hero : c.store.room_summary(room_id, event.value("sender", ""), 5).heroes) heroes.insert(std::move(hero));
      std::erase_if(state, [&](const json& e) { return e.value("type", "") == "m.room.member" && !heroes.count(e.value("state_key", "")); });
    }
    std::vector<std::string> chain_from;
    for (const auto& e : state) chain_from.push_back(e.value("event_id", ""));
    const std::set<std::string> in_state(chain_from.begin(), chain_from.end());
    chain_from.push_back(event_id);
    auto chain = c.store.auth_chain(chain_from);
    if (partial) std::erase_if(chain, [&](const json& e) { return in_state.count(e.value("event_id", "")) > 0; });
    json body = {{"origin", c.server_name}, {"state", wire_list(state)}, {"auth_chain", wire_list(chain)}, {"members_omitted", partial}};
    if (partial) body["servers_in_room"] = servers;
    return Response::json(v2 ? body : json::array({200, body}));
  };
  r.add_blocking("PUT", "/_matrix/federation/v2/send_join/{roomId}/{eventId}", run,
                 signed_by_peer(c, [send_join](const Request& q, const std::string& origin) { return send_join(q, origin, true); }),
                 "a join made from our template: stored, and the room's state in return");
  r.add_blocking("PUT", "/_matrix/federation/v1/send_join/{roomId}/{eventId}", run,
                 signed_by_peer(c, [send_join](const Request& q, const std::string& origin) { return send_join(q, origin, false); }),
                 "the same, in the first version's [200, answer] form");

  // "Leaving Rooms (Rejecting Invites)", resident side: a leave template for the remote user,
  // and the signed leave, stored and sent on.
  r.add_blocking("GET", "/_matrix/federation/v1/make_leave/{roomId}/{userId}", run,
                 signed_by_peer(c, [&c](const Request& q, const std::string& origin) {
                   const auto room_id = q.param("roomId"), user_id = q.param("userId");
                   if (server_of(user_id) != origin || user_id.size() > 255 || user_id[0] != '@')
                     return matrix_error(403, "M_FORBIDDEN", "a server makes its own users leave only");
                   const auto version = require_room(c, room_id, origin);
                   return Response::json({{"room_version", version}, {"event", c.store.membership_template(room_id, user_id, "leave")}});
                 }),
                 "the template of a leave for a user of the asking server");
  auto send_leave = [&c](const Request& q, const std::string& origin, bool v2) {
    const auto room_id = q.param("roomId"), event_id = q.param("eventId");
    const auto version = require_room(c, room_id, origin);
    const auto event = verified_pdu(c, q.json(), version);
    if (event.value("event_id", "") != event_id || event.value("room_id", "") != room_id || event.value("type", "") != "m.room.member" ||
        event["content"].value("membership", json()) != "leave" || event.value("state_key", "") != event.value("sender", "") ||
        server_of(event.value("sender", "")) != origin)
      return matrix_error(400, "M_BAD_JSON", "not a leave of the asking server's user from this room with this event ID");
    const auto accepted = c.store.accept_remote(event, true);
    if (accepted.kind == Kind::kRejected || accepted.kind == Kind::kSoftFailed)
      return matrix_error(403, "M_FORBIDDEN", "the leave is refused: " + accepted.reason);
    if (accepted.kind == Kind::kMissing) return matrix_error(400, "M_BAD_JSON", "the leave refers to events this server does not have");
    if (c.sender) c.sender->wake();
    return Response::json(v2 ? json::object() : json::array({200, json::object()}));
  };
  r.add_blocking("PUT", "/_matrix/federation/v2/send_leave/{roomId}/{eventId}", run,
                 signed_by_peer(c, [send_leave](const Request& q, const std::string& origin) { return send_leave(q, origin, true); }),
                 "a leave made from our template: stored and sent on");
  r.add_blocking("PUT", "/_matrix/federation/v1/send_leave/{roomId}/{eventId}", run,
                 signed_by_peer(c, [send_leave](const Request& q, const std::string& origin) { return send_leave(q, origin, false); }),
                 "the same, in the first version's [200, {}] form");

  // "Inviting to a room", invitee side: an invitation of one of our members, countersigned
  // and kept (with the room's stripped state) until they join or decline.
  r.add_blocking("PUT", "/_matrix/federation/v2/invite/{roomId}/{eventId}", run,
                 signed_by_peer(c, [&c](const Request& q, const std::string& origin) {
                   const auto body = q.json();
                   const std::string version = body.contains("room_version") && body["room_version"].is_string() ? body["room_version"].get<std::string>() : "";
                   if (version != "10" && version != "11" && version != "12")
                     return Response::json({{"errcode", "M_INCOMPATIBLE_ROOM_VERSION"},
                                            {"error", "this server supports room versions 10, 11 and 12"},
                                            {"room_version", version}},
                                           400);
                   if (!body.contains("event") || !body["event"].is_object()) return matrix_error(400, "M_BAD_JSON", "event: the invite");
                   // A room we hold state of: its ACL decides whether the inviting server may.
                   if (c.store.room_version(q.param("roomId"))) require_acl(c, q.param("roomId"), origin);
                   const auto event = verified_pdu(c, body["event"], version);
                   const auto& content = event["content"];
                   const std::string user_id = event.value("state_key", "");
                   if (event.value("event_id", "") != q.param("eventId") || event.value("room_id", "") != q.param("roomId") ||
                       event.value("type", "") != "m.room.member" || content.value("membership", json()) != "invite" ||
                       server_of(event.value("sender", "")) != origin)
                     return matrix_error(400, "M_BAD_JSON", "not an invitation from the asking server with this event ID");
                   if (!is_local_user(c, user_id) || !active_member(c, user_id))
                     return matrix_error(404, "M_NOT_FOUND", "no such user here: " + user_id);
                   json stripped = json::array();
                   if (body.contains("invite_room_state") && body["invite_room_state"].is_array())
                     for (const auto& e : body["invite_room_state"])
                       if (e.is_object() && e.contains("type") && e["type"].is_string() && stripped.size() < 50) stripped.push_back(e);
                   auto countersigned = matrix::sign_event(pdu_for_wire(event), c.server_name, c.key, version);
                   // A room one of our members is in: the invitation comes again through /send
                   // and is stored there, checked against the room's state as it then stands;
                   // here it is only countersigned. What we hold may lag behind (an unban still
                   // on its way: Complement's TestUnbanViaInvite).
                   if (c.store.server_in_room(event.value("room_id", ""), c.server_name))
                     return Response::json({{"event", countersigned}});
                   auto stored = countersigned;
                   stored["event_id"] = event.value("event_id", "");
                   if (!c.store.add_remote_invite(stored, stripped))
                     return matrix_error(403, "M_FORBIDDEN", user_id + " cannot be invited into that room this way");
                   return Response::json({{"event", countersigned}});
                 }),
                 "an invitation of one of our members into another server's room");

  // "Retrieving events" and "Room State": for servers with a member in the room.
  r.add_blocking("GET", "/_matrix/federation/v1/event/{eventId}", run,
                 signed_by_peer(c, [&c](const Request& q, const std::string& origin) {
                   const auto found = c.store.events_by_id({q.param("eventId")});
                   if (found.empty()) return matrix_error(404, "M_NOT_FOUND", "no such event");
                   require_in_room(c, matrix::room_of(found[0]), origin);
                   return Response::json({{"origin", c.server_name},
                                          {"origin_server_ts", unix_millis()},
                                          {"pdus", json::array({pdu_for_wire(found[0])})}});
                 }),
                 "one event");
  const auto state = [&c](const Request& q, const std::string& origin, bool ids_only) {
    const auto room_id = q.param("roomId");
    require_in_room(c, room_id, origin);
    const auto event_id = q.query_value("event_id");
    const auto found = c.store.events_by_id({event_id});
    if (found.empty() || matrix::room_of(found[0]) != room_id) return matrix_error(404, "M_NOT_FOUND", "no such event in the room");
    const auto ids = c.store.state_ids_before(event_id);
    if (!ids) return matrix_error(404, "M_NOT_FOUND", "the state at that event is not known here");
    const auto chain = c.store.auth_chain(*ids);
    if (ids_only) {
      json chain_ids = json::array();
      for (const auto& e : chain) chain_ids.push_back(e.value("event_id", ""));
      return Response::json({{"pdu_ids", *ids}, {"auth_chain_ids", chain_ids}});
    }
    return Response::json({{"pdus", wire_list(c.store.events_by_id(*ids))}, {"auth_chain", wire_list(chain)}});
  };
  r.add_blocking("GET", "/_matrix/federation/v1/state_ids/{roomId}", run,
                 signed_by_peer(c, [state](const Request& q, const std::string& origin) { return state(q, origin, true); }),
                 "the room's state before an event, as event IDs");
  r.add_blocking("GET", "/_matrix/federation/v1/state/{roomId}", run,
                 signed_by_peer(c, [state](const Request& q, const std::string& origin) { return state(q, origin, false); }),
                 "the room's state before an event");
  r.add_blocking("GET", "/_matrix/federation/v1/event_auth/{roomId}/{eventId}", run,
                 signed_by_peer(c, [&c](const Request& q, const std::string& origin) {
                   const auto room_id = q.param("roomId");
                   require_in_room(c, room_id, origin);
                   const auto found = c.store.events_by_id({q.param("eventId")});
                   if (found.empty() || matrix::room_of(found[0]) != room_id) return matrix_error(404, "M_NOT_FOUND", "no such event in the room");
                   return Response::json({{"auth_chain", wire_list(c.store.auth_chain({q.param("eventId")}))}});
                 }),
                 "an event's auth chain");
  r.add_blocking("POST", "/_matrix/federation/v1/get_missing_events/{roomId}", run,
                 signed_by_peer(c, [&c](const Request& q, const std::string& origin) {
                   const auto room_id = q.param("roomId");
                   require_in_room(c, room_id, origin);
                   const auto body = q.json();
                   const auto ids = [&body](const char* field) {
                     std::vector<std::string> out;
                     if (body.contains(field) && body[field].is_array())
                       for (const auto& id : body[field])
                         if (id.is_string() && out.size() < 20) out.push_back(id.get<std::string>());
                     return out;
                   };
                   const auto earliest = ids("earliest_events");
                   int limit = 10;
                   if (body.contains("limit") && body["limit"].is_number_integer())
                     limit = static_cast<int>(std::clamp<int64_t>(body["limit"].get<int64_t>(), 1, kMaxBackfill));
                   const auto events = c.store.events_before(room_id, ids("latest_events"), {earliest.begin(), earliest.end()}, limit);
                   return Response::json({{"events", wire_list(events)}});
                 }),
                 "events between what the asking server has and what it got");
  r.add_blocking("GET", "/_matrix/federation/v1/backfill/{roomId}", run,
                 signed_by_peer(c, [&c](const Request& q, const std::string& origin) {
                   const auto room_id = q.param("roomId");
                   require_in_room(c, room_id, origin);
                   const auto from = q.query_values("v");
                   int limit = 10;
                   try {
                     limit = static_cast<int>(std::clamp<long long>(std::stoll(q.query_value("limit", "10")), 1, kMaxBackfill));
                   } catch (const std::exception&) {
                   }
                   // Backfill includes the events asked from.
                   auto events = c.store.events_by_id(std::vector<std::string>(from.begin(), from.begin() + std::min<std::size_t>(from.size(), 20)));
                   events.erase(std::remove_if(events.begin(), events.end(), [&](const json& e) { return matrix::room_of(e) != room_id; }),
                                events.end());
                   const auto more = c.store.events_before(room_id, from, {}, limit - static_cast<int>(events.size()));
                   events.insert(events.end(), more.begin(), more.end());
                   return Response::json({{"origin", c.server_name}, {"origin_server_ts", unix_millis()}, {"pdus", wire_list(events)}});
                 }),
                 "history before some events");
}

}  // namespace coop::federate
