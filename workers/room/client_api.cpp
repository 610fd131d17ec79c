// Matrix client-server API: the shared helpers and the one list every route is registered from.
#include "workers/room/client_api.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <set>

#include "common/auth/member_client.h"
#include "common/config.h"
#include "common/control/client.h"
#include "common/error.h"
#include "common/http/router.h"
#include "common/worker_runtime.h"
#include "workers/matrix/auth_rules.h"
#include "workers/room/client_impl.h"
#include "workers/room/jitsi.h"
#include "workers/room/store/key_store.h"
#include "workers/room/url_preview.h"
#include "workers/room/store/room_store.h"

namespace coop::room {

namespace {

using http::Reply;
using http::Request;
using http::Response;
using nlohmann::json;

const std::vector<std::string> kPrefixes = {"/_matrix/client/v3", "/_matrix/client/r0"};

// Every spec module's routes, registered in this order. The router tries routes in
// registration order and takes the first match, but no two routes of one method here match
// the same path (the literal segments always differ somewhere), so the order decides only
// how the router lists them.
const std::span<const ClientRoute> kModules[] = {
    api::kAccountRoutes, api::kSyncRoutes, api::kSlidingSyncRoutes,    api::kRoomRoutes,  api::kEventRoutes,     api::kAccountDataRoutes,
    api::kPushRoutes,    api::kProfileRoutes, api::kSpaceRoutes, api::kMediaRoutes,     api::kKeyRoutes,
    api::kToDeviceRoutes, api::kKeyBackupRoutes, api::kVoipRoutes, api::kJitsiRoutes, api::kSearchRoutes,
};

// coop::Error codes that are not Matrix errcodes yet get the closest Matrix one.
std::string errcode_for(int status, const std::string& code) {
  if (code.rfind("M_", 0) == 0) return code;
  if (code == errc::kNotJson) return errc::kMNotJson;
  if (code == errc::kBadJson) return errc::kMBadJson;
  if (code == errc::kBadRequest) return errc::kMInvalidParam;
  if (code == errc::kBadCredentials) return errc::kMForbidden;
  if (code == errc::kMemberSuspended || code == errc::kMemberRemoved) return errc::kMUserDeactivated;
  if (code == errc::kThrottled) return errc::kMLimitExceeded;
  switch (status) {
    case 400: return errc::kMBadJson;
    case 401: return errc::kMUnknownToken;
    case 403: return errc::kMForbidden;
    case 404: return errc::kMNotFound;
    case 405: return errc::kMUnrecognized;
    case 413: return errc::kMTooLarge;
    case 429: return errc::kMLimitExceeded;
    default: return errc::kMUnknown;
  }
}

}  // namespace

Response cors(Response response) {
  response.headers.emplace_back("Access-Control-Allow-Origin", "*");
  response.headers.emplace_back("Access-Control-Allow-Methods", "GET, POST, PUT, DELETE, OPTIONS");
  response.headers.emplace_back("Access-Control-Allow-Headers", "X-Requested-With, Content-Type, Authorization");
  return response;
}

Response ok(const json& body) { return cors(Response::json(body)); }

Response rate_limited(const auth::ThrottledError& e) {
  return cors(Response::json({{"errcode", errc::kMLimitExceeded}, {"error", e.what()}, {"retry_after_ms", e.retry_after_ms()}}, 429));
}

void fail(int status, const std::string& errcode, const std::string& message) { throw Error(errcode, message, status); }

int64_t page_token(const std::string& text, const char* parameter, std::size_t max_digits) {
  if (text.empty() || text.size() > max_digits || text.find_first_not_of("0123456789") != std::string::npos)
    fail(400, errc::kMInvalidParam, std::string(parameter) + " is not a token of this server");
  return std::stoll(text);
}

std::string localpart(const std::string& user_id) {
  if (user_id.empty() || user_id[0] != '@') return user_id;
  return user_id.substr(1, user_id.find(':') - 1);
}

ClientApi::Impl::Impl(WorkerRuntime& runtime, RoomStore& store, KeyStore& keys)
    : runtime(runtime), store(store), keys(keys), run(runtime.blocking_runner()), blobs(runtime.home().root() / "blobs" / "room") {
  const auto& config = runtime.config();
  if (config.get_bool("workers.room.url_previews.enabled", false)) {
    PreviewSettings settings;
    settings.enabled = true;
    settings.allow_networks = config.get_strings("workers.room.url_previews.allow_networks", {});
    previewer = std::make_unique<UrlPreviewer>(std::move(settings));
  }
  jitsi = std::make_shared<const JitsiSettings>(read_jitsi_settings(config, runtime.home()));
}

ClientApi::Impl::~Impl() = default;

std::string ClientApi::Impl::server() const { return store.server_name(); }

nlohmann::json ClientApi::Impl::federate(const std::string& path, const nlohmann::json& body,
                                         std::chrono::seconds timeout) {
  control::ClientResponse answer;
  try {
    answer = control::Client(runtime.home().socket("federate")).request("POST", path, body.dump(), timeout);
  } catch (const Error& e) {
    fail(502, errc::kMUnknown, "federation is not running here: " + std::string(e.what()));
  }
  const auto reply = answer.json();
  if (!answer.ok()) {
    const auto& error = reply.contains("error") && reply["error"].is_object() ? reply["error"] : nlohmann::json::object();
    fail(static_cast<int>(answer.status), error.value("code", errc::kMUnknown), error.value("message", "federation failed"));
  }
  return reply;
}

bool ClientApi::Impl::is_local_user(const std::string& user_id) const {
  const auto colon = user_id.find(':');
  return user_id.size() > 1 && user_id[0] == '@' && colon != std::string::npos && user_id.substr(colon + 1) == server();
}

std::string ClientApi::Impl::public_base_url(const Request& q) {
  auto url = runtime.config().get_string("workers.room.public_url", "");
  while (!url.empty() && url.back() == '/') url.pop_back();
  return url.empty() ? "http://" + q.header("host", server()) : url;
}

Session ClientApi::Impl::authenticate(const Request& q) {
  std::string token = q.query_value("access_token");
  const auto header = q.header("authorization");
  if (header.rfind("Bearer ", 0) == 0) token = header.substr(7);
  if (token.empty()) fail(401, errc::kMMissingToken, "missing access token");
  auto session = store.session_for(token);
  if (!session) fail(401, errc::kMUnknownToken, "unknown or expired access token");
  return *session;
}

std::string ClientApi::Impl::token_of(const Request& q) {
  const auto header = q.header("authorization");
  return header.rfind("Bearer ", 0) == 0 ? header.substr(7) : q.query_value("access_token");
}

std::string ClientApi::Impl::resolve_room(const std::string& id_or_alias) {
  if (!id_or_alias.empty() && id_or_alias[0] == '#') {
    auto room = store.room_for_alias(id_or_alias);
    if (!room) fail(404, errc::kMNotFound, "no room alias " + id_or_alias);
    return *room;
  }
  if (id_or_alias.empty() || id_or_alias[0] != '!') fail(400, errc::kMInvalidParam, "not a room ID or alias");
  return id_or_alias;
}

void ClientApi::Impl::require_joined(const std::string& room_id, const std::string& user_id) {
  if (!store.room_version(room_id)) fail(404, errc::kMNotFound, "no room " + room_id);
  if (store.membership(room_id, user_id) != "join") fail(403, errc::kMForbidden, "you are not in this room");
}

void ClientApi::Impl::require_reader(const std::string& room_id, const std::string& user_id) {
  if (!store.room_version(room_id)) fail(404, errc::kMNotFound, "no room " + room_id);
  const auto membership = store.membership(room_id, user_id);
  if (membership != "join" && membership != "leave" && membership != "ban" && membership != "invite")
    fail(403, errc::kMForbidden, "you have never been in this room");
}

std::pair<int64_t, int64_t> ClientApi::Impl::power(const std::string& room_id, const std::string& user_id,
                                                   const char* level, int64_t level_default) {
  const auto levels = store.state_event(room_id, "m.room.power_levels", "");
  const auto create = store.state_event(room_id, "m.room.create", "");
  const json pl = levels && (*levels)["content"].is_object() ? (*levels)["content"] : json::object();
  const json needed = pl.value(level, json(level_default));
  // Room version 12: a creator's level is above any number.
  return {matrix::power_level_of(create ? &*create : nullptr, levels ? &*levels : nullptr, user_id),
          needed.is_number_integer() ? needed.get<int64_t>() : level_default};
}

std::string ClientApi::Impl::display_name(const std::string& user_id) {
  if (const auto chosen = store.profile(user_id).first) return *chosen;
  try {
    control::Client client(runtime.home().socket("member"));
    const auto response = client.get("/v1/members/" + localpart(user_id));
    if (response.ok()) return response.json().value("name", "");
  } catch (const std::exception&) {
  }
  return "";
}

json ClientApi::Impl::client_event(const json& event) {
  json out = event;
  out.erase("hashes");
  out.erase("signatures");
  out.erase("auth_events");
  out.erase("prev_events");
  out.erase("depth");
  // Room version 12's create event has no room_id; clients are told the one it makes.
  if (!out.contains("room_id") && out.value("type", "") == "m.room.create" && out.value("event_id", "").size() > 1)
    out["room_id"] = "!" + out["event_id"].get<std::string>().substr(1);
  // Room version 11 moved a redaction's target into content (MSC2174); clients older than
  // that (matrix-js-sdk 37.5) read the top-level key, which the big servers still send.
  if (out.value("type", "") == "m.room.redaction" && !out.contains("redacts") && out.contains("content") &&
      out["content"].is_object() && out["content"].contains("redacts"))
    out["redacts"] = out["content"]["redacts"];
  return out;
}

json ClientApi::Impl::timeline_event(const StoredEvent& e, const Session& viewer) {
  json out = client_event(e.event);
  const std::string event_id = e.event.value("event_id", "");
  // Client-Server API "Transaction identifiers": only the device that sent it sees the id.
  if (e.event.value("sender", "") == viewer.user_id)
    if (const auto txn = store.txn_of(event_id); txn && txn->first == viewer.device_id)
      out["unsigned"]["transaction_id"] = txn->second;
  if (e.event.contains("state_key")) return out;
  const auto summary = store.relation_summary(e.event, viewer.user_id);
  if (summary.empty()) return out;
  json relations = json::object();
  if (summary.latest_edit) relations["m.replace"] = client_event(summary.latest_edit->event);
  if (summary.latest_reply)
    relations["m.thread"] = {{"latest_event", client_event(summary.latest_reply->event)},
                             {"count", summary.replies},
                             {"current_user_participated",
                              summary.viewer_replied || e.event.value("sender", "") == viewer.user_id}};
  if (!summary.references.empty()) {
    json chunk = json::array();
    for (const auto& id : summary.references) chunk.push_back({{"event_id", id}});
    relations["m.reference"] = {{"chunk", chunk}};
  }
  if (!relations.empty()) out["unsigned"]["m.relations"] = relations;
  return out;
}

Response ClientApi::Impl::error(int status, const std::string& code, const std::string& message) {
  json body = {{"errcode", errcode_for(status, code)}, {"error", message}};
  return cors(Response::json(body, status));
}

std::optional<Response> ClientApi::Impl::password_again(const Request& q, const Session& s, const std::string& uia_session) {
  const auto body = q.json();
  const auto auth_dict = body.value("auth", json::object());
  const json flows = {{{"stages", {"m.login.password"}}}};
  if (!auth_dict.is_object() || auth_dict.value("type", "") != "m.login.password")
    return cors(Response::json({{"flows", flows}, {"params", json::object()}, {"session", uia_session}}, 401));
  const auto password = auth_dict.value("password", json(""));
  try {
    auth::verify_credentials(runtime.home(), localpart(s.user_id), password.is_string() ? password.get<std::string>() : "",
                             "room", q.remote_address);
  } catch (const auth::ThrottledError& e) {
    return rate_limited(e);
  } catch (const Error&) {
    return cors(Response::json({{"errcode", errc::kMForbidden}, {"error", "invalid password"}, {"flows", flows},
                                {"params", json::object()}, {"session", uia_session}}, 401));
  }
  return std::nullopt;
}

void ClientApi::Impl::remove_devices(const std::string& user_id, const std::vector<std::string>& devices) {
  // Keys first: a crash between the two leaves a device that can upload its keys again, never
  // keys that peers encrypt to for a device that no longer exists.
  keys.delete_devices(user_id, devices);
  for (const auto& device : devices) store.delete_device(user_id, device);
}

void ClientApi::Impl::forget_orphan_keys() {
  for (const auto& [user_id, devices] : keys.devices_with_keys()) {
    std::set<std::string> known;
    for (const auto& d : store.devices(user_id)) known.insert(d.value("device_id", ""));
    std::vector<std::string> gone;
    for (const auto& device : devices)
      if (!known.count(device)) gone.push_back(device);
    if (!gone.empty()) {
      spdlog::info("removing the keys of {} device(s) of {} that no longer exist", gone.size(), user_id);
      keys.delete_devices(user_id, gone);
    }
  }
}

void ClientApi::Impl::add_routes(http::Router& r) {
  auto self = shared_from_this();
  r.set_error_formatter([self](int status, const std::string& code, const std::string& message) {
    return self->error(status, code, message);
  });
  r.set_fallback([self](const Request& q, Reply reply) {
    if (q.method == "OPTIONS") return reply(cors(Response::json(json::object())));
    reply(self->error(404, errc::kMUnrecognized, "unrecognized request: " + q.method + " " + q.path));
  });

  for (const auto& module : kModules) {
    for (const auto& route : module) {
      std::vector<std::string> paths;
      if (route.mount == ClientRoute::Mount::kV3AndR0)
        for (const auto& prefix : kPrefixes) paths.push_back(prefix + route.path);
      else
        paths.emplace_back(route.path);
      for (const auto& path : paths) {
        switch (route.run) {
          case ClientRoute::Run::kBlocking:
            r.add_blocking(route.method, path, run,
                           [self, handler = std::get<ClientHandler>(route.handler)](const Request& q) { return handler(*self, q); },
                           route.summary);
            break;
          case ClientRoute::Run::kInline:
            r.add(route.method, path,
                  [self, handler = std::get<ClientHandler>(route.handler)](const Request& q) { return handler(*self, q); },
                  route.summary);
            break;
          case ClientRoute::Run::kLongPoll:
            r.add_async(route.method, path,
                        [self, handler = std::get<LongPollHandler>(route.handler)](const Request& q, Reply reply) {
                          handler(*self, q, std::move(reply));
                        },
                        route.summary);
            break;
        }
      }
    }
  }
}

ClientApi::ClientApi(WorkerRuntime& runtime, RoomStore& store, KeyStore& keys, http::Router& router)
    : impl_(std::make_shared<Impl>(runtime, store, keys)) {
  impl_->add_routes(router);
  impl_->forget_orphan_keys();
}

ClientApi::~ClientApi() { close(); }

std::shared_ptr<const JitsiSettings> ClientApi::jitsi() const { return impl_->jitsi; }

void ClientApi::end_sessions(const std::string& handle, const std::string& kind) {
  const std::string user_id = "@" + handle + ":" + impl_->server();
  std::optional<ClientApi::Impl::PasswordChange> own_change;
  if (kind == "member.password_changed") {
    std::lock_guard lock(impl_->password_changes_mutex);
    const auto it = impl_->password_changes.find(user_id);
    if (it != impl_->password_changes.end()) {
      if (it->second.until > std::chrono::steady_clock::now()) own_change = it->second;
      impl_->password_changes.erase(it);
    }
  }
  if (own_change) {
    // Client-Server API POST /account/password: logout_devices ends the other devices' sessions
    // (and their keys go, as at logout); the device that changed the password stays.
    if (own_change->keep_all) return;
    const auto removed = impl_->store.delete_sessions_except(user_id, own_change->keep);
    impl_->end_waiters(user_id, std::set<std::string>(removed.begin(), removed.end()));
    impl_->keys.delete_devices(user_id, removed);
    return;
  }
  // Sessions first, so that parked syncs hear 401 and not the device list change the keys'
  // removal makes; a crash before the keys go is mended at the next start.
  impl_->store.delete_sessions(user_id);
  impl_->end_waiters(user_id);
  impl_->keys.delete_user(user_id);
}

void ClientApi::notify(const StoreChange& change) { impl_->notify(change); }

void ClientApi::set_readmission(std::function<void(const std::string&, const std::string&)> readmit) {
  impl_->readmit = std::move(readmit);
}

void ClientApi::apply_remote_edus(const std::string& origin, const json& edus) { impl_->apply_remote_edus(origin, edus); }

void ClientApi::federate_device_changes() { impl_->federate_device_changes(); }

void ClientApi::add_federation_routes(http::Router& control, const http::Runner& run) {
  const auto impl = impl_;
  const auto text = [](const json& body, const char* field) {
    const auto it = body.find(field);
    return it != body.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  control.add_blocking("POST", "/v1/federation/keys/query", run, [impl](const Request& q) {
    const auto body = q.json();
    return Response::json(impl->keys_for_server(body.value("device_keys", json())));
  }, "our users' device and cross-signing keys for another server ({origin, device_keys})");
  control.add_blocking("POST", "/v1/federation/keys/claim", run, [impl](const Request& q) {
    const auto body = q.json();
    return Response::json(impl->claims_for_server(body.value("one_time_keys", json())));
  }, "one-time keys of our users' devices claimed by another server ({origin, one_time_keys})");
  control.add_blocking("POST", "/v1/federation/devices", run, [impl, text](const Request& q) {
    return Response::json(impl->devices_for_server(text(q.json(), "user_id")));
  }, "one of our users' device list for another server ({origin, user_id})");
}

void ClientApi::close() {
  std::list<std::shared_ptr<Waiter>> current;
  {
    std::lock_guard lock(impl_->waiters_mutex);
    current.swap(impl_->waiters);
  }
  for (const auto& w : current)
    if (!w->answered.exchange(true))
      w->reply(cors(Response::json(w->on_close)));
}

}  // namespace coop::room
