// CSV import parsing (RFC 4180) and export quoting.
#include <catch2/catch.hpp>

#include "common/error.h"
#include "workers/member/member_csv.h"

using namespace coop::member;

namespace {
std::string csv_error(const std::string& text) {
  try {
    members_from_csv(text);
  } catch (const coop::Error& e) {
    CHECK(e.code() == "bad_csv");
    return e.what();
  }
  return "";
}
}  // namespace

TEST_CASE("RFC 4180 quoting: commas, doubled quotes and line breaks inside quotes") {
  const auto records = parse_csv("a,\"b,c\",\"say \"\"hi\"\"\"\r\n\"two\nlines\",x,\r\n");
  REQUIRE(records.size() == 2);
  CHECK(records[0].fields == std::vector<std::string>{"a", "b,c", "say \"hi\""});
  CHECK(records[1].fields == std::vector<std::string>{"two\nlines", "x", ""});
  CHECK(records[1].line == 2);
}

TEST_CASE("a BOM and blank lines are skipped") {
  const auto records = parse_csv("\xEF\xBB\xBFhandle\n\nalice\n\n");
  REQUIRE(records.size() == 2);
  CHECK(records[0].fields[0] == "handle");
  CHECK(records[1].line == 3);
}

TEST_CASE("import rows carry their line numbers and normalised values") {
  const auto rows = members_from_csv(
      "handle,name,emails,groups,role\n"
      "alice,\"Liddell, Alice\",Alice@Example.org;a2@example.org,ops;kitchen,admin\n"
      "bob,,,,\n");
  REQUIRE(rows.size() == 2);
  CHECK(rows[0].second == 2);
  CHECK(rows[0].first.display_name == "Liddell, Alice");
  CHECK(rows[0].first.emails == std::vector<std::string>{"alice@example.org", "a2@example.org"});
  CHECK(rows[0].first.groups == std::vector<std::string>{"ops", "kitchen"});
  CHECK(rows[0].first.role == "admin");
  CHECK(rows[1].first.role == "member");
}

TEST_CASE("malformed CSV names the line") {
  CHECK(csv_error("handle,name\nalice,\"unterminated\n") == "line 2: a quoted field is never closed");
  CHECK(csv_error("handle,name\nalice,bad\"quote\n").find("line 2: a quote inside an unquoted field") == 0);
  CHECK(csv_error("handle,name\nalice,\"x\"y\n") == "line 2: text after a closing quote");
  CHECK(csv_error("handle,name\nalice\n") == "line 2: expected 2 fields, found 1");
  CHECK(csv_error("handle,nickname\n").find("line 1: unknown column 'nickname'") == 0);
  CHECK(csv_error("name\nAlice\n") == "line 1: no 'handle' column");
  CHECK(csv_error("handle,handle\n") == "line 1: column 'handle' appears twice");
  CHECK(csv_error("handle\nok\nBad Handle\n").find("line 3: invalid handle") == 0);
  CHECK(csv_error("handle,emails\nok,not-an-address\n").find("line 2: invalid email") == 0);
  CHECK(csv_error("handle,quota_bytes\nok,12kb\n").find("line 2: quota_bytes") == 0);
  CHECK(csv_error("handle\nok\nb\xC3\x28\n") == "line 3: not valid UTF-8");
  CHECK(csv_error("").find("empty") != std::string::npos);
}

TEST_CASE("export quotes what needs quoting and round-trips through import") {
  Member m;
  m.handle = "alice";
  m.display_name = "Liddell, \"Alice\"";
  m.emails = {"alice@example.org"};
  m.groups = {"ops", "kitchen"};
  m.role = "admin";
  m.quota_bytes = 1024;
  const auto text = members_to_csv({m});
  CHECK(text == "handle,name,emails,groups,role,status,quota_bytes\r\n"
                "alice,\"Liddell, \"\"Alice\"\"\",alice@example.org,ops;kitchen,admin,active,1024\r\n");
  const auto rows = members_from_csv(text);
  REQUIRE(rows.size() == 1);
  CHECK(rows[0].first.display_name == m.display_name);
  CHECK(rows[0].first.groups == m.groups);
  CHECK(rows[0].first.quota_bytes == 1024);
}
