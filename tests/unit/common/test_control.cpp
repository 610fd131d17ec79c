// The control API: server and client round trips, error shapes, hostile HTTP on the socket.
#include <catch2/catch.hpp>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <boost/asio/io_context.hpp>
#include <boost/asio/executor_work_guard.hpp>
#include <nlohmann/json.hpp>

#include <thread>

#include "common/control/client.h"
#include "common/control/router.h"
#include "common/control/server.h"
#include "common/error.h"
#include "temp_dir.h"

using namespace coop::control;
using nlohmann::json;

namespace {

// A control server on its own io thread, with a few routes to exercise.
class Fixture {
 public:
  explicit Fixture(ServerLimits limits = {}) : socket_(dir_.path() / "test.sock") {
    router_.add("GET", "/v1/health", [](const Request&) { return Response::json({{"status", "ok"}}); });
    router_.add("POST", "/v1/echo", [](const Request& r) { return Response::json({{"got", r.json()}}); });
    router_.add("GET", "/v1/members/{handle}", [](const Request& r) {
      return Response::json({{"handle", r.param("handle")}, {"q", r.query_value("q", "none")}});
    });
    router_.add("POST", "/v1/members", [](const Request&) -> Response {
      throw coop::Error("member_exists", "member alice exists", 409);
    });
    router_.add("GET", "/v1/crash", [](const Request&) -> Response { throw std::runtime_error("boom"); });
    router_.add_async("GET", "/v1/later", [](const Request&, Reply reply) {
      std::thread([reply] { reply(Response::json({{"late", true}})); }).detach();
    });
    server_ = std::make_unique<Server>(io_, socket_, router_, limits);
    server_->start();
    thread_ = std::thread([this] { io_.run(); });
  }
  ~Fixture() {
    server_->stop();
    work_.reset();
    io_.stop();
    thread_.join();
  }
  const std::filesystem::path& socket() const { return socket_; }
  Server& server() { return *server_; }

 private:
  coop::test::TempDir dir_;
  std::filesystem::path socket_;
  Router router_;
  boost::asio::io_context io_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_{io_.get_executor()};
  std::unique_ptr<Server> server_;
  std::thread thread_;
};

int connect_raw(const std::filesystem::path& path) {
  const int fd = ::socket(AF_UNIX, SOCK_STREAM, 0);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof(addr.sun_path) - 1);
  REQUIRE(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0);
  return fd;
}

// Everything the server sends until it closes, or until 5 s pass.
std::string read_until_close(int fd) {
  std::string out;
  char buf[4096];
  while (true) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, 5000) <= 0) break;
    const ssize_t n = ::read(fd, buf, sizeof buf);
    if (n <= 0) break;
    out.append(buf, static_cast<std::size_t>(n));
  }
  return out;
}

std::string raw_exchange(const std::filesystem::path& path, const std::string& bytes) {
  const int fd = connect_raw(path);
  std::size_t sent = 0;
  while (sent < bytes.size()) {
    const ssize_t n = ::send(fd, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) break;  // the server may close early on oversized input
    sent += static_cast<std::size_t>(n);
  }
  auto reply = read_until_close(fd);
  ::close(fd);
  return reply;
}

json body_of(const std::string& http) { return json::parse(http.substr(http.find("\r\n\r\n") + 4)); }

}  // namespace

TEST_CASE("control client and server round trip JSON") {
  Fixture f;
  Client client(f.socket());
  auto health = client.get("/v1/health");
  CHECK(health.status == 200);
  CHECK(health.json()["status"] == "ok");
  auto echo = client.post("/v1/echo", R"({"n":[1,2,3]})");
  CHECK(echo.json()["got"]["n"][2] == 3);
  auto member = client.get("/v1/members/alice?q=a%20b+c");
  CHECK(member.json()["handle"] == "alice");
  CHECK(member.json()["q"] == "a b c");
  // The same client reuses its connection for many requests.
  for (int i = 0; i < 50; ++i) REQUIRE(client.get("/v1/health").ok());
}

TEST_CASE("errors have the {error:{code,message}} shape and the right status") {
  Fixture f;
  Client client(f.socket());
  auto exists = client.post("/v1/members", "{}");
  CHECK(exists.status == 409);
  CHECK(exists.json() == json::parse(R"({"error":{"code":"member_exists","message":"member alice exists"}})"));
  CHECK_THROWS_WITH(exists.throw_if_error(), "member alice exists");

  auto missing = client.get("/v1/nothing");
  CHECK(missing.status == 404);
  CHECK(missing.json()["error"]["code"] == "not_found");

  auto wrong_method = client.request("DELETE", "/v1/health");
  CHECK(wrong_method.status == 405);
  CHECK(wrong_method.json()["error"]["code"] == "method_not_allowed");

  auto crash = client.get("/v1/crash");
  CHECK(crash.status == 500);
  CHECK(crash.json()["error"]["code"] == "internal");

  auto bad_json = client.post("/v1/echo", "{not json");
  CHECK(bad_json.status == 400);
  CHECK(bad_json.json()["error"]["code"] == "not_json");  // "bad_json" is JSON of the wrong shape
  auto array = client.post("/v1/echo", "[1]");
  CHECK(array.status == 400);
  CHECK(array.json()["error"]["code"] == "bad_json");
}

TEST_CASE("an async handler may answer from another thread") {
  Fixture f;
  Client client(f.socket());
  CHECK(client.get("/v1/later").json()["late"] == true);
}

TEST_CASE("malformed HTTP gets a 400 error body and the server keeps serving") {
  Fixture f;
  const auto reply = raw_exchange(f.socket(), "THIS IS NOT HTTP\r\n\r\n");
  CHECK(reply.rfind("HTTP/1.1 400", 0) == 0);
  CHECK(body_of(reply)["error"]["code"] == "bad_request");
  Client client(f.socket());
  CHECK(client.get("/v1/health").ok());
}

TEST_CASE("an oversized body is refused with 413") {
  ServerLimits limits;
  limits.max_body_bytes = 1024;
  Fixture f(limits);
  const std::string body(4096, 'x');
  const auto reply = raw_exchange(
      f.socket(), "POST /v1/echo HTTP/1.1\r\nHost: coop\r\nContent-Length: 4096\r\n\r\n" + body);
  CHECK(reply.rfind("HTTP/1.1 413", 0) == 0);
  CHECK(body_of(reply)["error"]["code"] == "payload_too_large");
}

TEST_CASE("oversized headers are refused with 431") {
  ServerLimits limits;
  limits.max_header_bytes = 1024;
  Fixture f(limits);
  const auto reply = raw_exchange(
      f.socket(), "GET /v1/health HTTP/1.1\r\nHost: coop\r\nX-Junk: " + std::string(4096, 'y') + "\r\n\r\n");
  CHECK(reply.rfind("HTTP/1.1 431", 0) == 0);
}

TEST_CASE("a client that hangs up mid-request does not disturb the server") {
  Fixture f;
  for (int i = 0; i < 20; ++i) {
    const int fd = connect_raw(f.socket());
    const std::string partial = "POST /v1/echo HTTP/1.1\r\nHost: coop\r\nContent-Length: 100\r\n\r\n{\"half";
    REQUIRE(::send(fd, partial.data(), partial.size(), MSG_NOSIGNAL) > 0);
    ::close(fd);
  }
  Client client(f.socket());
  CHECK(client.get("/v1/health").ok());
  // The abandoned sessions are gone; only the client's own remains.
  for (int i = 0; i < 200 && f.server().active_connections() > 1; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(f.server().active_connections() <= 1);
}

TEST_CASE("a silent connection is closed after the idle timeout") {
  ServerLimits limits;
  limits.idle_timeout = std::chrono::milliseconds(100);
  Fixture f(limits);
  const int fd = connect_raw(f.socket());
  CHECK(read_until_close(fd).empty());  // closed by the server, well before the 5 s poll limit
  ::close(fd);
}

TEST_CASE("the control socket is created with mode 0660") {
  Fixture f;
  struct stat st {};
  REQUIRE(::stat(f.socket().c_str(), &st) == 0);
  CHECK((st.st_mode & 0777) == 0660);
  CHECK(S_ISSOCK(st.st_mode));
}

TEST_CASE("a client of a socket nobody listens on reports not_running") {
  coop::test::TempDir dir;
  Client client(dir.path() / "absent.sock");
  try {
    client.get("/v1/health");
    FAIL("no error");
  } catch (const coop::Error& e) {
    CHECK(e.code() == "not_running");
  }
}

TEST_CASE("request targets are percent-decoded and bad escapes rejected") {
  Request r;
  REQUIRE(parse_target("/v1/a%2Fb?x=1&y=%C3%A9&flag", r));
  CHECK(r.path == "/v1/a/b");
  CHECK(r.query_value("x") == "1");
  CHECK(r.query_value("y") == "\xC3\xA9");
  CHECK(r.query.count("flag") == 1);
  CHECK_FALSE(parse_target("/v1/bad%zz", r));
  CHECK_FALSE(parse_target("/v1/short%4", r));
  CHECK_FALSE(parse_target("coop/v1", r));
  REQUIRE(parse_target("http://coop/v1", r));  // RFC 9112 3.2.2 absolute-form
  CHECK(r.path == "/v1");
}
