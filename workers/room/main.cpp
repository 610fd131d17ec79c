// coop-room: the Matrix homeserver's client-server side.
#include "common/worker_runtime.h"
#include "workers/room/room_worker.h"

int main(int argc, char** argv) {
  return coop::run_worker_main(argc, argv, "room", [](coop::WorkerRuntime& runtime) {
    return std::make_shared<coop::room::RoomWorker>(runtime);
  });
}
