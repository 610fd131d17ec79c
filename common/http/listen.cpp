// Chooses plain HTTP or HTTPS for a configured listener.
#include "common/http/listen.h"

#include "common/config.h"
#include "common/error.h"
#include "common/net/tcp_listener.h"
#include "common/paths.h"
#include "common/worker_runtime.h"

namespace coop::http {

std::unique_ptr<Server> serve_listener(boost::asio::io_context& io, const ListenerConfig& listener, const Router& router,
                                       ServerLimits limits, const Home& home) {
  if (listener.scheme == "https")
    return Server::tls(io, listener.address, listener.port, router, limits,
                       net::make_server_tls_context(home.tls_cert(), home.tls_key()));
  if (listener.scheme != "http")
    throw Error(errc::kConfigInvalid, "listener " + listener.name + ": scheme must be http or https, not " + listener.scheme, 400);
  return Server::tcp(io, listener.address, listener.port, router, limits);
}

std::unique_ptr<Server> serve_worker_listener(WorkerRuntime& runtime, std::string_view worker, std::string_view name,
                                              const Router& router, ServerLimits limits) {
  std::unique_ptr<Server> server;
  std::vector<ListenerConfig> bound;
  for (const auto& listener : runtime.config().listeners(worker)) {
    if (listener.name != name) continue;
    server = serve_listener(runtime.io(), listener, router, limits, runtime.home());
    server->start();
    auto actual = listener;
    actual.port = server->port();
    bound.push_back(actual);
  }
  runtime.set_listeners(bound);
  return server;
}

}  // namespace coop::http
