// The TCP/TLS listener and connection every protocol worker (SMTP, IMAP, HTTP ...) builds on.
#pragma once

#include <boost/asio/any_io_executor.hpp>
#include <boost/asio/buffer.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl/context.hpp>
#include <boost/asio/ssl/stream.hpp>
#include <boost/asio/steady_timer.hpp>

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <string_view>

namespace coop::net {

// See common/net/admission.h: over a limit, the connection that has waited longest without
// logging in makes room; only when none can is the new client refused.
struct ListenerLimits {
  std::size_t max_connections = 1024;
  std::size_t max_per_address = 32;
  std::size_t max_per_network = 256;  // per IPv4 /24 and IPv6 /64
  std::size_t max_evictable = 0;      // not logged in; 0: three quarters of max_connections
  // Zero disables the idle timeout.
  std::chrono::milliseconds idle_timeout{300000};
  // Bounds the whole implicit-TLS handshake, so a silent client cannot hold a slot.
  std::chrono::milliseconds handshake_timeout{10000};
};

// A server context for TLS 1.2 and later (RFC 8996), without compression (CRIME), with the
// server's cipher order. Throws coop::Error(errc::kTlsError) naming the file that is missing or bad.
std::shared_ptr<boost::asio::ssl::context> make_server_tls_context(const std::filesystem::path& cert,
                                                                   const std::filesystem::path& key);

class ConnectionCounters;  // the listener's admission counts, shared with its connections

// One accepted client. The same object serves plain TCP, implicit TLS (handshaken by the
// listener before on_session) and STARTTLS (async_start_tls upgrades it in place).
// Handlers run on the connection's strand; the methods may be called from any thread.
// A pending operation keeps the connection alive; when the last reference goes, it closes.
class Connection : public std::enable_shared_from_this<Connection> {
 public:
  using IoHandler = std::function<void(boost::system::error_code, std::size_t)>;
  using TlsHandler = std::function<void(boost::system::error_code)>;

  ~Connection();
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // Completes with what is available, at least one byte unless there is an error.
  void async_read_some(boost::asio::mutable_buffer buffer, IoHandler handler);
  // Completes when every byte is written, or on error.
  void async_write(boost::asio::const_buffer buffer, IoHandler handler);
  // Runs the server side of the TLS handshake on this connection (SMTP RFC 3207, IMAP RFC 3501
  // 6.2.1, POP3 RFC 2595). The caller must first drop any bytes it has read beyond the STARTTLS
  // command: they were sent in the clear and must not be taken as protected (RFC 3207 4.2).
  // Fails with operation_not_supported when the listener has no TLS context, and with
  // already_connected when TLS is already active.
  void async_start_tls(TlsHandler handler);

  bool is_tls() const { return tls_; }
  const std::string& remote_address() const { return remote_address_; }
  std::uint16_t remote_port() const { return remote_port_; }
  // Closes the socket at once (no TLS close_notify exchange, which could block on a dead peer);
  // pending operations complete with an error. Idempotent.
  void close();
  // After a last word (BYE, 421): stops sending, then reads and drops what the client still
  // sends for at most `within` before closing, so the kernel does not answer unread bytes with
  // a reset that makes the client lose the last word. close() meanwhile changes nothing.
  void close_gracefully(std::chrono::milliseconds within = std::chrono::seconds(2));
  // Replaces the listener's idle timeout, measured from the last completed read or write,
  // e.g. the 5-minute SMTP server timeout of RFC 5321 4.5.3.2. Zero disables it.
  void set_idle_timeout(std::chrono::milliseconds timeout);
  // A member logged in on this connection: it is no longer let go to make room for new
  // clients when the listener is full (common/net/admission.h).
  void mark_authenticated();
  boost::asio::any_io_executor executor() { return socket_.get_executor(); }

 private:
  friend class TcpListener;
  using Clock = std::chrono::steady_clock;

  Connection(boost::asio::ip::tcp::socket socket, std::shared_ptr<boost::asio::ssl::context> tls_context,
             bool tls_usable, std::shared_ptr<ConnectionCounters> counters, std::uint64_t admission_id,
             std::string remote_address, std::uint16_t remote_port);

  void note_activity() { last_activity_ = Clock::now(); }
  void arm_idle_timer();
  void on_idle_timer();
  void close_now();
  void drain();

  // Declared before tls_stream_ so the context outlives the SSL object made from it.
  std::shared_ptr<boost::asio::ssl::context> tls_context_;
  boost::asio::ip::tcp::socket socket_;
  // Made at the handshake: an SSL object and its BIO pair cost some 40 KB, which a plain
  // connection that never starts TLS should not pay.
  std::unique_ptr<boost::asio::ssl::stream<boost::asio::ip::tcp::socket&>> tls_stream_;
  boost::asio::steady_timer idle_timer_;
  const bool tls_usable_;
  std::atomic<bool> tls_{false};
  bool closed_ = false;
  bool draining_ = false;
  int reads_pending_ = 0;
  std::chrono::milliseconds idle_timeout_{0};
  Clock::time_point last_activity_;
  std::shared_ptr<ConnectionCounters> counters_;  // null for refused connections
  const std::uint64_t admission_id_;
  const std::string remote_address_;
  const std::uint16_t remote_port_;
};

// Accepts connections on one address and port, enforces ListenerLimits and hands each
// admitted connection to on_session. Connections may outlive the listener.
class TcpListener {
 public:
  using SessionHandler = std::function<void(std::shared_ptr<Connection>)>;
  using RefusalHandler = std::function<void(std::shared_ptr<Connection>, std::string_view reason)>;

  // implicit_tls: nullptr for plain TCP; a context to handshake before on_session (RFC 8314).
  // on_refused gets connections over the limits that nothing could make room for, with
  // "too many connections" or "... from your address" or "... from your network", to write
  // the protocol's busy reply (SMTP "421 4.7.0") and close; without it they are closed at
  // once. Both run on the connection's strand.
  TcpListener(boost::asio::any_io_executor executor, const std::string& address, std::uint16_t port,
              ListenerLimits limits, std::shared_ptr<boost::asio::ssl::context> implicit_tls,
              SessionHandler on_session, RefusalHandler on_refused = {});
  // Stops accepting; connections carry on.
  ~TcpListener();
  TcpListener(const TcpListener&) = delete;
  TcpListener& operator=(const TcpListener&) = delete;

  // The context plain connections use for async_start_tls. Call before start().
  void set_starttls_context(std::shared_ptr<boost::asio::ssl::context> context);
  // Binds (SO_REUSEADDR; port 0 picks a free port) and starts accepting.
  // Throws coop::Error(errc::kListenFailed, "cannot listen on 127.0.0.1:25: Permission denied", 500).
  void start();
  // The bound port, once started.
  std::uint16_t port() const;
  // Stops accepting new connections; existing ones continue until the worker drains them.
  void stop();
  std::size_t active_connections() const;
  std::size_t active_from(const std::string& address) const;

 private:
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace coop::net
