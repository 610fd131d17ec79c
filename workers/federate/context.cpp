// The helpers every federation endpoint uses; see context.h.
#include "workers/federate/context.h"

#include "common/control/client.h"
#include "common/text.h"
#include "common/worker_runtime.h"
#include "common/json.h"
#include "workers/federate/http_fetch.h"
#include "workers/federate/remote_keys.h"
#include "workers/federate/sender.h"
#include "workers/federate/server_policy.h"
#include "workers/matrix/server_acl.h"
#include "workers/room/store/room_store.h"
#include "workers/matrix/x_matrix.h"

namespace coop::federate {

using http::Request;
using http::Response;
using nlohmann::json;

Response matrix_error(int status, const std::string& errcode, const std::string& message) {
  return Response::json({{"errcode", errcode}, {"error", message}}, status);
}

Response matrix_error(const Error& e) {
  // Matrix errcodes pass through; coop's own codes map to the nearest Matrix one.
  std::string code = e.code();
  if (code.rfind("M_", 0) != 0)
    code = e.status() == 404 ? "M_NOT_FOUND" : e.status() == 401 ? "M_UNAUTHORIZED" : e.status() == 403 ? "M_FORBIDDEN" : "M_BAD_JSON";
  return matrix_error(e.status(), code, e.what());
}

std::variant<std::string, Response> authenticate(Context& c, const Request& q) {
  const auto header = matrix::parse_x_matrix(q.header("authorization"));
  if (!header) return matrix_error(401, "M_UNAUTHORIZED", "an X-Matrix Authorization header is needed");
  if (!valid_server_name(header->origin) || header->origin == c.server_name)
    return matrix_error(401, "M_UNAUTHORIZED", "origin is not another homeserver's name");
  if (!header->destination.empty() && header->destination != c.server_name)
    return matrix_error(401, "M_UNAUTHORIZED", "this request is meant for " + header->destination);
  // A server this one does not federate with is refused before anything is fetched from it.
  if (!c.policy.admits(header->origin))
    return matrix_error(403, "M_FORBIDDEN", c.server_name + " does not federate with " + header->origin);
  json content;
  const json* body = nullptr;
  if (!q.body.empty()) {
    content = q.json();
    body = &content;
  }
  const auto public_key = c.remote.public_key(header->origin, header->key_id);
  const bool good = public_key && matrix::verify_x_matrix(*header, q.method, q.target, c.server_name, body, *public_key);
  c.remote.count(header->origin, good);
  if (!good) return matrix_error(401, "M_UNAUTHORIZED", "the request's signature does not check out for " + header->origin);
  // A server that talks to us is up: what we hold for it goes now, not after its backoff.
  if (c.sender) c.sender->peer_is_up(header->origin);
  return header->origin;
}

Fetched signed_fetch(const Context& c, const std::string& method, const std::string& destination, const std::string& uri,
                     const json* body, std::size_t max_answer_bytes, long timeout_ms) {
  if (!c.policy.admits(destination)) return {0, "", "this server does not federate with " + destination};
  std::vector<std::string> headers{
      "Authorization: " + matrix::x_matrix_authorization(method, uri, c.server_name, destination, body, c.key)};
  std::string payload;
  if (body) {
    headers.emplace_back("Content-Type: application/json");
    payload = body->dump();
  }
  const auto where = c.remote.route(destination);
  return http_fetch(method, where.base_url + uri, headers, payload, max_answer_bytes, timeout_ms, where.connect_to);
}

PeerAnswer federation_request(const Context& c, const std::string& method, const std::string& destination,
                              const std::string& uri, const json* body, std::size_t max_answer_bytes, long timeout_ms) {
  const auto fetched = signed_fetch(c, method, destination, uri, body, max_answer_bytes, timeout_ms);
  PeerAnswer out{fetched.status, nullptr, fetched.error};
  if (fetched.status) {
    try {
      out.body = parse_json_object(fetched.body);
    } catch (const std::exception&) {
      out.error = "the answer is not a JSON object";
    }
    if (fetched.status != 200 && out.error.empty() && out.body.is_object()) {
      const auto text = [&out](const char* key) {
        return out.body.contains(key) && out.body[key].is_string() ? out.body[key].get<std::string>() : std::string();
      };
      out.error = "HTTP " + std::to_string(fetched.status) + " " + text("errcode") + ": " + text("error");
    }
  }
  return out;
}

bool acl_admits(const Context& c, const std::string& room_id, const std::string& server) {
  const auto acl = c.store.state_event(room_id, "m.room.server_acl", "");
  return !acl || matrix::server_acl_allows(acl->value("content", nlohmann::json()), server);
}

bool is_local_user(const Context& c, const std::string& user_id) {
  return user_id.size() > 2 && user_id[0] == '@' && server_of(user_id) == c.server_name;
}

std::optional<json> active_member(const Context& c, const std::string& user_id) {
  try {
    control::Client client(c.runtime.home().socket("member"));
    const auto response = client.get("/v1/members/" + percent_encode(user_id.substr(1, user_id.find(':') - 1)));
    if (response.ok() && response.json().value("status", "") == "active") return response.json();
  } catch (const std::exception&) {
  }
  return std::nullopt;
}

json pdu_for_wire(json event) {
  event.erase("event_id");
  event.erase("unsigned");
  return event;
}

}  // namespace coop::federate
