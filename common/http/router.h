// Maps HTTP requests to handlers by method and path pattern ("/v1/members/{handle}").
#pragma once

#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <filesystem>
#include <functional>
#include <optional>
#include <string_view>
#include <string>
#include <vector>

#include "common/http/message.h"
#include "common/http/websocket.h"

namespace coop::http {

using Reply = std::function<void(Response)>;
// A handler that answers at once; it runs on the connection's strand, so it must not block
// for long. coop::Error thrown from it becomes the error response.
using Handler = std::function<Response(const Request&)>;
// A handler that answers later (long-poll): it calls reply exactly once, from any thread.
using AsyncHandler = std::function<void(const Request&, Reply)>;
// Runs a job elsewhere (a worker's blocking pool), so SQLite commits, fsyncs and password
// hashing never stall the connections' event loop.
using Runner = std::function<void(std::function<void()>)>;

class Router {
 public:
  void add(std::string method, std::string pattern, Handler handler, std::string summary = {});
  void add_async(std::string method, std::string pattern, AsyncHandler handler, std::string summary = {});
  // A handler that blocks: it runs through runner and its response (or error) is sent from there.
  void add_blocking(std::string method, std::string pattern, Runner runner, Handler handler,
                    std::string summary = {});

  // Calls the matching handler; 404 for an unknown path, 405 for a known path with
  // another method. Exceptions become error responses; reply is called exactly once.
  void dispatch(Request request, Reply reply) const;

  // The routes as JSON, so the control API lists its own commands (GET /v1).
  nlohmann::json describe() const;

  // How errors (coop::Error, unknown routes, wrong methods) are written; the control API's
  // {"error":{code,message}} unless a protocol needs its own (Matrix's {errcode,error}).
  using ErrorFormatter = std::function<Response(int status, const std::string& code, const std::string& message)>;
  void set_error_formatter(ErrorFormatter formatter) { formatter_ = std::move(formatter); }
  // Called instead of a 404 when no route matches the path (CORS preflight, M_UNRECOGNIZED).
  void set_fallback(AsyncHandler handler) { fallback_ = std::move(handler); }
  // A GET with "Upgrade: websocket" to this exact path becomes a WebSocket connection.
  void add_websocket(std::string path, WebSocketHandlers handlers);
  const WebSocketHandlers* websocket(const std::string& path) const;

  // Large bodies (uploads of any size) under a path prefix: before the body is read, decide
  // sees the request's head (method, path, headers; no body) and answers, from any thread,
  // either a refusal (sent at once; the body is never read, so an unauthenticated client
  // cannot fill the disk) or how many bytes may come. The body then goes to a file in
  // spool_dir (Request::body_file), never into memory.
  struct BodyAdmission {
    std::optional<Response> refusal;
    uint64_t max_bytes = 0;
  };
  struct BodyGate {
    std::string prefix;
    std::filesystem::path spool_dir;
    std::function<void(const Request& head, std::function<void(BodyAdmission)> answer)> decide;
  };
  void set_body_gate(BodyGate gate) { body_gates_.push_back(std::move(gate)); }
  const BodyGate* body_gate(std::string_view method, std::string_view path) const;

  Response error(int status, const std::string& code, const std::string& message) const;
  // Inside a catch block: the exception in flight as an error response. coop::Error keeps its
  // status and code, a JSON type error is the client's 400, anything else a 500. A 5xx says
  // only "internal error" (the detail goes to the log) unless the router serves the control
  // API, whose callers are the shard's admins.
  Response current_error(const Request& request) const;
  void set_internal_errors_shown(bool shown) { internal_errors_shown_ = shown; }

 private:
  struct Route {
    std::string method;
    std::vector<std::string> segments;  // "{name}" matches one path segment
    std::string pattern;
    std::string summary;
    AsyncHandler handler;
  };
  static bool match(const Route& route, const std::vector<std::string>& segments, Request& request);
  std::vector<Route> routes_;
  ErrorFormatter formatter_;
  AsyncHandler fallback_;
  bool internal_errors_shown_ = false;
  std::vector<std::pair<std::string, WebSocketHandlers>> websockets_;
  std::vector<BodyGate> body_gates_;
};

}  // namespace coop::http
