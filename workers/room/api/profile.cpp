// Client-Server API "Profiles" and "User directory": both read from the member registry.
#include <nlohmann/json.hpp>

#include <algorithm>

#include "common/control/client.h"
#include "common/error.h"
#include "common/text.h"
#include "common/worker_runtime.h"
#include "workers/room/client_impl.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;

// Client-Server API "Profiles": the name the member chose over Matrix, else the registry's;
// an avatar when they set one.
json profile_of(ClientApi::Impl& api, const std::string& user_id) {
  json body = json::object();
  const auto name = api.display_name(user_id);
  if (!name.empty()) body["displayname"] = name;
  if (const auto avatar = api.store.profile(user_id).second; avatar && !avatar->empty()) body["avatar_url"] = *avatar;
  return body;
}

Response get_profile(ClientApi::Impl& api, const Request& q) {
  const auto user_id = q.param("userId");
  if (!api.is_local_user(user_id)) fail(404, errc::kMNotFound, "no such user on this server");
  return ok(profile_of(api, user_id));
}

Response get_profile_field(ClientApi::Impl& api, const Request& q, const char* field) {
  const auto body = profile_of(api, q.param("userId"));
  if (!body.contains(field)) fail(404, errc::kMNotFound, std::string("no ") + field);
  return ok({{field, body[field]}});
}

Response get_displayname(ClientApi::Impl& api, const Request& q) { return get_profile_field(api, q, "displayname"); }
Response get_avatar_url(ClientApi::Impl& api, const Request& q) { return get_profile_field(api, q, "avatar_url"); }

constexpr std::size_t kMaxDisplayNameBytes = 256;

// A change reaches every room the member is in as a new join event carrying the profile,
// which is where clients read names and avatars.
Response set_profile_field(ClientApi::Impl& api, const Request& q, const char* field) {
  const auto s = api.authenticate(q);
  if (q.param("userId") != s.user_id) fail(403, errc::kMForbidden, "you can only change your own profile");
  const auto value = q.json().value(field, json(""));
  if (!value.is_string() || value.get<std::string>().size() > kMaxDisplayNameBytes)
    fail(400, errc::kMInvalidParam, std::string(field) + " must be a string of at most 256 bytes");
  const auto text = value.get<std::string>();
  if (std::string(field) == "avatar_url" && !text.empty() && text.rfind("mxc://", 0) != 0)
    fail(400, errc::kMInvalidParam, "avatar_url must be an mxc:// URI");
  api.store.set_profile_field(s.user_id, field, text);
  const auto profile = profile_of(api, s.user_id);
  for (const auto& [room_id, membership] : api.store.rooms_of(s.user_id)) {
    if (membership != "join") continue;
    json content = profile;
    content["membership"] = "join";
    try {
      api.store.send_event(room_id, s.user_id, "m.room.member", content, s.user_id);
    } catch (const Error&) {
      // A room whose rules refuse the update keeps the old name; the others get the new one.
    }
  }
  return ok(json::object());
}

Response set_displayname(ClientApi::Impl& api, const Request& q) { return set_profile_field(api, q, "displayname"); }
Response set_avatar_url(ClientApi::Impl& api, const Request& q) { return set_profile_field(api, q, "avatar_url"); }

// Presence is off, as the big servers run it by default: everyone reads as offline and
// setting it is accepted and forgotten.
Response get_presence(ClientApi::Impl& api, const Request& q) {
  api.authenticate(q);
  return ok({{"presence", "offline"}});
}

Response set_presence(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  if (q.param("userId") != s.user_id) fail(403, errc::kMForbidden, "you can only set your own presence");
  return ok(json::object());
}

// The user directory is the registry's active members.
Response search_user_directory(ClientApi::Impl& api, const Request& q) {
  api.authenticate(q);
  const auto body = q.json();
  const std::string term = ascii_lower(body.value("search_term", ""));
  const int limit = std::clamp(body.value("limit", 10), 1, 100);
  control::Client client(api.runtime.home().socket("member"));
  const auto members = client.get("/v1/members?status=active");
  members.throw_if_error();
  json results = json::array();
  for (const auto& m : members.json()) {
    const std::string haystack = ascii_lower(m.value("handle", "") + " " + m.value("name", ""));
    if (haystack.find(term) == std::string::npos) continue;
    results.push_back({{"user_id", "@" + m.value("handle", "") + ":" + api.server()}, {"display_name", m.value("name", "")}});
    if (static_cast<int>(results.size()) >= limit) break;
  }
  return ok({{"results", results}, {"limited", static_cast<int>(results.size()) >= limit}});
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kProfileTable[] = {
    {"GET", "/profile/{userId}", Mount::kV3AndR0, Run::kBlocking, get_profile, "a member's profile"},
    {"GET", "/profile/{userId}/displayname", Mount::kV3AndR0, Run::kBlocking, get_displayname, "a member's display name"},
    {"PUT", "/profile/{userId}/displayname", Mount::kV3AndR0, Run::kBlocking, set_displayname, "change your display name"},
    {"GET", "/profile/{userId}/avatar_url", Mount::kV3AndR0, Run::kBlocking, get_avatar_url, "a member's avatar"},
    {"PUT", "/profile/{userId}/avatar_url", Mount::kV3AndR0, Run::kBlocking, set_avatar_url, "change your avatar"},
    {"GET", "/presence/{userId}/status", Mount::kV3AndR0, Run::kBlocking, get_presence, "presence (off: offline)"},
    {"PUT", "/presence/{userId}/status", Mount::kV3AndR0, Run::kBlocking, set_presence, "presence (off: ignored)"},
    {"POST", "/user_directory/search", Mount::kV3AndR0, Run::kBlocking, search_user_directory, "search the active members"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kProfileRoutes = kProfileTable;

}  // namespace coop::room
