// m.room.server_acl evaluation (Client-Server API "Server Access Control Lists (ACLs) for
// rooms"), with the spec's own example ACL and the edge cases around it.
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "workers/matrix/glob.h"
#include "workers/matrix/server_acl.h"

using coop::matrix::glob_matches;
using coop::matrix::server_acl_allows;
using nlohmann::json;

TEST_CASE("ACL globs") {
  CHECK(glob_matches("*", ""));
  CHECK(glob_matches("*", "evil.example"));
  CHECK(glob_matches("*.evil.example", "a.b.evil.example"));
  CHECK_FALSE(glob_matches("*.evil.example", "evil.example"));
  CHECK(glob_matches("evil.exampl?", "evil.example"));
  CHECK_FALSE(glob_matches("evil.exampl?", "evil.exampl"));
  CHECK(glob_matches("EVIL.example", "evil.EXAMPLE"));
  CHECK(glob_matches("a*b*c", "aXXbYYc"));
  CHECK_FALSE(glob_matches("a*b*c", "aXXbYY"));
  // A pathological pattern stays fast (the matcher follows a set of states, never backtracks).
  CHECK_FALSE(glob_matches(std::string(200, '*') + "x", std::string(5000, 'a')));
}

TEST_CASE("the spec's example ACL") {
  const json acl = {{"allow", {"*"}}, {"allow_ip_literals", false}, {"deny", {"*.evil.com", "evil.com"}}};
  CHECK(server_acl_allows(acl, "good.example"));
  CHECK(server_acl_allows(acl, "good.example:8448"));
  CHECK_FALSE(server_acl_allows(acl, "evil.com"));
  CHECK_FALSE(server_acl_allows(acl, "evil.com:8448"));  // the port goes before matching
  CHECK_FALSE(server_acl_allows(acl, "matrix.evil.com"));
  CHECK_FALSE(server_acl_allows(acl, "1.2.3.4"));
  CHECK_FALSE(server_acl_allows(acl, "1.2.3.4:8448"));
  CHECK_FALSE(server_acl_allows(acl, "[::1]:8448"));
}

TEST_CASE("allow lists, defaults and malformed ACLs") {
  CHECK(server_acl_allows(json(), "any.example"));             // no ACL
  CHECK(server_acl_allows(json::object(), "any.example"));     // a redacted ACL
  CHECK_FALSE(server_acl_allows({{"deny", json::array()}}, "any.example"));  // no allow: no one
  CHECK_FALSE(server_acl_allows({{"allow", "*"}}, "any.example"));           // allow not a list
  CHECK(server_acl_allows({{"allow", {"*"}}}, "1.2.3.4"));     // IP literals allowed by default
  CHECK(server_acl_allows({{"allow", {"*"}}, {"allow_ip_literals", "no"}}, "1.2.3.4"));  // not a boolean: true
  const json partners = {{"allow", {"a.coop", "*.b.coop", 7}}};
  CHECK(server_acl_allows(partners, "a.coop"));
  CHECK(server_acl_allows(partners, "x.b.coop:443"));
  CHECK_FALSE(server_acl_allows(partners, "c.coop"));
  // deny wins over allow.
  CHECK_FALSE(server_acl_allows({{"allow", {"*"}}, {"deny", {"A.COOP"}}}, "a.coop"));
}
