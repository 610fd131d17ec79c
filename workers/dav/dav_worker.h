// Wires coop-dav: dav.db, the DAV protocol on its HTTP listener, the members directory kept
// current from the registry's change feed, and the control API for `coop dav`.
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
}  // namespace coop

namespace coop::dav {

class DavStore;
class DavHandler;
class MemberDirectory;

class DavWorker {
 public:
  explicit DavWorker(WorkerRuntime& runtime);
  ~DavWorker();

 private:
  std::unique_ptr<DavStore> store_;
  std::unique_ptr<DavHandler> handler_;
  std::unique_ptr<MemberDirectory> directory_;
  std::unique_ptr<CoalescedJob> directory_refresh_;  // one refresh for a burst of member events
  std::unique_ptr<http::Router> router_;
  std::unique_ptr<http::Server> server_;
  std::unique_ptr<auth::MemberEventFollower> follower_;
};

}  // namespace coop::dav
