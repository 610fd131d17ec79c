// The Matrix client-server API (spec v1.x, /_matrix/client/v3 with /r0 aliases) of coop-room.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <memory>
#include <string>

namespace coop {
class WorkerRuntime;
namespace http {
class Router;
}
}  // namespace coop

namespace coop::room {

class RoomStore;
class KeyStore;
struct StoreChange;
struct JitsiSettings;

class ClientApi {
 public:
  ClientApi(WorkerRuntime& runtime, RoomStore& store, KeyStore& keys, http::Router& router);
  ~ClientApi();
  // [workers.room.jitsi] as read at start, for the control routes that start calls.
  std::shared_ptr<const JitsiSettings> jitsi() const;
  // A member's sessions end (suspension, removal, password change): their tokens go; after a
  // password change made over Matrix, the devices that change asked to keep stay.
  void end_sessions(const std::string& handle, const std::string& kind);
  // Something changed: wake the long-polling /sync requests it concerns.
  void notify(const StoreChange& change);
  // Lets a member who left one of coop's Spaces rejoin it (see ClientApi::Impl::readmit).
  void set_readmission(std::function<void(const std::string& room_id, const std::string& user_id)> readmit);
  void close();  // answer every waiting /sync (shutdown)
  // EDUs other servers sent (typing, receipts, to-device messages, device list updates), as
  // coop-federate passes them on having checked their origin.
  void apply_remote_edus(const std::string& origin, const nlohmann::json& edus);
  // Our members' device list changes to the servers that share rooms with them; throws when
  // coop-federate does not take them (the next call starts where this one stopped).
  void federate_device_changes();
  // Control routes through which coop-federate answers other servers' key queries and claims
  // and device list requests (Server-Server API "End-to-End Encryption").
  void add_federation_routes(http::Router& control, const std::function<void(std::function<void()>)>& run);

  // The API's state and helpers, defined in client_impl.h for the route modules in api/.
  struct Impl;

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace coop::room
