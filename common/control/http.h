// Request and response of the control API, free of Beast so workers never include it.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <functional>
#include <map>
#include <string>
#include <string_view>

namespace coop {
class Error;
}

namespace coop::control {

struct Request {
  std::string method;                              // "GET", "POST"...
  std::string target;                              // "/v1/events?since=3"
  std::string path;                                // "/v1/events", percent-decoded
  std::map<std::string, std::string> query;        // percent-decoded query parameters
  std::map<std::string, std::string> params;       // "{handle}" segments of the route
  std::string body;

  std::string query_value(std::string_view key, const std::string& fallback = {}) const;
  std::string param(std::string_view key) const;
  // The body as JSON; coop::Error("bad_json", 400) when it is not JSON.
  nlohmann::json json() const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";

  static Response json(const nlohmann::json& value, int status = 200);
  static Response error(const Error& error);
  static Response error(std::string_view code, std::string_view message, int status);
};

// Fills target's path and query fields; false for a target that is not origin-form.
bool parse_target(std::string_view target, Request& request);

}  // namespace coop::control
