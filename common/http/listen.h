// A protocol worker's HTTP listener from coop.toml: plain for scheme "http", TLS with the
// shard's certificate (keys/tls.crt) for "https".
#pragma once

#include <memory>

#include "common/http/server.h"

namespace coop {
class Home;
struct ListenerConfig;
}  // namespace coop

namespace coop::http {

std::unique_ptr<Server> serve_listener(boost::asio::io_context& io, const ListenerConfig& listener, const Router& router,
                                       ServerLimits limits, const Home& home);

}  // namespace coop::http
