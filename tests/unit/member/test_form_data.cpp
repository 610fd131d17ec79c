// multipart/form-data as the portal's upload form receives it (RFC 7578).
#include <catch2/catch.hpp>

#include <string>

#include "workers/member/form_data.h"

using coop::member::parse_form_data;

namespace {
const std::string kType = "multipart/form-data; boundary=----b0und";
std::string part(const std::string& disposition, const std::string& content) {
  return "------b0und\r\nContent-Disposition: form-data; " + disposition + "\r\n\r\n" + content + "\r\n";
}
}  // namespace

TEST_CASE("form data: fields and a binary file with CRLFs and NULs inside") {
  const std::string binary("PK\x03\x04\r\n\0\r\n--not-the-boundary\r\n", 30);
  const auto body = part("name=\"csrf\"", "abc") + part("name=\"zip\"; filename=\"site.zip\"", binary) + "------b0und--\r\n";
  const auto parts = parse_form_data(kType, body);
  REQUIRE(parts);
  REQUIRE(parts->size() == 2);
  CHECK((*parts)[0].name == "csrf");
  CHECK((*parts)[0].content == "abc");
  CHECK((*parts)[1].filename == "site.zip");
  CHECK((*parts)[1].content == binary);
  // A quoted boundary parameter, as some clients send it.
  CHECK(parse_form_data("multipart/form-data; boundary=\"----b0und\"", body));
}

TEST_CASE("form data: anything not well formed is refused whole") {
  const auto good = part("name=\"a\"", "1") + "------b0und--\r\n";
  CHECK_FALSE(parse_form_data("application/x-www-form-urlencoded", good));
  CHECK_FALSE(parse_form_data("multipart/form-data", good));                       // no boundary
  CHECK_FALSE(parse_form_data("multipart/form-data; boundary=other", good));       // another one
  CHECK_FALSE(parse_form_data(kType, part("name=\"a\"", "1")));                    // never closed
  CHECK_FALSE(parse_form_data(kType, "------b0und\r\nX: y\r\n\r\n1\r\n------b0und--"));  // no disposition
  CHECK_FALSE(parse_form_data(kType, "------b0und\r\nContent-Disposition: form-data\r\n\r\n1\r\n------b0und--"));
  CHECK_FALSE(parse_form_data(kType, part("name=\"\xff\"", "1") + "------b0und--"));  // not UTF-8
  std::string many;
  for (int i = 0; i < 100; ++i) many += part("name=\"f\"", "x");
  CHECK_FALSE(parse_form_data(kType, many + "------b0und--", 64));
  CHECK(parse_form_data(kType, "------b0und--")->empty());
}
