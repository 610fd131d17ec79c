// Wires coop-tiles: tiles.db (markers), the public tile server on its HTTP listener, the
// markers API for members (credentials checked by the registry) and the control API for
// `coop tiles marker`.
#pragma once

#include <memory>

namespace coop {
class WorkerRuntime;
namespace http {
class Router;
class Server;
}  // namespace http
namespace auth {
class BasicAuthCache;
class MemberEventFollower;
}  // namespace auth
}  // namespace coop

namespace coop::tiles {

class MarkerStore;
class TileService;

class TilesWorker {
 public:
  explicit TilesWorker(WorkerRuntime& runtime);
  ~TilesWorker();

 private:
  std::unique_ptr<MarkerStore> markers_;
  std::unique_ptr<TileService> service_;
  std::unique_ptr<auth::BasicAuthCache> credentials_;
  std::unique_ptr<http::Router> router_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<auth::MemberEventFollower> follower_;
};

}  // namespace coop::tiles
