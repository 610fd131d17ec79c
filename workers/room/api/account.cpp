// Client-Server API "Server discovery", "Capabilities negotiation", "Client authentication"
// and "Device management": versions, login with coop credentials, sessions and devices.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <chrono>

#include "common/auth/member_client.h"
#include "common/control/client.h"
#include "common/error.h"
#include "common/worker_runtime.h"
#include "workers/room/client_impl.h"
#include "workers/room/jitsi.h"
#include "workers/room/store/key_store.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;

// Discovery (Client-Server API "Server discovery" and "API standards").
Response versions(ClientApi::Impl&, const Request&) {
  return ok({{"versions", {"r0.6.1", "v1.1", "v1.2", "v1.3", "v1.4", "v1.5", "v1.6", "v1.7", "v1.8"}},
             // MSC4222: /sync's state_after (use_state_after), also under its unstable name;
             // simplified sliding sync (MSC4186), without which Element X does not sign in.
             {"unstable_features", {{"org.matrix.msc4222", true}, {"org.matrix.simplified_msc3575", true}}}});
}

Response well_known(ClientApi::Impl& api, const Request& q) {
  json body{{"m.homeserver", {{"base_url", api.public_base_url(q)}}}};
  // Element's Jitsi calls: the domain its call button uses ("im.vector.riot.jitsi").
  if (api.jitsi->enabled()) body["im.vector.riot.jitsi"] = {{"preferredDomain", api.jitsi->domain}};
  return ok(body);
}

Response capabilities(ClientApi::Impl& api, const Request& q) {
  api.authenticate(q);
  return ok({{"capabilities", {{"m.room_versions", {{"default", api.store.default_room_version()}, {"available", {{"10", "stable"}, {"11", "stable"}, {"12", "stable"}}}}},
                               {"m.change_password", {{"enabled", true}}},
                               {"m.set_displayname", {{"enabled", true}}},
                               {"m.set_avatar_url", {{"enabled", true}}},
                               {"m.3pid_changes", {{"enabled", false}}},
                               {"m.get_login_token", {{"enabled", true}}}}}});
}

// Login with coop credentials (m.login.password), or with a token a signed-in device made
// (m.login.token, "get_login_token": the Client-Server API's POST /login/get_token);
// registration stays closed.
Response login_flows(ClientApi::Impl&, const Request&) {
  return ok({{"flows", {{{"type", "m.login.password"}}, {{"type", "m.login.token"}, {"get_login_token", true}}}}});
}

Response session_for(ClientApi::Impl& api, const Request& q, const json& body, const std::string& user_id) {
  auto [token, device] = api.store.create_session(user_id, body.value("device_id", ""), body.value("initial_device_display_name", ""));
  return ok({{"user_id", user_id}, {"access_token", token}, {"device_id", device}, {"home_server", api.server()},
             {"well_known", {{"m.homeserver", {{"base_url", api.public_base_url(q)}}}}}});
}

Response login(ClientApi::Impl& api, const Request& q) {
  const auto body = q.json();
  if (body.value("type", "") == "m.login.token") {
    const auto token = body.value("token", json());
    const auto user_id = token.is_string() ? api.store.take_login_token(token.get<std::string>()) : std::nullopt;
    if (!user_id) fail(403, errc::kMForbidden, "invalid or expired login token");
    return session_for(api, q, body, *user_id);
  }
  if (body.value("type", "") != "m.login.password") fail(400, errc::kMUnknown, "only m.login.password and m.login.token are supported");
  std::string user = body.value("user", "");
  if (body.contains("identifier") && body["identifier"].is_object()) {
    const auto& id = body["identifier"];
    if (id.value("type", "") == "m.id.user") user = id.value("user", "");
    else if (id.value("type", "") == "m.id.thirdparty" && id.value("medium", "") == "email") user = id.value("address", "");
    else fail(400, errc::kMUnknown, "unsupported identifier type");
  }
  if (!user.empty() && user[0] == '@') {
    if (!api.is_local_user(user)) fail(403, errc::kMForbidden, "this server only logs in its own users");
    user = localpart(user);
  }
  try {
    const auto member = auth::verify_credentials(api.runtime.home(), user, body.value("password", ""), "room",
                                                 q.remote_address);
    return session_for(api, q, body, "@" + member.handle + ":" + api.server());
  } catch (const auth::ThrottledError& e) {
    return rate_limited(e);
  } catch (const Error& e) {
    if (e.code() == errc::kBadCredentials) fail(403, errc::kMForbidden, "invalid user name or password");
    if (e.code() == errc::kMemberSuspended || e.code() == errc::kMemberRemoved) fail(403, errc::kMUserDeactivated, e.what());
    throw;
  }
}

// Client-Server API POST /login/get_token (MSC3882): a token, good once for two minutes, with
// which a new device of the member signs in (m.login.token), after the password again.
Response get_login_token(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  if (auto ask = api.password_again(q, s, "login-token")) return std::move(*ask);
  constexpr int64_t kLifetimeMs = 120000;
  return ok({{"login_token", api.store.create_login_token(s.user_id, kLifetimeMs)}, {"expires_in_ms", kLifetimeMs}});
}

// Logging out deletes the device (Client-Server API "Logout"), so its keys go too.
Response logout(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  api.keys.delete_devices(s.user_id, {s.device_id});
  api.store.delete_session(api.token_of(q));
  return ok(json::object());
}

Response logout_all(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  api.keys.delete_user(s.user_id);
  api.store.delete_sessions(s.user_id);
  return ok(json::object());
}

Response whoami(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  return ok({{"user_id", s.user_id}, {"device_id", s.device_id}, {"is_guest", false}});
}

// Client-Server API POST /account/password: the member's coop password, changed in the
// registry after the current one is given again. Every worker ends the member's sessions, as
// any password change does, except here the devices the request keeps: this one, or all of
// them with logout_devices false.
Response change_password(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto body = q.json();
  const auto new_password = body.value("new_password", json());
  if (!new_password.is_string() || new_password.get<std::string>().empty())
    fail(400, errc::kMMissingParam, "new_password is required");
  if (auto ask = api.password_again(q, s, "password")) return std::move(*ask);
  {
    std::lock_guard lock(api.password_changes_mutex);
    auto& change = api.password_changes[s.user_id];
    change.keep = {s.device_id};
    change.keep_all = body.value("logout_devices", json(true)) == json(false);
    change.until = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  }
  control::Client client(api.runtime.home().socket("member"));
  const auto response = client.request("PUT", "/v1/members/" + localpart(s.user_id) + "/password",
                                       json{{"password", new_password}}.dump());
  if (!response.ok()) {
    {
      std::lock_guard lock(api.password_changes_mutex);
      api.password_changes.erase(s.user_id);
    }
    const auto error = response.json().value("error", json::object());
    if (error.value("code", "") == errc::kWeakPassword)
      fail(400, errc::kMWeakPassword, error.value("message", "the new password is too weak"));
    response.throw_if_error();
  }
  return ok(json::object());
}

// MSC3814 dehydrated devices: coop keeps none, and says so the way Synapse does, so that
// Element's start-up check goes on instead of failing on an unknown endpoint.
Response dehydrated_device(ClientApi::Impl& api, const Request& q) {
  api.authenticate(q);
  fail(404, errc::kMNotFound, "no dehydrated device");
}

Response list_devices(ClientApi::Impl& api, const Request& q) {
  return ok({{"devices", api.store.devices(api.authenticate(q).user_id)}});
}

Response get_device(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  for (const auto& d : api.store.devices(s.user_id))
    if (d.value("device_id", "") == q.param("deviceId")) return ok(d);
  fail(404, errc::kMNotFound, "no such device");
}

Response rename_device(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  if (!api.store.rename_device(s.user_id, q.param("deviceId"), q.json().value("display_name", "")))
    fail(404, errc::kMNotFound, "no such device");
  return ok(json::object());
}

// Client-Server API "Device management": deleting devices asks for the password again
// (User-interactive authentication, m.login.password); without it the answer is 401 with the flows.
Response delete_device(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  if (auto ask = api.password_again(q, s, "delete-" + q.param("deviceId"))) return std::move(*ask);
  const auto known = api.store.devices(s.user_id);
  if (std::none_of(known.begin(), known.end(), [&](const json& d) { return d.value("device_id", "") == q.param("deviceId"); }))
    fail(404, errc::kMNotFound, "no such device");
  api.remove_devices(s.user_id, {q.param("deviceId")});
  return ok(json::object());
}

Response delete_devices(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  const auto body = q.json();
  if (!body.contains("devices") || !body["devices"].is_array()) fail(400, errc::kMMissingParam, "devices must be a list");
  std::vector<std::string> devices;
  for (const auto& d : body["devices"]) {
    if (!d.is_string()) fail(400, errc::kMInvalidParam, "devices must be a list of device IDs");
    devices.push_back(d.get<std::string>());
  }
  if (auto ask = api.password_again(q, s, "delete-devices")) return std::move(*ask);
  // Unknown device IDs are ignored, as the spec allows.
  api.remove_devices(s.user_id, devices);
  return ok(json::object());
}

Response register_account(ClientApi::Impl&, const Request&) {
  fail(403, errc::kMForbidden, "registration is closed: members are added by the cooperative (coop member add)");
}

// GET /register/available: with registration closed, the answer the big servers give then.
Response register_available(ClientApi::Impl& api, const Request& q) { return register_account(api, q); }

// Members' addresses live in the registry and are not Matrix third-party identifiers.
Response third_party_ids(ClientApi::Impl& api, const Request& q) {
  api.authenticate(q);
  return ok({{"threepids", json::array()}});
}

// MSC1929 / spec v1.10 "Getting the support information": the registry's admins, and a page
// from [workers.room] support_page.
Response support(ClientApi::Impl& api, const Request&) {
  json contacts = json::array();
  try {
    control::Client client(api.runtime.home().socket("member"));
    const auto response = client.get("/v1/members");
    if (response.ok())
      for (const auto& m : response.json())
        if (m.value("role", "") == "admin" && m.value("status", "") == "active") {
          json contact = {{"matrix_id", "@" + m.value("handle", "") + ":" + api.server()}, {"role", "m.role.admin"}};
          const auto emails = m.value("emails", json::array());
          if (emails.is_array() && !emails.empty() && emails[0].is_string()) contact["email_address"] = emails[0];
          contacts.push_back(contact);
        }
  } catch (const std::exception&) {
    // Without the registry the page alone is the answer.
  }
  json body = {{"contacts", contacts}};
  const auto page = api.runtime.config().get_string("workers.room.support_page", "");
  if (!page.empty()) body["support_page"] = page;
  if (contacts.empty() && page.empty()) fail(404, errc::kMNotFound, "no support contacts are known");
  return ok(body);
}

// No bridges: no third-party protocols.
Response thirdparty_protocols(ClientApi::Impl& api, const Request& q) {
  api.authenticate(q);
  return ok(json::object());
}

// Client-Server API "OpenID": a short-lived token that proves the member's identity to a third
// party (Jitsi, widgets), which checks it with the homeserver.
Response openid_token(ClientApi::Impl& api, const Request& q) {
  const auto s = api.authenticate(q);
  if (q.param("userId") != s.user_id) fail(403, errc::kMForbidden, "tokens are only for yourself");
  constexpr int64_t kLifetimeSeconds = 3600;
  const auto token = api.store.create_openid_token(s.user_id, kLifetimeSeconds);
  return ok({{"access_token", token}, {"token_type", "Bearer"}, {"matrix_server_name", api.server()},
             {"expires_in", kLifetimeSeconds}});
}

using Mount = ClientRoute::Mount;
using Run = ClientRoute::Run;

constexpr ClientRoute kAccountTable[] = {
    {"GET", "/_matrix/client/versions", Mount::kExact, Run::kInline, versions, "spec versions this server speaks"},
    {"GET", "/.well-known/matrix/client", Mount::kExact, Run::kInline, well_known, "where the homeserver is"},
    {"GET", "/_matrix/client/unstable/org.matrix.msc3814.v1/dehydrated_device", Mount::kExact, Run::kBlocking,
     dehydrated_device, "MSC3814: there is no dehydrated device"},
    {"GET", "/capabilities", Mount::kV3AndR0, Run::kBlocking, capabilities, "room versions and account features"},
    {"GET", "/login", Mount::kV3AndR0, Run::kBlocking, login_flows, "login types (m.login.password, m.login.token)"},
    {"POST", "/login", Mount::kV3AndR0, Run::kBlocking, login, "log in with coop credentials or a login token"},
    {"POST", "/_matrix/client/v1/login/get_token", Mount::kExact, Run::kBlocking, get_login_token,
     "a login token for a new device, after the password again"},
    {"POST", "/logout", Mount::kV3AndR0, Run::kBlocking, logout, "end this session"},
    {"POST", "/logout/all", Mount::kV3AndR0, Run::kBlocking, logout_all, "end every session of the member"},
    {"GET", "/account/whoami", Mount::kV3AndR0, Run::kBlocking, whoami, "the session's user and device"},
    {"GET", "/devices", Mount::kV3AndR0, Run::kBlocking, list_devices, "the member's devices"},
    {"GET", "/devices/{deviceId}", Mount::kV3AndR0, Run::kBlocking, get_device, "one device"},
    {"PUT", "/devices/{deviceId}", Mount::kV3AndR0, Run::kBlocking, rename_device, "rename a device"},
    {"DELETE", "/devices/{deviceId}", Mount::kV3AndR0, Run::kBlocking, delete_device, "delete a device (password again)"},
    {"POST", "/delete_devices", Mount::kV3AndR0, Run::kBlocking, delete_devices, "delete several devices (password again)"},
    {"POST", "/register", Mount::kV3AndR0, Run::kBlocking, register_account, "closed: members are added by the cooperative"},
    {"GET", "/register/available", Mount::kV3AndR0, Run::kBlocking, register_available, "closed, as /register"},
    {"GET", "/account/3pid", Mount::kV3AndR0, Run::kBlocking, third_party_ids, "third-party identifiers (none)"},
    {"POST", "/account/password", Mount::kV3AndR0, Run::kBlocking, change_password,
     "change the coop password (the current one again); other devices are logged out"},
    {"GET", "/.well-known/matrix/support", Mount::kExact, Run::kBlocking, support, "the shard's admins and support page"},
    {"GET", "/thirdparty/protocols", Mount::kV3AndR0, Run::kBlocking, thirdparty_protocols, "bridged protocols (none)"},
    {"POST", "/user/{userId}/openid/request_token", Mount::kV3AndR0, Run::kBlocking, openid_token,
     "a token that proves the member's identity to a third party"},
};

}  // namespace

constinit const std::span<const ClientRoute> api::kAccountRoutes = kAccountTable;

}  // namespace coop::room
