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

TEST_CASE("a server is reached where [workers.federate.resolve] says, else at its port or 8448") {
  RemoteKeys keys(std::map<std::string, std::string>{{"b.test", "http://127.0.0.1:9000/"}});
  CHECK(keys.base_url("b.test") == "http://127.0.0.1:9000");
  CHECK(keys.base_url("c.test") == "https://c.test:8448");
  CHECK(keys.base_url("c.test:443") == "https://c.test:443");
  CHECK(keys.base_url("[::1]") == "https://[::1]:8448");
  CHECK(keys.base_url("[::1]:8000") == "https://[::1]:8000");
  // A name that is not a server name is never looked up.
  CHECK_FALSE(keys.public_key("bad name", "ed25519:x"));
  CHECK(keys.peers().empty());
}
