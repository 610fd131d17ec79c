// coop-tiles: vector tiles of OpenStreetMap extracts and the cooperative's map markers.
#include "common/worker_runtime.h"
#include "workers/tiles/tiles_worker.h"

int main(int argc, char** argv) {
  return coop::run_worker_main(argc, argv, "tiles", [](coop::WorkerRuntime& runtime) {
    return std::make_shared<coop::tiles::TilesWorker>(runtime);
  });
}
