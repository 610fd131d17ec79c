// coop-supervisor: started by `coop up`, runs the shard's workers.
#include <unistd.h>

#include <filesystem>

#include "common/worker_runtime.h"
#include "workers/supervisor/supervisor.h"

int main(int argc, char** argv) {
  bool foreground = false;
  for (int i = 1; i < argc; ++i) foreground = foreground || std::string_view(argv[i]) == "--foreground";
  const auto bin_dir = std::filesystem::read_symlink("/proc/self/exe").parent_path();
  return coop::run_worker_main(argc, argv, "supervisor", [&](coop::WorkerRuntime& runtime) {
    return std::make_shared<coop::Supervisor>(runtime, bin_dir, foreground);
  }, /*threads=*/1);
}
