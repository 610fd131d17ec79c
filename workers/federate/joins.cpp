// See joins.h.
#include "workers/federate/joins.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <set>

#include "common/clock.h"
#include "common/text.h"
#include "workers/federate/context.h"
#include "workers/federate/inbound.h"
#include "workers/federate/remote_keys.h"
#include "workers/federate/sender.h"
#include "workers/matrix/auth_rules.h"
#include "workers/matrix/event_hash.h"
#include "workers/matrix/signing.h"
#include "workers/room/store/room_store.h"

namespace coop::federate {

using nlohmann::json;
using Kind = room::RoomStore::Accepted::Kind;

namespace {

// A send_join answer may hold a big room's whole state.
constexpr std::size_t kMaxJoinAnswer = 256 << 20;
constexpr long kJoinTimeoutMs = 120000;

std::vector<json> list_of(const json& body, const char* field) {
  std::vector<json> out;
  if (body.contains(field) && body[field].is_array())
    for (const auto& e : body[field]) out.push_back(e);
  return out;
}

// The state and auth chain of a send_join answer, checked and stored as outliers; returns
// the IDs of the state events that were kept.
std::vector<std::string> store_join_answer(Context& c, const std::string& room_id, const std::string& version,
                                           const json& answer) {
  std::vector<json> events;
  std::set<std::string> state_ids;
  for (const auto& field : {"auth_chain", "state"})
    for (const auto& pdu : list_of(answer, field)) {
      try {
        auto event = verified_pdu(c, pdu, version);
        // A room version 12 create event has no room_id: its own ID makes the room's.
        const std::string of_room = event.contains("room_id") ? event.value("room_id", "")
                                    : event.value("type", "") == "m.room.create" ? "!" + event.value("event_id", "$").substr(1)
                                                                                 : "";
        if (of_room != room_id) continue;
        if (std::string(field) == "state") state_ids.insert(event.value("event_id", ""));
        events.push_back(std::move(event));
      } catch (const Error& e) {
        spdlog::info("an event of the join answer for {} is dropped: {}", room_id, e.what());
      }
    }
  std::stable_sort(events.begin(), events.end(),
                   [](const json& a, const json& b) { return a.value("depth", int64_t{0}) < b.value("depth", int64_t{0}); });
  // Oldest first, so that each event's auth events are stored before it; what still lacks
  // one after a pass gets another pass, until nothing moves.
  std::vector<json> waiting = std::move(events);
  while (!waiting.empty()) {
    std::vector<json> again;
    for (auto& event : waiting) {
      const auto accepted = c.store.accept_outlier(event);
      if (accepted.kind == Kind::kMissing) again.push_back(std::move(event));
    }
    if (again.size() == waiting.size()) break;
    waiting = std::move(again);
  }
  std::vector<std::string> kept;
  for (const auto& id : state_ids)
    if (!c.store.events_by_id({id}).empty()) kept.push_back(id);
  return kept;
}

}  // namespace

json join_remote_room(Context& c, const json& body) {
  std::string room = body.value("room", "");
  const std::string user_id = body.value("user_id", "");
  if (!is_local_user(c, user_id)) throw Error(errc::kMForbidden, "only this server's users join through it", 403);
  std::vector<std::string> servers;
  for (const auto& s : body.value("servers", json::array()))
    if (s.is_string() && valid_server_name(s.get<std::string>())) servers.push_back(s.get<std::string>());
  // Room version 12's room IDs name no server: the servers given (and an invitation's) are
  // the only ones to ask.
  if (room.empty() || (room[0] != '!' && room[0] != '#') || (room[0] == '#' && server_of(room).empty()) || room.size() > 255)
    throw Error(errc::kMInvalidParam, "not a room ID or alias: " + room, 400);
  if (room[0] == '#') {
    // "Querying for information": the alias's server names the room and who is in it.
    const auto host = server_of(room);
    const auto answer = federation_request(c, "GET", host, "/_matrix/federation/v1/query/directory?room_alias=" + percent_encode(room), nullptr);
    if (!answer.ok() || !answer.body.contains("room_id") || !answer.body["room_id"].is_string())
      throw Error(errc::kMNotFound, "no room " + room + (answer.error.empty() ? "" : " (" + answer.error + ")"), 404);
    for (const auto& s : answer.body.value("servers", json::array()))
      if (s.is_string() && valid_server_name(s.get<std::string>())) servers.push_back(s.get<std::string>());
    servers.push_back(host);
    room = answer.body["room_id"];
  }
  if (!server_of(room).empty()) servers.push_back(server_of(room));
  std::vector<std::string> candidates;
  for (const auto& s : servers)
    if (s != c.server_name && std::find(candidates.begin(), candidates.end(), s) == candidates.end()) candidates.push_back(s);
  if (candidates.empty()) throw Error(errc::kMNotFound, "no other server to join " + room + " through", 404);

  std::string last_error = "no server answered";
  for (const auto& server : candidates) {
    // make_join: the template, in a room version we support.
    const auto made = federation_request(c, "GET", server,
                                         "/_matrix/federation/v1/make_join/" + percent_encode(room) + "/" + percent_encode(user_id) +
                                             "?ver=10&ver=11&ver=12",
                                         nullptr);
    if (!made.ok()) {
      last_error = server + ": " + made.error;
      if (made.status == 403) throw Error(errc::kMForbidden, "not allowed to join " + room + ": " + made.error, 403);
      if (made.status == 400 && made.body.is_object() && made.body.value("errcode", json()) == "M_INCOMPATIBLE_ROOM_VERSION")
        throw Error("M_INCOMPATIBLE_ROOM_VERSION", room + " is in a room version this server does not support", 400);
      continue;
    }
    const std::string version = made.body.value("room_version", "");
    if (version != "10" && version != "11" && version != "12") {
      last_error = server + " offered room version " + version;
      continue;
    }
    json event = made.body.value("event", json::object());
    if (!event.is_object() || event.value("room_id", "") != room || event.value("sender", "") != user_id ||
        event.value("state_key", "") != user_id || event.value("type", "") != "m.room.member") {
      last_error = server + " sent a template that is not this user's join";
      continue;
    }
    json content = event.contains("content") && event["content"].is_object() ? event["content"] : json::object();
    content["membership"] = "join";
    if (body.contains("content") && body["content"].is_object())
      for (const char* field : {"displayname", "avatar_url"})
        if (body["content"].contains(field) && body["content"][field].is_string()) content[field] = body["content"][field];
    event["content"] = content;
    event["origin_server_ts"] = unix_millis();
    event["origin"] = c.server_name;
    for (const char* field : {"event_id", "unsigned", "signatures", "hashes"}) event.erase(field);
    event = matrix::sign_event(matrix::with_content_hash(std::move(event)), c.server_name, c.key, version);
    const auto event_id = matrix::event_id_for(event, version);

    const auto sent = federation_request(c, "PUT", server,
                                         "/_matrix/federation/v2/send_join/" + percent_encode(room) + "/" + percent_encode(event_id),
                                         &event, kMaxJoinAnswer, kJoinTimeoutMs);
    if (!sent.ok()) {
      last_error = server + ": " + sent.error;
      if (sent.status == 403) throw Error(errc::kMForbidden, "not allowed to join " + room + ": " + sent.error, 403);
      continue;
    }
    // A restricted join comes back countersigned by the resident server.
    json join = event;
    if (sent.body.contains("event") && sent.body["event"].is_object()) join = sent.body["event"];
    json create_event;
    for (const auto& e : list_of(sent.body, "state"))
      if (e.is_object() && e.value("type", "") == "m.room.create" && e.value("state_key", "") == "") create_event = e;
    if (create_event.is_null() || !create_event["content"].is_object() ||
        create_event["content"].value("room_version", "1") != version) {
      last_error = server + " answered without the room's create event of version " + version;
      continue;
    }
    // Room version 12: the room ID is the create event's hash, so the answer proves itself.
    if (matrix::has_room_creators(version) && matrix::room_id_for(create_event, version) != room) {
      last_error = server + " answered with the create event of another room";
      continue;
    }
    c.store.add_remote_room(room, version, create_event);
    const auto state = store_join_answer(c, room, version, sent.body);
    json checked;
    try {
      checked = verified_pdu(c, join, version);
    } catch (const Error& e) {
      last_error = server + " returned a join that does not check out: " + e.what();
      continue;
    }
    const auto accepted = c.store.accept_join(checked, state);
    if (accepted.kind == Kind::kRejected || accepted.kind == Kind::kMissing) {
      last_error = server + ": the room's state does not admit the join (" + accepted.reason + ")";
      continue;
    }
    if (c.sender) c.sender->wake();
    spdlog::info("{} joined {} through {} ({} state events)", user_id, room, server, state.size());
    return {{"room_id", room}, {"event_id", checked.value("event_id", "")}, {"server", server}};
  }
  throw Error(errc::kMUnknown, "cannot join " + room + ": " + last_error, 502);
}

json invite_remote_user(Context& c, const json& body) {
  const std::string room_id = body.value("room_id", ""), sender = body.value("sender", ""), user_id = body.value("user_id", "");
  if (!is_local_user(c, sender)) throw Error(errc::kMForbidden, "only this server's users invite through it", 403);
  const std::string server = server_of(user_id);
  if (user_id.size() > 255 || user_id.empty() || user_id[0] != '@' || !valid_server_name(server) || server == c.server_name)
    throw Error(errc::kMInvalidParam, "not a user of another server: " + user_id, 400);
  const auto version = c.store.room_version(room_id);
  if (!version) throw Error(errc::kMNotFound, "no room " + room_id + " here", 404);
  json event = c.store.membership_template(room_id, user_id, "invite", sender);  // M_FORBIDDEN when not allowed
  if (body.contains("content") && body["content"].is_object())
    for (const char* field : {"reason", "is_direct"})
      if (body["content"].contains(field)) event["content"][field] = body["content"][field];
  event["origin"] = c.server_name;
  event = matrix::sign_event(matrix::with_content_hash(std::move(event)), c.server_name, c.key, *version);
  const auto event_id = matrix::event_id_for(event, *version);
  // "Stripped state" for the invitee's client: what the room is, and who invites.
  json stripped = json::array();
  for (const auto& e : c.store.current_state(room_id, [&sender](const std::string& type, const std::string& key) {
         return type == "m.room.create" || type == "m.room.join_rules" || type == "m.room.name" || type == "m.room.avatar" ||
                type == "m.room.canonical_alias" || type == "m.room.encryption" || type == "m.room.topic" ||
                (type == "m.room.member" && key == sender);
       }))
    stripped.push_back({{"type", e.value("type", "")}, {"state_key", e.value("state_key", "")}, {"content", e["content"]},
                        {"sender", e.value("sender", "")}});
  const json request = {{"room_version", *version}, {"event", event}, {"invite_room_state", stripped}};
  const auto answer = federation_request(c, "PUT", server,
                                         "/_matrix/federation/v2/invite/" + percent_encode(room_id) + "/" + percent_encode(event_id),
                                         &request, 1 << 20, 30000);
  if (!answer.ok() || !answer.body.contains("event") || !answer.body["event"].is_object()) {
    if (answer.status == 403) throw Error(errc::kMForbidden, server + " refused the invitation: " + answer.error, 403);
    throw Error(errc::kMUnknown, "cannot deliver the invitation to " + server + ": " + answer.error, 502);
  }
  // The same event, now carrying the invitee's server's signature as well as ours.
  json countersigned = answer.body["event"];
  const auto& theirs = countersigned.contains("signatures") && countersigned["signatures"].is_object() &&
                               countersigned["signatures"].contains(server)
                           ? countersigned["signatures"][server]
                           : json();
  json checked;
  try {
    checked = verified_pdu(c, countersigned, *version);
  } catch (const Error& e) {
    throw Error(errc::kMUnknown, server + " returned an invitation that does not check out: " + e.what(), 502);
  }
  bool signed_by_them = false;
  if (theirs.is_object())
    for (const auto& [key_id, sig] : theirs.items())
      if (const auto key = c.remote.public_key(server, key_id))
        signed_by_them = signed_by_them || matrix::verify_event_signature(pdu_for_wire(checked), server, key_id, *key, *version);
  if (checked.value("event_id", "") != event_id || !signed_by_them)
    throw Error(errc::kMUnknown, server + " did not countersign the invitation", 502);
  const auto accepted = c.store.accept_remote(checked, true);
  if (accepted.kind != Kind::kStored && accepted.kind != Kind::kDuplicate)
    throw Error(errc::kMForbidden, "the invitation cannot be stored: " + accepted.reason, 403);
  if (c.sender) c.sender->wake();
  return {{"event_id", event_id}};
}

json leave_remote_room(Context& c, const json& body) {
  const std::string room_id = body.value("room_id", ""), user_id = body.value("user_id", "");
  if (!is_local_user(c, user_id)) throw Error(errc::kMForbidden, "only this server's users leave through it", 403);
  if (room_id.empty() || room_id[0] != '!') throw Error(errc::kMInvalidParam, "not a room ID: " + room_id, 400);
  std::vector<std::string> candidates;
  for (const auto& s : body.value("servers", json::array()))
    if (s.is_string() && valid_server_name(s.get<std::string>()) && s.get<std::string>() != c.server_name &&
        std::find(candidates.begin(), candidates.end(), s.get<std::string>()) == candidates.end())
      candidates.push_back(s.get<std::string>());
  std::string last_error = "no server to leave through";
  for (const auto& server : candidates) {
    const auto made = federation_request(
        c, "GET", server, "/_matrix/federation/v1/make_leave/" + percent_encode(room_id) + "/" + percent_encode(user_id), nullptr);
    const std::string version = made.ok() ? made.body.value("room_version", json()).is_string() ? made.body["room_version"].get<std::string>() : "" : "";
    if (!made.ok() || (version != "10" && version != "11" && version != "12") || !made.body.contains("event") || !made.body["event"].is_object()) {
      last_error = server + ": " + (made.error.empty() ? "no usable leave template" : made.error);
      continue;
    }
    json event = made.body["event"];
    if (event.value("room_id", json()) != room_id || event.value("sender", json()) != user_id ||
        event.value("state_key", json()) != user_id || event.value("type", json()) != "m.room.member") {
      last_error = server + " sent a template that is not this user's leave";
      continue;
    }
    event["content"] = {{"membership", "leave"}};
    event["origin_server_ts"] = unix_millis();
    event["origin"] = c.server_name;
    for (const char* field : {"event_id", "unsigned", "signatures", "hashes"}) event.erase(field);
    event = matrix::sign_event(matrix::with_content_hash(std::move(event)), c.server_name, c.key, version);
    const auto event_id = matrix::event_id_for(event, version);
    const auto sent = federation_request(
        c, "PUT", server, "/_matrix/federation/v2/send_leave/" + percent_encode(room_id) + "/" + percent_encode(event_id), &event);
    if (!sent.ok()) {
      last_error = server + ": " + sent.error;
      continue;
    }
    return {{"event_id", event_id}, {"server", server}};
  }
  throw Error(errc::kMUnknown, "cannot leave " + room_id + ": " + last_error, 502);
}

}  // namespace coop::federate
