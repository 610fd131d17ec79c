// What coop-federate's handlers share: the shard's key, the event store, other servers' keys,
// the allow and deny lists, the outbound sender; and the helpers every federation endpoint
// uses (Matrix errors, X-Matrix authentication, signed requests to other servers).
#pragma once

#include <nlohmann/json.hpp>

#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "common/error.h"
#include "common/http/router.h"
#include "workers/federate/http_fetch.h"
#include "workers/matrix/ids.h"

namespace coop {
class WorkerRuntime;
namespace matrix {
class SigningKey;
}
namespace room {
class RoomStore;
}
}  // namespace coop

namespace coop::federate {

class RemoteKeys;
class ServerPolicy;
class Sender;

struct Context {
  WorkerRuntime& runtime;
  const matrix::SigningKey& key;
  room::RoomStore& store;
  RemoteKeys& remote;
  ServerPolicy& policy;
  std::string server_name;
  Sender* sender = nullptr;  // set once the sender runs
};

// Matrix's error body ("API standards"): {"errcode", "error"}.
http::Response matrix_error(int status, const std::string& errcode, const std::string& message);
http::Response matrix_error(const Error& e);

// Every federation handler: a coop::Error or a malformed field answers as Matrix does, never
// with a crash.
template <typename Handler>
http::Handler guarded(Handler handler) {
  return [handler](const http::Request& q) {
    try {
      return handler(q);
    } catch (const Error& e) {
      return matrix_error(e);
    } catch (const nlohmann::json::exception& e) {
      return matrix_error(400, "M_BAD_JSON", std::string("malformed request: ") + e.what());
    }
  };
}

// "Request Authentication": the origin of a request, once its X-Matrix signature checks out
// against the origin's published key; otherwise a 401 or 403 to send back.
std::variant<std::string, http::Response> authenticate(Context& c, const http::Request& q);

// A handler that needs an authenticated origin: handler(request, origin).
template <typename Handler>
http::Handler signed_by_peer(Context& c, Handler handler) {
  return guarded([&c, handler](const http::Request& q) {
    auto who = authenticate(c, q);
    if (auto* refused = std::get_if<http::Response>(&who)) return *refused;
    return handler(q, std::get<std::string>(who));
  });
}

// A request of ours to another server, signed with X-Matrix: the answer's status and JSON
// body, or why there is none.
struct PeerAnswer {
  long status = 0;
  nlohmann::json body;
  std::string error;
  bool ok() const { return status == 200 && body.is_object(); }
};
// The same request with the answer as it came (media are not JSON).
Fetched signed_fetch(const Context& c, const std::string& method, const std::string& destination, const std::string& uri,
                     const nlohmann::json* body, std::size_t max_answer_bytes, long timeout_ms);
PeerAnswer federation_request(const Context& c, const std::string& method, const std::string& destination,
                              const std::string& uri, const nlohmann::json* body, std::size_t max_answer_bytes = 1 << 20,
                              long timeout_ms = 10000);

using matrix::server_of;

// Whether the room's server ACL (m.room.server_acl) lets a server take part: every request
// and PDU concerning a room from another server passes this first (Client-Server API "Server
// Access Control Lists (ACLs) for rooms").
bool acl_admits(const Context& c, const std::string& room_id, const std::string& server);
bool is_local_user(const Context& c, const std::string& user_id);

// The registry's record of one of our users when they are an active member (a suspended or
// removed one is not shown, invited or looked up).
std::optional<nlohmann::json> active_member(const Context& c, const std::string& user_id);

// An event as it goes over the wire: as stored, less what we added (event_id, unsigned).
nlohmann::json pdu_for_wire(nlohmann::json event);

}  // namespace coop::federate
