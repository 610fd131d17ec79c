// HTTP routing, error mapping and the request helpers.
#include "common/http/router.h"

#include <unistd.h>

#include <spdlog/spdlog.h>

#include <nlohmann/json.hpp>

#include "common/error.h"
#include "common/json.h"
#include "common/net/acme_challenge.h"
#include "common/text.h"

namespace coop::http {

namespace {

std::vector<std::string> split_path(std::string_view path) {
  std::vector<std::string> segments;
  std::size_t start = 1;
  while (start <= path.size()) {
    const auto end = path.find('/', start);
    const auto piece = path.substr(start, end == std::string_view::npos ? std::string_view::npos : end - start);
    if (!piece.empty()) segments.emplace_back(piece);
    if (end == std::string_view::npos) break;
    start = end + 1;
  }
  return segments;
}

}  // namespace

bool parse_target(std::string_view target, Request& request) {
  // RFC 9112 3.2.2: a server accepts the absolute-form too; its authority is not ours to check.
  for (std::string_view scheme : {"http://", "https://"}) {
    if (!target.empty() && target.front() == '/') break;
    if (target.size() < scheme.size() || ascii_lower(target.substr(0, scheme.size())) != scheme) continue;
    const auto slash = target.find_first_of("/?", scheme.size());
    target = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
    if (target.front() == '?') return false;
    break;
  }
  if (target.empty() || target.front() != '/') return false;
  request.target = std::string(target);
  const auto question = target.find('?');
  // Decoded bytes reach error texts, JSON and file names: they must be UTF-8.
  const auto raw_path = target.substr(0, question);
  if (!percent_decode(raw_path, request.path) || !is_valid_utf8(request.path)) return false;
  // Segments are split before decoding, so "%2F" stays inside its segment ("Projects/2026").
  request.segments.clear();
  for (const auto& raw : split_path(raw_path)) {
    std::string segment;
    if (!percent_decode(raw, segment)) return false;
    request.segments.push_back(std::move(segment));
  }
  request.query.clear();
  if (question == std::string_view::npos) return true;
  auto rest = target.substr(question + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const auto pair = rest.substr(0, amp);
    const auto eq = pair.find('=');
    std::string key, value;
    if (!percent_decode(pair.substr(0, eq), key, true) || !is_valid_utf8(key)) return false;
    if (eq != std::string_view::npos && (!percent_decode(pair.substr(eq + 1), value, true) || !is_valid_utf8(value)))
      return false;
    if (!key.empty()) request.query[key] = value;
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return true;
}

std::vector<std::string> Request::query_values(std::string_view key) const {
  std::vector<std::string> out;
  const auto at = target.find('?');
  if (at == std::string::npos) return out;
  std::string_view rest(target);
  rest.remove_prefix(at + 1);
  while (!rest.empty()) {
    const auto amp = rest.find('&');
    const auto part = rest.substr(0, amp);
    const auto eq = part.find('=');
    std::string name, value;
    if (eq != std::string_view::npos && percent_decode(part.substr(0, eq), name, true) && name == key &&
        percent_decode(part.substr(eq + 1), value, true))
      out.push_back(std::move(value));
    if (amp == std::string_view::npos) break;
    rest.remove_prefix(amp + 1);
  }
  return out;
}

std::string Request::query_value(std::string_view key, const std::string& fallback) const {
  auto it = query.find(std::string(key));
  return it == query.end() ? fallback : it->second;
}

std::string Request::header(std::string_view name, const std::string& fallback) const {
  auto it = headers.find(std::string(name));
  return it == headers.end() ? fallback : it->second;
}

std::string Request::param(std::string_view key) const {
  auto it = params.find(std::string(key));
  return it == params.end() ? std::string() : it->second;
}

nlohmann::json Request::json() const {
  if (body.empty()) return nlohmann::json::object();
  return parse_json_object(body);
}

Response Response::json(const nlohmann::json& value, int status) {
  Response response;
  response.status = status;
  response.body = dump_json(value);
  return response;
}

Response Response::bytes(int status, std::string body, std::string content_type) {
  Response response;
  response.status = status;
  response.body = std::move(body);
  response.content_type = std::move(content_type);
  return response;
}

Response::File::~File() {
  if (fd >= 0) ::close(fd);
}

Response Response::error(const Error& error) { return Response::error(error.code(), error.what(), error.status()); }

Response Response::error(std::string_view code, std::string_view message, int status) {
  Response response;
  response.status = status;
  response.body = error_body(code, message);
  return response;
}

void Router::add(std::string method, std::string pattern, Handler handler, std::string summary) {
  add_async(std::move(method), std::move(pattern),
            [handler = std::move(handler)](const Request& request, Reply reply) { reply(handler(request)); },
            std::move(summary));
}

void Router::add_async(std::string method, std::string pattern, AsyncHandler handler, std::string summary) {
  routes_.push_back(Route{std::move(method), split_path(pattern), pattern, std::move(summary), std::move(handler)});
}

void Router::add_blocking(std::string method, std::string pattern, Runner runner, Handler handler,
                          std::string summary) {
  add_async(
      std::move(method), std::move(pattern),
      [this, runner = std::move(runner), handler = std::move(handler)](const Request& request, Reply reply) {
        runner([this, handler, request, reply] {
          try {
            reply(handler(request));
          } catch (...) {
            reply(current_error(request));
          }
        });
      },
      std::move(summary));
}

bool Router::match(const Route& route, const std::vector<std::string>& segments, Request& request) {
  if (route.segments.size() != segments.size()) return false;
  std::map<std::string, std::string> params;
  for (std::size_t i = 0; i < segments.size(); ++i) {
    const auto& want = route.segments[i];
    if (want.size() > 2 && want.front() == '{' && want.back() == '}')
      params[want.substr(1, want.size() - 2)] = segments[i];
    else if (want != segments[i])
      return false;
  }
  request.params = std::move(params);
  return true;
}

void Router::add_websocket(std::string path, WebSocketHandlers handlers) {
  websockets_.emplace_back(std::move(path), std::move(handlers));
}

const WebSocketHandlers* Router::websocket(const std::string& path) const {
  for (const auto& [p, handlers] : websockets_)
    if (p == path) return &handlers;
  return nullptr;
}

const Router::BodyGate* Router::body_gate(std::string_view method, std::string_view path) const {
  // Only methods that carry content worth keeping; PROPFIND or LOCK bodies stay small.
  if (method != "PUT" && method != "POST") return nullptr;
  for (const auto& gate : body_gates_)
    if (path.substr(0, gate.prefix.size()) == gate.prefix) return &gate;
  return nullptr;
}

void Router::dispatch(Request request, Reply reply) const {
  // parse_target fills segments; a request made by hand (tests) may have only a path.
  const std::vector<std::string> segments = request.segments.empty() ? split_path(request.path) : std::move(request.segments);
  // RFC 8555 8.3: an ACME server fetches /.well-known/acme-challenge/TOKEN over plain HTTP
  // from whichever listener it reaches; every worker answers what the supervisor published.
  if (segments.size() == 3 && segments[0] == ".well-known" && segments[1] == "acme-challenge" &&
      (request.method == "GET" || request.method == "HEAD")) {
    if (auto answer = net::acme_http01_answer(segments[2])) {
      reply(Response::bytes(200, std::move(*answer), "application/octet-stream"));
      return;
    }
  }
  bool path_known = false;
  for (const auto& route : routes_) {
    if (!match(route, segments, request)) continue;
    path_known = true;
    const bool same = route.method == request.method || (route.method == "GET" && request.method == "HEAD");
    if (!same) continue;
    try {
      route.handler(request, reply);
    } catch (...) {
      reply(current_error(request));
    }
    return;
  }
  if (fallback_ && (!path_known || request.method == "OPTIONS")) {
    try {
      fallback_(request, reply);
    } catch (...) {
      reply(current_error(request));
    }
    return;
  }
  if (path_known)
    reply(error(405, errc::kMethodNotAllowed, request.method + " is not allowed on " + request.path));
  else
    reply(error(404, errc::kNotFound, "no such resource: " + request.path));
}

Response Router::current_error(const Request& request) const {
  try {
    throw;
  } catch (const Error& e) {
    if (e.status() < 500 || internal_errors_shown_) return error(e.status(), e.code(), e.what());
    spdlog::error("{} {}: {}: {}", request.method, request.path, e.code(), e.what());
    return error(e.status(), e.code(), "internal error");
  } catch (const nlohmann::json::type_error& e) {
    // A handler read a field of the client's JSON as the wrong type ({"name": 5}).
    spdlog::debug("{} {}: {}", request.method, request.path, e.what());
    return error(400, errc::kBadJson, "a field of the request has the wrong JSON type");
  } catch (const std::exception& e) {
    // The detail is for the log: it may name files, SQL or another member's data.
    spdlog::error("{} {}: {}", request.method, request.path, e.what());
    return error(500, errc::kInternal, internal_errors_shown_ ? e.what() : "internal error");
  } catch (...) {
    spdlog::error("{} {}: unknown exception", request.method, request.path);
    return error(500, errc::kInternal, "internal error");
  }
}

Response Router::error(int status, const std::string& code, const std::string& message) const {
  if (formatter_) return formatter_(status, code, message);
  return Response::error(code, message, status);
}

nlohmann::json Router::describe() const {
  auto list = nlohmann::json::array();
  for (const auto& route : routes_)
    list.push_back({{"method", route.method}, {"path", route.pattern}, {"summary", route.summary}});
  return list;
}

}  // namespace coop::http
