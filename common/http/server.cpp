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
#include <boost/beast/websocket.hpp>
#include <boost/beast/websocket/ssl.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <deque>
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

// Small frames (WebSocket messages, ACKs) must not wait for Nagle's algorithm and the peer's
// delayed ACK (40 ms on Linux); responses are written whole, so nothing is lost by it.
void no_delay(local::socket&) {}
void no_delay(Tcp::socket& socket) {
  beast::error_code ignored;
  socket.set_option(Tcp::no_delay(true), ignored);
}
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

std::atomic<uint64_t> next_websocket_id{1};

// The worker's handle on an upgraded connection. Frames queue here from any thread; the
// session's strand takes them in batches (one post per batch, not per frame).
class WebSocketConnection final : public WebSocket {
 public:
  using Frame = std::shared_ptr<const std::string>;
  WebSocketConnection(std::string remote, std::size_t max_queued) : remote_(std::move(remote)), max_queued_(max_queued) {}
  bool send(std::string text) override { return send_shared(std::make_shared<const std::string>(std::move(text))); }
  bool send_shared(Frame text) override {
    if (closed_) return false;
    if (queued_.fetch_add(text->size()) + text->size() > max_queued_) {
      // The peer stopped reading: drop it rather than buffer without bound. No closing
      // handshake: its frame would wait behind the writes the peer is not reading.
      if (!closed_.exchange(true)) abort_();
      return false;
    }
    bool post = false;
    {
      std::lock_guard lock(mutex_);
      pending_.push_back(std::move(text));
      post = !flush_posted_;
      flush_posted_ = true;
    }
    if (post) flush_();
    return true;
  }
  void close(uint16_t code, std::string reason) override {
    if (!closed_.exchange(true)) close_(code, std::move(reason));
  }
  const std::string& remote_address() const override { return remote_; }
  uint64_t id() const override { return id_; }

  // On the strand: everything queued so far, in order.
  void take(std::deque<Frame>& into) {
    std::lock_guard lock(mutex_);
    for (auto& frame : pending_) into.push_back(std::move(frame));
    pending_.clear();
    flush_posted_ = false;
  }
  void written(std::size_t bytes) { queued_ -= bytes; }
  void mark_closed() { closed_ = true; }

  std::function<void()> flush_;  // posts a take() to the session's strand
  std::function<void(uint16_t, std::string)> close_;
  std::function<void()> abort_;

 private:
  std::string remote_;
  std::size_t max_queued_;
  uint64_t id_ = next_websocket_id++;
  std::atomic<std::size_t> queued_{0};
  std::atomic<bool> closed_{false};
  std::mutex mutex_;
  std::deque<Frame> pending_;
  bool flush_posted_ = false;
};

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
      : remote_(peer_address(socket)), stream_(make_stream((no_delay(socket), std::move(socket)), tls)), listener_(std::move(listener)),
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
  auto& lowest() { return ws_ ? beast::get_lowest_layer(*ws_) : beast::get_lowest_layer(stream_); }

  // RFC 6455 4.2: the handshake answers the upgrade request; from then on the connection
  // carries messages, read one at a time and written from a queue.
  void upgrade(bhttp::request<bhttp::string_body> message, const WebSocketHandlers& handlers) {
    namespace ws = beast::websocket;
    handlers_ = &handlers;
    lowest().expires_never();  // the WebSocket stream keeps its own timeouts and pings
    ws_ = std::make_unique<ws::stream<Stream>>(std::move(stream_));
    ws_->set_option(ws::stream_base::timeout::suggested(beast::role_type::server));
    ws_->set_option(ws::stream_base::decorator([](ws::response_type& r) { r.set(bhttp::field::server, "coop"); }));
    // The message limit is enforced in ws_read, not by Beast: Boost 1.74's teardown after a
    // too-big frame stops draining after one read and closes with the rest of the frame unread,
    // so the peer gets a reset instead of the 1009 close frame.
    ws_->read_message_max(0);
    ws_->text(true);
    auto request = std::make_shared<bhttp::request<bhttp::string_body>>(std::move(message));
    ws_->async_accept(*request, [self = this->shared_from_this(), request](beast::error_code ec) {
      if (ec) return self->finish();
      auto connection = std::make_shared<WebSocketConnection>(self->remote_, self->handlers_->max_queued_bytes);
      std::weak_ptr<Session> weak = self;
      connection->flush_ = [weak] {
        if (auto session = weak.lock()) net::post(session->lowest().get_executor(), [session] { session->flush(); });
      };
      connection->close_ = [weak](uint16_t code, std::string reason) {
        if (auto session = weak.lock())
          net::post(session->lowest().get_executor(), [session, code, reason = std::move(reason)] {
            if (!session->ws_ || session->gone_) return;
            // RFC 6455 5.5: a control frame's payload is at most 125 bytes (2 for the code).
            const std::string text = reason.substr(0, 123);
            session->ws_->async_close(beast::websocket::close_reason(static_cast<beast::websocket::close_code>(code), text), [session](beast::error_code) {
              session->gone();
            });
          });
      };
      connection->abort_ = [weak] {
        if (auto session = weak.lock())
          net::post(session->lowest().get_executor(), [session] {
            beast::error_code ignored;
            session->lowest().socket().close(ignored);  // pending reads and writes fail: gone()
          });
      };
      self->connection_ = connection;
      self->call([&] {
        if (self->handlers_->on_open) self->handlers_->on_open(connection);
      });
      self->ws_read();
    });
  }

  // Handler exceptions never escape into Asio: the connection is closed with 1011.
  template <typename F>
  void call(F&& f) {
    try {
      f();
    } catch (const std::exception& e) {
      spdlog::error("websocket handler: {}", e.what());
      if (connection_) connection_->close(1011, "internal error");
    }
  }

  // Reads a message piece by piece so that one over the limit is refused as soon as it
  // passes it: RFC 6455 7.4.1, 1009 "message too big", with a closing handshake (Beast's close
  // discards the rest of the peer's frames until its close frame), never a reset.
  void ws_read() {
    const std::size_t limit = handlers_->max_message_bytes;
    const std::size_t room = ws_buffer_.size() <= limit ? limit - ws_buffer_.size() + 1 : 1;
    ws_->async_read_some(ws_buffer_, std::min<std::size_t>(room, 64 << 10), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      if (ec) return self->gone();
      if (self->ws_buffer_.size() > self->handlers_->max_message_bytes) {
        self->ws_buffer_.clear();
        self->ws_buffer_.shrink_to_fit();
        self->connection_->close(1009, "message too big");
        return;
      }
      if (!self->ws_->is_message_done()) return self->ws_read();
      std::string text = beast::buffers_to_string(self->ws_buffer_.data());
      self->ws_buffer_.consume(self->ws_buffer_.size());
      self->call([&] {
        if (self->handlers_->on_message) self->handlers_->on_message(self->connection_, std::move(text));
      });
      if (!self->gone_) self->ws_read();
    });
  }

  void flush() {
    if (gone_ || !connection_) return;
    connection_->take(outbox_);
    if (!writing_ && !outbox_.empty()) ws_write();
  }

  void ws_write() {
    writing_ = true;
    ws_->async_write(net::buffer(*outbox_.front()), [self = this->shared_from_this()](beast::error_code ec, std::size_t) {
      self->connection_->written(self->outbox_.front()->size());
      self->outbox_.pop_front();
      if (ec) return self->gone();
      if (self->outbox_.empty()) self->connection_->take(self->outbox_);
      if (self->outbox_.empty()) {
        self->writing_ = false;
        return;
      }
      self->ws_write();
    });
  }

  // Once: the worker hears of it, then the session ends.
  void gone() {
    if (gone_) return;
    gone_ = true;
    if (connection_) {
      connection_->mark_closed();
      call([&] {
        if (handlers_->on_close) handlers_->on_close(connection_);
      });
    }
    finish();
  }

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
    if (beast::websocket::is_upgrade(message)) {
      if (const auto* handlers = router_.websocket(request.path)) {
        upgrade(std::move(message), *handlers);
        return;
      }
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
  // After an upgrade: the stream lives inside ws_.
  std::unique_ptr<beast::websocket::stream<Stream>> ws_;
  const WebSocketHandlers* handlers_ = nullptr;
  std::shared_ptr<WebSocketConnection> connection_;
  beast::flat_buffer ws_buffer_;
  std::deque<std::shared_ptr<const std::string>> outbox_;
  bool writing_ = false;
  bool gone_ = false;
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
