// Admission counts and who makes room (common/net/admission.h); networks by prefix (cidr.h).
#include <catch2/catch.hpp>

#include "common/net/admission.h"
#include "common/net/cidr.h"

using namespace coop::net;

TEST_CASE("networks are IPv4 /24 and IPv6 /64") {
  CHECK(network_of("203.0.113.77") == "203.0.113.0/24");
  CHECK(network_of("127.0.0.1") == network_of("127.0.0.200"));
  CHECK(network_of("2001:db8:1:2:aaaa::1") == "2001:db8:1:2::/64");
  CHECK(network_of("local") == "local");
}

TEST_CASE("a full address lets its longest-waiting client go, never a logged-in one") {
  Admission admission({100, 2, 100, 0, {}});
  const auto member = admission.admit("192.0.2.1");
  const auto idle = admission.admit("192.0.2.1");
  admission.set_evictable(member.id, false);
  const auto newcomer = admission.admit("192.0.2.1");
  REQUIRE(newcomer.id != 0);
  CHECK(newcomer.evicted == std::vector<Admission::Id>{idle.id});
  CHECK(admission.from("192.0.2.1") == 2);
  admission.set_evictable(newcomer.id, false);
  const auto refused = admission.admit("192.0.2.1");
  CHECK(refused.id == 0);
  CHECK(refused.refusal == Admission::kTooManyFromAddress);
  CHECK(refused.evicted.empty());
  CHECK(admission.from("192.0.2.1") == 2);
  // Another address is not affected.
  CHECK(admission.admit("192.0.2.2").id != 0);
}

TEST_CASE("a flood from one network cannot push out members or other networks") {
  Admission admission({1000, 20, 64, 0, {}});
  std::vector<Admission::Id> flood;
  for (int host = 1; host <= 60; ++host)
    for (int i = 0; i < 20; ++i) {
      const auto d = admission.admit("198.51.100." + std::to_string(host));
      REQUIRE(d.id != 0);
      flood.push_back(d.id);
    }
  CHECK(admission.total() <= 64);
  // A member from the same /24 still gets in (an idle flooder makes room) and, logged in, stays.
  const auto member = admission.admit("198.51.100.1");
  REQUIRE(member.id != 0);
  admission.set_evictable(member.id, false);
  for (int i = 0; i < 500; ++i) admission.admit("198.51.100." + std::to_string(1 + i % 60));
  CHECK(admission.from("198.51.100.1") >= 1);
  const auto other = admission.admit("203.0.113.5");
  CHECK(other.id != 0);
  CHECK(other.evicted.empty());
}

TEST_CASE("clients not logged in get at most their share, so members keep room") {
  Admission admission({8, 100, 100, 6, {}});
  std::vector<Admission::Id> members;
  for (int i = 0; i < 2; ++i) {
    const auto d = admission.admit("192.0.2." + std::to_string(i));
    admission.set_evictable(d.id, false);
    members.push_back(d.id);
  }
  for (int i = 0; i < 50; ++i) REQUIRE(admission.admit("203.0.113." + std::to_string(i)).id != 0);
  CHECK(admission.evictable() == 6);
  CHECK(admission.total() == 8);
  // All slots taken: one more member logs in only after their connection (evictable at first) is admitted.
  const auto next = admission.admit("192.0.2.9");
  REQUIRE(next.id != 0);
  CHECK(next.evicted.size() == 1);
  admission.set_evictable(next.id, false);
  CHECK(admission.total() == 8);
  CHECK(admission.evictable() == 5);
}

TEST_CASE("a connection that is busy again goes to the back of the line") {
  Admission admission({2, 0, 0, 2, {}});
  const auto a = admission.admit("local");
  const auto b = admission.admit("local");
  admission.set_evictable(a.id, false);
  admission.set_evictable(a.id, true);  // a answered a request and is idle again, after b
  const auto c = admission.admit("local");
  CHECK(c.evicted == std::vector<Admission::Id>{b.id});
  admission.release(a.id);
  admission.release(a.id);  // twice is harmless
  CHECK(admission.total() == 1);
}

TEST_CASE("networks given as address/prefix match their addresses only") {
  const auto loopback = Cidr::parse("127.0.0.0/8");
  REQUIRE(loopback);
  CHECK(loopback->contains("127.0.0.1"));
  CHECK(loopback->contains("127.255.0.9"));
  CHECK_FALSE(loopback->contains("128.0.0.1"));
  CHECK_FALSE(loopback->contains("::1"));
  const auto one = Cidr::parse("192.0.2.7");
  REQUIRE(one);
  CHECK(one->contains("192.0.2.7"));
  CHECK_FALSE(one->contains("192.0.2.8"));
  const auto v6 = Cidr::parse("2001:db8::/33");
  REQUIRE(v6);
  CHECK(v6->contains("2001:db8:7fff::1"));
  CHECK_FALSE(v6->contains("2001:db8:8000::1"));
  CHECK(Cidr::parse("0.0.0.0/0")->contains("203.0.113.1"));
  for (const char* bad : {"", "127.0.0.0/33", "::/129", "127.0.0.0/", "127.0.0.0/x", "example.org/8"}) {
    INFO(bad);
    CHECK_FALSE(Cidr::parse(bad));
  }
}

TEST_CASE("a trusted reverse proxy is not held to the per-address and per-network caps") {
  Admission admission({10, 2, 3, 0, {"127.0.0.1/32", "::1"}});
  std::vector<Admission::Id> through_proxy;
  for (int i = 0; i < 5; ++i) {
    const auto d = admission.admit("127.0.0.1");
    REQUIRE(d.id != 0);
    CHECK(d.evicted.empty());
    admission.set_evictable(d.id, false);
    through_proxy.push_back(d.id);
  }
  CHECK(admission.from("127.0.0.1") == 5);
  // Anyone else is capped as before.
  const auto a = admission.admit("192.0.2.7");
  const auto b = admission.admit("192.0.2.7");
  REQUIRE((a.id != 0 && b.id != 0));
  admission.set_evictable(a.id, false);
  admission.set_evictable(b.id, false);
  CHECK(admission.admit("192.0.2.7").refusal == Admission::kTooManyFromAddress);
  // The total still holds for everyone.
  for (int i = 0; i < 3; ++i) admission.set_evictable(admission.admit("::1").id, false);
  CHECK(admission.admit("::1").refusal == Admission::kTooManyConnections);
}
