// The supervisor: starts every worker that exists, restarts crashed ones with backoff,
// reports their health, stops them all on shutdown.
#pragma once

#include <filesystem>
#include <memory>

namespace coop {

class WorkerRuntime;

class Supervisor {
 public:
  // bin_dir holds the coop-<worker> binaries (beside coop-supervisor itself).
  Supervisor(WorkerRuntime& runtime, std::filesystem::path bin_dir, bool foreground);
  ~Supervisor();
  Supervisor(const Supervisor&) = delete;
  Supervisor& operator=(const Supervisor&) = delete;

 private:
  struct Impl;
  std::shared_ptr<Impl> impl_;
};

}  // namespace coop
