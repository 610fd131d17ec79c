// Tests for coop::net::TcpListener and Connection: limits, idle and handshake timeouts, implicit TLS, STARTTLS.
#include "common/net/tcp_listener.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <catch2/catch.hpp>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "common/tls_cert.h"

namespace {

namespace asio = boost::asio;
namespace ssl = boost::asio::ssl;
using boost::asio::ip::tcp;
using boost::system::error_code;
using coop::net::Connection;
using coop::net::ListenerLimits;
using coop::net::TcpListener;
using namespace std::chrono_literals;

// Generous bound for a condition that should hold almost at once (valgrind is slow).
constexpr auto kPatience = 20s;

// Drives the io_context until done() holds; false when the deadline passes first.
bool run_until(asio::io_context& io, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + kPatience;
  while (!done()) {
    if (std::chrono::steady_clock::now() >= deadline) return false;
    io.run_one_for(10ms);
    if (io.stopped()) io.restart();
  }
  return true;
}

// Timeouts long enough never to fire unless a test asks for them.
ListenerLimits calm_limits() {
  ListenerLimits limits;
  limits.idle_timeout = 60s;
  limits.handshake_timeout = 60s;
  return limits;
}

class TempDir {
 public:
  TempDir() {
    std::string pattern = (std::filesystem::temp_directory_path() / "coop-listener-XXXXXX").string();
    REQUIRE(::mkdtemp(pattern.data()) != nullptr);
    path_ = pattern;
  }
  ~TempDir() {
    std::error_code ignored;
    std::filesystem::remove_all(path_, ignored);
  }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
};

std::shared_ptr<ssl::context> self_signed_context(const TempDir& dir) {
  coop::generate_self_signed_cert("mail.example.org", dir.path() / "tls.key", dir.path() / "tls.crt");
  return coop::net::make_server_tls_context(dir.path() / "tls.crt", dir.path() / "tls.key");
}

// What a client has read so far, and whether the server has ended the stream.
struct Inbox {
  std::string text;
  bool ended = false;
  error_code error;
  std::array<char, 512> chunk{};
};

template <typename Stream>
void read_until_end(Stream& stream, std::shared_ptr<Inbox> inbox) {
  stream.async_read_some(asio::buffer(inbox->chunk), [&stream, inbox](error_code ec, std::size_t n) {
    if (ec) {
      inbox->ended = true;
      inbox->error = ec;
      return;
    }
    inbox->text.append(inbox->chunk.data(), n);
    read_until_end(stream, inbox);
  });
}

template <typename Stream>
void send(Stream& stream, const std::string& text) {
  auto data = std::make_shared<std::string>(text);
  asio::async_write(stream, asio::buffer(*data), [data](error_code, std::size_t) {});
}

struct PlainClient {
  explicit PlainClient(asio::io_context& io) : socket(io) {}

  void connect(std::uint16_t port) {
    socket.async_connect({asio::ip::make_address("127.0.0.1"), port}, [this](error_code ec) {
      connect_error = ec;
      connected = true;
    });
  }
  void read() { read_until_end(socket, inbox); }

  tcp::socket socket;
  bool connected = false;
  error_code connect_error;
  std::shared_ptr<Inbox> inbox = std::make_shared<Inbox>();
};

struct TlsClient {
  explicit TlsClient(asio::io_context& io) : context(ssl::context::tls_client), stream(io, context) {
    context.set_verify_mode(ssl::verify_none);  // the certificate is self-signed
  }

  void connect_and_handshake(std::uint16_t port) {
    stream.next_layer().async_connect({asio::ip::make_address("127.0.0.1"), port}, [this](error_code ec) {
      if (ec) {
        handshake_error = ec;
        handshaken = true;
        return;
      }
      stream.async_handshake(ssl::stream_base::client, [this](error_code handshake_ec) {
        handshake_error = handshake_ec;
        handshaken = true;
      });
    });
  }
  void read() { read_until_end(stream, inbox); }

  ssl::context context;
  ssl::stream<tcp::socket> stream;
  bool handshaken = false;
  error_code handshake_error;
  std::shared_ptr<Inbox> inbox = std::make_shared<Inbox>();
};

// The simplest protocol: write back whatever arrives, until the client goes away.
void echo(const std::shared_ptr<Connection>& connection) {
  auto buffer = std::make_shared<std::array<char, 512>>();
  connection->async_read_some(asio::buffer(*buffer), [connection, buffer](error_code ec, std::size_t n) {
    if (ec) return;
    connection->async_write(asio::buffer(buffer->data(), n), [connection, buffer](error_code write_ec, std::size_t) {
      if (!write_ec) echo(connection);
    });
  });
}

// Reads one byte at a time so nothing past the line is consumed (the STARTTLS rule).
void read_line(const std::shared_ptr<Connection>& connection, std::function<void(std::string)> on_line,
               std::shared_ptr<std::string> line = std::make_shared<std::string>()) {
  auto byte = std::make_shared<char>();
  connection->async_read_some(asio::buffer(byte.get(), 1), [=](error_code ec, std::size_t) {
    if (ec) return;
    line->push_back(*byte);
    if (line->size() >= 2 && line->compare(line->size() - 2, 2, "\r\n") == 0)
      on_line(*line);
    else
      read_line(connection, on_line, line);
  });
}

}  // namespace

TEST_CASE("listener echoes over plain TCP on a port the system picks") {
  asio::io_context io;
  std::shared_ptr<Connection> session;
  TcpListener listener(io.get_executor(), "127.0.0.1", 0, calm_limits(), nullptr, [&](std::shared_ptr<Connection> c) {
    session = c;
    echo(c);
  });
  listener.start();
  REQUIRE(listener.port() != 0);

  PlainClient client(io);
  client.connect(listener.port());
  REQUIRE(run_until(io, [&] { return client.connected; }));
  REQUIRE_FALSE(client.connect_error);
  send(client.socket, "hello\r\n");
  client.read();
  REQUIRE(run_until(io, [&] { return client.inbox->text == "hello\r\n"; }));

  REQUIRE(session);
  CHECK_FALSE(session->is_tls());
  CHECK(session->remote_address() == "127.0.0.1");
  CHECK(session->remote_port() == client.socket.local_endpoint().port());
  CHECK(listener.active_connections() == 1);
  CHECK(listener.active_from("127.0.0.1") == 1);

  // Once the client leaves and nobody holds the session, the counters drop.
  session.reset();
  client.socket.close();
  REQUIRE(run_until(io, [&] { return listener.active_connections() == 0; }));
  CHECK(listener.active_from("127.0.0.1") == 0);
}

TEST_CASE("beyond max_per_address the oldest client not logged in makes room; logged-in ones never do") {
  asio::io_context io;
  ListenerLimits limits = calm_limits();
  limits.max_per_address = 2;
  std::vector<std::shared_ptr<Connection>> sessions;
  std::vector<std::string> reasons;
  TcpListener listener(
      io.get_executor(), "127.0.0.1", 0, limits, nullptr,
      [&](std::shared_ptr<Connection> c) { sessions.push_back(c); },
      [&](std::shared_ptr<Connection> c, std::string_view reason) {
        reasons.emplace_back(reason);
        auto busy = std::make_shared<std::string>("421 " + std::string(reason) + "\r\n");
        c->async_write(asio::buffer(*busy), [c, busy](error_code, std::size_t) { c->close(); });
      });
  listener.start();

  PlainClient member(io), idle(io), newcomer(io), last(io);
  member.connect(listener.port());
  REQUIRE(run_until(io, [&] { return sessions.size() == 1; }));
  sessions[0]->mark_authenticated();
  idle.connect(listener.port());
  REQUIRE(run_until(io, [&] { return sessions.size() == 2; }));
  idle.read();
  member.read();

  // The client that has not logged in goes; the newcomer takes its slot.
  newcomer.connect(listener.port());
  REQUIRE(run_until(io, [&] { return sessions.size() == 3 && idle.inbox->ended; }));
  CHECK(idle.inbox->text.empty());
  CHECK(reasons.empty());
  CHECK(listener.active_from("127.0.0.1") == 2);

  // With both slots held by members, a new client is refused.
  sessions[2]->mark_authenticated();
  last.connect(listener.port());
  last.read();
  REQUIRE(run_until(io, [&] { return last.inbox->ended; }));
  CHECK(last.inbox->text == "421 too many connections from your address\r\n");
  CHECK(reasons == std::vector<std::string>{"too many connections from your address"});
  CHECK_FALSE(member.inbox->ended);
  CHECK(listener.active_connections() == 2);

  // Closing a session frees its slot at once, even while the object is still referenced.
  sessions[0]->close();
  REQUIRE(run_until(io, [&] { return listener.active_from("127.0.0.1") == 1; }));
  REQUIRE(run_until(io, [&] { return member.inbox->ended; }));
  PlainClient again(io);
  again.connect(listener.port());
  REQUIRE(run_until(io, [&] { return sessions.size() == 4; }));
  CHECK(reasons.size() == 1);
}

TEST_CASE("beyond max_connections the new client is refused when every slot is a member's") {
  asio::io_context io;
  ListenerLimits limits = calm_limits();
  limits.max_connections = 1;
  int sessions = 0;
  std::vector<std::string> reasons;
  std::shared_ptr<Connection> first_session;
  auto on_session = [&](std::shared_ptr<Connection> c) {
    if (++sessions == 1) {
      first_session = c;
      c->mark_authenticated();
    }
    echo(c);
  };
  auto on_refused = [&](std::shared_ptr<Connection> c, std::string_view reason) {
    reasons.emplace_back(reason);
    c->close();
  };
  const bool with_on_refused = GENERATE(true, false);
  CAPTURE(with_on_refused);
  TcpListener listener(io.get_executor(), "127.0.0.1", 0, limits, nullptr, on_session,
                       with_on_refused ? TcpListener::RefusalHandler(on_refused) : TcpListener::RefusalHandler());
  listener.start();

  PlainClient first(io), second(io);
  first.connect(listener.port());
  REQUIRE(run_until(io, [&] { return sessions == 1; }));
  second.connect(listener.port());
  second.read();
  REQUIRE(run_until(io, [&] { return second.inbox->ended; }));
  CHECK(second.inbox->text.empty());
  CHECK(sessions == 1);
  if (with_on_refused)
    CHECK(reasons == std::vector<std::string>{"too many connections"});
  else
    CHECK(reasons.empty());
  CHECK(listener.active_connections() == 1);

  // The echo session ends when its client leaves, and the next client is admitted.
  first_session.reset();
  first.socket.close();
  REQUIRE(run_until(io, [&] { return listener.active_connections() == 0; }));
  PlainClient third(io);
  third.connect(listener.port());
  REQUIRE(run_until(io, [&] { return sessions == 2; }));
  CHECK(listener.active_connections() == 1);
}

TEST_CASE("idle timeout closes a silent connection") {
  asio::io_context io;
  ListenerLimits limits = calm_limits();
  limits.idle_timeout = 200ms;
  std::shared_ptr<Connection> session;
  bool server_read_done = false;
  error_code server_read_error;
  auto buffer = std::make_shared<std::array<char, 64>>();
  TcpListener listener(io.get_executor(), "127.0.0.1", 0, limits, nullptr, [&](std::shared_ptr<Connection> c) {
    session = c;
    c->async_read_some(asio::buffer(*buffer), [&, buffer](error_code ec, std::size_t) {
      server_read_error = ec;
      server_read_done = true;
    });
  });
  listener.start();

  PlainClient client(io);
  client.connect(listener.port());
  client.read();
  REQUIRE(run_until(io, [&] { return client.inbox->ended && server_read_done; }));
  CHECK(client.inbox->text.empty());
  CHECK(server_read_error);  // the pending read was cut short, not completed
  CHECK(listener.active_connections() == 0);
}

TEST_CASE("a protocol can shorten its connection's idle timeout") {
  asio::io_context io;
  std::shared_ptr<Connection> session;
  TcpListener listener(io.get_executor(), "127.0.0.1", 0, calm_limits(), nullptr, [&](std::shared_ptr<Connection> c) {
    session = c;
    c->set_idle_timeout(200ms);
  });
  listener.start();

  PlainClient client(io);
  client.connect(listener.port());
  client.read();
  REQUIRE(run_until(io, [&] { return client.inbox->ended; }));
  CHECK(listener.active_connections() == 0);
}

TEST_CASE("implicit TLS listener hands over a connection only after the handshake") {
  asio::io_context io;
  TempDir dir;
  bool session_was_tls = false;
  TcpListener listener(io.get_executor(), "127.0.0.1", 0, calm_limits(), self_signed_context(dir),
                       [&](std::shared_ptr<Connection> c) {
                         session_was_tls = c->is_tls();
                         echo(c);
                       });
  listener.start();

  TlsClient client(io);
  client.connect_and_handshake(listener.port());
  REQUIRE(run_until(io, [&] { return client.handshaken; }));
  REQUIRE_FALSE(client.handshake_error);
  CHECK(SSL_version(client.stream.native_handle()) >= TLS1_2_VERSION);
  send(client.stream, "ping\r\n");
  client.read();
  REQUIRE(run_until(io, [&] { return client.inbox->text == "ping\r\n"; }));
  CHECK(session_was_tls);
  CHECK(listener.active_connections() == 1);
}

TEST_CASE("implicit TLS handshake timeout closes a client that never sends a ClientHello") {
  asio::io_context io;
  TempDir dir;
  ListenerLimits limits = calm_limits();
  limits.handshake_timeout = 200ms;
  int sessions = 0;
  TcpListener listener(io.get_executor(), "127.0.0.1", 0, limits, self_signed_context(dir),
                       [&](std::shared_ptr<Connection>) { ++sessions; });
  listener.start();

  PlainClient client(io);
  client.connect(listener.port());
  client.read();
  REQUIRE(run_until(io, [&] { return client.inbox->ended; }));
  CHECK(client.inbox->text.empty());
  CHECK(sessions == 0);
  REQUIRE(run_until(io, [&] { return listener.active_connections() == 0; }));
}

TEST_CASE("failed implicit TLS handshake closes the connection without a session") {
  asio::io_context io;
  TempDir dir;
  int sessions = 0;
  TcpListener listener(io.get_executor(), "127.0.0.1", 0, calm_limits(), self_signed_context(dir),
                       [&](std::shared_ptr<Connection>) { ++sessions; });
  listener.start();

  PlainClient client(io);
  client.connect(listener.port());
  REQUIRE(run_until(io, [&] { return client.connected; }));
  send(client.socket, "EHLO plaintext.example\r\n");
  client.read();
  REQUIRE(run_until(io, [&] { return client.inbox->ended; }));
  CHECK(sessions == 0);
  REQUIRE(run_until(io, [&] { return listener.active_connections() == 0; }));
}

TEST_CASE("STARTTLS upgrades a plain connection in place") {
  asio::io_context io;
  TempDir dir;
  std::string command;
  error_code upgrade_error;
  bool upgraded = false;
  bool tls_after_upgrade = false;
  const std::string go_ahead = "220 2.0.0 Ready to start TLS\r\n";
  TcpListener listener(io.get_executor(), "127.0.0.1", 0, calm_limits(), nullptr, [&](std::shared_ptr<Connection> c) {
    read_line(c, [&, c](std::string line) {
      command = line;
      c->async_write(asio::buffer(go_ahead), [&, c](error_code ec, std::size_t) {
        if (ec) return;
        c->async_start_tls([&, c](error_code tls_ec) {
          upgrade_error = tls_ec;
          upgraded = true;
          tls_after_upgrade = c->is_tls();
          if (!tls_ec) echo(c);
        });
      });
    });
  });
  listener.set_starttls_context(self_signed_context(dir));
  listener.start();

  PlainClient plain(io);
  plain.connect(listener.port());
  REQUIRE(run_until(io, [&] { return plain.connected; }));
  send(plain.socket, "STARTTLS\r\n");
  std::string reply(go_ahead.size(), '\0');
  bool reply_read = false;
  asio::async_read(plain.socket, asio::buffer(reply), [&](error_code ec, std::size_t) { reply_read = !ec; });
  REQUIRE(run_until(io, [&] { return reply_read; }));
  CHECK(command == "STARTTLS\r\n");
  CHECK(reply == go_ahead);

  ssl::context client_context(ssl::context::tls_client);
  client_context.set_verify_mode(ssl::verify_none);
  ssl::stream<tcp::socket> tls(std::move(plain.socket), client_context);
  bool handshaken = false;
  error_code handshake_error;
  tls.async_handshake(ssl::stream_base::client, [&](error_code ec) {
    handshake_error = ec;
    handshaken = true;
  });
  REQUIRE(run_until(io, [&] { return handshaken && upgraded; }));
  REQUIRE_FALSE(handshake_error);
  REQUIRE_FALSE(upgrade_error);
  CHECK(tls_after_upgrade);

  auto inbox = std::make_shared<Inbox>();
  send(tls, "secret\r\n");
  read_until_end(tls, inbox);
  REQUIRE(run_until(io, [&] { return inbox->text == "secret\r\n"; }));
}

TEST_CASE("STARTTLS without a TLS context fails instead of handshaking") {
  asio::io_context io;
  bool done = false;
  error_code result;
  TcpListener listener(io.get_executor(), "127.0.0.1", 0, calm_limits(), nullptr, [&](std::shared_ptr<Connection> c) {
    c->async_start_tls([&, c](error_code ec) {
      result = ec;
      done = true;
      CHECK_FALSE(c->is_tls());
    });
  });
  listener.start();

  PlainClient client(io);
  client.connect(listener.port());
  REQUIRE(run_until(io, [&] { return done; }));
  CHECK(result == asio::error::operation_not_supported);
}

TEST_CASE("stopped listener accepts nothing new while its sessions carry on") {
  asio::io_context io;
  TcpListener listener(io.get_executor(), "127.0.0.1", 0, calm_limits(), nullptr,
                       [](std::shared_ptr<Connection> c) { echo(c); });
  listener.start();
  const std::uint16_t port = listener.port();

  PlainClient first(io);
  first.connect(port);
  first.read();
  REQUIRE(run_until(io, [&] { return first.connected && listener.active_connections() == 1; }));

  listener.stop();
  io.poll();  // stop() takes effect on the listener's strand
  PlainClient second(io);
  second.connect(port);
  REQUIRE(run_until(io, [&] { return second.connected; }));
  CHECK(second.connect_error == asio::error::connection_refused);

  send(first.socket, "still here\r\n");
  REQUIRE(run_until(io, [&] { return first.inbox->text == "still here\r\n"; }));
}

TEST_CASE("listener reports an address it cannot bind as listen_failed") {
  asio::io_context io;
  auto ignore = [](std::shared_ptr<Connection>) {};
  TcpListener first(io.get_executor(), "127.0.0.1", 0, calm_limits(), nullptr, ignore);
  first.start();

  SECTION("port already taken") {
    TcpListener second(io.get_executor(), "127.0.0.1", first.port(), calm_limits(), nullptr, ignore);
    try {
      second.start();
      FAIL("start() should have thrown");
    } catch (const coop::Error& e) {
      CHECK(e.code() == "listen_failed");
      CHECK(e.status() == 500);
      CHECK(std::string(e.what()) == "cannot listen on 127.0.0.1:" + std::to_string(first.port()) +
                                         ": Address already in use");
    }
  }
  SECTION("not an IP address") {
    TcpListener second(io.get_executor(), "mail.example.org", 0, calm_limits(), nullptr, ignore);
    try {
      second.start();
      FAIL("start() should have thrown");
    } catch (const coop::Error& e) {
      CHECK(e.code() == "listen_failed");
    }
  }
}

TEST_CASE("listener binds an IPv6 literal") {
  asio::io_context io;
  TcpListener listener(io.get_executor(), "::1", 0, calm_limits(), nullptr, [](std::shared_ptr<Connection>) {});
  try {
    listener.start();
  } catch (const coop::Error& e) {
    WARN("no IPv6 loopback here: " << e.what());
    return;
  }
  CHECK(listener.port() != 0);
}

TEST_CASE("server TLS context names the certificate file it cannot find") {
  TempDir dir;
  try {
    coop::net::make_server_tls_context(dir.path() / "missing.crt", dir.path() / "missing.key");
    FAIL("make_server_tls_context() should have thrown");
  } catch (const coop::Error& e) {
    CHECK(e.code() == "tls_error");
    CHECK(std::string(e.what()).find("missing.crt") != std::string::npos);
  }
}

TEST_CASE("self-signed certificate covers the domain, localhost and 127.0.0.1 with a private key") {
  TempDir dir;
  const auto key = dir.path() / "tls.key";
  const auto cert = dir.path() / "tls.crt";
  coop::generate_self_signed_cert("mail.example.org", key, cert);

  struct stat key_stat {};
  REQUIRE(::stat(key.c_str(), &key_stat) == 0);
  CHECK((key_stat.st_mode & 0777) == 0600);

  FILE* file = std::fopen(cert.c_str(), "r");
  REQUIRE(file != nullptr);
  X509* x509 = PEM_read_X509(file, nullptr, nullptr, nullptr);
  std::fclose(file);
  REQUIRE(x509 != nullptr);
  CHECK(X509_check_host(x509, "mail.example.org", 0, 0, nullptr) == 1);
  CHECK(X509_check_host(x509, "localhost", 0, 0, nullptr) == 1);
  CHECK(X509_check_ip_asc(x509, "127.0.0.1", 0) == 1);
  CHECK(X509_check_host(x509, "other.example.org", 0, 0, nullptr) == 0);
  X509_free(x509);

  // The key is created exclusively: a second run must not replace it.
  try {
    coop::generate_self_signed_cert("mail.example.org", key, cert);
    FAIL("an existing key was overwritten");
  } catch (const coop::Error& e) {
    CHECK(e.code() == "tls_error");
  }
}
