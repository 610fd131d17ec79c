// Accept loop, admission limits, implicit TLS and per-connection idle timeouts for every protocol worker.
#include "common/net/tcp_listener.h"

#include <array>

#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>
#include <openssl/ssl.h>
#include <spdlog/spdlog.h>

#include <exception>
#include <mutex>
#include <system_error>
#include <unordered_map>
#include <utility>

#include "common/error.h"
#include "common/net/admission.h"
#include "common/net/server_certificate.h"

namespace coop::net {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using boost::asio::ip::tcp;
using boost::system::error_code;

namespace {

// After EMFILE and friends, accepting again at once would spin; give closing connections time.
constexpr std::chrono::milliseconds kAcceptRetryDelay{100};

// Mozilla "intermediate" TLS 1.2 suites: forward secrecy and AEAD only. TLS 1.3 suites are
// configured separately by OpenSSL and are all fine.
constexpr const char* kTls12Ciphers =
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305:"
    "DHE-RSA-AES128-GCM-SHA256:DHE-RSA-AES256-GCM-SHA384:DHE-RSA-CHACHA20-POLY1305";

[[noreturn]] void tls_fail(const std::string& message) { throw Error(errc::kTlsError, message, 500); }

void require_file(const std::filesystem::path& path, const char* what) {
  std::error_code ec;
  if (!std::filesystem::is_regular_file(path, ec))
    tls_fail(std::string("TLS ") + what + " " + path.string() + " is missing or not a file");
}

// IPv4 clients of a dual-stack "::" listener appear as ::ffff:a.b.c.d; count them as a.b.c.d.
std::string address_text(const asio::ip::address& address) {
  if (address.is_v6() && address.to_v6().is_v4_mapped())
    return asio::ip::make_address_v4(asio::ip::v4_mapped, address.to_v6()).to_string();
  return address.to_string();
}

std::string endpoint_text(const std::string& address, std::uint16_t port) {
  const bool v6 = address.find(':') != std::string::npos;
  return (v6 ? "[" + address + "]" : address) + ":" + std::to_string(port);
}

// Errors that concern one half-open connection, not the listener: accept the next one at once.
// accept(2) on Linux also reports pending network errors and firewall refusals (EPERM) this way.
bool is_per_connection_error(const error_code& ec) {
  namespace errc = boost::system::errc;
  return ec == asio::error::connection_aborted || ec == asio::error::connection_reset ||
         ec == asio::error::interrupted || ec == asio::error::try_again ||
         ec == asio::error::would_block || ec == errc::protocol_error ||
         ec == errc::operation_not_permitted || ec == errc::network_down ||
         ec == errc::network_unreachable || ec == errc::host_unreachable;
}

}  // namespace

// ---- TLS context -----------------------------------------------------------------------------

std::shared_ptr<ssl::context> make_server_tls_context(const std::filesystem::path& cert,
                                                      const std::filesystem::path& key) {
  require_file(cert, "certificate");
  require_file(key, "key");
  auto context = std::make_shared<ssl::context>(ssl::context::tls_server);
  context->set_options(ssl::context::default_workarounds | ssl::context::no_compression |
                       ssl::context::single_dh_use);
  SSL_CTX* native = context->native_handle();
  SSL_CTX_set_min_proto_version(native, TLS1_2_VERSION);
  // Client-initiated renegotiation is a DoS lever and has no use here.
  SSL_CTX_set_options(native, SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_RENEGOTIATION);
  if (SSL_CTX_set_cipher_list(native, kTls12Ciphers) != 1) tls_fail("no usable TLS 1.2 cipher suites");
  SSL_CTX_set_dh_auto(native, 1);

  // The pair is picked per handshake, so that SIGHUP can swap it (server_certificate.h).
  serve_certificate(native, cert, key);
  return context;
}

// ---- Counters ----------------------------------------------------------------------------------

// Admitted connections per listener, shared with the connections so either may be destroyed
// first: the admission counts, and who to close when a new client needs an evicted one's slot.
class ConnectionCounters {
 public:
  explicit ConnectionCounters(const ListenerLimits& limits)
      : admission_(AdmissionLimits{limits.max_connections, limits.max_per_address, limits.max_per_network,
                                   limits.max_evictable, {}}) {}

  Admission::Decision admit(const std::string& address) { return admission_.admit(address); }

  // The admitted connection, known from now on so that a later admission can evict it.
  void track(Admission::Id id, const std::shared_ptr<Connection>& connection) {
    const std::lock_guard lock(mutex_);
    connections_[id] = connection;
  }

  // Closes what a decision evicted; each close releases its slot (already free in the counts).
  void evict(const std::vector<Admission::Id>& ids) {
    std::vector<std::shared_ptr<Connection>> doomed;
    {
      const std::lock_guard lock(mutex_);
      for (const auto id : ids)
        if (const auto it = connections_.find(id); it != connections_.end())
          if (auto connection = it->second.lock()) doomed.push_back(std::move(connection));
    }
    for (const auto& connection : doomed) {
      spdlog::debug("making room: closing the connection from {} that waited longest without logging in",
                    connection->remote_address());
      connection->close();
    }
  }

  void set_evictable(Admission::Id id, bool evictable) { admission_.set_evictable(id, evictable); }

  void release(Admission::Id id) {
    admission_.release(id);
    const std::lock_guard lock(mutex_);
    connections_.erase(id);
  }

  std::size_t total() const { return admission_.total(); }
  std::size_t from(const std::string& address) const { return admission_.from(address); }

 private:
  Admission admission_;
  std::mutex mutex_;  // guards connections_
  std::unordered_map<Admission::Id, std::weak_ptr<Connection>> connections_;
};

// ---- Connection --------------------------------------------------------------------------------

Connection::Connection(tcp::socket socket, std::shared_ptr<ssl::context> tls_context, bool tls_usable,
                       std::shared_ptr<ConnectionCounters> counters, Admission::Id admission_id,
                       std::string remote_address, std::uint16_t remote_port)
    : tls_context_(std::move(tls_context)),
      socket_(std::move(socket)),
      idle_timer_(socket_.get_executor()),
      tls_usable_(tls_usable),
      last_activity_(Clock::now()),
      counters_(std::move(counters)),
      admission_id_(admission_id),
      remote_address_(std::move(remote_address)),
      remote_port_(remote_port) {}

Connection::~Connection() { close_now(); }

void Connection::async_read_some(asio::mutable_buffer buffer, IoHandler handler) {
  asio::dispatch(executor(), [self = shared_from_this(), buffer, handler = std::move(handler)]() mutable {
    ++self->reads_pending_;
    auto done = [self, handler = std::move(handler)](error_code ec, std::size_t n) {
      --self->reads_pending_;
      if (!ec) self->note_activity();
      handler(ec, n);
      if (self->draining_ && self->reads_pending_ == 0 && !self->closed_) self->drain();
    };
    if (self->tls_)
      self->tls_stream_->async_read_some(buffer, std::move(done));
    else
      self->socket_.async_read_some(buffer, std::move(done));
  });
}

void Connection::async_write(asio::const_buffer buffer, IoHandler handler) {
  asio::dispatch(executor(), [self = shared_from_this(), buffer, handler = std::move(handler)]() mutable {
    auto done = [self, handler = std::move(handler)](error_code ec, std::size_t n) {
      if (!ec) self->note_activity();
      handler(ec, n);
    };
    if (self->tls_)
      asio::async_write(*self->tls_stream_, buffer, std::move(done));
    else
      asio::async_write(self->socket_, buffer, std::move(done));
  });
}

void Connection::async_start_tls(TlsHandler handler) {
  asio::dispatch(executor(), [self = shared_from_this(), handler = std::move(handler)]() mutable {
    if (!self->tls_usable_ || self->tls_) {
      const error_code ec = self->tls_ ? asio::error::already_connected : asio::error::operation_not_supported;
      asio::post(self->executor(), [handler = std::move(handler), ec] { handler(ec); });
      return;
    }
    self->tls_stream_ = std::make_unique<ssl::stream<tcp::socket&>>(self->socket_, *self->tls_context_);
    self->tls_stream_->async_handshake(ssl::stream_base::server,
                                  [self, handler = std::move(handler)](error_code ec) {
                                    if (!ec) {
                                      self->tls_ = true;
                                      self->note_activity();
                                    }
                                    handler(ec);
                                  });
  });
}

void Connection::close() {
  asio::dispatch(executor(), [self = shared_from_this()] {
    if (!self->draining_) self->close_now();
  });
}

void Connection::close_gracefully(std::chrono::milliseconds within) {
  asio::dispatch(executor(), [self = shared_from_this(), within] {
    if (self->closed_ || self->draining_) return;
    self->draining_ = true;
    error_code ignored;
    self->socket_.shutdown(tcp::socket::shutdown_send, ignored);
    self->idle_timer_.expires_after(within);  // replaces the idle wait
    self->idle_timer_.async_wait([self](error_code ec) {
      if (ec != asio::error::operation_aborted) self->close_now();
    });
    if (self->reads_pending_ == 0) self->drain();  // else when the pending read completes
  });
}

// Raw bytes, whatever TLS says of them: they are only being let go.
void Connection::drain() {
  auto piece = std::make_shared<std::array<char, 4096>>();
  ++reads_pending_;
  socket_.async_read_some(asio::buffer(*piece), [self = shared_from_this(), piece](error_code ec, std::size_t) {
    --self->reads_pending_;
    if (ec || self->closed_) return self->close_now();
    self->drain();
  });
}

void Connection::set_idle_timeout(std::chrono::milliseconds timeout) {
  asio::dispatch(executor(), [self = shared_from_this(), timeout] {
    self->idle_timeout_ = timeout;
    self->arm_idle_timer();
  });
}

// Reads and writes only record the time; the timer checks it when it fires, so a busy
// connection does not cancel and restart a wait for every operation.
void Connection::arm_idle_timer() {
  if (closed_) return;
  if (idle_timeout_ <= std::chrono::milliseconds::zero()) {
    idle_timer_.cancel();
    return;
  }
  idle_timer_.expires_at(last_activity_ + idle_timeout_);  // cancels the previous wait
  idle_timer_.async_wait([weak = weak_from_this()](error_code ec) {
    if (ec == asio::error::operation_aborted) return;
    // A weak reference: an idle connection nobody holds any more should go now, not at the deadline.
    if (const auto self = weak.lock()) self->on_idle_timer();
  });
}

void Connection::on_idle_timer() {
  if (closed_ || idle_timeout_ <= std::chrono::milliseconds::zero()) return;
  if (Clock::now() >= last_activity_ + idle_timeout_) {
    spdlog::debug("closing idle connection from {}", endpoint_text(remote_address_, remote_port_));
    close_now();
  } else {
    arm_idle_timer();
  }
}

void Connection::close_now() {
  if (closed_) return;
  closed_ = true;
  draining_ = false;
  idle_timer_.cancel();
  error_code ignored;
  socket_.shutdown(tcp::socket::shutdown_both, ignored);
  socket_.close(ignored);
  if (counters_) counters_->release(admission_id_);
}

void Connection::mark_authenticated() {
  if (counters_) counters_->set_evictable(admission_id_, false);
}

// ---- Listener ----------------------------------------------------------------------------------

struct TcpListener::State : std::enable_shared_from_this<TcpListener::State> {
  State(asio::any_io_executor executor, std::string address, std::uint16_t port, ListenerLimits limits,
        std::shared_ptr<ssl::context> implicit_tls, SessionHandler on_session, RefusalHandler on_refused)
      : executor_(std::move(executor)),
        strand_(asio::make_strand(executor_)),
        acceptor_(strand_),
        retry_timer_(strand_),
        address_(std::move(address)),
        requested_port_(port),
        limits_(limits),
        implicit_tls_(std::move(implicit_tls)),
        on_session_(std::move(on_session)),
        on_refused_(std::move(on_refused)),
        counters_(std::make_shared<ConnectionCounters>(limits_)) {}

  void start() {
    if (started_) fail("already listening");
    error_code ec;
    const auto address = asio::ip::make_address(address_, ec);
    if (ec) fail("not an IP address");
    const tcp::endpoint endpoint(address, requested_port_);
    // Set up before any handler can run, so no strand is needed yet.
    acceptor_.open(endpoint.protocol(), ec);
    // Lets a restarted worker bind while old connections sit in TIME_WAIT.
    if (!ec) acceptor_.set_option(tcp::acceptor::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (!ec) bound_port_ = acceptor_.local_endpoint(ec).port();
    if (ec) {
      error_code ignored;
      acceptor_.close(ignored);
      fail(ec.message());
    }
    started_ = true;
    asio::dispatch(strand_, [self = shared_from_this()] { self->accept_next(); });
  }

  [[noreturn]] void fail(const std::string& reason) const {
    throw Error(errc::kListenFailed, "cannot listen on " + endpoint_text(address_, requested_port_) + ": " + reason, 500);
  }

  void stop() {
    stopped_ = true;
    asio::dispatch(strand_, [self = shared_from_this()] {
      error_code ignored;
      self->acceptor_.close(ignored);
      self->retry_timer_.cancel();
    });
  }

  void accept_next() {
    if (stopped_) return;
    // A strand per connection: its reads, writes, timer and handlers never run concurrently.
    acceptor_.async_accept(asio::any_io_executor(asio::make_strand(executor_)),
                           [self = shared_from_this()](error_code ec, tcp::socket socket) {
                             self->on_accept(ec, std::move(socket));
                           });
  }

  void on_accept(error_code ec, tcp::socket socket) {
    if (stopped_) return;  // the socket closes as it goes out of scope
    if (ec) {
      if (ec == asio::error::operation_aborted) return;
      if (is_per_connection_error(ec)) {
        accept_next();
        return;
      }
      // EMFILE, ENFILE, ENOBUFS ...: the listener must survive them and try again shortly.
      spdlog::warn("accept on {} failed: {}; retrying", endpoint_text(address_, bound_port_), ec.message());
      retry_timer_.expires_after(kAcceptRetryDelay);
      retry_timer_.async_wait([self = shared_from_this()](error_code wait_ec) {
        if (!wait_ec) self->accept_next();
      });
      return;
    }
    accept_next();
    admit(std::move(socket));
  }

  void admit(tcp::socket socket) {
    error_code ec;
    const tcp::endpoint peer = socket.remote_endpoint(ec);
    if (ec) return;  // the client is already gone
    // Sessions write whole responses at once; Nagle would hold a short tagged reply behind an
    // unacknowledged big one for the peer's delayed ACK (40 ms on Linux).
    socket.set_option(tcp::no_delay(true), ec);
    std::string address = address_text(peer.address());
    const auto decision = counters_->admit(address);
    const std::string_view refusal = decision.refusal;
    const bool admitted = decision.id != 0;
    counters_->evict(decision.evicted);
    std::shared_ptr<ssl::context> context = implicit_tls_ ? implicit_tls_ : starttls_;
    const bool tls_usable = context != nullptr;
    std::shared_ptr<Connection> connection(new Connection(std::move(socket), std::move(context), tls_usable,
                                                          admitted ? counters_ : nullptr, decision.id,
                                                          std::move(address), peer.port()));
    if (admitted) counters_->track(decision.id, connection);
    if (!admitted && !on_refused_) return;  // dropping the last reference closes it

    // Refused connections only get to hear the busy reply, so they get the short timeout.
    const auto timeout = implicit_tls_ || !admitted ? limits_.handshake_timeout : limits_.idle_timeout;
    connection->set_idle_timeout(timeout);
    if (!implicit_tls_) {
      asio::post(connection->executor(), [self = shared_from_this(), connection, refusal] {
        self->hand_over(connection, refusal);
      });
      return;
    }
    // RFC 8314 3.3: on an implicit-TLS port the handshake comes before any protocol byte,
    // including a busy reply.
    connection->async_start_tls([self = shared_from_this(), connection, refusal](error_code tls_ec) {
      if (tls_ec) {
        spdlog::debug("TLS handshake with {} failed: {}",
                      endpoint_text(connection->remote_address(), connection->remote_port()), tls_ec.message());
        connection->close();
        return;
      }
      if (refusal.empty()) connection->set_idle_timeout(self->limits_.idle_timeout);
      self->hand_over(connection, refusal);
    });
  }

  // Runs on the connection's strand. A throwing protocol handler costs its connection, not the worker.
  void hand_over(const std::shared_ptr<Connection>& connection, std::string_view refusal) {
    try {
      if (refusal.empty())
        on_session_(connection);
      else
        on_refused_(connection, refusal);
    } catch (const std::exception& e) {
      spdlog::error("session for {} failed to start: {}",
                    endpoint_text(connection->remote_address(), connection->remote_port()), e.what());
      connection->close();
    }
  }

  const asio::any_io_executor executor_;
  const asio::strand<asio::any_io_executor> strand_;
  tcp::acceptor acceptor_;
  asio::steady_timer retry_timer_;
  const std::string address_;
  const std::uint16_t requested_port_;
  const ListenerLimits limits_;
  const std::shared_ptr<ssl::context> implicit_tls_;
  std::shared_ptr<ssl::context> starttls_;
  const SessionHandler on_session_;
  const RefusalHandler on_refused_;
  const std::shared_ptr<ConnectionCounters> counters_;
  std::atomic<bool> stopped_{false};
  bool started_ = false;
  std::atomic<std::uint16_t> bound_port_{0};
};

TcpListener::TcpListener(asio::any_io_executor executor, const std::string& address, std::uint16_t port,
                         ListenerLimits limits, std::shared_ptr<ssl::context> implicit_tls,
                         SessionHandler on_session, RefusalHandler on_refused)
    : state_(std::make_shared<State>(std::move(executor), address, port, limits, std::move(implicit_tls),
                                     std::move(on_session), std::move(on_refused))) {}

// Pending accept handlers hold the state, so it outlives this object until they are done.
TcpListener::~TcpListener() { state_->stop(); }

void TcpListener::set_starttls_context(std::shared_ptr<ssl::context> context) {
  state_->starttls_ = std::move(context);
}

void TcpListener::start() { state_->start(); }

std::uint16_t TcpListener::port() const { return state_->bound_port_; }

void TcpListener::stop() { state_->stop(); }

std::size_t TcpListener::active_connections() const { return state_->counters_->total(); }

std::size_t TcpListener::active_from(const std::string& address) const { return state_->counters_->from(address); }

}  // namespace coop::net
