// Server discovery (Server-Server API "Resolving server names"), step by step, with the
// .well-known and SRV lookups replaced by tables; and SRV answers parsed from DNS messages.
#include <catch2/catch.hpp>

#include <map>

#include "workers/federate/discovery.h"

using namespace coop::federate;

namespace {

struct World {
  std::map<std::string, std::string> well_known;             // hostname -> m.server
  std::map<std::string, std::vector<SrvTarget>> srv;          // SRV name -> targets
  std::vector<std::string> asked;                             // every lookup, in order
  Discovery::Lookups lookups() {
    return {[this](const std::string& host, int64_t& keep_ms) {
              asked.push_back("well-known " + host);
              keep_ms = 3600 * 1000;
              const auto it = well_known.find(host);
              return it == well_known.end() ? std::optional<std::string>() : std::optional<std::string>(it->second);
            },
            [this](const std::string& name) {
              asked.push_back("srv " + name);
              const auto it = srv.find(name);
              return it == srv.end() ? std::vector<SrvTarget>() : it->second;
            }};
  }
};

}  // namespace

TEST_CASE("IP literals and explicit ports are used as they are, with no lookup") {
  World world;
  Discovery d({}, world.lookups());
  CHECK(d.route("1.2.3.4") == Route{"https://1.2.3.4:8448", ""});
  CHECK(d.route("1.2.3.4:8000") == Route{"https://1.2.3.4:8000", ""});
  CHECK(d.route("[2001:db8::1]") == Route{"https://[2001:db8::1]:8448", ""});
  CHECK(d.route("example.org:8000") == Route{"https://example.org:8000", ""});
  CHECK(world.asked.empty());
}

TEST_CASE(".well-known delegation, then the delegated name's port or SRV") {
  World world;
  world.well_known = {{"ip.example", "10.0.0.1"},
                      {"port.example", "matrix.port.example:9448"},
                      {"srv.example", "matrix.srv.example"},
                      {"plain.example", "matrix.plain.example"}};
  world.srv["_matrix-fed._tcp.matrix.srv.example"] = {{"host1.srv.example.", 8449, 10, 5}};
  Discovery d({}, world.lookups());
  CHECK(d.route("ip.example") == Route{"https://10.0.0.1:8448", ""});
  CHECK(d.route("port.example") == Route{"https://matrix.port.example:9448", ""});
  // The URL (TLS name, Host header) is the delegated name; the connection goes to the target.
  CHECK(d.route("srv.example") == Route{"https://matrix.srv.example", "matrix.srv.example:443:host1.srv.example:8449"});
  CHECK(d.route("plain.example") == Route{"https://matrix.plain.example", "matrix.plain.example:443:matrix.plain.example:8448"});
  // Asked once, then remembered.
  const auto asked = world.asked.size();
  CHECK(d.route("srv.example") == d.route("srv.example"));
  CHECK(world.asked.size() == asked);
  CHECK(d.known("srv.example").has_value());
}

TEST_CASE("without .well-known: SRV of the name (new, then deprecated), then 8448") {
  World world;
  world.srv["_matrix-fed._tcp.fed.example"] = {{"a.fed.example", 1000, 0, 0}};
  world.srv["_matrix._tcp.old.example"] = {{"b.old.example", 2000, 0, 0}};
  Discovery d({}, world.lookups());
  CHECK(d.route("fed.example") == Route{"https://fed.example", "fed.example:443:a.fed.example:1000"});
  CHECK(d.route("old.example") == Route{"https://old.example", "old.example:443:b.old.example:2000"});
  CHECK(d.route("none.example") == Route{"https://none.example", "none.example:443:none.example:8448"});
  CHECK(world.asked == std::vector<std::string>{"well-known fed.example", "srv _matrix-fed._tcp.fed.example",
                                                "well-known old.example", "srv _matrix-fed._tcp.old.example",
                                                "srv _matrix._tcp.old.example", "well-known none.example",
                                                "srv _matrix-fed._tcp.none.example", "srv _matrix._tcp.none.example"});
}

TEST_CASE("overrides win over discovery") {
  World world;
  Discovery d({{"b.test", "http://127.0.0.1:9000/"}}, world.lookups());
  CHECK(d.route("b.test") == Route{"http://127.0.0.1:9000", ""});
  CHECK(world.asked.empty());
}

namespace {

// A DNS answer message with SRV records (RFC 1035 4.1, RFC 2782), names uncompressed.
std::vector<unsigned char> srv_message(const std::vector<SrvTarget>& records) {
  std::vector<unsigned char> m = {0x12, 0x34, 0x81, 0x80, 0, 1, 0, static_cast<unsigned char>(records.size()), 0, 0, 0, 0};
  const auto name = [&m](const std::string& dotted) {
    std::size_t start = 0;
    while (start < dotted.size()) {
      auto dot = dotted.find('.', start);
      if (dot == std::string::npos) dot = dotted.size();
      m.push_back(static_cast<unsigned char>(dot - start));
      m.insert(m.end(), dotted.begin() + start, dotted.begin() + dot);
      start = dot + 1;
    }
    m.push_back(0);
  };
  const auto u16 = [&m](int v) {
    m.push_back(static_cast<unsigned char>(v >> 8));
    m.push_back(static_cast<unsigned char>(v & 0xff));
  };
  name("_matrix-fed._tcp.example.org");
  u16(33);  // SRV
  u16(1);   // IN
  for (const auto& r : records) {
    name("_matrix-fed._tcp.example.org");
    u16(33);
    u16(1);
    m.insert(m.end(), {0, 0, 0x0e, 0x10});  // TTL 3600
    std::vector<unsigned char> target;
    std::swap(m, target);
    name(r.host);
    std::swap(m, target);
    u16(static_cast<int>(6 + target.size()));
    u16(r.priority);
    u16(r.weight);
    u16(r.port);
    m.insert(m.end(), target.begin(), target.end());
  }
  return m;
}

}  // namespace

TEST_CASE("SRV answers: best first, '.' means no service, garbage means none") {
  const auto message = srv_message({{"slow.example.org", 8448, 20, 0}, {"b.example.org", 8449, 10, 1}, {"a.example.org", 8450, 10, 9}});
  const auto targets = parse_srv_answer(message.data(), static_cast<int>(message.size()));
  REQUIRE(targets.size() == 3);
  CHECK(targets[0].host == "a.example.org");
  CHECK(targets[0].port == 8450);
  CHECK(targets[1].host == "b.example.org");
  CHECK(targets[2].host == "slow.example.org");

  const auto none = srv_message({{"", 0, 0, 0}});
  CHECK(parse_srv_answer(none.data(), static_cast<int>(none.size())).empty());
  const std::vector<unsigned char> garbage(40, 0xff);
  CHECK(parse_srv_answer(garbage.data(), static_cast<int>(garbage.size())).empty());
  CHECK(parse_srv_answer(message.data(), 20).empty());  // cut short
}
