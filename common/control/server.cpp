// Beast HTTP/1.1 sessions on a Unix-domain stream socket for the control API.
#include "common/control/server.h"

#include <sys/stat.h>
#include <sys/un.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <mutex>
#include <optional>
#include <set>

#include "common/control/router.h"
#include "common/error.h"

namespace coop::control {

namespace net = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using local = net::local::stream_protocol;

namespace {

class Session;

}  // namespace

struct Server::Impl : std::enable_shared_from_this<Server::Impl> {
  Impl(net::io_context& io, std::filesystem::path path, const Router& router, ServerLimits limits)
      : io(io), acceptor(net::make_strand(io)), path(std::move(path)), router(router), limits(limits) {}

  void accept();
  void forget(Session* session);

  net::io_context& io;
  local::acceptor acceptor;
  std::filesystem::path path;
  const Router& router;
  ServerLimits limits;
  std::mutex mutex;
  std::set<std::shared_ptr<Session>> sessions;
  std::atomic<bool> stopped{false};
};

namespace {

using Stream = beast::basic_stream<local, net::any_io_executor, beast::unlimited_rate_policy>;

class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(local::socket socket, std::weak_ptr<Server::Impl> server, const Router& router, ServerLimits limits)
      : stream_(std::move(socket)), server_(std::move(server)), router_(router), limits_(limits) {}

  void start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] { self->read(); });
  }

  void close() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      beast::error_code ignored;
      self->stream_.socket().shutdown(local::socket::shutdown_both, ignored);
      self->stream_.close();
    });
  }

 private:
  void read() {
    parser_.emplace();
    parser_->body_limit(limits_.max_body_bytes);
    parser_->header_limit(static_cast<std::uint32_t>(limits_.max_header_bytes));
    stream_.expires_after(limits_.idle_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     [self = shared_from_this()](beast::error_code ec, std::size_t) { self->on_read(ec); });
  }

  void on_read(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == beast::error::timeout || ec == net::error::eof ||
        ec == net::error::operation_aborted || ec == net::error::connection_reset) {
      finish();
      return;
    }
    if (ec == http::error::body_limit) {
      respond(Response::error("payload_too_large",
                              "request body exceeds " + std::to_string(limits_.max_body_bytes) + " bytes", 413),
              false);
      return;
    }
    if (ec == http::error::header_limit) {
      respond(Response::error("headers_too_large", "request headers too large", 431), false);
      return;
    }
    if (ec) {
      respond(Response::error("bad_request", "malformed HTTP request: " + ec.message(), 400), false);
      return;
    }

    auto message = parser_->release();
    const bool keep_alive = message.keep_alive();
    head_only_ = message.method() == http::verb::head;
    Request request;
    request.method = std::string(message.method_string());
    const auto target = message.target();
    if (!parse_target(std::string_view(target.data(), target.size()), request)) {
      respond(Response::error("bad_request", "bad request target", 400), false);
      return;
    }
    request.body = std::move(message.body());
    // A long-poll handler may hold the request for a while: no idle timeout meanwhile.
    stream_.expires_never();
    auto self = shared_from_this();
    router_.dispatch(std::move(request), [self, keep_alive](Response response) {
      net::post(self->stream_.get_executor(), [self, keep_alive, response = std::move(response)]() mutable {
        self->respond(std::move(response), keep_alive);
      });
    });
  }

  void respond(Response response, bool keep_alive) {
    auto reply = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(response.status), 11);
    reply->set(http::field::server, "coop");
    reply->set(http::field::content_type, response.content_type);
    reply->keep_alive(keep_alive);
    reply->body() = std::move(response.body);
    reply->prepare_payload();
    if (head_only_) reply->body().clear();
    stream_.expires_after(limits_.idle_timeout);
    http::async_write(stream_, *reply,
                      [self = shared_from_this(), reply, keep_alive](beast::error_code ec, std::size_t) {
                        if (ec || !keep_alive) {
                          beast::error_code ignored;
                          self->stream_.socket().shutdown(local::socket::shutdown_send, ignored);
                          self->finish();
                          return;
                        }
                        self->read();
                      });
  }

  void finish() {
    stream_.close();
    if (auto server = server_.lock()) server->forget(this);
  }

  Stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::weak_ptr<Server::Impl> server_;
  const Router& router_;
  ServerLimits limits_;
  bool head_only_ = false;
};

}  // namespace

void Server::Impl::accept() {
  acceptor.async_accept(net::make_strand(io), [self = shared_from_this()](beast::error_code ec, local::socket socket) {
    if (self->stopped) return;
    if (ec) {
      if (ec != net::error::operation_aborted) spdlog::warn("control socket accept: {}", ec.message());
      if (ec == net::error::bad_descriptor) return;
      self->accept();
      return;
    }
    std::shared_ptr<Session> session;
    {
      std::lock_guard lock(self->mutex);
      if (self->sessions.size() >= self->limits.max_connections) {
        spdlog::warn("control socket: {} connections open, refusing another", self->sessions.size());
        beast::error_code ignored;
        socket.close(ignored);
      } else {
        session = std::make_shared<Session>(std::move(socket), self, self->router, self->limits);
        self->sessions.insert(session);
      }
    }
    if (session) session->start();
    self->accept();
  });
}

void Server::Impl::forget(Session* session) {
  std::lock_guard lock(mutex);
  for (auto it = sessions.begin(); it != sessions.end(); ++it) {
    if (it->get() == session) {
      sessions.erase(it);
      return;
    }
  }
}

Server::Server(net::io_context& io, std::filesystem::path socket_path, const Router& router, ServerLimits limits)
    : impl_(std::make_shared<Impl>(io, std::move(socket_path), router, limits)) {}

Server::~Server() { stop(); }

void Server::start() {
  // sun_path holds 108 bytes; a deep COOP_HOME must fail clearly, not truncate.
  if (impl_->path.native().size() >= sizeof(sockaddr_un::sun_path))
    throw Error("listen_failed", "control socket path too long: " + impl_->path.string(), 500);
  std::error_code fs_ec;
  std::filesystem::remove(impl_->path, fs_ec);
  beast::error_code ec;
  impl_->acceptor.open(local(), ec);
  if (!ec) impl_->acceptor.bind(local::endpoint(impl_->path.string()), ec);
  if (!ec) impl_->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) throw Error("listen_failed", "cannot listen on " + impl_->path.string() + ": " + ec.message(), 500);
  if (::chmod(impl_->path.c_str(), 0660) != 0)
    throw Error("listen_failed", "cannot chmod " + impl_->path.string(), 500);
  impl_->accept();
}

void Server::stop() {
  if (impl_->stopped.exchange(true)) return;
  // The acceptor lives on a strand: close it there, never racing an accept completion.
  net::dispatch(impl_->acceptor.get_executor(), [impl = impl_] {
    beast::error_code ignored;
    impl->acceptor.close(ignored);
  });
  std::set<std::shared_ptr<Session>> sessions;
  {
    std::lock_guard lock(impl_->mutex);
    sessions.swap(impl_->sessions);
  }
  for (const auto& session : sessions) session->close();
  std::error_code fs_ec;
  std::filesystem::remove(impl_->path, fs_ec);
}

std::size_t Server::active_connections() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->sessions.size();
}

}  // namespace coop::control
