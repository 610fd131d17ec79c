// What every coop process with a control socket shares: lock, pid file, logging, control
// server, signals and graceful shutdown (STYLE.md "Workers").
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/config.h"
#include "common/control/router.h"
#include "common/paths.h"

namespace boost::asio {
class io_context;
}

namespace coop {

struct RuntimeOptions {
  std::string name;         // "member", "supervisor"...
  std::string home;         // --home; empty means $COOP_HOME or ./coop-data
  bool foreground = false;  // log to stderr instead of log/<name>.log
  unsigned threads = 0;     // io threads; 0 means one per core
};

class WorkerRuntime {
 public:
  // Loads coop.toml, starts logging, takes run/<name>.lock (failing when another instance
  // holds it) and writes run/<name>.pid. Throws coop::Error.
  explicit WorkerRuntime(RuntimeOptions options);
  ~WorkerRuntime();
  WorkerRuntime(const WorkerRuntime&) = delete;
  WorkerRuntime& operator=(const WorkerRuntime&) = delete;

  const std::string& name() const;
  const Home& home() const;
  const Config& config() const;
  boost::asio::io_context& io();
  control::Router& router();
  // Runs a blocking job (SQLite writes, fsync, password hashing) on the runtime's blocking
  // pool ([runtime] blocking_threads, default: cores, at least 2).
  control::Runner blocking_runner();

  // Listeners to report in /v1/status (the bound addresses, after start).
  void set_listeners(std::vector<ListenerConfig> listeners);
  // Adds worker-specific fields to GET /v1/status.
  void on_status(std::function<void(nlohmann::json&)> fill);
  // Called on SIGTERM, SIGINT or POST /v1/shutdown: stop accepting, start draining.
  void on_shutdown(std::function<void()> hook);
  // True once the worker's connections are drained; polled until the deadline.
  void drained_when(std::function<bool()> predicate);
  // How long a shutdown may drain before the runtime stops anyway (default shutdown.drain_ms).
  void set_drain_timeout(std::chrono::milliseconds timeout);
  // Called on SIGHUP or POST /v1/reload, after the log file is reopened.
  void on_reload(std::function<void()> hook);

  // Binds the control socket and runs until shutdown; returns the exit code.
  int run();
  // Begins a graceful shutdown from any thread.
  void request_shutdown();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// Runs a worker's main: parses --home/--foreground, builds the runtime, lets setup build
// the worker and wire it in (the object setup returns lives until run() ends, and dies
// before the runtime), runs. Errors become one line on stderr and exit code 1.
int run_worker_main(int argc, char** argv, const std::string& name,
                    const std::function<std::shared_ptr<void>(WorkerRuntime&)>& setup, unsigned threads = 0);

}  // namespace coop
