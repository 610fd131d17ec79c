// Jitsi Meet calls, members admitted by their Matrix session:
// - Server-Server API "OpenID" userinfo (GET /_matrix/federation/v1/openid/userinfo), here on
//   the client listener until coop-federate has its own, for whoever checks an OpenID token;
// - matrix-org's user verification service API (POST /verify/user, /verify/user_in_room),
//   which matrix-org's Prosody module asks in Element's "openidtoken-jwt" mode;
// - /.well-known/element/jitsi, Element's question to the Jitsi domain (proxied here);
// - POST /_coop/v1/jitsi/token: a signed Jitsi JWT for a member of the room.
#include <openssl/crypto.h>

#include <nlohmann/json.hpp>

#include <chrono>

#include "common/error.h"
#include "common/clock.h"
#include "workers/room/client_impl.h"
#include "workers/room/jitsi.h"

namespace coop::room {

using http::Request;
using http::Response;
using nlohmann::json;

namespace {

const JitsiSettings& signing_jitsi(ClientApi::Impl& api) {
  if (!api.jitsi->signs()) fail(404, errc::kMNotFound, "this shard has no Jitsi with token authentication");
  return *api.jitsi;
}

// Element's "openidtoken-jwt" mode is on: the Jitsi domain proxies its well-known here.
Response element_jitsi(ClientApi::Impl& api, const Request&) {
  if (!api.jitsi->signs() || api.jitsi->auth != "openidtoken-jwt")
    fail(404, errc::kMNotFound, "Jitsi calls do not use Matrix OpenID tokens here");
  return ok({{"auth", "openidtoken-jwt"}});
}

// Server-Server API "OpenID": the user an OpenID token stands for, 401 M_UNKNOWN_TOKEN once it
// has expired, was never made, or its member was suspended (end_sessions deletes them).
Response openid_userinfo(ClientApi::Impl& api, const Request& q) {
  const auto token = q.query_value("access_token");
  if (token.empty() || token.size() > 256) fail(401, errc::kMUnknownToken, "an OpenID access_token is needed");
  const auto user = api.store.openid_user(token);
  if (!user) fail(401, errc::kMUnknownToken, "unknown or expired OpenID token");
  return ok({{"sub", *user}});
}

// The user verification service's answers are plain: 400 for a request without its fields, 403
// without its bearer token when one is configured, otherwise 200 with results.
Response uvs_refusal(int status, const std::string& text) {
  return cors(Response::bytes(status, text, "text/plain; charset=utf-8"));
}

std::optional<Response> uvs_check(ClientApi::Impl& api, const Request& q, const json& body,
                                  std::initializer_list<const char*> fields) {
  // Only Element's mode has Prosody ask: otherwise there is no verification service here.
  if (!api.jitsi->signs() || api.jitsi->auth != "openidtoken-jwt")
    fail(404, errc::kMNotFound, "Jitsi calls do not use Matrix OpenID tokens here");
  const auto& expected = api.jitsi->verify_token;
  if (!expected.empty()) {
    const auto header = q.header("authorization");
    const std::string given = header.rfind("Bearer ", 0) == 0 ? header.substr(7) : "";
    if (given.size() != expected.size() || CRYPTO_memcmp(given.data(), expected.data(), given.size()) != 0)
      return uvs_refusal(403, "Forbidden");
  }
  if (!body.is_object()) return uvs_refusal(400, "Invalid request: no JSON content found in body.");
  for (const char* field : fields)
    if (!body.contains(field) || !body[field].is_string() || body[field].get<std::string>().empty())
      return uvs_refusal(400, std::string("Invalid request: ") + field + " not found or with empty value in the JSON payload.");
  return std::nullopt;
}

// The member an OpenID token in a verification request stands for: only this server's tokens.
std::optional<std::string> uvs_user(ClientApi::Impl& api, const json& body) {
  if (body.contains("matrix_server_name") && body["matrix_server_name"] != api.server()) return std::nullopt;
  const auto token = body["token"].get<std::string>();
  if (token.size() > 256) return std::nullopt;
  return api.store.openid_user(token);
}

// The body as JSON with nesting bounded (Request::json), or null when it is not.
json parse_body(const Request& q) {
  try {
    return q.json();
  } catch (const std::exception&) {
    return nullptr;
  }
}

Response verify_user(ClientApi::Impl& api, const Request& q) {
  const auto body = parse_body(q);
  if (auto refused = uvs_check(api, q, body, {"token"})) return *refused;
  const auto user = uvs_user(api, body);
  if (!user) return ok({{"results", {{"user", false}}}, {"user_id", nullptr}});
  return ok({{"results", {{"user", true}}}, {"user_id", *user}});
}

Response verify_user_in_room(ClientApi::Impl& api, const Request& q) {
  const auto body = parse_body(q);
  if (auto refused = uvs_check(api, q, body, {"token", "room_id"})) return *refused;
  const std::string room_id = body["room_id"];
  // A guest's link carries a proof for one room instead of a member's token.
  // No power_levels for a guest: matrix-org's module then makes them no owner (with levels it
  // would compare them, and a guest has none).
  if (guest_proof_admits(*api.jitsi, body["token"].get<std::string>(), room_id, unix_seconds()))
    return ok({{"results", {{"user", true}, {"room_membership", true}}}, {"user_id", nullptr}});
  const auto user = uvs_user(api, body);
  if (!user)
    return ok({{"results", {{"user", false}, {"room_membership", nullptr}}}, {"user_id", nullptr}, {"power_levels", nullptr}});
  if (room_id.size() > 255 || !api.store.room_version(room_id) || api.store.membership(room_id, *user) != "join")
    return ok({{"results", {{"user", true}, {"room_membership", false}}}, {"user_id", *user}, {"power_levels", nullptr}});
  // As the service reports them: the room's levels without the users, and this user's level.
  json levels = json::object();
  if (const auto event = api.store.state_event(room_id, "m.room.power_levels", ""))
    if ((*event)["content"].is_object()) levels = (*event)["content"];
  levels.erase("users");
  // The spec's defaults where the event leaves them out (Client-Server API m.room.power_levels):
  // the module compares the user's level with state_default and must find a number there.
  for (const auto& [key, fallback] : {std::pair{"ban", 50}, {"kick", 50}, {"redact", 50}, {"invite", 0},
                                      {"state_default", 50}, {"events_default", 0}, {"users_default", 0}})
    if (!levels.contains(key) || !levels[key].is_number_integer()) levels[key] = fallback;
  return ok({{"results", {{"user", true}, {"room_membership", true}}},
             {"user_id", *user},
             {"power_levels", {{"room", levels}, {"user", api.power(room_id, *user, "kick", 50).first}}}});
}

// An http(s) address of a member's avatar that Jitsi can show (the unauthenticated thumbnail),
// or "" when the profile's mxc:// URI is not one this server would have made.
std::string avatar_http(ClientApi::Impl& api, const Request& q, const std::string& mxc) {
  if (mxc.rfind("mxc://", 0) != 0) return "";
  const auto rest = mxc.substr(6);
  const auto slash = rest.find('/');
  if (slash == std::string::npos || slash == 0 || rest.size() > 255) return "";
  for (std::size_t i = 0; i < rest.size(); ++i) {
    const char c = rest[i];
    const bool ok_char = std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.' || (i < slash && c == ':');
    if (i != slash && !ok_char) return "";
  }
  return api.public_base_url(q) + "/_matrix/media/v3/thumbnail/" + rest + "?width=96&height=96&method=crop";
}

// A member's Jitsi token for a room they are in: moderator when their power level reaches the
// room's kick level. In Element's mode it also carries a fresh OpenID token, so that
// matrix-org's Prosody module admits it as it admits Element's own.
Response jitsi_token(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto& settings = signing_jitsi(api);
  const auto body = q.json();
  if (!body.is_object() || !body.contains("room_id") || !body["room_id"].is_string())
    fail(400, errc::kMMissingParam, "room_id is needed");
  const auto room_id = api.resolve_room(body["room_id"].get<std::string>());
  // The member's event in the room says both that they are in it and how the room knows them
  // (its display name and avatar, what Element shows beside them).
  const auto member = api.store.state_event(room_id, "m.room.member", s.user_id);
  const json content = member ? (*member)["content"] : json::object();
  if (!content.is_object() || content.value("membership", "") != "join")
    fail(403, errc::kMForbidden, "you are not in this room");
  const auto [level, kick] = api.power(room_id, s.user_id, "kick", 50);
  JitsiUser user;
  user.user_id = s.user_id;
  if (content.contains("displayname") && content["displayname"].is_string()) user.name = content["displayname"];
  if (user.name.empty()) user.name = localpart(s.user_id);
  if (content.contains("avatar_url") && content["avatar_url"].is_string())
    user.avatar = avatar_http(api, q, content["avatar_url"]);
  user.moderator = level >= kick;
  json matrix = nullptr;
  if (settings.auth == "openidtoken-jwt")
    matrix = {{"token", api.store.create_openid_token(s.user_id, settings.member_lifetime_s)},
              {"room_id", room_id},
              {"server_name", api.server()}};
  const auto conference = conference_for(settings, room_id);
  const auto token = sign_jitsi_token(settings, conference, user, settings.member_lifetime_s, unix_seconds(), matrix);
  return ok({{"token", token.jwt},
             {"url", conference_url(settings, conference, token.jwt)},
             {"domain", settings.domain},
             {"conference", conference},
             {"room_id", room_id},
             {"moderator", user.moderator},
             {"expires_at", token.expires_at}});
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kJitsiTable[] = {
    {"GET", "/.well-known/element/jitsi", Mount::kExact, Run::kInline, element_jitsi,
     "Element's Jitsi auth mode, for the Jitsi domain to proxy"},
    {"GET", "/_matrix/federation/v1/openid/userinfo", Mount::kExact, Run::kBlocking, openid_userinfo,
     "the user an OpenID token stands for"},
    {"POST", "/verify/user", Mount::kExact, Run::kBlocking, verify_user,
     "user verification service: whose OpenID token this is"},
    {"POST", "/verify/user_in_room", Mount::kExact, Run::kBlocking, verify_user_in_room,
     "user verification service: is the token's user in the room, and their power"},
    {"POST", "/_coop/v1/jitsi/token", Mount::kExact, Run::kBlocking, jitsi_token,
     "a signed Jitsi token for a room the member is in"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kJitsiRoutes = kJitsiTable;

}  // namespace coop::room
