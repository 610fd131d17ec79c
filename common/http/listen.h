// A protocol worker's HTTP listener from coop.toml: plain for scheme "http", TLS with the
// shard's certificate (keys/tls.crt) for "https".
#pragma once

#include <memory>
#include <string_view>

#include "common/http/server.h"

namespace coop {
class Home;
class WorkerRuntime;
struct ListenerConfig;
}  // namespace coop

namespace coop::http {

std::unique_ptr<Server> serve_listener(boost::asio::io_context& io, const ListenerConfig& listener, const Router& router,
                                       ServerLimits limits, const Home& home);

// Starts the worker's listener called name in coop.toml ([workers.WORKER.listen] NAME) and
// reports its bound address in /v1/status; nullptr when coop.toml has none.
std::unique_ptr<Server> serve_worker_listener(WorkerRuntime& runtime, std::string_view worker, std::string_view name,
                                              const Router& router, ServerLimits limits);

}  // namespace coop::http
