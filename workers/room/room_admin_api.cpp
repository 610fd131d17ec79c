// Thin control handlers for rooms, Spaces and exports.
#include "workers/room/room_admin_api.h"

#include <nlohmann/json.hpp>

#include <chrono>

#include "common/error.h"
#include "common/worker_runtime.h"
#include "common/digest.h"
#include "common/clock.h"
#include "workers/room/jitsi.h"
#include "workers/room/space_sync.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

namespace {

using control::Request;
using control::Response;
using nlohmann::json;

json room_summary(RoomStore& store, const std::string& room_id, const std::map<std::string, std::pair<std::string, std::string>>& managed) {
  json entry = {{"room_id", room_id}, {"name", nullptr}, {"topic", nullptr}, {"type", "room"}, {"join_rule", "invite"},
                {"joined_members", 0}, {"children", json::array()}, {"parents", json::array()}, {"alias", nullptr},
                {"encrypted", false}};
  int joined = 0;
  for (const auto& e : store.current_state(room_id)) {
    const std::string type = e.value("type", "");
    const json& content = e["content"];
    if (type == "m.room.name") entry["name"] = content.value("name", "");
    if (type == "m.room.topic") entry["topic"] = content.value("topic", "");
    if (type == "m.room.canonical_alias") entry["alias"] = content.value("alias", "");
    if (type == "m.room.join_rules") entry["join_rule"] = content.value("join_rule", "invite");
    if (type == "m.room.create" && content.value("type", "") == "m.space") entry["type"] = "space";
    if (type == "m.room.encryption" && content.contains("algorithm")) entry["encrypted"] = true;
    if (type == "m.room.member" && content.value("membership", "") == "join") ++joined;
    if (type == "m.space.child" && content.contains("via")) entry["children"].push_back(e.value("state_key", ""));
    if (type == "m.space.parent" && content.contains("via")) entry["parents"].push_back(e.value("state_key", ""));
  }
  entry["joined_members"] = joined;
  if (auto it = managed.find(room_id); it != managed.end()) {
    entry["managed"] = it->second.first;
    if (!it->second.second.empty()) entry["group"] = it->second.second;
  }
  return entry;
}

std::map<std::string, std::pair<std::string, std::string>> managed_spaces(RoomStore& store) {
  std::map<std::string, std::pair<std::string, std::string>> out;
  for (const auto& [room_id, kind, group] : store.coop_spaces()) out[room_id] = {kind, group};
  return out;
}

// A room ID, an alias, or a room's name.
std::string find_room(RoomStore& store, const std::string& ref) {
  if (!ref.empty() && ref[0] == '!' && store.room_version(ref)) return ref;
  if (!ref.empty() && ref[0] == '#') {
    if (auto id = store.room_for_alias(ref)) return *id;
  }
  std::vector<std::string> matches;
  for (const auto& room_id : store.all_rooms())
    if (auto name = store.state_event(room_id, "m.room.name", ""); name && (*name)["content"].value("name", "") == ref)
      matches.push_back(room_id);
  if (matches.size() == 1) return matches.front();
  if (matches.size() > 1) throw Error(errc::kAmbiguous, "several rooms are named '" + ref + "'; use the room ID", 409);
  throw Error(errc::kNoSuchRoom, "no room '" + ref + "'", 404);
}

// Who a control request acts as in a room: the shard's @coop (empty handle) or a member, who
// must be in the room; the room's power levels then decide, as for any client.
std::string acting_member(RoomStore& store, const std::string& room_id, const std::string& handle) {
  const std::string member = "@" + (handle.empty() ? std::string("coop") : handle) + ":" + store.server_name();
  if (store.membership(room_id, member) != "join")
    throw Error(errc::kForbidden,
                member + " is not in this room" + (handle.empty() ? ": act as a member who is (--as HANDLE)" : ""), 403);
  return member;
}

// The room's io.element.widgets.layout content with one widget placed (or taken out when
// place is null); other widgets keep their places.
json layout_with(RoomStore& store, const std::string& room_id, const std::string& widget_id, const json& place) {
  json layout = json::object();
  if (auto current = store.state_event(room_id, "io.element.widgets.layout", ""))
    layout = (*current)["content"].is_object() ? (*current)["content"] : json::object();
  if (!layout.contains("widgets") || !layout["widgets"].is_object()) layout["widgets"] = json::object();
  if (place.is_null())
    layout["widgets"].erase(widget_id);
  else
    layout["widgets"][widget_id] = place;
  return layout;
}

// A string member of a JSON object that clients wrote, "" when it is missing or not a string
// (a widget with {"type": 5} must not stop the room's calls).
std::string text_field(const json& object, const char* key) {
  if (!object.is_object()) return "";
  const auto it = object.find(key);
  return it != object.end() && it->is_string() ? it->get<std::string>() : "";
}

// The room's Jitsi widgets that are on (Element's type "jitsi", or "m.jitsi"), by state key.
std::vector<json> jitsi_widgets(RoomStore& store, const std::string& room_id) {
  std::vector<json> found;
  for (const auto& e : store.current_state(room_id)) {
    if (text_field(e, "type") != "im.vector.modular.widgets") continue;
    const std::string type = text_field(e["content"], "type");
    if ((type == "jitsi" || type == "m.jitsi") && !text_field(e["content"], "url").empty()) found.push_back(e);
  }
  return found;
}

json client_view(json event) {
  for (const char* key : {"hashes", "signatures", "auth_events", "prev_events", "depth"}) event.erase(key);
  return event;
}

}  // namespace

void add_room_admin_routes(WorkerRuntime& runtime, RoomStore& store, SpaceSync& spaces,
                           std::shared_ptr<const JitsiSettings> jitsi) {
  auto& r = runtime.router();
  auto run = runtime.blocking_runner();

  r.add_blocking("GET", "/v1/rooms", run, [&store](const Request& q) {
    const auto managed = managed_spaces(store);
    // ?member=HANDLE: only the rooms that member has joined (what coop-docs offers to post in).
    const std::string member = q.query_value("member");
    const std::string user_id = member.empty() ? "" : "@" + member + ":" + store.server_name();
    json list = json::array();
    for (const auto& room_id : store.all_rooms()) {
      if (!user_id.empty()) {
        const auto joined = store.state_event(room_id, "m.room.member", user_id);
        if (!joined || (*joined)["content"].value("membership", "") != "join") continue;
      }
      list.push_back(room_summary(store, room_id, managed));
    }
    return Response::json(list);
  }, "every room and Space with its name, type, join rule and members (?member=HANDLE: that member's rooms)");

  r.add_blocking("GET", "/v1/rooms/{room}", run, [&store](const Request& q) {
    const auto room_id = find_room(store, q.param("room"));
    auto entry = room_summary(store, room_id, managed_spaces(store));
    entry["version"] = store.room_version(room_id).value_or("");
    return Response::json(entry);
  }, "one room (by ID, alias or name)");

  r.add_blocking("GET", "/v1/rooms/{room}/members", run, [&store](const Request& q) {
    const auto room_id = find_room(store, q.param("room"));
    json list = json::array();
    for (const auto& e : store.current_state(room_id))
      if (e.value("type", "") == "m.room.member")
        list.push_back({{"user_id", e.value("state_key", "")}, {"membership", e["content"].value("membership", "")},
                        {"display_name", e["content"].value("displayname", "")}});
    return Response::json(list);
  }, "a room's members and their membership");

  r.add_blocking("POST", "/v1/rooms/{room}/messages", run, [&store](const Request& q) {
    // A text message from the shard itself (@coop, who made the rooms coop creates) or from a
    // member who is in the room; the auth rules decide as for any client.
    const auto body = q.json();
    const std::string text = body.value("body", "");
    if (text.empty() || text.size() > 16384) throw Error(errc::kUsage, "a message needs a body (at most 16 KiB)", 400);
    const auto room_id = find_room(store, q.param("room"));
    const std::string handle = body.value("sender", "");
    const std::string sender = handle.empty() ? "@coop:" + store.server_name() : "@" + handle + ":" + store.server_name();
    json content{{"msgtype", "m.text"}, {"body", text}};
    if (body.contains("formatted_body") && body["formatted_body"].is_string()) {
      content["format"] = "org.matrix.custom.html";
      content["formatted_body"] = body["formatted_body"];
    }
    const auto event = store.send_event(room_id, sender, "m.room.message", content, std::nullopt);
    return Response::json(client_view(event), 201);
  }, "post a text message ({body, sender}) as the shard's @coop user or as a member in the room");

  r.add_blocking("POST", "/v1/rooms/{room}/widgets", run, [&store](const Request& q) {
    // A widget as Element writes one (im.vector.modular.widgets, state_key = the widget's id)
    // and a place for it in the room's right panel (io.element.widgets.layout), sent as the
    // member: the room's power levels decide, as for any client (M_FORBIDDEN, 403, when the
    // member may not change the room's state). Never as @coop on a member's behalf: that would
    // let anyone put any page in the panel of a room they may not change.
    const auto body = q.json();
    const std::string url = body.value("url", ""), name = body.value("name", "");
    if (url.rfind("https://", 0) != 0 && url.rfind("http://", 0) != 0)
      throw Error(errc::kUsage, "a widget needs an http(s) url", 400);
    if (url.size() > 4096 || name.size() > 512) throw Error(errc::kUsage, "the widget's url or name is too long", 400);
    const auto room_id = find_room(store, q.param("room"));
    const std::string member = acting_member(store, room_id, body.value("sender", ""));
    std::string id = body.value("id", "");
    if (id.empty() || id.size() > 64) id = "coop_docs_" + std::to_string(std::hash<std::string>{}(url) & 0xffffffffffff);
    json widget{{"type", body.value("type", "m.custom")},
                {"url", url},
                {"name", name.empty() ? "Document" : name},
                {"data", {{"title", name}}},
                {"id", id},
                {"creatorUserId", member},
                {"waitForIframeLoad", true}};
    auto send_state = [&](const std::string& type, const json& content, const std::string& key) {
      return store.send_event(room_id, member, type, content, key);
    };
    const auto widget_event = send_state("im.vector.modular.widgets", widget, id);
    const auto layout_event = send_state("io.element.widgets.layout", layout_with(store, room_id, id, {{"container", "right"}}), "");
    return Response::json({{"room_id", room_id},
                           {"widget_id", id},
                           {"encrypted", room_summary(store, room_id, {}).value("encrypted", false)},
                           {"widget", client_view(widget_event)},
                           {"layout", client_view(layout_event)}},
                          201);
  }, "add a widget ({url, name, sender, type}) to a room and to its right panel, as Element does");

  // Jitsi calls (coop room call): the widget Element writes, ended by emptying it; guest links.
  auto require_jitsi = [jitsi] {
    if (!jitsi->enabled())
      throw Error(errc::kUsage, "no Jitsi is configured: set [workers.room.jitsi] domain in coop.toml", 409);
  };

  r.add_blocking("POST", "/v1/rooms/{room}/call", run, [&store, jitsi, require_jitsi](const Request& q) {
    require_jitsi();
    const auto body = q.json();
    const auto room_id = find_room(store, q.param("room"));
    const auto sender = acting_member(store, room_id, body.value("sender", ""));
    // One call per room, as Element allows: a second `coop room call` answers with the first.
    if (const auto current = jitsi_widgets(store, room_id); !current.empty()) {
      const auto& widget = current.front();
      const auto& content = widget["content"];
      const std::string conference = text_field(content.contains("data") ? content["data"] : json(), "conferenceId");
      return Response::json({{"room_id", room_id},
                             {"widget_id", widget.value("state_key", "")},
                             {"conference", conference},
                             {"url", conference_url(*jitsi, conference, "")},
                             {"started", false},
                             {"widget", client_view(widget)}});
    }
    std::string name;
    if (auto named = store.state_event(room_id, "m.room.name", "")) name = (*named)["content"].value("name", "");
    const auto conference = conference_for(*jitsi, room_id);
    const auto content = jitsi_widget(*jitsi, conference, name, body.value("audio_only", false));
    const std::string id = random_hex(12);  // Element's are 24 random characters too
    const auto widget = store.send_event(room_id, sender, "im.vector.modular.widgets", content, id);
    // Element puts a call at the top of the room, first, as wide as the room.
    const json place{{"container", "top"}, {"index", 0}, {"width", 100}, {"height", 40}};
    const auto layout = store.send_event(room_id, sender, "io.element.widgets.layout", layout_with(store, room_id, id, place), "");
    return Response::json({{"room_id", room_id},
                           {"widget_id", id},
                           {"conference", conference},
                           {"url", conference_url(*jitsi, conference, "")},
                           {"started", true},
                           {"widget", client_view(widget)},
                           {"layout", client_view(layout)}},
                          201);
  }, "start a Jitsi call in a room ({sender, audio_only}): the widget and layout Element writes");

  r.add_blocking("DELETE", "/v1/rooms/{room}/call", run, [&store](const Request& q) {
    const auto room_id = find_room(store, q.param("room"));
    const auto widgets = jitsi_widgets(store, room_id);
    json ended = json::array();
    const auto sender = widgets.empty() ? "" : acting_member(store, room_id, q.query_value("sender"));
    for (const auto& widget : widgets) {
      const std::string id = widget.value("state_key", "");
      // A widget is removed as Element removes one: its state event with empty content.
      store.send_event(room_id, sender, "im.vector.modular.widgets", json::object(), id);
      const auto layout = store.state_event(room_id, "io.element.widgets.layout", "");
      if (layout && (*layout)["content"].value("widgets", json::object()).contains(id))
        store.send_event(room_id, sender, "io.element.widgets.layout", layout_with(store, room_id, id, nullptr), "");
      ended.push_back(id);
    }
    return Response::json({{"room_id", room_id}, {"ended", ended}});
  }, "end the room's Jitsi call (?sender=HANDLE): its widgets emptied, out of the layout");

  r.add_blocking("POST", "/v1/rooms/{room}/call/guest", run, [&store, jitsi, require_jitsi](const Request& q) {
    require_jitsi();
    if (!jitsi->signs())
      throw Error(errc::kUsage, "guest links need token authentication: [workers.room.jitsi] auth is \"none\"", 409);
    const auto body = q.json();
    const auto room_id = find_room(store, q.param("room"));
    const auto valid = body.value("valid_s", jitsi->guest_lifetime_s);
    if (valid < 60 || valid > kMaxGuestLifetimeSeconds)
      throw Error(errc::kUsage, "a guest link lasts from a minute to 7 days", 400);
    JitsiUser guest;
    guest.name = body.value("name", "Guest");
    if (guest.name.empty() || guest.name.size() > 128) throw Error(errc::kUsage, "a guest's name has 1 to 128 bytes", 400);
    const auto now = unix_seconds();
    json matrix = nullptr;
    if (jitsi->auth == "openidtoken-jwt")
      matrix = {{"token", guest_proof(*jitsi, room_id, now + valid)}, {"room_id", room_id}, {"server_name", store.server_name()}};
    const auto conference = conference_for(*jitsi, room_id);
    const auto token = sign_jitsi_token(*jitsi, conference, guest, valid, now, matrix);
    return Response::json({{"room_id", room_id},
                           {"conference", conference},
                           {"url", conference_url(*jitsi, conference, token.jwt)},
                           {"token", token.jwt},
                           {"name", guest.name},
                           {"expires_at", token.expires_at}},
                          201);
  }, "a guest link to a room's call ({valid_s, name}): one conference, no moderator, until it expires");

  r.add("GET", "/v1/jitsi/config", [jitsi, &runtime](const Request&) {
    auto url = runtime.config().get_string("workers.room.public_url", "");
    if (url.empty())
      for (const auto& listener : runtime.config().listeners("room"))
        if (listener.name == "client") url = listener.url();
    while (!url.empty() && url.back() == '/') url.pop_back();
    if (!jitsi->enabled())
      return Response::json({{"domain", nullptr},
                             {"auth", jitsi->auth},
                             {"text", "# No Jitsi is configured: set [workers.room.jitsi] domain in coop.toml first.\n"}});
    return Response::json({{"domain", jitsi->domain},
                           {"auth", jitsi->auth},
                           {"app_id", jitsi->app_id},
                           {"audience", jitsi->audience},
                           {"homeserver_url", url},
                           {"text", prosody_config(*jitsi, url)}});
  }, "the Prosody and Jitsi Meet settings that admit the tokens coop signs");

  r.add_blocking("POST", "/v1/spaces", run, [&spaces, &store](const Request& q) {
    const auto body = q.json();
    const auto name = body.value("name", "");
    if (name.empty()) throw Error(errc::kUsage, "a Space needs a name", 400);
    const auto room_id = spaces.create_space(name, body.value("group", ""));
    return Response::json(room_summary(store, room_id, managed_spaces(store)), 201);
  }, "create a Space ({name, group}): a group's Space admits that group's members");

  r.add_blocking("POST", "/v1/rooms", run, [&spaces, &store](const Request& q) {
    const auto body = q.json();
    const auto name = body.value("name", "");
    if (name.empty()) throw Error(errc::kUsage, "a room needs a name", 400);
    const std::string space = body.value("space", "").empty() ? "" : find_room(store, body.value("space", ""));
    const auto room_id = spaces.create_room(name, space, body.value("public", false));
    return Response::json(room_summary(store, room_id, managed_spaces(store)), 201);
  }, "create a room ({name, space, public}); in a Space, its members may join");

  r.add_blocking("GET", "/v1/export/{handle}", run, [&store](const Request& q) {
    // Client-Server "history visibility: shared": a member sees a room's history up to
    // when they left; events stay in the form clients see them.
    const std::string user_id = "@" + q.param("handle") + ":" + store.server_name();
    json rooms = json::array();
    for (const auto& [room_id, membership] : store.rooms_of(user_id)) {
      if (membership == "invite") continue;
      int64_t until = INT64_MAX;
      if (membership != "join")
        if (auto e = store.state_event(room_id, "m.room.member", user_id))
          if (auto stored = store.event(e->value("event_id", ""))) until = stored->stream;
      json events = json::array();
      int64_t after = 0;
      while (true) {
        auto page = store.room_events(room_id, after, 1000);
        if (page.empty()) break;
        for (const auto& e : page) {
          if (e.stream > until) break;
          events.push_back(client_view(e.event));
        }
        if (page.back().stream >= until) break;
        after = page.back().stream;
      }
      json entry = {{"room_id", room_id}, {"membership", membership}, {"events", events}};
      if (auto name = store.state_event(room_id, "m.room.name", "")) entry["name"] = (*name)["content"].value("name", "");
      rooms.push_back(entry);
    }
    return Response::json({{"user_id", user_id}, {"format", "coop.room.export.v1"}, {"rooms", rooms}});
  }, "a member's rooms and visible history as JSON");
}

}  // namespace coop::room
