// Server names and where a server is reached.
#include <catch2/catch.hpp>

#include "workers/federate/remote_keys.h"

using namespace coop::federate;

TEST_CASE("server names are DNS names or IP literals with an optional port") {
  for (const char* good : {"example.org", "matrix.example.org:8448", "1.2.3.4", "1.2.3.4:1", "[::1]", "[1234:5678::abcd]:443", "localhost"})
    CHECK(valid_server_name(good));
  for (const char* bad : {"", "exa mple.org", "example.org:", "example.org:99999", "example.org:abc", "[::1", "[]", "a/b",
                          "evil.org/..", "@user:example.org", "example.org:8448:1"})
    CHECK_FALSE(valid_server_name(bad));
  CHECK_FALSE(valid_server_name(std::string(256, 'a')));
}

TEST_CASE("a server is reached where [workers.federate.resolve] says, else where discovery finds it") {
  // No .well-known and no SRV records anywhere: every name is reached on its port or 8448.
  Discovery::Lookups nothing{[](const std::string&, int64_t&) { return std::optional<std::string>(); },
                             [](const std::string&) { return std::vector<SrvTarget>(); }};
  RemoteKeys keys(std::map<std::string, std::string>{{"b.test", "http://127.0.0.1:9000/"}}, nothing);
  CHECK(keys.route("b.test") == Route{"http://127.0.0.1:9000", ""});
  CHECK(keys.route("c.test") == Route{"https://c.test", "c.test:443:c.test:8448"});
  CHECK(keys.route("c.test:443") == Route{"https://c.test:443", ""});
  CHECK(keys.route("[::1]") == Route{"https://[::1]:8448", ""});
  CHECK(keys.route("[::1]:8000") == Route{"https://[::1]:8000", ""});
  // A name that is not a server name is never looked up.
  CHECK_FALSE(keys.public_key("bad name", "ed25519:x"));
  CHECK(keys.peers().empty());
}
