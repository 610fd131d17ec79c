// Client-Server API "Rooms": creation, membership, state, members, aliases and the room
// directory.
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "common/control/client.h"
#include "common/error.h"
#include "common/worker_runtime.h"
#include "common/text.h"
#include "workers/matrix/ids.h"
#include "workers/room/client_impl.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;

bool is_remote(ClientApi::Impl& api, const std::string& user_id) {
  const auto colon = user_id.find(':');
  return colon != std::string::npos && user_id.substr(colon + 1) != api.store.server_name();
}

Response create_room(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  auto body = q.json();
  json profile = json::object();
  if (const auto name = api.display_name(s.user_id); !name.empty()) profile["displayname"] = name;
  if (const auto avatar = api.store.profile(s.user_id).second; avatar && !avatar->empty()) profile["avatar_url"] = *avatar;
  // Other servers' invitees are invited through their servers once the room exists.
  std::vector<std::string> remote;
  if (body.contains("invite") && body["invite"].is_array()) {
    json local = json::array();
    for (const auto& invitee : body["invite"])
      if (invitee.is_string() && is_remote(api, invitee.get<std::string>()))
        remote.push_back(invitee.get<std::string>());
      else
        local.push_back(invitee);
    body["invite"] = local;
  }
  auto created = api.store.create_room(s.user_id, body, profile);
  const auto room_id = created.value("room_id", "");
  if (body.value("visibility", "private") == "public") api.store.set_published(room_id, true);
  for (const auto& invitee : remote) {
    json content = {{"membership", "invite"}};
    if (body.value("is_direct", false)) content["is_direct"] = true;
    api.federate("/v1/invite", {{"room_id", room_id}, {"sender", s.user_id}, {"user_id", invitee}, {"content", content}},
                  std::chrono::seconds(45));
  }
  return ok(created);
}

// ---- membership ----

// A room that lives on another server (its ID or alias names another server, and we are not
// in it): coop-federate joins it over federation ("Joining Rooms"), through the servers the
// client named (server_name / via) and the room's own.
std::optional<std::string> join_elsewhere(ClientApi::Impl& api, const Request& q, const std::string& target,
                                          const std::string& user_id) {
  const auto colon = target.find(':');
  if (target.empty() || (target[0] != '!' && target[0] != '#')) return std::nullopt;
  // Room version 12's room IDs name no server (they are the create event's hash): one we do
  // not hold is joined through the servers given.
  if (colon == std::string::npos && (target[0] == '#' || api.store.room_version(target))) return std::nullopt;
  if (colon != std::string::npos && target.substr(colon + 1) == api.store.server_name()) return std::nullopt;
  if (target[0] == '#' && api.store.room_for_alias(target)) return std::nullopt;
  // A room whose state we hold (some member of ours is in it): joined here.
  if (target[0] == '!' && api.store.state_event(target, "m.room.create", "")) return std::nullopt;
  json servers = json::array();
  for (const char* key : {"server_name", "via"})
    for (const auto& value : q.query_values(key)) servers.push_back(value);
  // An invitation names a server that is in the room: the inviter's.
  if (target[0] == '!')
    if (const auto invite = api.store.remote_invite(target, user_id)) {
      const auto at = invite->sender.find(':');
      if (at != std::string::npos) servers.push_back(invite->sender.substr(at + 1));
    }
  json content = json::object();
  if (const auto name = api.display_name(user_id); !name.empty()) content["displayname"] = name;
  if (const auto avatar = api.store.profile(user_id).second; avatar && !avatar->empty()) content["avatar_url"] = *avatar;
  const json body = {{"room", target}, {"user_id", user_id}, {"servers", servers}, {"content", content}};
  return api.federate("/v1/join", body, std::chrono::seconds(150)).value("room_id", "");
}

Response join(ClientApi::Impl& api, const Request& q, const std::string& target) {
  const auto s = api.authenticate(q);
  if (auto joined = join_elsewhere(api, q, target, s.user_id)) {
    api.announce_devices(s.user_id, *joined);
    return ok({{"room_id", *joined}});
  }
  const auto room_id = api.resolve_room(target);
  if (!api.store.room_version(room_id)) fail(404, errc::kMNotFound, "no room " + room_id);
  const auto membership = api.store.membership(room_id, s.user_id);
  // A member who left one of coop's Spaces may come back while they belong in it (it is
  // invite-only): coop invites them again first.
  if (membership == "leave" && api.readmit) api.readmit(room_id, s.user_id);
  if (membership != "join") {
    json content = {{"membership", "join"}};
    const auto name = api.display_name(s.user_id);
    if (!name.empty()) content["displayname"] = name;
    if (const auto avatar = api.store.profile(s.user_id).second; avatar && !avatar->empty()) content["avatar_url"] = *avatar;
    api.store.send_event(room_id, s.user_id, "m.room.member", content, s.user_id);
    api.announce_devices(s.user_id, room_id);
  }
  return ok({{"room_id", room_id}});
}

Response join_by_id_or_alias(ClientApi::Impl& api, const Request& q) { return join(api, q, q.param("roomIdOrAlias")); }

// Client-Server API "Knocking on rooms": a request to join that the room's moderators answer
// with an invite (or a kick).
Response knock(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto room_id = api.resolve_room(q.param("roomIdOrAlias"));
  if (!api.store.room_version(room_id)) fail(404, errc::kMNotFound, "no room " + room_id);
  json content = {{"membership", "knock"}};
  const auto body = q.json();
  if (body.contains("reason") && body["reason"].is_string()) content["reason"] = body["reason"];
  if (const auto name = api.display_name(s.user_id); !name.empty()) content["displayname"] = name;
  api.store.send_event(room_id, s.user_id, "m.room.member", content, s.user_id);
  return ok({{"room_id", room_id}});
}
Response join_by_id(ClientApi::Impl& api, const Request& q) { return join(api, q, q.param("roomId")); }

// A member event about the sender (leave) or about the body's user_id (invite, kick, ban, unban).
Response change_membership(ClientApi::Impl& api, const Request& q, const char* membership, bool target_from_body) {
  const auto s = api.authenticate(q);
  const auto body = q.json();
  const std::string target = target_from_body ? body.value("user_id", "") : s.user_id;
  if (target.empty()) fail(400, errc::kMMissingParam, "user_id is required");
  json content = {{"membership", membership}};
  if (body.contains("reason")) content["reason"] = body["reason"];
  const auto room_id = q.param("roomId");
  // Another server's user is invited through their server ("Inviting to a room").
  if (std::string(membership) == "invite" && is_remote(api, target)) {
    api.federate("/v1/invite", {{"room_id", room_id}, {"sender", s.user_id}, {"user_id", target}, {"content", content}},
                  std::chrono::seconds(45));
    return ok(json::object());
  }
  // An invitation into a room on another server that we are not in: declined through the
  // inviter's server (make_leave, send_leave); when it cannot be reached, here only, so that
  // the member is rid of it either way.
  if (std::string(membership) == "leave" && target == s.user_id && !api.store.state_event(room_id, "m.room.create", ""))
    if (const auto invite = api.store.remote_invite(room_id, s.user_id)) {
      const auto at = invite->sender.find(':');
      json servers = json::array();
      if (at != std::string::npos) servers.push_back(invite->sender.substr(at + 1));
      const auto colon = room_id.find(':');
      if (colon != std::string::npos) servers.push_back(room_id.substr(colon + 1));
      try {
        api.federate("/v1/leave", {{"room_id", room_id}, {"user_id", s.user_id}, {"servers", servers}}, std::chrono::seconds(45));
      } catch (const Error& e) {
        spdlog::info("{} declines {} here only: {}", s.user_id, room_id, e.what());
      }
      api.store.decline_remote_invite(room_id, s.user_id);
      return ok(json::object());
    }
  api.store.send_event(room_id, s.user_id, "m.room.member", content, target);
  return ok(json::object());
}

Response leave(ClientApi::Impl& api, const Request& q) { return change_membership(api, q, "leave", false); }
Response invite(ClientApi::Impl& api, const Request& q) { return change_membership(api, q, "invite", true); }
Response kick(ClientApi::Impl& api, const Request& q) { return change_membership(api, q, "leave", true); }
Response ban(ClientApi::Impl& api, const Request& q) { return change_membership(api, q, "ban", true); }
Response unban(ClientApi::Impl& api, const Request& q) { return change_membership(api, q, "leave", true); }

Response forget(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  api.store.forget(q.param("roomId"), s.user_id);
  return ok(json::object());
}

Response joined_rooms(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  json rooms = json::array();
  for (const auto& [room, m] : api.store.rooms_of(s.user_id))
    if (m == "join") rooms.push_back(room);
  return ok({{"joined_rooms", rooms}});
}

// ---- state and members ----

Response put_state(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto event = api.store.send_event(q.param("roomId"), s.user_id, q.param("eventType"), q.json(),
                                          q.param("stateKey"));
  return ok({{"event_id", event.value("event_id", "")}});
}

Response get_state(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  api.require_joined(q.param("roomId"), s.user_id);
  auto event = api.store.state_event(q.param("roomId"), q.param("eventType"), q.param("stateKey"));
  if (!event) fail(404, errc::kMNotFound, "no such state");
  return ok((*event)["content"]);
}

Response all_state(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  api.require_joined(q.param("roomId"), s.user_id);
  json list = json::array();
  for (const auto& e : api.store.current_state(q.param("roomId"))) list.push_back(api.client_event(e));
  return ok(list);
}

Response members(ClientApi::Impl& api, const Request& q, bool joined_only) {
  const auto s = api.authenticate(q);
  api.require_joined(q.param("roomId"), s.user_id);
  json chunk = json::array(), joined = json::object();
  for (const auto& e : api.store.current_state(q.param("roomId"))) {
    if (e.value("type", "") != "m.room.member") continue;
    chunk.push_back(api.client_event(e));
    if (e["content"].value("membership", "") == "join")
      joined[e.value("state_key", "")] = {{"display_name", e["content"].value("displayname", "")}};
  }
  return joined_only ? ok({{"joined", joined}}) : ok({{"chunk", chunk}});
}

Response all_members(ClientApi::Impl& api, const Request& q) { return members(api, q, false); }
Response joined_members(ClientApi::Impl& api, const Request& q) { return members(api, q, true); }

// ---- aliases and the directory ----

Response get_alias(ClientApi::Impl& api, const Request& q) {
  const auto alias = q.param("roomAlias");
  const auto server = matrix::server_of(alias);
  // Another server's alias: asked of it (Server-Server API GET /query/directory).
  if (!alias.empty() && alias[0] == '#' && !server.empty() && server != api.server() && matrix::valid_server_name(server)) {
    const auto answer = api.federate("/v1/directory", {{"alias", alias}}, std::chrono::seconds(20));
    if (!answer.value("room_id", json()).is_string()) fail(404, errc::kMNotFound, "no such alias");
    return ok({{"room_id", answer["room_id"]}, {"servers", answer.value("servers", json::array())}});
  }
  auto room = api.store.room_for_alias(alias);
  if (!room) fail(404, errc::kMNotFound, "no such alias");
  return ok({{"room_id", *room}, {"servers", {api.server()}}});
}

Response put_alias(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  // Client-Server API PUT /directory/room: "#localpart:this server", at most 255 bytes.
  const auto alias = q.param("roomAlias");
  if (alias.size() < 4 || alias.size() > 255 || alias[0] != '#' || alias.find(':') == 1 || matrix::server_of(alias) != api.server())
    fail(400, errc::kMInvalidParam, "an alias here is #name:" + api.server());
  const auto room_id = q.json().value("room_id", "");
  api.require_joined(room_id, s.user_id);
  api.store.add_alias(q.param("roomAlias"), room_id, s.user_id);
  return ok(json::object());
}

Response get_visibility(ClientApi::Impl& api, const Request& q) {
  if (!api.store.room_version(q.param("roomId"))) fail(404, errc::kMNotFound, "no such room");
  return ok({{"visibility", api.store.published(q.param("roomId")) ? "public" : "private"}});
}

Response put_visibility(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  api.require_joined(q.param("roomId"), s.user_id);
  const auto [mine, needed] = api.power(q.param("roomId"), s.user_id, "state_default", 50);
  if (mine < needed) fail(403, errc::kMForbidden, "your power level is too low to publish this room");
  const auto visibility = q.json().value("visibility", "");
  if (visibility != "public" && visibility != "private") fail(400, errc::kMInvalidParam, "visibility is public or private");
  api.store.set_published(q.param("roomId"), visibility == "public");
  return ok(json::object());
}

Response room_aliases(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  api.require_joined(q.param("roomId"), s.user_id);
  return ok({{"aliases", api.store.aliases_of(q.param("roomId"))}});
}

Response delete_alias(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto room = api.store.room_for_alias(q.param("roomAlias"));
  if (!room) fail(404, errc::kMNotFound, "no such alias");
  // The alias's creator, or a moderator of the room (Client-Server API "Room aliases").
  const auto [mine, needed] = api.power(*room, s.user_id, "state_default", 50);
  if (api.store.alias_creator(q.param("roomAlias")) != s.user_id && mine < needed)
    fail(403, errc::kMForbidden, "only the alias's creator or a moderator can remove it");
  api.store.remove_alias(q.param("roomAlias"));
  return ok(json::object());
}

// Client-Server API "Listing rooms": the directory, filtered by a search term, in pages whose
// token is the offset into the list (rooms sorted by members, then ID, so pages hold still).
json directory_page(ClientApi::Impl& api, int limit, const std::string& since, const std::string& term) {
  std::vector<std::pair<int, json>> entries;
  const std::string needle = ascii_lower(term);
  for (const auto& room_id : api.store.public_rooms()) {
    json entry = {{"room_id", room_id}, {"world_readable", false}, {"guest_can_join", false}, {"join_rule", "invite"}};
    int joined = 0;
    for (const auto& e : api.store.current_state(room_id)) {
      const std::string type = e.value("type", "");
      const json& content = e["content"];
      if (type == "m.room.member") joined += content.value("membership", "") == "join";
      else if (type == "m.room.name") entry["name"] = content.value("name", "");
      else if (type == "m.room.topic") entry["topic"] = content.value("topic", "");
      else if (type == "m.room.canonical_alias") entry["canonical_alias"] = content.value("alias", "");
      else if (type == "m.room.avatar") entry["avatar_url"] = content.value("url", "");
      else if (type == "m.room.join_rules") entry["join_rule"] = content.value("join_rule", "invite");
      else if (type == "m.room.history_visibility") entry["world_readable"] = content.value("history_visibility", "") == "world_readable";
      else if (type == "m.room.create" && content.contains("type")) entry["room_type"] = content["type"];
    }
    entry["num_joined_members"] = joined;
    if (!needle.empty()) {
      const std::string haystack =
          ascii_lower(entry.value("name", "") + "\n" + entry.value("topic", "") + "\n" + entry.value("canonical_alias", ""));
      if (haystack.find(needle) == std::string::npos) continue;
    }
    entries.emplace_back(joined, std::move(entry));
  }
  std::sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
    return a.first != b.first ? a.first > b.first : a.second.value("room_id", "") < b.second.value("room_id", "");
  });
  std::size_t offset = 0;
  if (!since.empty()) {
    if (since[0] != 'p') fail(400, errc::kMInvalidParam, "since is not a token of this server");
    offset = static_cast<std::size_t>(page_token(since.substr(1), "since"));
  }
  json chunk = json::array();
  for (std::size_t i = offset; i < entries.size() && chunk.size() < static_cast<std::size_t>(limit); ++i)
    chunk.push_back(entries[i].second);
  json body = {{"chunk", chunk}, {"total_room_count_estimate", entries.size()}};
  if (offset + chunk.size() < entries.size()) body["next_batch"] = "p" + std::to_string(offset + chunk.size());
  if (offset > 0) body["prev_batch"] = "p" + std::to_string(offset > static_cast<std::size_t>(limit) ? offset - limit : 0);
  return body;
}

constexpr int kMaxDirectoryPage = 500;

Response public_rooms(ClientApi::Impl& api, const Request& q) {
  const int limit = std::clamp(std::atoi(q.query_value("limit", "100").c_str()), 1, kMaxDirectoryPage);
  return ok(directory_page(api, limit, q.query_value("since"), ""));
}

Response search_public_rooms(ClientApi::Impl& api, const Request& q) {
  api.authenticate(q);
  const auto body = q.json();
  const auto server = body.value("server", json(api.server()));
  if (server != json(api.server())) fail(400, errc::kMInvalidParam, "this server lists only its own rooms");
  const auto limit_value = body.value("limit", json(100));
  const int limit = limit_value.is_number_integer() ? std::clamp(limit_value.get<int>(), 1, kMaxDirectoryPage) : 100;
  const auto since = body.value("since", json(""));
  const auto filter = body.value("filter", json::object());
  const auto term = filter.is_object() ? filter.value("generic_search_term", json("")) : json("");
  return ok(directory_page(api, limit, since.is_string() ? since.get<std::string>() : "",
                           term.is_string() ? term.get<std::string>() : ""));
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kRoomTable[] = {
    {"POST", "/createRoom", Mount::kV3AndR0, Run::kBlocking, create_room, "create a room"},
    {"POST", "/join/{roomIdOrAlias}", Mount::kV3AndR0, Run::kBlocking, join_by_id_or_alias, "join a room by ID or alias"},
    {"POST", "/rooms/{roomId}/join", Mount::kV3AndR0, Run::kBlocking, join_by_id, "join a room"},
    {"POST", "/knock/{roomIdOrAlias}", Mount::kV3AndR0, Run::kBlocking, knock, "ask to join a room"},
    {"POST", "/rooms/{roomId}/leave", Mount::kV3AndR0, Run::kBlocking, leave, "leave a room"},
    {"POST", "/rooms/{roomId}/invite", Mount::kV3AndR0, Run::kBlocking, invite, "invite a member"},
    {"POST", "/rooms/{roomId}/kick", Mount::kV3AndR0, Run::kBlocking, kick, "remove a member"},
    {"POST", "/rooms/{roomId}/ban", Mount::kV3AndR0, Run::kBlocking, ban, "ban a member"},
    {"POST", "/rooms/{roomId}/unban", Mount::kV3AndR0, Run::kBlocking, unban, "lift a ban"},
    {"POST", "/rooms/{roomId}/forget", Mount::kV3AndR0, Run::kBlocking, forget, "forget a room left"},
    {"GET", "/joined_rooms", Mount::kV3AndR0, Run::kBlocking, joined_rooms, "the rooms the member is in"},
    {"PUT", "/rooms/{roomId}/state/{eventType}/{stateKey}", Mount::kV3AndR0, Run::kBlocking, put_state, "send a state event"},
    {"PUT", "/rooms/{roomId}/state/{eventType}", Mount::kV3AndR0, Run::kBlocking, put_state, "send a state event (empty state key)"},
    {"GET", "/rooms/{roomId}/state/{eventType}/{stateKey}", Mount::kV3AndR0, Run::kBlocking, get_state, "one state event's content"},
    {"GET", "/rooms/{roomId}/state/{eventType}", Mount::kV3AndR0, Run::kBlocking, get_state, "one state event's content (empty state key)"},
    {"GET", "/rooms/{roomId}/state", Mount::kV3AndR0, Run::kBlocking, all_state, "the room's current state"},
    {"GET", "/rooms/{roomId}/members", Mount::kV3AndR0, Run::kBlocking, all_members, "the room's member events"},
    {"GET", "/rooms/{roomId}/joined_members", Mount::kV3AndR0, Run::kBlocking, joined_members, "the joined members"},
    {"GET", "/directory/room/{roomAlias}", Mount::kV3AndR0, Run::kBlocking, get_alias, "resolve an alias"},
    {"PUT", "/directory/room/{roomAlias}", Mount::kV3AndR0, Run::kBlocking, put_alias, "create an alias"},
    {"GET", "/directory/list/room/{roomId}", Mount::kV3AndR0, Run::kBlocking, get_visibility, "is the room published"},
    {"PUT", "/directory/list/room/{roomId}", Mount::kV3AndR0, Run::kBlocking, put_visibility, "publish or unpublish the room"},
    {"GET", "/rooms/{roomId}/aliases", Mount::kV3AndR0, Run::kBlocking, room_aliases, "the room's aliases"},
    {"DELETE", "/directory/room/{roomAlias}", Mount::kV3AndR0, Run::kBlocking, delete_alias, "remove an alias"},
    {"GET", "/publicRooms", Mount::kV3AndR0, Run::kBlocking, public_rooms, "the published rooms"},
    {"POST", "/publicRooms", Mount::kV3AndR0, Run::kBlocking, search_public_rooms, "search the published rooms"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kRoomRoutes = kRoomTable;

}  // namespace coop::room
