// Wires the member registry into the worker runtime: store and control API routes.
#pragma once

#include <memory>

namespace coop {
class WorkerRuntime;
}

namespace coop::member {

class MemberStore;

class MemberWorker {
 public:
  explicit MemberWorker(WorkerRuntime& runtime);
  ~MemberWorker();

 private:
  std::unique_ptr<MemberStore> store_;
};

}  // namespace coop::member
