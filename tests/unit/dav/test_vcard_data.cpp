// vCard parsing (RFC 6350 3.2-3.4), CardDAV text-match (RFC 6352 10.5.4) and vCard building.
#include <catch2/catch.hpp>

#include <sstream>
#include <string>

#include "common/error.h"
#include "workers/dav/vcard_data.h"

namespace dav = coop::dav;

namespace {

std::string invalid_code(const std::string& text) {
  try {
    dav::parse_vcard(text);
  } catch (const coop::Error& error) {
    CHECK(error.status() == 403);
    return error.code();
  }
  return "accepted";
}

std::string value_of(const dav::VCard& card, const std::string& name) {
  for (const auto& [candidate, value] : card.properties)
    if (candidate == name) return value;
  return "<absent>";
}

const std::string kAlice =
    "BEGIN:VCARD\r\n"
    "VERSION:4.0\r\n"
    "UID:urn:uuid:alice\r\n"
    "FN:Alice Liddell\r\n"
    "N:Liddell;Alice;;;\r\n"
    "item1.EMAIL;TYPE=work:alice@example.com\r\n"
    "item1.X-ABLabel:Work\r\n"
    "EMAIL;TYPE=\"home,pref\";LABEL=\"a:b;c\":alice@home.example\r\n"
    "NOTE:line one\\nline two\\, with comma\\; and semicolon \\\\ backslash\r\n"
    "END:VCARD\r\n";

}  // namespace

TEST_CASE("a vCard 4.0 yields UID, FN and its properties in order") {
  const auto card = dav::parse_vcard(kAlice);
  CHECK(card.uid == "urn:uuid:alice");
  CHECK(card.version == "4.0");
  CHECK(card.fn == "Alice Liddell");
  REQUIRE(card.properties.size() == 8);
  CHECK(card.properties[0] == std::pair<std::string, std::string>{"VERSION", "4.0"});
  CHECK(card.properties[3] == std::pair<std::string, std::string>{"N", "Liddell;Alice;;;"});
}

TEST_CASE("grouped properties lose their group and names are upper-cased") {
  const auto card = dav::parse_vcard(kAlice);
  CHECK(card.properties[4] == std::pair<std::string, std::string>{"EMAIL", "alice@example.com"});
  CHECK(card.properties[5] == std::pair<std::string, std::string>{"X-ABLABEL", "Work"});
}

TEST_CASE("parameters are skipped, quoted ones with colons and semicolons too") {
  const auto card = dav::parse_vcard(kAlice);
  CHECK(card.properties[6] == std::pair<std::string, std::string>{"EMAIL", "alice@home.example"});
}

TEST_CASE("escaped newlines, commas, semicolons and backslashes are unescaped") {
  const auto card = dav::parse_vcard(kAlice);
  CHECK(value_of(card, "NOTE") == "line one\nline two, with comma; and semicolon \\ backslash");
  const auto upper_n = dav::parse_vcard("BEGIN:VCARD\nVERSION:3.0\nUID:x\nNOTE:a\\Nb\\:c\nEND:VCARD\n");
  CHECK(value_of(upper_n, "NOTE") == "a\nb:c");
}

TEST_CASE("folded lines are unfolded, with CRLF or LF and space or tab") {
  const auto card = dav::parse_vcard(
      "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:fold\r\nFN:Bartholomew \r\n Jojo\r\n\tSimpson\r\n"
      "NOTE:spl\n it\n\ttwice\nEND:VCARD");
  CHECK(card.fn == "Bartholomew JojoSimpson");
  CHECK(value_of(card, "NOTE") == "splittwice");
  // RFC 6350 3.2: only the one white space character after the break goes.
  const auto card2 = dav::parse_vcard("BEGIN:VCARD\nVERSION:4.0\nUID:f2\nFN:a\n  b\nEND:VCARD\n");
  CHECK(card2.fn == "a b");
}

TEST_CASE("vCard 3.0 is accepted without FN, 4.0 is not") {
  const auto old = dav::parse_vcard("BEGIN:VCARD\r\nVERSION:3.0\r\nN:Doe;John;;;\r\nUID:john\r\nEND:VCARD\r\n");
  CHECK(old.version == "3.0");
  CHECK(old.fn.empty());
  CHECK(invalid_code("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:john\r\nEND:VCARD\r\n") == "valid-address-data");
}

TEST_CASE("a vCard without UID is not valid address data") {
  CHECK(invalid_code("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:No Uid\r\nEND:VCARD\r\n") == "valid-address-data");
  CHECK(invalid_code("BEGIN:VCARD\r\nVERSION:4.0\r\nFN:Empty\r\nUID:\r\nEND:VCARD\r\n") == "valid-address-data");
}

TEST_CASE("broken vCards are not valid address data") {
  for (const char* bad : {
           "",
           "hello",
           "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nFN:A\r\n",                         // no END
           "BEGIN:VCARD\r\nVERSION:2.1\r\nUID:a\r\nFN:A\r\nEND:VCARD\r\n",            // old version
           "BEGIN:VCARD\r\nUID:a\r\nFN:A\r\nEND:VCARD\r\n",                           // no VERSION
           "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nFN A\r\nEND:VCARD\r\n",            // no colon
           "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nFN;TYPE=\"x:A\r\nEND:VCARD\r\n",   // open quote
           "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nUID:b\r\nFN:A\r\nEND:VCARD\r\n",   // two UIDs
           "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nFN:A\r\nBEGIN:VCARD\r\nEND:VCARD\r\n",
           "BEGIN:VCALENDAR\r\nVERSION:2.0\r\nEND:VCALENDAR\r\n",
           "BEGIN:VCARD\r\nVERSION:4.0\r\nUID:a\r\nFN:A\r\nEND:VCARD\r\nBEGIN:VCARD\r\nVERSION:4.0\r\nUID:b\r\n"
           "FN:B\r\nEND:VCARD\r\n",                                                    // two cards
       }) {
    INFO(bad);
    CHECK(invalid_code(bad) == "valid-address-data");
  }
}

TEST_CASE("a .vcf file splits into validated cards") {
  const std::string file = kAlice + "\r\n" +
                           "begin:vcard\r\nversion:3.0\r\nuid:bob\r\nfn:Bob\r\nend:vcard\r\n\r\n";
  const auto cards = dav::split_vcards("\xEF\xBB\xBF" + file);
  REQUIRE(cards.size() == 2);
  CHECK(cards[0].uid == "urn:uuid:alice");
  CHECK(cards[1].uid == "bob");
  CHECK(cards[1].fn == "Bob");
  CHECK(dav::split_vcards("").empty());
  CHECK_THROWS_AS(dav::split_vcards(file + "BEGIN:VCARD\r\nVERSION:4.0\r\nFN:no uid\r\nEND:VCARD\r\n"), coop::Error);
  CHECK_THROWS_AS(dav::split_vcards(file + "stray text\r\n"), coop::Error);
}

TEST_CASE("text-match supports equals, contains, starts-with and ends-with, case-insensitively") {
  const auto card = dav::parse_vcard(kAlice);
  CHECK(dav::text_match(card, "FN", "alice liddell", "equals", false));
  CHECK_FALSE(dav::text_match(card, "FN", "alice", "equals", false));
  CHECK(dav::text_match(card, "fn", "LIDD", "contains", false));
  CHECK(dav::text_match(card, "FN", "lidd", "", false));  // contains is the default
  CHECK(dav::text_match(card, "FN", "Ali", "starts-with", false));
  CHECK_FALSE(dav::text_match(card, "FN", "Lid", "starts-with", false));
  CHECK(dav::text_match(card, "FN", "DELL", "ends-with", false));
  CHECK_FALSE(dav::text_match(card, "FN", "Alice Liddell!", "ends-with", false));
  CHECK(dav::text_match(card, "EMAIL", "home.example", "ends-with", false));  // the second EMAIL
  CHECK_FALSE(dav::text_match(card, "TEL", "", "contains", false));            // no such property
  CHECK_THROWS_AS(dav::text_match(card, "FN", "a", "regex", false), coop::Error);
}

TEST_CASE("text-match compares non-ASCII bytes as they are") {
  const auto card = dav::parse_vcard("BEGIN:VCARD\r\nVERSION:4.0\r\nUID:z\r\nFN:Zoë Ærø\r\nEND:VCARD\r\n");
  CHECK(dav::text_match(card, "FN", "zoë", "starts-with", false));
  CHECK(dav::text_match(card, "FN", "Ærø", "ends-with", false));
  // Beyond ASCII there is no case folding: a documented shortfall of the approximation.
  CHECK_FALSE(dav::text_match(card, "FN", "ærø", "ends-with", false));
}

TEST_CASE("negate-condition inverts the match per property instance") {
  const auto card = dav::parse_vcard(kAlice);
  CHECK_FALSE(dav::text_match(card, "FN", "alice", "contains", true));
  CHECK(dav::text_match(card, "FN", "bob", "contains", true));
  // One of the two EMAILs is not at example.com.
  CHECK(dav::text_match(card, "EMAIL", "@example.com", "ends-with", true));
  CHECK_FALSE(dav::text_match(card, "EMAIL", "alice", "contains", true));
  CHECK_FALSE(dav::text_match(card, "TEL", "x", "contains", true));
}

TEST_CASE("make_vcard round-trips through parse_vcard with escaping") {
  const auto text = dav::make_vcard("member-42", "Doe, Jane; \\ the \"first\"\nsecond line",
                                    {"jane@example.org", "j@x.example"}, {{"X-MATRIX", "@jane:example.org"}, {"note", "a,b;c"}});
  CHECK(text.find("BEGIN:VCARD\r\nVERSION:4.0\r\n") == 0);
  CHECK(text.find("FN:Doe\\, Jane\\; \\\\ the \"first\"\\nsecond line\r\n") != std::string::npos);
  const auto card = dav::parse_vcard(text);
  CHECK(card.uid == "member-42");
  CHECK(card.version == "4.0");
  CHECK(card.fn == "Doe, Jane; \\ the \"first\"\nsecond line");
  CHECK(value_of(card, "X-MATRIX") == "@jane:example.org");
  CHECK(value_of(card, "NOTE") == "a,b;c");
  CHECK(dav::text_match(card, "EMAIL", "j@x.example", "equals", false));
  CHECK(dav::make_vcard("u", "", {"first@example.org"}, {}).find("FN:first@example.org\r\n") != std::string::npos);
  CHECK_THROWS_AS(dav::make_vcard("u", "n", {}, {{"BAD NAME", "x"}}), coop::Error);
  CHECK_THROWS_AS(dav::make_vcard("u", "n", {}, {{"UID", "x"}}), coop::Error);
}

TEST_CASE("make_vcard folds long lines at 75 octets without splitting UTF-8") {
  std::string long_name;
  for (int i = 0; i < 40; ++i) long_name += "Ünïcødé ";  // 12 octets each
  const auto text = dav::make_vcard("long", long_name, {}, {{"X-LONG", std::string(300, 'x')}});
  std::istringstream lines(text);
  int continuations = 0;
  for (std::string line; std::getline(lines, line);) {
    REQUIRE(!line.empty());
    REQUIRE(line.back() == '\r');
    line.pop_back();
    CHECK(line.size() <= 75);
    if (line.front() == ' ') ++continuations;
    // No line starts or ends in the middle of a UTF-8 sequence.
    const auto first = static_cast<unsigned char>(line[line.front() == ' ' ? 1 : 0]);
    CHECK((first & 0xC0) != 0x80);
  }
  CHECK(continuations >= 8);
  const auto card = dav::parse_vcard(text);
  CHECK(card.fn == long_name);
  CHECK(value_of(card, "X-LONG") == std::string(300, 'x'));
  // Plain ASCII folds at exactly 75 octets, then 1 + 74.
  const auto ascii = dav::make_vcard("a", "n", {}, {{"X-LONG", std::string(200, 'y')}});
  const auto at = ascii.find("X-LONG:");
  CHECK(ascii.substr(at, 77) == "X-LONG:" + std::string(68, 'y') + "\r\n");
  CHECK(ascii.substr(at + 77, 77) == " " + std::string(74, 'y') + "\r\n");
}
