// coop-federate: Matrix federation, the Server-Server API.
#include "common/worker_runtime.h"
#include "workers/federate/federate_worker.h"

int main(int argc, char** argv) {
  return coop::run_worker_main(argc, argv, "federate", [](coop::WorkerRuntime& runtime) {
    return std::make_shared<coop::federate::FederateWorker>(runtime);
  });
}
