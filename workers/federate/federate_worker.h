// Wires coop-federate: the shard's signing key, the Matrix event store it shares with
// coop-room, other servers' keys, and the Server-Server API on the federation listener.
#pragma once

#include <memory>

namespace coop {
class WorkerRuntime;
namespace http {
class Router;
class Server;
}  // namespace http
namespace matrix {
class SigningKey;
}
namespace room {
class RoomStore;
}
}  // namespace coop

namespace coop::federate {

class RemoteKeys;
class Sender;
class ServerPolicy;
struct Context;
struct RoomNotifier;

class FederateWorker {
 public:
  explicit FederateWorker(WorkerRuntime& runtime);
  ~FederateWorker();

 private:
  std::unique_ptr<matrix::SigningKey> key_;
  std::unique_ptr<room::RoomStore> store_;
  std::unique_ptr<RemoteKeys> remote_;
  std::unique_ptr<ServerPolicy> policy_;
  std::unique_ptr<http::Router> router_;
  std::unique_ptr<Context> context_;
  std::unique_ptr<RoomNotifier> notifier_;
  std::unique_ptr<Sender> sender_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace coop::federate
