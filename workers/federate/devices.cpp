// See devices.h.
#include "workers/federate/devices.h"

#include <nlohmann/json.hpp>

#include <chrono>

#include "common/control/client.h"
#include "common/error.h"
#include "common/text.h"
#include "common/worker_runtime.h"
#include "workers/federate/context.h"
#include "workers/federate/remote_keys.h"
#include "workers/federate/server_policy.h"

namespace coop::federate {

using http::Request;
using http::Response;
using nlohmann::json;

namespace {

// A question about our users for coop-room, which holds their keys: its answer as ours, its
// error as a Matrix one.
Response ask_room(Context& c, const std::string& path, const json& body) {
  control::ClientResponse answer;
  try {
    answer = control::Client(c.runtime.home().socket("room")).request("POST", path, body.dump(), std::chrono::seconds(10));
  } catch (const std::exception& e) {
    return matrix_error(503, "M_UNKNOWN", std::string("the room worker is not answering: ") + e.what());
  }
  const auto reply = answer.json();
  if (answer.ok()) return Response::json(reply);
  const auto error = reply.contains("error") && reply["error"].is_object() ? reply["error"] : json::object();
  const std::string code = error.value("code", "M_UNKNOWN");
  return matrix_error(static_cast<int>(answer.status), code.rfind("M_", 0) == 0 ? code : "M_UNKNOWN",
                      error.value("message", "the room worker refused"));
}

// A question of ours to another server on behalf of one of our members' clients: its answer,
// or a coop::Error (502) the client sees in its `failures`.
Response ask_server(Context& c, const Request& q, const std::string& path, const char* field) {
  const auto body = q.json();
  const auto server = body.value("server", "");
  if (!valid_server_name(server)) throw Error(errc::kUsage, "not a server name: " + server, 400);
  if (server == c.server_name) throw Error(errc::kUsage, "that is this server", 400);
  if (!c.policy.admits(server)) throw Error("server_denied", server + " is on the deny list", 403);
  if (!body.contains(field) || !body[field].is_object()) throw Error(errc::kUsage, std::string(field) + ": an object", 400);
  const json question = {{field, body[field]}};
  const auto answer = federation_request(c, "POST", server, path, &question, 4 << 20);
  if (!answer.ok())
    throw Error("peer_unreachable",
                server + " did not answer: " + (answer.error.empty() ? "HTTP " + std::to_string(answer.status) : answer.error), 502);
  return Response::json(answer.body);
}

}  // namespace

void add_device_routes(http::Router& r, http::Router& control, Context& c, const http::Runner& run) {
  // POST /user/keys/query (our users' device keys, master and self-signing keys) and POST
  // /user/keys/claim (a one-time key, else the fallback key, per device); and the same two
  // asked of other servers for our members' clients.
  struct Pass {
    const char* path;
    const char* field;
    const char* room_path;
    const char* control_path;
    const char* what;
  };
  for (const auto& pass : {Pass{"/_matrix/federation/v1/user/keys/query", "device_keys", "/v1/federation/keys/query",
                                "/v1/user/keys/query", "device and cross-signing keys"},
                           Pass{"/_matrix/federation/v1/user/keys/claim", "one_time_keys", "/v1/federation/keys/claim",
                                "/v1/user/keys/claim", "one-time keys, claimed"}}) {
    r.add_blocking("POST", pass.path, run,
                   signed_by_peer(c, [&c, pass](const Request& q, const std::string& origin) {
                     const auto body = q.json();
                     if (!body.contains(pass.field) || !body[pass.field].is_object())
                       return matrix_error(400, "M_BAD_JSON", std::string(pass.field) + " must be an object");
                     return ask_room(c, pass.room_path, {{"origin", origin}, {pass.field, body[pass.field]}});
                   }),
                   std::string("our users' ") + pass.what);
    control.add_blocking("POST", pass.control_path, run, [&c, pass](const Request& q) {
      return ask_server(c, q, pass.path, pass.field);
    }, std::string("another server's users' ") + pass.what + " for a member's client ({server, " + pass.field + "})");
  }
  // GET /user/devices/{userId}: what a server that missed device list updates resyncs from.
  r.add_blocking("GET", "/_matrix/federation/v1/user/devices/{userId}", run,
                 signed_by_peer(c, [&c](const Request& q, const std::string& origin) {
                   const auto user_id = q.param("userId");
                   if (!is_local_user(c, user_id)) return matrix_error(400, "M_INVALID_PARAM", "not a user of this server");
                   return ask_room(c, "/v1/federation/devices", {{"origin", origin}, {"user_id", user_id}});
                 }),
                 "one of our users' devices and their keys");
}

}  // namespace coop::federate
