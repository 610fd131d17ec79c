// Handles, addresses, group names and UTF-8 as the registry accepts them.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "workers/member/member_rules.h"

using namespace coop::member;

TEST_CASE("handles are valid Matrix localparts and email local parts") {
  for (const char* ok : {"alice", "bob.smith", "c_d-e", "x", "0day", "a.b.c"}) CHECK_NOTHROW(check_handle(ok));
  for (const char* bad : {"", "Alice", "al ice", ".alice", "alice.", "alice-", "a..b", "-a", "al@ice", "élise", "a/b"})
    CHECK_THROWS_AS(check_handle(bad), coop::Error);
  CHECK_THROWS_AS(check_handle(std::string(65, 'a')), coop::Error);
  CHECK_NOTHROW(check_handle(std::string(64, 'a')));
}

TEST_CASE("operator role names are reserved") {
  CHECK(is_reserved_handle("postmaster"));
  CHECK(is_reserved_handle("abuse"));
  CHECK_FALSE(is_reserved_handle("alice"));
}

TEST_CASE("email addresses are lowercased and checked") {
  CHECK(normalize_email("Alice@Example.ORG") == "alice@example.org");
  CHECK(normalize_email("first.last+tag@coop.example") == "first.last+tag@coop.example");
  for (const char* bad : {"alice", "@example.org", "alice@", "a..b@example.org", ".a@example.org",
                          "a b@example.org", "alice@-bad.example", "alice@exa_mple.org"})
    CHECK_THROWS_AS(normalize_email(bad), coop::Error);
}

TEST_CASE("group names, roles and statuses") {
  CHECK_NOTHROW(check_group_name("kitchen-crew_2"));
  CHECK_THROWS_AS(check_group_name("Kitchen"), coop::Error);
  CHECK_THROWS_AS(check_group_name("-x"), coop::Error);
  CHECK_THROWS_AS(check_group_name(""), coop::Error);
  CHECK_NOTHROW(check_role("guest"));
  CHECK_THROWS_AS(check_role("owner"), coop::Error);
  CHECK_NOTHROW(check_status("removed"));
  CHECK_THROWS_AS(check_status("deleted"), coop::Error);
}

TEST_CASE("UTF-8 validation rejects overlongs, surrogates and truncation") {
  CHECK(is_valid_utf8("plain"));
  CHECK(is_valid_utf8("\xC3\xA9t\xC3\xA9 \xE2\x82\xAC \xF0\x9F\x98\x80"));
  CHECK_FALSE(is_valid_utf8("\xC0\xAF"));          // overlong '/'
  CHECK_FALSE(is_valid_utf8("\xED\xA0\x80"));      // surrogate U+D800
  CHECK_FALSE(is_valid_utf8("\xF4\x90\x80\x80"));  // above U+10FFFF
  CHECK_FALSE(is_valid_utf8("\xE2\x82"));          // truncated
  CHECK_FALSE(is_valid_utf8("\xFF"));
}
