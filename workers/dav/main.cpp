// coop-dav: CalDAV and CardDAV.
#include "common/worker_runtime.h"
#include "workers/dav/dav_worker.h"

int main(int argc, char** argv) {
  return coop::run_worker_main(argc, argv, "dav", [](coop::WorkerRuntime& runtime) {
    return std::make_shared<coop::dav::DavWorker>(runtime);
  });
}
