// coop-federate: the Server-Server API: version, publishing and relaying server keys (notary),
// X-Matrix request authentication, OpenID userinfo, the directory and profile queries,
// transactions both ways, joins both ways, and the reads other servers make of our rooms.
#include "workers/federate/federate_worker.h"

#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <chrono>
#include <optional>
#include <variant>

#include "common/control/client.h"
#include "common/clock.h"
#include "common/coalesced_job.h"
#include "common/error.h"
#include "common/json.h"
#include "common/text.h"
#include "common/http/listen.h"
#include "common/http/router.h"
#include "common/http/server.h"
#include "common/version.h"
#include "common/worker_runtime.h"
#include "workers/federate/context.h"
#include "workers/federate/devices.h"
#include "workers/federate/http_fetch.h"
#include "workers/federate/inbound.h"
#include "workers/federate/joins.h"
#include "workers/federate/media.h"
#include "workers/federate/sender.h"
#include "workers/federate/remote_keys.h"
#include "workers/federate/server_policy.h"
#include "workers/room/space_summary.h"
#include "workers/matrix/server_key.h"
#include "workers/matrix/signing.h"
#include "workers/matrix/x_matrix.h"
#include "workers/room/store/room_store.h"

namespace coop::federate {

namespace {

using http::Request;
using http::Response;
using nlohmann::json;

// How long others may use our keys before asking again (Synapse's default is a day).
constexpr int64_t kKeyValidityMs = 24 * 3600 * 1000;

// "Publishing keys": our keys, signed by themselves.
json own_keys(const Context& c) {
  json keys{{"server_name", c.server_name},
            {"verify_keys", {{c.key.key_id(), {{"key", c.key.public_key_base64()}}}}},
            {"old_verify_keys", json::object()},
            {"valid_until_ts", unix_millis() + kKeyValidityMs}};
  return matrix::sign_json(std::move(keys), c.server_name, c.key);
}

void add_routes(http::Router& r, Context& c, const http::Runner& run) {
  r.add("GET", "/_matrix/federation/v1/version", guarded([](const Request&) {
          return Response::json({{"server", {{"name", "coop"}, {"version", kVersion}}}});
        }),
        "this server's name and version");

  const auto publish = guarded([&c](const Request&) { return Response::json(own_keys(c)); });
  r.add("GET", "/_matrix/key/v2/server", publish, "this server's signing keys, signed by them");
  r.add("GET", "/_matrix/key/v2/server/{keyId}", publish, "the same (the key ID is ignored, as the spec says)");

  // "Querying keys through another server": ours, or another server's as we fetched and
  // checked it, countersigned by us.
  auto notary = [&c](const std::vector<std::string>& servers) {
    json answers = json::array();
    for (const auto& server : servers) {
      if (server == c.server_name) {
        answers.push_back(own_keys(c));
        continue;
      }
      if (auto keys = c.remote.server_keys(server)) answers.push_back(matrix::sign_json(*keys, c.server_name, c.key));
    }
    return Response::json({{"server_keys", answers}});
  };
  r.add_blocking("GET", "/_matrix/key/v2/query/{serverName}", run, guarded([notary](const Request& q) {
                   const auto server = q.param("serverName");
                   if (!valid_server_name(server)) throw Error("M_INVALID_PARAM", "not a server name", 400);
                   return notary({server});
                 }),
                 "a server's keys, through us");
  r.add_blocking("POST", "/_matrix/key/v2/query", run, guarded([notary](const Request& q) {
                   const auto body = q.json();
                   const auto wanted = body.value("server_keys", json::object());
                   if (!wanted.is_object() || wanted.size() > 100) throw Error("M_BAD_JSON", "server_keys: up to 100 servers", 400);
                   std::vector<std::string> servers;
                   for (const auto& [server, ids] : wanted.items())
                     if (valid_server_name(server)) servers.push_back(server);
                   return notary(servers);
                 }),
                 "several servers' keys, through us");

  r.add_blocking("GET", "/_matrix/federation/v1/openid/userinfo", run, guarded([&c](const Request& q) {
                   const auto token = q.query_value("access_token");
                   const auto user = token.empty() || token.size() > 256 ? std::nullopt : c.store.openid_user(token);
                   if (!user) return matrix_error(401, "M_UNKNOWN_TOKEN", "unknown or expired OpenID token");
                   return Response::json({{"sub", *user}});
                 }),
                 "the user an OpenID token stands for");

  r.add_blocking("GET", "/_matrix/federation/v1/query/directory", run,
                 signed_by_peer(c, [&c](const Request& q, const std::string&) {
                   const auto alias = q.query_value("room_alias");
                   if (alias.empty() || alias[0] != '#' || alias.size() > 255)
                     return matrix_error(400, "M_INVALID_PARAM", "room_alias is needed");
                   const auto room = c.store.room_for_alias(alias);
                   if (!room) return matrix_error(404, "M_NOT_FOUND", "no room alias " + alias);
                   return Response::json({{"room_id", *room}, {"servers", {c.server_name}}});
                 }),
                 "the room an alias of ours names");

  r.add_blocking("GET", "/_matrix/federation/v1/query/profile", run,
                 signed_by_peer(c, [&c](const Request& q, const std::string&) {
                   const auto user_id = q.query_value("user_id");
                   const auto field = q.query_value("field");
                   if (!is_local_user(c, user_id)) return matrix_error(400, "M_INVALID_PARAM", "not a user of this server");
                   if (!field.empty() && field != "displayname" && field != "avatar_url")
                     return matrix_error(400, "M_INVALID_PARAM", "field is displayname or avatar_url");
                   const auto member = active_member(c, user_id);
                   if (!member) return matrix_error(404, "M_NOT_FOUND", "no such user");
                   // The Matrix profile where the member set one, else the registry's name.
                   const auto [chosen, avatar] = c.store.profile(user_id);
                   const std::string name = chosen ? *chosen : member->value("name", "");
                   json profile = json::object();
                   if (!name.empty() && (field.empty() || field == "displayname")) profile["displayname"] = name;
                   if (avatar && (field.empty() || field == "avatar_url")) profile["avatar_url"] = *avatar;
                   return Response::json(profile);
                 }),
                 "a user's display name and avatar");

  // "Spaces": the summary of a room of ours and of its children, for a server whose members
  // browse a Space that names it. Rooms the asking server could not see or join are not
  // described (404 for the room itself, inaccessible_children for its children).
  r.add_blocking("GET", "/_matrix/federation/v1/hierarchy/{roomId}", run,
                 signed_by_peer(c, [&c](const Request& q, const std::string& origin) {
                   const auto room_id = q.param("roomId");
                   const bool suggested_only = q.query_value("suggested_only") == "true";
                   const auto visible = [&c, &origin](const std::string& id, const room::SpaceRoom& room) {
                     if (!acl_admits(c, id, origin)) return false;
                     if (room.world_readable || room.join_rule == "public" || room.join_rule == "knock" ||
                         c.store.server_in_room(id, origin))
                       return true;
                     // A restricted room: for servers with a member in a room that admits.
                     if (room.join_rule == "restricted" || room.join_rule == "knock_restricted")
                       for (const auto& allowed : room.allowed_rooms)
                         if (c.store.server_in_room(allowed, origin)) return true;
                     return room.join_rule == "knock_restricted";
                   };
                   if (!c.store.room_version(room_id)) return matrix_error(404, "M_NOT_FOUND", "no room " + room_id + " here");
                   auto room = room::space_room(c.store, room_id, suggested_only);
                   if (!visible(room_id, room)) return matrix_error(404, "M_NOT_FOUND", "no room " + room_id + " for " + origin);
                   json children = json::array(), inaccessible = json::array();
                   constexpr std::size_t kMaxChildren = 100;  // described per answer
                   for (const auto& child_id : room.children) {
                     if (children.size() >= kMaxChildren) break;
                     if (!c.store.room_version(child_id)) continue;  // not ours to describe
                     auto child = room::space_room(c.store, child_id, false);
                     if (!visible(child_id, child)) {
                       inaccessible.push_back(child_id);
                       continue;
                     }
                     children.push_back(std::move(child.entry));
                   }
                   return Response::json({{"room", room.entry}, {"children", children}, {"inaccessible_children", inaccessible}});
                 }),
                 "a room of ours and its children, as a Space's hierarchy describes them");

  // Anything else under the federation API is not served yet: a Matrix 404, not a bare one.
  r.set_fallback([](const Request& q, http::Reply reply) {
    reply(matrix_error(404, "M_UNRECOGNIZED", "unrecognised request " + q.method + " " + q.path));
  });
}

}  // namespace

// What the federation stores in room.db, coop-room must hear of: its parked /sync requests
// wake for it and its push sender looks at it. Changes gather here and go over coop-room's
// control socket, one request for any number of them.
struct RoomNotifier {
  RoomNotifier(const std::filesystem::path& socket, control::Runner run)
      : socket(socket), job(std::move(run), [this] { flush(); }) {}
  void add(const room::StoreChange& change) {
    {
      std::lock_guard lock(mutex);
      pending.merge(change);
    }
    job.request();
  }
  void flush() {
    room::StoreChange change;
    {
      std::lock_guard lock(mutex);
      std::swap(change, pending);
    }
    if (change.empty()) return;
    const json body = {{"rooms", change.rooms}, {"users", change.users}, {"device_lists", change.device_lists}};
    try {
      control::Client(socket).request("POST", "/v1/federation/changed", body.dump(), std::chrono::seconds(5));
    } catch (const std::exception& e) {
      spdlog::debug("coop-room did not hear of a federation change: {}", e.what());
    }
  }
  std::filesystem::path socket;
  std::mutex mutex;  // guards pending
  room::StoreChange pending;
  CoalescedJob job;
};

FederateWorker::FederateWorker(WorkerRuntime& runtime)
    : key_(std::make_unique<matrix::SigningKey>(matrix::load_or_make_server_key(runtime.home()))),
      store_(std::make_unique<room::RoomStore>(runtime.home().database("room"), runtime.config().domain(), *key_)),
      remote_(std::make_unique<RemoteKeys>(runtime.config().get_string_table("workers.federate.resolve"))),
      policy_(std::make_unique<ServerPolicy>(runtime.home().database("federate"))),
      router_(std::make_unique<http::Router>()) {
  context_ = std::make_unique<Context>(Context{runtime, *key_, *store_, *remote_, *policy_, runtime.config().domain()});
  Context* context = context_.get();
  SenderSettings sending;
  sending.max_backoff_ms = runtime.config().get_millis("workers.federate.max_backoff_ms", std::chrono::minutes(10)).count();
  sender_ = std::make_unique<Sender>(*context, runtime.home().database("federate"), sending, runtime.blocking_runner());
  context->sender = sender_.get();
  notifier_ = std::make_unique<RoomNotifier>(runtime.home().socket("room"), runtime.blocking_runner());
  store_->on_change([notifier = notifier_.get(), sender = sender_.get()](const room::StoreChange& change) {
    notifier->add(change);
    if (!change.rooms.empty()) sender->wake();  // a join made through us goes to the room's servers
  });
  add_routes(*router_, *context, runtime.blocking_runner());
  add_inbound_routes(*router_, *context, runtime.blocking_runner());
  add_media_routes(*router_, runtime.router(), *context, runtime.blocking_runner());
  add_device_routes(*router_, runtime.router(), *context, runtime.blocking_runner());
  // coop-room may hold device list changes it could not hand us while we were down.
  runtime.blocking_runner()([socket = runtime.home().socket("room")] {
    try {
      control::Client(socket).request("POST", "/v1/federation/changed", json::object().dump(), std::chrono::seconds(5));
    } catch (const std::exception&) {
      // coop-room is not up yet; it hands them over at its own start.
    }
  });
  runtime.on_shutdown([this] {
    if (sender_) sender_->stop();
    if (server_) server_->stop();
  });

  // Control API: what coop federate shows.
  auto& control = runtime.router();
  control.add("GET", "/v1/keys", [context](const Request&) {
    return Response::json({{"server_name", context->server_name},
                           {"keys", {{{"key_id", context->key.key_id()}, {"public_key", context->key.public_key_base64()}}}},
                           {"published", own_keys(*context)}});
  }, "this server's signing keys as published");
  control.add_blocking("GET", "/v1/profile", runtime.blocking_runner(), [context](const Request& q) {
    // A user's profile on another server, asked over federation (what a client's profile
    // lookup of a remote user will do).
    const auto user_id = q.query_value("user_id");
    const auto colon = user_id.find(':');
    const std::string server = colon == std::string::npos ? "" : user_id.substr(colon + 1);
    if (user_id.size() > 255 || user_id.empty() || user_id[0] != '@' || !valid_server_name(server))
      throw Error(errc::kUsage, "not a Matrix user ID: " + user_id, 400);
    if (server == context->server_name) throw Error(errc::kUsage, user_id + " is a user of this server", 400);
    const auto answer = federation_request(*context, "GET", server,
                                           "/_matrix/federation/v1/query/profile?user_id=" + percent_encode(user_id), nullptr);
    if (!answer.status) throw Error("peer_unreachable", server + " did not answer: " + answer.error, 502);
    return Response::json({{"user_id", user_id}, {"server", server}, {"status", answer.status}, {"answer", answer.body}},
                          answer.status == 200 ? 200 : 502);
  }, "a remote user's profile, asked of their server with a signed request");
  control.add_blocking("POST", "/v1/directory", runtime.blocking_runner(), [context](const Request& q) {
    // Another server's room alias, for a member's client: the room and servers in it.
    const std::string alias = q.json().value("alias", "");
    const auto server = server_of(alias);
    if (alias.empty() || alias[0] != '#' || alias.size() > 255 || !valid_server_name(server) || server == context->server_name)
      throw Error(errc::kUsage, "not another server's room alias: " + alias, 400);
    const auto answer = federation_request(*context, "GET", server,
                                           "/_matrix/federation/v1/query/directory?room_alias=" + percent_encode(alias), nullptr);
    if (answer.status == 404) throw Error(errc::kMNotFound, "no room alias " + alias, 404);
    if (!answer.ok() || !answer.body.value("room_id", json()).is_string())
      throw Error("peer_unreachable", server + " did not answer: " + (answer.error.empty() ? "HTTP " + std::to_string(answer.status) : answer.error), 502);
    return Response::json(answer.body);
  }, "another server's room alias, for a member's client ({alias})");
  control.add_blocking("POST", "/v1/hierarchy", runtime.blocking_runner(), [context](const Request& q) {
    // A room of another server in one of our Spaces: its summary from the first server
    // named that gives one.
    const auto body = q.json();
    const std::string room_id = body.value("room_id", "");
    if (room_id.empty() || room_id[0] != '!' || room_id.size() > 255) throw Error(errc::kUsage, "room_id: a room ID", 400);
    std::string last_error = "no server named";
    int tried = 0;
    for (const auto& server : body.value("servers", json::array())) {
      if (!server.is_string() || !valid_server_name(server.get<std::string>()) || server == context->server_name) continue;
      if (++tried > 3) break;
      const auto answer = federation_request(*context, "GET", server.get<std::string>(),
                                             "/_matrix/federation/v1/hierarchy/" + percent_encode(room_id) +
                                                 (body.value("suggested_only", false) ? "?suggested_only=true" : ""),
                                             nullptr, 4 << 20);
      if (answer.ok()) return Response::json(answer.body);
      last_error = server.get<std::string>() + ": " + (answer.error.empty() ? "HTTP " + std::to_string(answer.status) : answer.error);
    }
    throw Error(errc::kNotFound, "no summary of " + room_id + ": " + last_error, 404);
  }, "another server's summary of one of its rooms in our Space ({room_id, servers, suggested_only})");
  control.add_blocking("POST", "/v1/join", runtime.blocking_runner(), [context](const Request& q) {
    return Response::json(join_remote_room(*context, q.json()));
  }, "join one of our users to a room on another server ({room, user_id, servers, content})");
  control.add_blocking("POST", "/v1/outbound/edu", runtime.blocking_runner(), [context](const Request& q) {
    const auto body = q.json();
    if (!body.contains("edu") || !body["edu"].is_object()) throw Error(errc::kUsage, "edu: an object", 400);
    // To the other servers in a room, or to the servers named.
    std::vector<std::string> servers;
    if (body.contains("servers")) {
      if (!body["servers"].is_array()) throw Error(errc::kUsage, "servers: a list of server names", 400);
      for (const auto& server : body["servers"]) {
        if (!server.is_string() || !valid_server_name(server.get<std::string>()))
          throw Error(errc::kUsage, "servers: a list of server names", 400);
        if (server != context->server_name) servers.push_back(server.get<std::string>());
      }
    } else {
      servers = context->store.remote_servers_in(body.value("room_id", ""));
    }
    context->sender->queue_edu(servers, body["edu"], body.value("durable", false));
    return Response::json(json::object());
  }, "an EDU of one of our members for other servers ({room_id or servers, edu, durable}): typing and receipts "
     "in memory, to-device messages and device list updates (durable) kept in federate.db until sent");
  control.add_blocking("POST", "/v1/leave", runtime.blocking_runner(), [context](const Request& q) {
    return Response::json(leave_remote_room(*context, q.json()));
  }, "one of our members declines an invitation into a room on another server ({room_id, user_id, servers})");
  control.add_blocking("POST", "/v1/invite", runtime.blocking_runner(), [context](const Request& q) {
    return Response::json(invite_remote_user(*context, q.json()));
  }, "one of our members invites a user of another server ({room_id, sender, user_id, content})");
  control.add("POST", "/v1/outbound/wake", [sender = sender_.get()](const Request&) {
    sender->wake();
    return Response::json(json::object());
  }, "coop-room stored events: send what other servers should have");
  control.add("GET", "/v1/policy", [policy = policy_.get()](const Request&) {
    return Response::json(policy->entries());
  }, "the servers allowed and denied ({server: allow|deny})");
  control.add_blocking("POST", "/v1/policy", runtime.blocking_runner(), [policy = policy_.get()](const Request& q) {
    const auto body = q.json();
    policy->set(body.value("server", ""), body.value("policy", ""));
    return Response::json(policy->entries());
  }, "allow or deny a server ({server, policy})");
  control.add_blocking("DELETE", "/v1/policy/{server}", runtime.blocking_runner(), [policy = policy_.get()](const Request& q) {
    // ?policy=allow|deny: only from that list (`coop federate deny X --remove` keeps an allow).
    const auto server = q.param("server"), list = q.query_value("policy");
    const auto entries = policy->entries();
    const auto it = entries.find(server);
    if (it == entries.end() || (!list.empty() && it->second != list))
      throw Error(errc::kNotFound, server + " is not on the " + (list.empty() ? "allow or deny" : list) + " list", 404);
    policy->remove(server);
    return Response::json(policy->entries());
  }, "forget a server's allow or deny entry");
  // The servers we send to: queue depth, backoff, last error.
  const auto destinations = [sender = sender_.get()] {
    json list = json::array();
    for (const auto& d : sender->destinations())
      list.push_back({{"server_name", d.server},
                      {"position", d.position},
                      {"pending", d.pending},
                      {"pending_edus", d.pending_edus},
                      {"sent", d.sent},
                      {"sending", d.sending},
                      {"backoff_ms", d.backoff_ms},
                      {"retry_at", d.retry_at ? json(d.retry_at) : json()},
                      {"last_sent_ts", d.last_sent_ts ? json(d.last_sent_ts) : json()},
                      {"last_error", d.last_error.empty() ? json() : json(d.last_error)}});
    return list;
  };
  control.add_blocking("GET", "/v1/destinations", runtime.blocking_runner(), [destinations](const Request&) {
    return Response::json(destinations());
  }, "the servers we send to: queue depth, backoff, last error");
  control.add_blocking("GET", "/v1/summary", runtime.blocking_runner(), [context, remote = remote_.get(), policy = policy_.get(), destinations](const Request&) {
    uint64_t admitted = 0, refused = 0;
    const auto peers = remote->peers();
    for (const auto& peer : peers) {
      admitted += peer.requests_in;
      refused += peer.refused_in;
    }
    json allowed = json::array(), denied = json::array();
    for (const auto& [server, rule] : policy->entries()) (rule == "allow" ? allowed : denied).push_back(server);
    return Response::json({{"server_name", context->server_name},
                           {"key_id", context->key.key_id()},
                           {"peers", peers.size()},
                           {"requests_in", admitted},
                           {"refused_in", refused},
                           {"mode", allowed.empty() ? "open" : "allow list"},
                           {"allowed", allowed},
                           {"denied", denied},
                           {"destinations", destinations()}});
  }, "the federation at a glance: peers, requests, allow and deny lists, outbound queues");
  control.add("GET", "/v1/peers", [remote = remote_.get()](const Request&) {
    json list = json::array();
    for (const auto& peer : remote->peers()) {
      json keys = json::object();
      for (const auto& [id, key] : peer.keys) keys[id] = key;
      list.push_back({{"server_name", peer.server_name},
                      {"base_url", peer.base_url},
                      {"connect_to", peer.connect_to.empty() ? json() : json(peer.connect_to)},
                      {"keys", keys},
                      {"valid_until_ts", peer.valid_until_ts},
                      {"fetched_ts", peer.fetched_ts},
                      {"requests_in", peer.requests_in},
                      {"refused_in", peer.refused_in},
                      {"last_error", peer.last_error.empty() ? json() : json(peer.last_error)}});
    }
    return Response::json(list);
  }, "the servers that contacted us or whose keys we fetched");

  http::ServerLimits limits;
  limits.max_body_bytes = runtime.config().get_count("workers.federate.max_body_bytes", 8 << 20);
  server_ = http::serve_worker_listener(runtime, "federate", "federation", *router_, limits);
  if (server_) spdlog::info("Matrix federation API on port {}", server_->port());
}

FederateWorker::~FederateWorker() {
  if (server_) server_->stop();
}

}  // namespace coop::federate
