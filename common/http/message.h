// HTTP requests and responses as handlers see them, free of Beast so workers never include it.
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace coop {
class Error;
}

namespace coop::http {

struct Request {
  std::string method;                              // "GET", "POST"...
  std::string target;                              // "/v1/events?since=3"
  std::string path;                                // "/v1/events", percent-decoded
  std::vector<std::string> segments;               // the path's segments, each decoded on its own
  std::map<std::string, std::string> query;        // percent-decoded query parameters
  std::map<std::string, std::string> params;       // "{handle}" segments of the route
  std::map<std::string, std::string> headers;      // lowercase names; repeated ones joined with ", "
  std::string body;
  // A body the router's body gate sent to disk instead (Router::set_body_gate): the handler
  // may rename the file away; whatever is left is removed once the response is written.
  std::filesystem::path body_file;
  std::string remote_address;                      // the peer's IP, or "local" on a Unix socket

  // A header's value, or fallback; name in lowercase.
  std::string header(std::string_view name, const std::string& fallback = {}) const;
  std::string query_value(std::string_view key, const std::string& fallback = {}) const;
  // Every value of a repeated parameter (?ver=10&ver=11), percent-decoded, in order.
  std::vector<std::string> query_values(std::string_view key) const;
  std::string param(std::string_view key) const;
  // The path as sent, still percent-encoded, for code that must decode it itself (DAV
  // compares it with Destination headers and hrefs, which arrive encoded).
  std::string raw_path() const { return target.substr(0, target.find('?')); }
  // The body as a JSON object ({} when empty), nesting bounded (common/json.h):
  // coop::Error(errc::kNotJson, 400) when it is not JSON, ("bad_json", 400) for another value.
  nlohmann::json json() const;
};

struct Response {
  int status = 200;
  std::string body;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;  // extra headers
  // When set, sent instead of body without a copy (a file many responses share).
  std::shared_ptr<const std::string> shared_body;
  // When set, the body is this open file's bytes, read and written a piece at a time (large
  // downloads); the descriptor is closed when the response is done.
  struct File {
    int fd = -1;
    uint64_t size = 0;
    ~File();
  };
  std::shared_ptr<File> file;
  // When set, the body is whatever the stream hands out, for as long as it lasts (server-sent
  // events, RFC 8620 7.3): no Content-Length, and the connection ends with the stream. The
  // server asks for each piece with next() once the one before is written; deliver runs
  // once, from any thread, with the piece or with nullopt for the end. cancel() tells the
  // stream the client is gone.
  struct Stream {
    virtual ~Stream() = default;
    virtual void next(std::function<void(std::optional<std::string>)> deliver) = 0;
    virtual void cancel() = 0;
  };
  std::shared_ptr<Stream> stream;

  static Response json(const nlohmann::json& value, int status = 200);
  static Response bytes(int status, std::string body, std::string content_type);
  static Response error(const Error& error);
  // The control API's error shape, {"error":{"code","message"}}.
  static Response error(std::string_view code, std::string_view message, int status);
};

// Fills target's path and query fields from an origin-form or absolute-form target (RFC 9112
// 3.2.1-3.2.2); false when it is neither, or when a decoded part is not UTF-8.
bool parse_target(std::string_view target, Request& request);

}  // namespace coop::http
