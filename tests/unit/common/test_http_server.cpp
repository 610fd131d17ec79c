// The TCP HTTP server protocol workers use: headers, client address, limits, error shapes.
#include <catch2/catch.hpp>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include <mutex>
#include <thread>

#include "common/http/router.h"
#include "common/http/server.h"

using namespace coop::http;

namespace {

class TcpFixture {
 public:
  explicit TcpFixture(ServerLimits limits = {}) {
    router_.add("GET", "/echo", [](const Request& r) {
      return Response::json({{"agent", r.header("user-agent")}, {"remote", r.remote_address}, {"x", r.header("x-twice")}});
    });
    server_ = Server::tcp(io_, "127.0.0.1", 0, router_, limits);
    server_->start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~TcpFixture() {
    server_->stop();
    work_.reset();
    io_.stop();
    thread_.join();
  }
  Router& router() { return router_; }
  uint16_t port() const { return server_->port(); }
  Server& server() { return *server_; }

 private:
  Router router_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{io_.get_executor()};
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

int connect_tcp(uint16_t port) {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(port);
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

std::string exchange(int fd, const std::string& request) {
  ::send(fd, request.data(), request.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 3000) <= 0) break;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
    if (out.find("\r\n\r\n") != std::string::npos) {
      const auto length_at = out.find("Content-Length: ");
      if (length_at != std::string::npos) {
        const auto length = std::stoul(out.substr(length_at + 16));
        if (out.size() >= out.find("\r\n\r\n") + 4 + length) break;
      }
    }
  }
  return out;
}

nlohmann::json body_of(const std::string& http) { return nlohmann::json::parse(http.substr(http.find("\r\n\r\n") + 4)); }

}  // namespace

TEST_CASE("handlers see lowercase headers, repeated ones joined, and the client address") {
  TcpFixture f;
  const int fd = connect_tcp(f.port());
  const auto reply = exchange(fd, "GET /echo HTTP/1.1\r\nHost: x\r\nUser-Agent: test/1\r\nX-Twice: a\r\nX-Twice: b\r\n\r\n");
  ::close(fd);
  const auto body = body_of(reply);
  CHECK(body["agent"] == "test/1");
  CHECK(body["x"] == "a, b");
  CHECK(body["remote"] == "127.0.0.1");
}

TEST_CASE("behind a trusted proxy the client is the last X-Forwarded-For entry; from anyone else it is ignored") {
  auto remote_seen = [](ServerLimits limits, const std::string& forwarded) {
    TcpFixture f(limits);
    const int fd = connect_tcp(f.port());
    const std::string request = "GET /echo HTTP/1.1\r\nHost: x\r\nX-Forwarded-For: " + forwarded + "\r\n\r\n";
    const std::string reply = (exchange)(fd, request);  // not std::exchange, which ADL would find
    ::close(fd);
    return body_of(reply)["remote"].get<std::string>();
  };
  ServerLimits trusting;
  trusting.trusted_proxies = {"127.0.0.1/32"};
  // The client may write the first entries itself; only the one the proxy appended counts.
  CHECK(remote_seen(trusting, "203.0.113.9, 198.51.100.7") == "198.51.100.7");
  CHECK(remote_seen(trusting, "2001:db8::1") == "2001:db8::1");
  CHECK(remote_seen(trusting, "198.51.100.7, not-an-address") == "127.0.0.1");
  ServerLimits elsewhere;
  elsewhere.trusted_proxies = {"192.0.2.0/24"};
  CHECK(remote_seen(elsewhere, "198.51.100.7") == "127.0.0.1");
  CHECK(remote_seen(ServerLimits{}, "198.51.100.7") == "127.0.0.1");
}

TEST_CASE("beyond the per-address limit the longest idle connection makes room; busy ones hear 503") {
  ServerLimits limits;
  limits.max_per_address = 2;
  TcpFixture f(limits);
  std::mutex mutex;
  std::vector<Reply> held;  // long polls, answered at the end
  f.router().add_async("GET", "/wait", [&](const Request&, Reply reply) {
    std::lock_guard lock(mutex);
    held.push_back(std::move(reply));
  });
  const int a = connect_tcp(f.port()), b = connect_tcp(f.port());
  CHECK(exchange(a, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 200", 0) == 0);
  CHECK(exchange(b, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 200", 0) == 0);
  // Both idle: the third client is served, and the one idle longest (a) is closed.
  const int c = connect_tcp(f.port());
  CHECK(exchange(c, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").rfind("HTTP/1.1 200", 0) == 0);
  CHECK(exchange(a, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n").empty());
  // b and c wait on long polls: nothing can make room, so the next client hears 503.
  const std::string wait = "GET /wait HTTP/1.1\r\nHost: x\r\n\r\n";
  ::send(b, wait.data(), wait.size(), MSG_NOSIGNAL);
  ::send(c, wait.data(), wait.size(), MSG_NOSIGNAL);
  for (int i = 0; i < 200; ++i) {
    {
      std::lock_guard lock(mutex);
      if (held.size() == 2) break;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  const int d = connect_tcp(f.port());
  const auto refused = exchange(d, "GET /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(refused.rfind("HTTP/1.1 503", 0) == 0);
  CHECK(refused.find("Connection: close") != std::string::npos);
  {
    std::lock_guard lock(mutex);
    for (auto& reply : held) reply(Response::json({{"done", true}}));
  }
  for (int fd : {a, b, c, d}) ::close(fd);
}

TEST_CASE("a protocol's error formatter and fallback replace the control API's shapes") {
  TcpFixture f;
  f.router().set_error_formatter([](int status, const std::string& code, const std::string& message) {
    return Response::json({{"errcode", "M_" + code}, {"error", message}}, status);
  });
  f.router().set_fallback([](const Request& r, Reply reply) {
    Response response = Response::json(nlohmann::json::object(), r.method == "OPTIONS" ? 200 : 404);
    response.headers.emplace_back("Access-Control-Allow-Origin", "*");
    reply(response);
  });
  const int fd = connect_tcp(f.port());
  auto reply = exchange(fd, "OPTIONS /anything HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(reply.rfind("HTTP/1.1 200", 0) == 0);
  CHECK(reply.find("Access-Control-Allow-Origin: *") != std::string::npos);
  reply = exchange(fd, "DELETE /echo HTTP/1.1\r\nHost: x\r\n\r\n");
  CHECK(reply.rfind("HTTP/1.1 405", 0) == 0);
  CHECK(body_of(reply)["errcode"] == "M_method_not_allowed");
  ::close(fd);
}
