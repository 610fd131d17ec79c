// WebSocket connections through the HTTP server (RFC 6455), driven by Beast's client: the
// handshake, messages both ways, the message size limit, a peer that stops reading, and a
// handler that throws.
#include <catch2/catch.hpp>

#include <boost/asio/connect.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/websocket.hpp>

#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>

#include "common/http/router.h"
#include "common/http/server.h"

using namespace coop::http;
namespace net = boost::asio;
namespace beast = boost::beast;
namespace ws = beast::websocket;

namespace {

struct Counters {
  std::atomic<int> opened{0}, closed{0};
  std::atomic<bool> send_refused{false};
  std::mutex mutex;
  std::shared_ptr<WebSocket> last;
};

class Fixture {
 public:
  explicit Fixture(Counters& counters) {
    WebSocketHandlers echo;
    echo.max_message_bytes = 1000;
    echo.max_queued_bytes = 1 << 20;
    echo.on_open = [&counters](const std::shared_ptr<WebSocket>& c) {
      ++counters.opened;
      std::lock_guard lock(counters.mutex);
      counters.last = c;
    };
    echo.on_message = [&counters](const std::shared_ptr<WebSocket>& c, std::string text) {
      if (text == "throw") throw std::runtime_error("handler failed");
      if (text == "flood") {
        // 64 x 64 KiB to a peer that is not reading: the queue limit must stop it.
        for (int i = 0; i < 64; ++i)
          if (!c->send(std::string(64 << 10, 'x'))) counters.send_refused = true;
        return;
      }
      for (auto& ch : text) ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
      c->send(text);
    };
    echo.on_close = [&counters](const std::shared_ptr<WebSocket>&) { ++counters.closed; };
    router_.add_websocket("/ws", echo);
    router_.add("GET", "/plain", [](const Request&) { return Response::bytes(200, "ok", "text/plain"); });
    server_ = Server::tcp(io_, "127.0.0.1", 0, router_, {});
    server_->start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Fixture() {
    server_->stop();
    work_.reset();
    io_.stop();
    thread_.join();
  }
  uint16_t port() const { return server_->port(); }

 private:
  Router router_;
  net::io_context io_;
  net::executor_work_guard<net::io_context::executor_type> work_{io_.get_executor()};
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

struct Client {
  net::io_context io;
  ws::stream<net::ip::tcp::socket> stream{io};
  explicit Client(uint16_t port, const std::string& path = "/ws") {
    net::ip::tcp::endpoint endpoint(net::ip::make_address("127.0.0.1"), port);
    stream.next_layer().connect(endpoint);
    stream.handshake("127.0.0.1", path);
  }
  std::string read() {
    beast::flat_buffer buffer;
    stream.read(buffer);
    return beast::buffers_to_string(buffer.data());
  }
};

template <typename F>
bool eventually(F f) {
  for (int i = 0; i < 200; ++i) {
    if (f()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return false;
}

}  // namespace

TEST_CASE("websocket: handshake, messages both ways, close", "[http][websocket]") {
  Counters counters;
  Fixture fixture(counters);
  {
    Client a(fixture.port()), b(fixture.port());
    a.stream.write(net::buffer(std::string("hello")));
    CHECK(a.read() == "HELLO");
    b.stream.write(net::buffer(std::string("second")));
    CHECK(b.read() == "SECOND");
    CHECK(eventually([&] { return counters.opened == 2; }));
    a.stream.close(ws::close_code::normal);
  }
  CHECK(eventually([&] { return counters.closed == 2; }));
  std::shared_ptr<WebSocket> last;
  {
    std::lock_guard lock(counters.mutex);
    last = counters.last;
  }
  CHECK_FALSE(last->send("after close"));
}

TEST_CASE("websocket: a message over the limit closes only that connection", "[http][websocket]") {
  Counters counters;
  Fixture fixture(counters);
  Client good(fixture.port()), bad(fixture.port());
  // Far more than the socket buffers hold: the server must drain the rest of the frame and
  // answer with a close frame, not reset the connection under the writer.
  bad.stream.write(net::buffer(std::string(4 << 20, 'a')));
  beast::flat_buffer buffer;
  beast::error_code ec;
  bad.stream.read(buffer, ec);
  CHECK(ec == ws::error::closed);
  CHECK(bad.stream.reason().code == ws::close_code::too_big);
  CHECK(eventually([&] { return counters.closed == 1; }));
  good.stream.write(net::buffer(std::string("still here")));
  CHECK(good.read() == "STILL HERE");
}

TEST_CASE("websocket: a peer that stops reading is dropped, not buffered", "[http][websocket]") {
  Counters counters;
  Fixture fixture(counters);
  Client slow(fixture.port());
  slow.stream.write(net::buffer(std::string("flood")));
  CHECK(eventually([&] { return counters.send_refused.load(); }));
  CHECK(eventually([&] { return counters.closed == 1; }));
}

TEST_CASE("websocket: a handler that throws closes with 1011; plain HTTP still works", "[http][websocket]") {
  Counters counters;
  Fixture fixture(counters);
  Client client(fixture.port());
  client.stream.write(net::buffer(std::string("throw")));
  beast::flat_buffer buffer;
  beast::error_code ec;
  client.stream.read(buffer, ec);
  CHECK(ec == ws::error::closed);
  CHECK(client.stream.reason().code == ws::close_code::internal_error);
  // The upgrade path answers plain requests with the router (no route: 404).
  CHECK_THROWS(Client(fixture.port(), "/nowhere"));
}

TEST_CASE("websocket: fragments, pings and binary messages from a client", "[http][websocket]") {
  Counters counters;
  Fixture fixture(counters);
  Client client(fixture.port());
  std::vector<std::string> pongs;
  client.stream.control_callback([&](ws::frame_type kind, beast::string_view payload) {
    if (kind == ws::frame_type::pong) pongs.emplace_back(payload);
  });
  client.stream.write_some(false, net::buffer(std::string("frag")));
  client.stream.ping("between");
  client.stream.write_some(true, net::buffer(std::string("ments")));
  CHECK(client.read() == "FRAGMENTS");  // the pong is read on the way
  CHECK(pongs == std::vector<std::string>{"between"});
  client.stream.binary(true);
  client.stream.write(net::buffer(std::string("bin")));
  CHECK(client.read() == "BIN");
}

TEST_CASE("websocket: the server echoes a client's close code, and refuses text that is not UTF-8", "[http][websocket]") {
  Counters counters;
  Fixture fixture(counters);
  {
    Client client(fixture.port());
    client.stream.close(ws::close_reason(static_cast<ws::close_code>(4000), "done"));
    CHECK(eventually([&] { return counters.closed == 1; }));
  }
  Client client(fixture.port());
  client.stream.write(net::buffer(std::string("caf\xC3")));
  beast::flat_buffer buffer;
  beast::error_code ec;
  client.stream.read(buffer, ec);
  CHECK(ec);
  CHECK(eventually([&] { return counters.closed == 2; }));
}

TEST_CASE("websocket: many messages sent at once arrive whole and in order", "[http][websocket]") {
  Counters counters;
  Fixture fixture(counters);
  Client client(fixture.port());
  CHECK(eventually([&] { return counters.opened == 1; }));
  std::shared_ptr<WebSocket> server_side;
  {
    std::lock_guard lock(counters.mutex);
    server_side = counters.last;
  }
  // Small frames go out copied into batches, large ones from the shared copy; mixed here.
  const auto big = std::make_shared<const std::string>(std::string(60000, 'B'));
  for (int i = 0; i < 2000; ++i) {
    if (i % 200 == 50)
      REQUIRE(server_side->send_shared(big));
    else
      REQUIRE(server_side->send("message " + std::to_string(i)));
  }
  for (int i = 0; i < 2000; ++i) {
    const auto text = client.read();
    if (i % 200 == 50)
      REQUIRE(text == *big);
    else
      REQUIRE(text == "message " + std::to_string(i));
  }
}

TEST_CASE("websocket: an unmasked client frame gets a 1002 close", "[http][websocket]") {
  Counters counters;
  Fixture fixture(counters);
  net::io_context io;
  net::ip::tcp::socket socket(io);
  socket.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), fixture.port()));
  const std::string handshake =
      "GET /ws HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
      "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
  // The frame rides right behind the handshake, in the same segment.
  net::write(socket, net::buffer(handshake + std::string("\x81\x05Hello", 7)));
  std::string received;
  beast::error_code ec;
  char chunk[4096];
  for (;;) {
    const auto n = socket.read_some(net::buffer(chunk), ec);
    if (ec) break;
    received.append(chunk, n);
  }
  CHECK(ec == net::error::eof);  // the server ended the connection cleanly
  CHECK(received.find("HTTP/1.1 101") == 0);
  CHECK(received.find("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") != std::string::npos);
  const auto body = received.substr(received.find("\r\n\r\n") + 4);
  REQUIRE(body.size() >= 4);
  CHECK(body.substr(0, 4) == std::string("\x88", 1) + static_cast<char>(body.size() - 2) + "\x03\xEA");
  // A peer that keeps the socket open after that is let go at the close deadline (5 s).
  bool ended = false;
  for (int i = 0; i < 80 && !ended; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    ended = counters.closed == 1;
  }
  CHECK(ended);
}

TEST_CASE("websocket: a handshake without a key or with another version is refused", "[http][websocket]") {
  Counters counters;
  Fixture fixture(counters);
  auto answer = [&](const std::string& extra) {
    net::io_context io;
    net::ip::tcp::socket socket(io);
    socket.connect(net::ip::tcp::endpoint(net::ip::make_address("127.0.0.1"), fixture.port()));
    net::write(socket, net::buffer("GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" + extra + "\r\n"));
    std::string received;
    beast::error_code ec;
    char chunk[4096];
    while (!ec) {
      const auto n = socket.read_some(net::buffer(chunk), ec);
      received.append(chunk, n);
    }
    return received;
  };
  CHECK(answer("Sec-WebSocket-Version: 13\r\n").find("HTTP/1.1 400") == 0);
  const auto old = answer("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n");
  CHECK(old.find("HTTP/1.1 426") == 0);
  CHECK(old.find("Sec-WebSocket-Version: 13") != std::string::npos);
  CHECK(counters.opened == 0);
}
