// Beast HTTP/1.1 sessions over Unix-domain or TCP stream sockets.
#include "common/http/server.h"

#include <sys/stat.h>
#include <sys/un.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <map>
#include <mutex>
#include <optional>
#include <set>

#include "common/error.h"
#include "common/http/router.h"
#include "common/text.h"

namespace coop::http {

namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace bhttp = beast::http;
using local = net::local::stream_protocol;
using Tcp = net::ip::tcp;

std::string peer_address(const local::socket&) { return "local"; }
std::string peer_address(const Tcp::socket& socket) {
  beast::error_code ec;
  const auto endpoint = socket.remote_endpoint(ec);
  if (ec) return "unknown";
  auto address = endpoint.address();
  if (address.is_v6() && address.to_v6().is_v4_mapped()) return net::ip::make_address_v4(net::ip::v4_mapped, address.to_v6()).to_string();
  return address.to_string();
}

template <typename Protocol, bool Tls>
class Listener;

using PlainTcp = beast::basic_stream<Tcp, net::any_io_executor, beast::unlimited_rate_policy>;

// A plain stream, or TLS on top of one (RFC 8446 through OpenSSL) for public listeners.
template <typename Protocol, bool Tls>
using StreamOf = std::conditional_t<Tls, beast::ssl_stream<PlainTcp>,
                                    beast::basic_stream<Protocol, net::any_io_executor, beast::unlimited_rate_policy>>;

template <typename Protocol, bool Tls>
class Session : public std::enable_shared_from_this<Session<Protocol, Tls>> {
 public:
  using Stream = StreamOf<Protocol, Tls>;

  Session(typename Protocol::socket socket, std::weak_ptr<Listener<Protocol, Tls>> listener, const Router& router,
          ServerLimits limits, net::ssl::context* tls)
      : remote_(peer_address(socket)), stream_(make_stream(std::move(socket), tls)), listener_(std::move(listener)),
        router_(router), limits_(limits) {}

  const std::string& remote() const { return remote_; }

  void start() {
    net::dispatch(lowest().get_executor(), [self = this->shared_from_this()] {
      if constexpr (Tls) {
        self->lowest().expires_after(std::chrono::seconds(10));
        self->stream_.async_handshake(net::ssl::stream_base::server, [self](beast::error_code ec) {
          if (ec) return self->finish();
          self->read();
        });
      } else {
        self->read();
      }
    });
  }

  void close() {
    net::post(lowest().get_executor(), [self = this->shared_from_this()] {
      beast::error_code ignored;
      self->lowest().socket().shutdown(Protocol::socket::shutdown_both, ignored);
      self->lowest().close();
    });
  }

 private:
  static Stream make_stream(typename Protocol::socket socket, net::ssl::context* tls) {
    if constexpr (Tls)
      return Stream(PlainTcp(std::move(socket)), *tls);
    else
      return Stream(std::move(socket));
  }
  auto& lowest() { return beast::get_lowest_layer(stream_); }

  void read() {
    parser_.emplace();
    parser_->body_limit(limits_.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
    lowest().expires_after(limits_.idle_timeout);
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout || ec == net::error::eof ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset) {
      finish();
      return;
    }
    if (ec == bhttp::error::body_limit) {
      respond(router_.error(413, "payload_too_large", "request body exceeds " + std::to_string(limits_.max_body_bytes) + " bytes"), false);
      return;
    }
    if (ec == bhttp::error::header_limit) {
      respond(router_.error(431, "headers_too_large", "request headers too large"), false);
      return;
    }
    if (ec) {
      respond(router_.error(400, "bad_request", "malformed HTTP request: " + ec.message()), false);
      return;
    }

    auto message = parser_->release();
    const bool keep_alive = message.keep_alive();
    head_only_ = message.method() == bhttp::verb::head;
    Request request;
    request.method = std::string(message.method_string());
    request.remote_address = remote_;
    const auto target = message.target();
    if (!parse_target(std::string_view(target.data(), target.size()), request)) {
      respond(router_.error(400, "bad_request", "bad request target"), false);
      return;
    }
    for (const auto& field : message) {
      const auto raw_name = field.name_string();
      auto& slot = request.headers[ascii_lower(std::string_view(raw_name.data(), raw_name.size()))];
      slot += (slot.empty() ? "" : ", ") + std::string(field.value());
    }
    request.body = std::move(message.body());
    // A long-poll handler may hold the request for a while: no idle timeout meanwhile.
    lowest().expires_never();
    auto self = this->shared_from_this();
    router_.dispatch(std::move(request), [self, keep_alive](Response response) {
      net::post(self->lowest().get_executor(), [self, keep_alive, response = std::move(response)]() mutable {
        self->respond(std::move(response), keep_alive);
      });
    });
  }

  void respond(Response response, bool keep_alive) {
    auto reply = std::make_shared<bhttp::response<bhttp::string_body>>(static_cast<bhttp::status>(response.status), 11);
    reply->set(bhttp::field::server, "coop");
    if (!response.content_type.empty()) reply->set(bhttp::field::content_type, response.content_type);
    for (const auto& [name, value] : response.headers) reply->insert(name, value);
    reply->keep_alive(keep_alive);
    reply->body() = std::move(response.body);
    reply->prepare_payload();
    if (head_only_) reply->body().clear();
    lowest().expires_after(limits_.idle_timeout);
    bhttp::async_write(stream_, *reply, [self = this->shared_from_this(), reply, keep_alive](beast::error_code ec, std::size_t) {
      if (ec || !keep_alive) {
        beast::error_code ignored;
        self->lowest().socket().shutdown(Protocol::socket::shutdown_send, ignored);
        self->finish();
        return;
      }
      self->read();
    });
  }

  void finish();

  std::string remote_;
  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<bhttp::request_parser<bhttp::string_body>> parser_;
  std::weak_ptr<Listener<Protocol, Tls>> listener_;
  const Router& router_;
  ServerLimits limits_;
  bool head_only_ = false;
};

template <typename Protocol, bool Tls>
class Listener : public std::enable_shared_from_this<Listener<Protocol, Tls>> {
 public:
  Listener(net::io_context& io, const Router& router, ServerLimits limits, std::shared_ptr<net::ssl::context> tls = nullptr)
      : io_(io), acceptor_(net::make_strand(io)), router_(router), limits_(limits), tls_(std::move(tls)) {}

  typename Protocol::acceptor& acceptor() { return acceptor_; }

  void accept() {
    acceptor_.async_accept(net::make_strand(io_), [self = this->shared_from_this()](beast::error_code ec,
                                                                                      typename Protocol::socket socket) {
      if (self->stopped_) return;
      if (ec) {
        if (ec != net::error::operation_aborted) spdlog::warn("http accept: {}", ec.message());
        if (ec == net::error::bad_descriptor) return;
        self->accept();
        return;
      }
      std::shared_ptr<Session<Protocol, Tls>> session;
      {
        std::lock_guard lock(self->mutex_);
        auto candidate = std::make_shared<Session<Protocol, Tls>>(std::move(socket), self, self->router_, self->limits_,
                                                                  self->tls_.get());
        const bool too_many = self->sessions_.size() >= self->limits_.max_connections;
        const bool too_many_here = self->limits_.max_per_address > 0 &&
                                   self->per_address_[candidate->remote()] >= self->limits_.max_per_address;
        if (too_many || too_many_here) {
          spdlog::warn("http: refusing a connection from {} ({})", candidate->remote(),
                       too_many ? "too many connections" : "too many from this address");
          candidate->close();
        } else {
          session = candidate;
          self->sessions_.insert(session);
          ++self->per_address_[session->remote()];
        }
      }
      if (session) session->start();
      self->accept();
    });
  }

  void forget(Session<Protocol, Tls>* session) {
    std::lock_guard lock(mutex_);
    for (auto it = sessions_.begin(); it != sessions_.end(); ++it) {
      if (it->get() != session) continue;
      auto count = per_address_.find(session->remote());
      if (count != per_address_.end() && --count->second == 0) per_address_.erase(count);
      sessions_.erase(it);
      return;
    }
  }

  void stop() {
    if (stopped_.exchange(true)) return;
    // The acceptor lives on a strand: close it there, never racing an accept completion.
    net::dispatch(acceptor_.get_executor(), [self = this->shared_from_this()] {
      beast::error_code ignored;
      self->acceptor_.close(ignored);
    });
    std::set<std::shared_ptr<Session<Protocol, Tls>>> sessions;
    {
      std::lock_guard lock(mutex_);
      sessions.swap(sessions_);
      per_address_.clear();
    }
    for (const auto& session : sessions) session->close();
  }

  std::size_t active() const {
    std::lock_guard lock(mutex_);
    return sessions_.size();
  }

 private:
  net::io_context& io_;
  typename Protocol::acceptor acceptor_;
  const Router& router_;
  ServerLimits limits_;
  mutable std::mutex mutex_;
  std::set<std::shared_ptr<Session<Protocol, Tls>>> sessions_;
  std::map<std::string, std::size_t> per_address_;
  std::atomic<bool> stopped_{false};
  std::shared_ptr<net::ssl::context> tls_;
};

template <typename Protocol, bool Tls>
void Session<Protocol, Tls>::finish() {
  lowest().close();
  if (auto listener = listener_.lock()) listener->forget(this);
}

class UnixServer final : public Server {
 public:
  UnixServer(net::io_context& io, std::filesystem::path path, const Router& router, ServerLimits limits)
      : path_(std::move(path)), listener_(std::make_shared<Listener<local, false>>(io, router, limits)) {}
  ~UnixServer() override { stop(); }

  void start() override {
    // sun_path holds 108 bytes; a deep COOP_HOME must fail clearly, not truncate.
    if (path_.native().size() >= sizeof(sockaddr_un::sun_path))
      throw Error("listen_failed", "socket path too long: " + path_.string(), 500);
    std::error_code fs_ec;
    std::filesystem::remove(path_, fs_ec);
    beast::error_code ec;
    auto& acceptor = listener_->acceptor();
    acceptor.open(local(), ec);
    if (!ec) acceptor.bind(local::endpoint(path_.string()), ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec) throw Error("listen_failed", "cannot listen on " + path_.string() + ": " + ec.message(), 500);
    if (::chmod(path_.c_str(), 0660) != 0) throw Error("listen_failed", "cannot chmod " + path_.string(), 500);
    listener_->accept();
  }

  void stop() override {
    if (stopped_) return;
    stopped_ = true;
    listener_->stop();
    std::error_code fs_ec;
    std::filesystem::remove(path_, fs_ec);
  }

  std::size_t active_connections() const override { return listener_->active(); }

 private:
  std::filesystem::path path_;
  std::shared_ptr<Listener<local, false>> listener_;
  bool stopped_ = false;
};

template <bool Tls>
class TcpServer final : public Server {
 public:
  TcpServer(net::io_context& io, std::string address, uint16_t port, const Router& router, ServerLimits limits,
            std::shared_ptr<net::ssl::context> tls = nullptr)
      : address_(std::move(address)), port_(port),
        listener_(std::make_shared<Listener<Tcp, Tls>>(io, router, limits, std::move(tls))) {}
  ~TcpServer() override { stop(); }

  void start() override {
    beast::error_code ec;
    const auto address = net::ip::make_address(address_, ec);
    if (ec) throw Error("listen_failed", "'" + address_ + "' is not an IP address", 500);
    const Tcp::endpoint endpoint(address, port_);
    auto& acceptor = listener_->acceptor();
    acceptor.open(endpoint.protocol(), ec);
    if (!ec) acceptor.set_option(net::socket_base::reuse_address(true), ec);
    if (!ec) acceptor.bind(endpoint, ec);
    if (!ec) acceptor.listen(net::socket_base::max_listen_connections, ec);
    if (ec)
      throw Error("listen_failed", "cannot listen on " + address_ + ":" + std::to_string(port_) + ": " + ec.message(), 500);
    port_ = acceptor.local_endpoint().port();
    listener_->accept();
  }

  void stop() override {
    if (stopped_) return;
    stopped_ = true;
    listener_->stop();
  }

  std::size_t active_connections() const override { return listener_->active(); }
  uint16_t port() const override { return port_; }

 private:
  std::string address_;
  uint16_t port_;
  std::shared_ptr<Listener<Tcp, Tls>> listener_;
  bool stopped_ = false;
};

}  // namespace

std::unique_ptr<Server> Server::unix_socket(net::io_context& io, std::filesystem::path path, const Router& router,
                                            ServerLimits limits) {
  return std::make_unique<UnixServer>(io, std::move(path), router, limits);
}

std::unique_ptr<Server> Server::tcp(net::io_context& io, std::string address, uint16_t port, const Router& router,
                                    ServerLimits limits) {
  return std::make_unique<TcpServer<false>>(io, std::move(address), port, router, limits);
}

std::unique_ptr<Server> Server::tls(net::io_context& io, std::string address, uint16_t port, const Router& router,
                                    ServerLimits limits, std::shared_ptr<net::ssl::context> context) {
  return std::make_unique<TcpServer<true>>(io, std::move(address), port, router, limits, std::move(context));
}

}  // namespace coop::http
