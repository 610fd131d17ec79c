// coop-member: the member registry worker.
#include "common/worker_runtime.h"
#include "workers/member/member_worker.h"

int main(int argc, char** argv) {
  return coop::run_worker_main(argc, argv, "member", [](coop::WorkerRuntime& runtime) {
    return std::make_shared<coop::member::MemberWorker>(runtime);
  });
}
