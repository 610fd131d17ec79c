// libFuzzer target: a request target and a JSON body through what every HTTP worker shares:
// parse_target, Router::dispatch, Request::json() and the error replies. The first line of the
// input is the target, the rest the body. Nothing may throw out of dispatch, every reply must
// be written, and an error reply must be valid UTF-8 JSON.
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/http/router.h"
#include "common/json.h"
#include "common/text.h"

namespace {

const coop::http::Router& router() {
  static const coop::http::Router r = [] {
    coop::http::Router r;
    r.add("POST", "/v1/things/{name}", [](const coop::http::Request& q) {
      const auto body = q.json();
      // A handler that echoes what it was sent, as error texts and Matrix events do.
      return coop::http::Response::json({{"name", q.param("name")}, {"title", body.value("title", "")}, {"body", body}});
    });
    r.add("GET", "/v1/things", [](const coop::http::Request& q) {
      return coop::http::Response::json({{"q", q.query_value("q")}});
    });
    return r;
  }();
  return r;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const auto eol = input.find('\n');
  coop::http::Request request;
  request.method = (size % 2) ? "POST" : "GET";
  if (!coop::http::parse_target(input.substr(0, eol), request)) return 0;
  if (!coop::is_valid_utf8(request.path)) std::abort();
  request.body = std::string(eol == std::string_view::npos ? std::string_view() : input.substr(eol + 1));
  int replies = 0;
  coop::http::Response reply;
  router().dispatch(request, [&](coop::http::Response r) {
    ++replies;
    reply = std::move(r);
  });
  if (replies != 1) std::abort();
  if (!coop::is_valid_utf8(reply.body)) std::abort();
  if (reply.status >= 400 && !nlohmann::json::accept(reply.body)) std::abort();
  try {
    coop::parse_json(request.body);
  } catch (const coop::Error&) {
  }
  return 0;
}
