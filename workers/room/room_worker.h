// Wires coop-room: signing key, event store, the client-server API on its HTTP listener, and
// the member change feed that ends suspended members' sessions.
#pragma once

#include <memory>

namespace coop {
class CoalescedJob;
class WorkerRuntime;
namespace http {
class Router;
class Server;
}  // namespace http
namespace auth {
class MemberEventFollower;
}
namespace matrix {
class SigningKey;
}
}  // namespace coop

namespace coop::room {

class RoomStore;
class KeyStore;
class ClientApi;
class SpaceSync;
class PushSender;

class RoomWorker {
 public:
  explicit RoomWorker(WorkerRuntime& runtime);
  ~RoomWorker();

 private:
  std::unique_ptr<CoalescedJob> federate_poke_;  // first in, last out: its runs may still be going
  std::unique_ptr<CoalescedJob> device_lists_out_;
  std::unique_ptr<matrix::SigningKey> key_;
  std::unique_ptr<RoomStore> store_;
  std::unique_ptr<KeyStore> keys_;
  std::unique_ptr<http::Router> router_;
  std::unique_ptr<ClientApi> api_;
  std::unique_ptr<SpaceSync> spaces_;
  std::unique_ptr<PushSender> push_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<auth::MemberEventFollower> follower_;
};

}  // namespace coop::room
