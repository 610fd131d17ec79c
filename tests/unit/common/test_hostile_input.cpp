// What the shared HTTP layer does with hostile input: bounded JSON, UTF-8 checks, error
// replies that can always be written (common/json.h, common/http/router.h).
#include <catch2/catch.hpp>

#include <nlohmann/json.hpp>

#include "common/auth/basic_auth.h"
#include "common/error.h"
#include "common/http/date.h"
#include "common/http/router.h"
#include "common/text.h"
#include "common/json.h"

using namespace coop;
using nlohmann::json;

namespace {

std::string code_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.code();
  }
  return "none";
}

std::string nested(std::size_t depth, char open, char close) { return std::string(depth, open) + std::string(depth, close); }

// Dispatches a request the way the server does and returns the reply.
http::Response dispatch(const http::Router& router, const std::string& method, const std::string& target,
                        const std::string& body = {}) {
  http::Request request;
  request.method = method;
  if (!http::parse_target(target, request)) return router.error(400, "bad_request", "bad request target");
  request.body = body;
  http::Response out;
  router.dispatch(request, [&out](http::Response r) { out = std::move(r); });
  return out;
}

}  // namespace

TEST_CASE("JSON nesting is bounded for objects and arrays before parsing") {
  CHECK(json_depth(R"({"a":[1,{"b":"[[[{{{"}]})") == 3);
  CHECK(json_depth(R"(["\"[[["])") == 1);
  CHECK(parse_json(nested(kMaxJsonDepth, '[', ']')).is_array());
  CHECK(code_of([] { parse_json(nested(kMaxJsonDepth + 1, '[', ']')); }) == "not_json");
  CHECK(code_of([] { parse_json(nested(100000, '[', ']')); }) == "not_json");
  CHECK(code_of([] { parse_json("{\"a\":" + nested(30000, '[', ']') + "}"); }) == "not_json");
  std::string objects;
  for (int i = 0; i < 100000; ++i) objects += "{\"a\":";
  CHECK(code_of([&] { parse_json(objects); }) == "not_json");
}

TEST_CASE("invalid UTF-8 in JSON is refused and the error does not quote it") {
  try {
    parse_json("{\"user\":\"\xff\"}");
    FAIL("parsed");
  } catch (const Error& e) {
    CHECK(e.code() == "not_json");
    CHECK(std::string(e.what()).find('\xff') == std::string::npos);
  }
  CHECK(code_of([] { parse_json_object("[1,2]"); }) == "bad_json");
  CHECK(code_of([] { parse_json_object("{} {}"); }) == "not_json");
}

TEST_CASE("dump_json writes invalid UTF-8 as U+FFFD instead of throwing") {
  CHECK(dump_json(json{{"error", std::string("no such resource: /\xff")}}) == "{\"error\":\"no such resource: /\xef\xbf\xbd\"}");
  CHECK_NOTHROW(error_body("not_found", "\xc0\x80"));
}

TEST_CASE("request targets: invalid UTF-8 is refused, absolute-form and encoded slashes are read") {
  http::Request r;
  CHECK_FALSE(http::parse_target("/_matrix/%FF", r));
  CHECK_FALSE(http::parse_target("/a?x=%C0%80", r));
  CHECK_FALSE(http::parse_target("/a?%FF=1", r));
  REQUIRE(http::parse_target("http://coop.example:8080/v1/members?x=1", r));
  CHECK(r.path == "/v1/members");
  CHECK(r.query_value("x") == "1");
  REQUIRE(http::parse_target("HTTPS://coop.example", r));
  CHECK(r.path == "/");
  REQUIRE(http::parse_target("/v1/messages/alice/Projects%2F2026", r));
  CHECK(r.segments == std::vector<std::string>{"v1", "messages", "alice", "Projects/2026"});
}

TEST_CASE("the router answers hostile requests with 4xx and hides internal detail") {
  http::Router router;
  router.add("POST", "/v1/things", [](const http::Request& q) {
    const auto body = q.json();
    return http::Response::json({{"name", body.value("name", "")}});
  });
  router.add("GET", "/v1/boxes/{name}", [](const http::Request& q) { return http::Response::json({{"box", q.param("name")}}); });
  router.add("GET", "/v1/broken", [](const http::Request&) -> http::Response {
    throw std::runtime_error("SQL logic error in /var/lib/secret.db");
  });

  CHECK(dispatch(router, "GET", "/%FF").status == 400);
  CHECK(dispatch(router, "POST", "/v1/things", "[1]").status == 400);
  CHECK(dispatch(router, "POST", "/v1/things", "{\"name\":5}").status == 400);
  CHECK(dispatch(router, "POST", "/v1/things", "{\"name\":\"\xff\"}").status == 400);
  CHECK(dispatch(router, "POST", "/v1/things", nested(50000, '[', ']')).status == 400);
  CHECK(json::parse(dispatch(router, "GET", "/v1/boxes/Projects%2F2026").body)["box"] == "Projects/2026");
  const auto broken = dispatch(router, "GET", "/v1/broken");
  CHECK(broken.status == 500);
  CHECK(broken.body.find("secret") == std::string::npos);

  router.set_internal_errors_shown(true);  // the control API, for the shard's admins
  CHECK(dispatch(router, "GET", "/v1/broken").body.find("SQL logic error") != std::string::npos);
}

TEST_CASE("one percent-decoder: strict escapes, '+' only in query strings") {
  std::string out;
  CHECK(percent_decode("50%25off.ics", out));
  CHECK(out == "50%off.ics");
  CHECK(percent_decode("a+b%2Fc", out));
  CHECK(out == "a+b/c");
  CHECK(percent_decode("a+b", out, true));
  CHECK(out == "a b");
  CHECK_FALSE(percent_decode("50%off", out));
  CHECK_FALSE(percent_decode("%4", out));
  CHECK_FALSE(percent_decode("%", out));
}

TEST_CASE("HTTP dates are IMF-fixdate both ways") {
  CHECK(http::http_date(784111777) == "Sun, 06 Nov 1994 08:49:37 GMT");
  CHECK(http::parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT") == std::optional<int64_t>(784111777));
  CHECK(http::parse_http_date(http::http_date(1796000000)) == std::optional<int64_t>(1796000000));
  CHECK_FALSE(http::parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"));
  CHECK_FALSE(http::parse_http_date("Sun, 06 Nov 1994 08:49:37 UTC"));
  CHECK_FALSE(http::parse_http_date("Sun, 06 Xyz 1994 08:49:37 GMT"));
  CHECK_FALSE(http::parse_http_date(""));
}

TEST_CASE("Basic credentials: one decoder, padding optional, controls refused") {
  using coop::auth::parse_basic;
  const auto padded = parse_basic("Basic YWxpY2U6c2VjcmV0IGhvcnNlIQ==");  // alice:secret horse!
  REQUIRE(padded);
  CHECK(padded->first == "alice");
  CHECK(padded->second == "secret horse!");
  CHECK(parse_basic("basic YWxpY2U6c2VjcmV0IGhvcnNlIQ") == padded);  // no padding, any case
  CHECK(parse_basic("Basic YTpiOmM=")->second == "b:c");            // the first colon splits
  CHECK_FALSE(parse_basic("Basic AGE6Yg=="));                        // NUL in the user
  CHECK_FALSE(parse_basic("Basic YWJj"));                            // no colon
  CHECK_FALSE(parse_basic("Basic !!!"));
  CHECK_FALSE(parse_basic("Bearer abc"));
  CHECK_FALSE(parse_basic(""));
}

TEST_CASE("Bearer tokens: RFC 6750 b64token only") {
  using coop::auth::parse_bearer;
  CHECK(parse_bearer("Bearer abcd-efgh-ijkl") == "abcd-efgh-ijkl");
  CHECK(parse_bearer("bearer  a.b_c~d+e/f==") == "a.b_c~d+e/f==");  // any case, spaces around
  CHECK_FALSE(parse_bearer("Bearer "));
  CHECK_FALSE(parse_bearer("Bearer =abc"));            // padding only at the end
  CHECK_FALSE(parse_bearer("Bearer a b"));             // one token
  CHECK_FALSE(parse_bearer("Bearer a\r\nX-Evil: 1"));  // no control characters
  CHECK_FALSE(parse_bearer("Basic YTpi"));
  CHECK_FALSE(parse_bearer("Bearer " + std::string(600, 'a')));
}
