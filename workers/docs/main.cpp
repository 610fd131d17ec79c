// coop-docs: end-to-end encrypted collaborative documents (a Netflux relay and history keeper).
#include "common/worker_runtime.h"
#include "workers/docs/docs_worker.h"

int main(int argc, char** argv) {
  return coop::run_worker_main(argc, argv, "docs", [](coop::WorkerRuntime& runtime) {
    return std::make_shared<coop::docs::DocsWorker>(runtime);
  });
}
