// App passwords: secret shape, digest normalisation, constant-time comparison and scopes.
#include <catch2/catch.hpp>

#include <regex>
#include <set>

#include "common/auth/app_password.h"
#include "common/error.h"

using namespace coop::auth;

TEST_CASE("a new app password is six groups of four lowercase unambiguous characters") {
  const std::regex shape("[2-9a-km-z]{4}(-[2-9a-km-z]{4}){5}");
  std::set<std::string> seen;
  for (int i = 0; i < 50; ++i) {
    const auto created = make_app_password();
    CHECK(std::regex_match(created.secret, shape));
    seen.insert(created.secret);
  }
  CHECK(seen.size() == 50);
}

TEST_CASE("a new app password's digest is the lowercase hex BLAKE2b-256 of its secret") {
  const auto created = make_app_password();
  CHECK(std::regex_match(created.digest, std::regex("[0-9a-f]{64}")));
  CHECK(created.digest == app_password_digest(created.secret));
}

TEST_CASE("the app password digest is BLAKE2b-256 without dashes and case") {
  // RFC 7693 test input "abc", truncated to 32 bytes (as Python's hashlib.blake2b(digest_size=32)).
  const std::string abc = "bddd813c634239723171ef3fee98579b94964e3bb1cb3e427262c8c068d52319";
  CHECK(app_password_digest("abc") == abc);
  CHECK(app_password_digest("A-B-C") == abc);
  CHECK(app_password_digest("-a-b-c-") == abc);
}

TEST_CASE("an app password typed without dashes or in upper case gives the same digest") {
  const auto created = make_app_password();
  std::string bare;
  std::string upper;
  for (char c : created.secret) {
    if (c != '-') bare += c;
    upper += static_cast<char>(c >= 'a' && c <= 'z' ? c - 'a' + 'A' : c);
  }
  CHECK(digest_equals(app_password_digest(bare), created.digest));
  CHECK(digest_equals(app_password_digest(upper), created.digest));
}

TEST_CASE("a different app password does not match") {
  const auto one = make_app_password();
  const auto other = make_app_password();
  CHECK_FALSE(digest_equals(app_password_digest(other.secret), one.digest));
  CHECK_FALSE(digest_equals(app_password_digest(one.secret + "x"), one.digest));
  CHECK_FALSE(digest_equals(app_password_digest(""), one.digest));
}

TEST_CASE("digests of different lengths or empty digests never compare equal") {
  CHECK(digest_equals("00ff", "00ff"));
  CHECK_FALSE(digest_equals("00ff", "00fe"));
  CHECK_FALSE(digest_equals("00ff", "00ff00"));
  CHECK_FALSE(digest_equals("", "00ff"));
  CHECK_FALSE(digest_equals("", ""));
}

TEST_CASE("every protocol name parses back to its protocol") {
  for (Protocol p : {Protocol::mail, Protocol::dav, Protocol::room, Protocol::docs,
                     Protocol::tiles, Protocol::site, Protocol::federate}) {
    CHECK(parse_protocol(protocol_name(p)) == p);
  }
  CHECK(protocol_name(Protocol::federate) == "federate");
  CHECK_FALSE(parse_protocol("smtp").has_value());
  CHECK_FALSE(parse_protocol("").has_value());
  CHECK_FALSE(parse_protocol("MAIL").has_value());
}

TEST_CASE("scopes parse to sorted unique protocol names") {
  using V = std::vector<std::string>;
  CHECK(parse_scopes("mail,dav") == V{"dav", "mail"});
  CHECK(parse_scopes("dav,mail,dav") == V{"dav", "mail"});
  CHECK(parse_scopes(" room , mail ") == V{"mail", "room"});
  CHECK(parse_scopes("federate") == V{"federate"});
}

TEST_CASE("empty scopes or all mean every protocol") {
  const std::vector<std::string> every = {"calendars", "contacts", "dav",  "docs", "federate",
                                          "files",     "mail",     "room", "site", "tiles"};
  CHECK(parse_scopes("") == every);
  CHECK(parse_scopes("all") == every);
  CHECK(parse_scopes("mail,all") == every);
  CHECK(parse_scopes(" ") == every);
}

TEST_CASE("an unknown scope is refused with the list of known ones") {
  try {
    parse_scopes("mail,smtp");
    FAIL("expected bad_scope");
  } catch (const coop::Error& e) {
    CHECK(e.code() == "bad_scope");
    CHECK(e.status() == 400);
    CHECK(std::string(e.what()) ==
          "unknown scope 'smtp' (mail, dav, calendars, contacts, files, room, docs, tiles, site, federate)");
  }
  CHECK_THROWS_AS(parse_scopes("all,smtp"), coop::Error);
  CHECK_THROWS_AS(parse_scopes("Mail"), coop::Error);
}

TEST_CASE("scopes allow only the protocols they name") {
  const auto scopes = parse_scopes("mail,dav");
  CHECK(scope_allows(scopes, "mail"));
  CHECK(scope_allows(scopes, "dav"));
  CHECK_FALSE(scope_allows(scopes, "room"));
  CHECK_FALSE(scope_allows(scopes, "all"));
  CHECK_FALSE(scope_allows({}, "mail"));
  CHECK(scope_allows(parse_scopes("all"), "federate"));
}

TEST_CASE("calendars, contacts and files are DAV's parts, each on its own") {
  const auto calendars = parse_scopes("calendars");
  CHECK(scope_allows(calendars, "calendars"));
  CHECK_FALSE(scope_allows(calendars, "contacts"));
  CHECK_FALSE(scope_allows(calendars, "files"));
  CHECK(scope_allows(calendars, "dav"));  // the principal and roots clients discover from
  CHECK_FALSE(scope_allows(calendars, "mail"));
  const auto dav = parse_scopes("dav");
  for (const char* part : {"calendars", "contacts", "files", "dav"}) CHECK(scope_allows(dav, part));
  CHECK_FALSE(scope_allows(parse_scopes("mail"), "dav"));
}
