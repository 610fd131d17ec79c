// Chooses plain HTTP or HTTPS for a configured listener.
#include "common/http/listen.h"

#include "common/config.h"
#include "common/error.h"
#include "common/net/tcp_listener.h"
#include "common/paths.h"

namespace coop::http {

std::unique_ptr<Server> serve_listener(boost::asio::io_context& io, const ListenerConfig& listener, const Router& router,
                                       ServerLimits limits, const Home& home) {
  if (listener.scheme == "https")
    return Server::tls(io, listener.address, listener.port, router, limits,
                       net::make_server_tls_context(home.tls_cert(), home.tls_key()));
  if (listener.scheme != "http")
    throw Error("config_invalid", "listener " + listener.name + ": scheme must be http or https, not " + listener.scheme, 400);
  return Server::tcp(io, listener.address, listener.port, router, limits);
}

}  // namespace coop::http
