// coop-site: the cooperative's published websites and event pages.
#include "common/worker_runtime.h"
#include "workers/site/site_worker.h"

int main(int argc, char** argv) {
  return coop::run_worker_main(argc, argv, "site", [](coop::WorkerRuntime& runtime) {
    return std::make_shared<coop::site::SiteWorker>(runtime);
  });
}
