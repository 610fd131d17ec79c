// HTTP/1.1 servers on Beast: on a Unix socket (the control API) or on TCP (Matrix, DAV,
// tiles, documents, sites). Handlers see http::Request and never Beast.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

namespace boost::asio {
class io_context;
namespace ssl {
class context;
}
}  // namespace boost::asio

namespace coop::http {

class Router;

struct ServerLimits {
  std::size_t max_body_bytes = 1 << 20;
  std::size_t max_header_bytes = 16 << 10;
  std::chrono::milliseconds idle_timeout{30000};
  // Over a limit, the connection idle longest between requests is closed to make room
  // (common/net/admission.h); a connection answering a request or upgraded to WebSocket is
  // never closed for that. Only when nothing can make room is the client refused with 503.
  std::size_t max_connections = 256;
  std::size_t max_per_address = 0;  // 0: no limit (Unix sockets)
  std::size_t max_per_network = 0;  // per IPv4 /24 and IPv6 /64; 0: no limit
  std::size_t max_evictable = 0;    // idle between requests; 0: three quarters of max_connections
  // Reverse proxies ([http] trusted_proxies, CIDR): exempt from the per-address and
  // per-network caps, which their clients would otherwise share.
  std::vector<std::string> trusted_proxies;
};

class Server {
 public:
  // The router must outlive the server.
  static std::unique_ptr<Server> unix_socket(boost::asio::io_context& io, std::filesystem::path path,
                                             const Router& router, ServerLimits limits);
  static std::unique_ptr<Server> tcp(boost::asio::io_context& io, std::string address, uint16_t port,
                                     const Router& router, ServerLimits limits);
  // HTTPS: TLS with the given context (common/net/tcp_listener.h make_server_tls_context).
  static std::unique_ptr<Server> tls(boost::asio::io_context& io, std::string address, uint16_t port, const Router& router,
                                     ServerLimits limits, std::shared_ptr<boost::asio::ssl::context> context);
  virtual ~Server() = default;

  // Binds and starts accepting; coop::Error(errc::kListenFailed) when it cannot. A Unix socket
  // replaces a stale one (the caller holds the process lock) and gets mode 0660.
  virtual void start() = 0;
  // Stops accepting and closes every connection; a Unix socket is unlinked.
  virtual void stop() = 0;
  virtual std::size_t active_connections() const = 0;
  virtual uint16_t port() const { return 0; }
};

}  // namespace coop::http
