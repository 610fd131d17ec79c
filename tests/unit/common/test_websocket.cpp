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
