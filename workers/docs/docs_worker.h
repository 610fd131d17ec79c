// Wires coop-docs: the Netflux relay and history keeper on its HTTP listener's WebSocket
// path (/cryptpad_websocket), channel logs under COOP_HOME/docs/.
#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace coop {
class WorkerRuntime;
namespace auth {
class BasicAuthCache;
class MemberEventFollower;
}  // namespace auth
namespace http {
class Router;
class Server;
struct Request;
}  // namespace http
}  // namespace coop

namespace coop::docs {

class ChannelStore;
class DocsStore;
class Editor;
class Netflux;

class DocsWorker {
 public:
  explicit DocsWorker(WorkerRuntime& runtime);
  ~DocsWorker();

 private:
  std::optional<std::string> member(const http::Request& request);

  struct Connections;
  std::unique_ptr<ChannelStore> store_;
  std::unique_ptr<Netflux> netflux_;
  std::unique_ptr<Connections> connections_;
  std::unique_ptr<Editor> editor_;
  std::unique_ptr<DocsStore> docs_store_;
  std::unique_ptr<auth::BasicAuthCache> credentials_;
  std::unique_ptr<auth::MemberEventFollower> follower_;
  std::mutex sweep_mutex_;
  std::condition_variable sweep_stop_;
  bool stopping_ = false;
  std::thread sweeper_;
  std::unique_ptr<http::Router> router_;
  std::unique_ptr<http::Server> server_;
};

}  // namespace coop::docs
