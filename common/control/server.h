// The control API server: HTTP/1.1 + JSON on a Unix socket (ARCHITECTURE.md "The control API").
#pragma once

#include <filesystem>
#include <memory>

#include "common/http/server.h"

namespace coop::control {

using ServerLimits = http::ServerLimits;

// run/<name>.sock, mode 0660, served by the common HTTP server.
class Server {
 public:
  Server(boost::asio::io_context& io, std::filesystem::path socket_path, const http::Router& router,
         ServerLimits limits)
      : server_(http::Server::unix_socket(io, std::move(socket_path), router, limits)) {}
  void start() { server_->start(); }
  void stop() { server_->stop(); }
  std::size_t active_connections() const { return server_->active_connections(); }

 private:
  std::unique_ptr<http::Server> server_;
};

}  // namespace coop::control
