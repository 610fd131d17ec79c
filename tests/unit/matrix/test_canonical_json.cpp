// Canonical JSON encoding and strict parsing (Matrix spec, Appendices: Canonical JSON).
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "workers/matrix/canonical_json.h"

namespace mx = coop::matrix;

namespace {

std::string canonical(std::string_view text) { return mx::canonical_json(mx::parse_json_object(text)); }

std::string error_code_of(const std::function<void()>& action) {
  try {
    action();
  } catch (const coop::Error& e) {
    return e.code();
  }
  return "";
}

}  // namespace

TEST_CASE("canonical JSON matches the spec appendix examples") {
  // Matrix spec, Appendices: Canonical JSON (examples).
  CHECK(canonical("{}") == "{}");
  CHECK(canonical(R"({"one": 1, "two": "Two"})") == R"({"one":1,"two":"Two"})");
  CHECK(canonical(R"({"b": "2", "a": "1"})") == R"({"a":"1","b":"2"})");
  CHECK(canonical(R"({"auth":{"success":true,"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"medium":"email","address":"john.doe@example.org"},{"medium":"msisdn","address":"123456789"}]}}})") ==
        R"({"auth":{"mxid":"@john.doe:example.com","profile":{"display_name":"John Doe","three_pids":[{"address":"john.doe@example.org","medium":"email"},{"address":"123456789","medium":"msisdn"}]},"success":true}})");
  CHECK(canonical(R"({"a": "日本語"})") == R"({"a":"日本語"})");
  CHECK(canonical(R"({"本": 2, "日": 1})") == R"({"日":1,"本":2})");
  CHECK(canonical(R"({"a": "\u65E5"})") == R"({"a":"日"})");
  CHECK(canonical(R"({"a": null})") == R"({"a":null})");
  CHECK(canonical(R"({"a": -0, "b": 1e10})") == R"({"a":0,"b":10000000000})");
}

TEST_CASE("canonical JSON sorts keys by code point, not UTF-16 code unit") {
  // U+FB01 sorts before U+1F600; in UTF-16 the surrogate pair D83D would come first.
  CHECK(canonical(R"({"😀": 2, "ﬁ": 1})") == R"({"ﬁ":1,"😀":2})");
  CHECK(canonical(R"({"\ud83d\ude00": 2, "\ufb01": 1})") == R"({"ﬁ":1,"😀":2})");
  CHECK(canonical(R"({"b": 1, "B": 2, "a": 3, "é": 4, "z": 5})") == R"({"B":2,"a":3,"b":1,"z":5,"é":4})");
}

TEST_CASE("canonical JSON uses only the short escapes and lowercase \\u00xx") {
  CHECK(canonical(R"({"a": "\b\t\n\f\r\"\\"})") == R"({"a":"\b\t\n\f\r\"\\"})");
  CHECK(canonical(R"({"a": "\u0000\u0001\u001F\u001b"})") == R"({"a":"\u0000\u0001\u001f\u001b"})");
  CHECK(canonical(R"({"a": "\/ / \u007f \u2028"})") == "{\"a\":\"/ / \x7f \xe2\x80\xa8\"}");
}

TEST_CASE("canonical JSON keeps integers within 2^53 - 1 and rejects floats") {
  CHECK(canonical(R"({"a": 9007199254740991, "b": -9007199254740991})") ==
        R"({"a":9007199254740991,"b":-9007199254740991})");
  CHECK(canonical(R"({"a": -0.0, "b": 1.0, "c": 2E3, "d": -5e0})") == R"({"a":0,"b":1,"c":2000,"d":-5})");
  for (const char* text : {R"({"a": 9007199254740992})", R"({"a": -9007199254740992})", R"({"a": 1.5})",
                           R"({"a": 1e16})", R"({"a": 18446744073709551616})", R"({"a": [0.1]})"}) {
    INFO(text);
    CHECK(error_code_of([&] { canonical(text); }) == "bad_json");
  }
  CHECK(error_code_of([] { mx::canonical_json(nlohmann::json(std::nan(""))); }) == "bad_json");
  CHECK(error_code_of([] { mx::canonical_json(nlohmann::json::binary({1, 2})); }) == "bad_json");
}

TEST_CASE("canonical JSON rejects strings that are not UTF-8") {
  CHECK(error_code_of([] { mx::canonical_json(nlohmann::json{{"a", "\xff"}}); }) == "bad_json");
  CHECK(error_code_of([] { mx::canonical_json(nlohmann::json{{"\xc0\x80", 1}}); }) == "bad_json");  // overlong
  CHECK(error_code_of([] { mx::canonical_json(nlohmann::json{{"a", "\xed\xa0\x80"}}); }) == "bad_json");  // surrogate
  CHECK(error_code_of([] { mx::canonical_json(nlohmann::json{{"a", "\xf4\x90\x80\x80"}}); }) == "bad_json");
  CHECK(error_code_of([] { mx::canonical_json(nlohmann::json{{"a", "\xe6\x97"}}); }) == "bad_json");  // truncated
}

TEST_CASE("parse_json_object accepts only one well-formed object") {
  CHECK(mx::parse_json_object(" {\"a\": [1, {\"b\": true}]} \n")["a"][1]["b"] == true);
  for (const char* text : {"", "[]", "1", "\"a\"", "null", "{", "{}{}", "{} x", "{\"a\":1,}", "{'a':1}",
                           "{\"a\":1} // c", "{\"a\": \"\\ud800\"}", "{\"a\": 1e400}"}) {
    INFO(text);
    CHECK(error_code_of([&] { mx::parse_json_object(text); }) == "not_json");
  }
  CHECK(error_code_of([] { mx::parse_json_object("{\"a\": \"\xff\"}"); }) == "not_json");
  CHECK(error_code_of([] { mx::parse_json_object("{\"a\": \"\xc0\x80\"}"); }) == "not_json");
}

TEST_CASE("parse_json_object keeps the last of duplicated keys") {
  CHECK(canonical(R"({"a": 1, "a": 2})") == R"({"a":2})");
}

TEST_CASE("JSON nesting is limited to kMaxJsonDepth levels") {
  const auto nested = [](int depth) {
    std::string text = "{\"a\":";
    for (int i = 1; i < depth; ++i) text += "[";
    text += "0";
    for (int i = 1; i < depth; ++i) text += "]";
    return text + "}";
  };
  CHECK(canonical(nested(mx::kMaxJsonDepth)) == nested(mx::kMaxJsonDepth));
  CHECK(error_code_of([&] { mx::parse_json_object(nested(mx::kMaxJsonDepth + 1)); }) == "not_json");
  CHECK(error_code_of([&] { mx::parse_json_object(nested(100000)); }) == "not_json");

  nlohmann::json deep = 0;
  for (int i = 0; i < mx::kMaxJsonDepth + 1; ++i) deep = nlohmann::json::array({deep});
  CHECK(error_code_of([&] { mx::canonical_json(deep); }) == "bad_json");
}
