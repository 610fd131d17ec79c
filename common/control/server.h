// The control API server: HTTP/1.1 + JSON on a Unix socket (ARCHITECTURE.md "The control API").
#pragma once

#include <chrono>
#include <cstddef>
#include <filesystem>
#include <memory>

namespace boost::asio {
class io_context;
}

namespace coop::control {

class Router;

struct ServerLimits {
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_header_bytes = 16 << 10;
  std::chrono::milliseconds idle_timeout{30000};
  std::size_t max_connections = 256;
};

class Server {
 public:
  // The router must outlive the server.
  Server(boost::asio::io_context& io, std::filesystem::path socket_path, const Router& router,
         ServerLimits limits);
  ~Server();
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Replaces a stale socket (the caller holds the process lock), binds, sets mode 0660
  // and starts accepting. Throws coop::Error("listen_failed") when it cannot.
  void start();
  // Stops accepting, closes every connection and unlinks the socket.
  void stop();
  std::size_t active_connections() const;

  struct Impl;  // public only so the .cpp's sessions can name it

 private:
  std::shared_ptr<Impl> impl_;
};

}  // namespace coop::control
