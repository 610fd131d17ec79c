// Wires the member registry into the worker runtime: store, auth service, change feed, routes.
#pragma once

#include <memory>

namespace coop {
class WorkerRuntime;
}

namespace coop::member {

class MemberStore;
class AuthService;
class EventFeed;
class Portal;

class MemberWorker {
 public:
  explicit MemberWorker(WorkerRuntime& runtime);
  ~MemberWorker();

 private:
  std::unique_ptr<MemberStore> store_;
  std::unique_ptr<AuthService> auth_;
  std::unique_ptr<EventFeed> feed_;
  std::unique_ptr<Portal> portal_;  // last: its handlers use the store and auth
};

}  // namespace coop::member
